// The kconfig -> module map of a kernel version, read from the Makefiles in Debian's matching
// linux-source tarball (cached as JSON), and the module files a case needs on a modular kernel.
import fs from 'node:fs';
import path from 'node:path';
import { hashOf } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import { LIMITS as FILE_LIMITS, readInputFile } from '../trust/files.ts';
import { readUnder, safeComponent } from '../trust/paths.ts';
import type { KernelArtifact } from './artifact.ts';
import { readTarMembers } from '../util/extract.ts';
import { parseKconfig } from './kconfig.ts';
import { loadOrder, parseModulesDep, parseObjLines } from './modmap.ts';

export async function moduleMap(sourcePackage: string, cacheDir: string): Promise<Map<string, string[]>> {
  const tarball = `/usr/src/${sourcePackage}.tar.xz`;
  if (!fs.existsSync(tarball))
    throw new HarnessError('missing-prereq', `${tarball} is needed to map kconfig options to module names`, { hint: `apt-get install ${sourcePackage}` });
  const st = fs.statSync(tarball);
  const memo = path.join(cacheDir, 'modmap', `${hashOf({ tarball, size: st.size, mtime: st.mtimeMs }).slice(0, 24)}.json`);
  if (fs.existsSync(memo)) return new Map(Object.entries(JSON.parse(fs.readFileSync(memo, 'utf8')) as Record<string, string[]>));
  const r = await readTarMembers(tarball, ['*/Makefile', '*/Kbuild'], { wildcards: true, maxBytes: 512 * 1024 * 1024 });
  if ('error' in r) throw new HarnessError('internal', `cannot read the Makefiles of ${tarball}: ${r.error.slice(0, 300)}`);
  const map = parseObjLines(r.text);
  const obj: Record<string, string[]> = {};
  for (const [k, v] of map) obj[k] = [...v];
  fs.mkdirSync(path.dirname(memo), { recursive: true });
  fs.writeFileSync(memo + '.tmp', JSON.stringify(obj));
  fs.renameSync(memo + '.tmp', memo);
  return new Map(Object.entries(obj));
}

/** A module's path in modules.dep: relative components of letters, digits and _ . + - (none starting with a dot), ending .ko[.xz|.gz|.zst]. */
const MODULE_PATH = /^(?:[A-Za-z0-9_][A-Za-z0-9_.+-]*\/)*[A-Za-z0-9_][A-Za-z0-9_.+-]*\.ko(?:\.(?:xz|gz|zst))?$/;

/** Module parameters the harness sets (a freshly loaded dummy would create dummy0 itself). */
const PARAMS: Record<string, string> = { dummy: 'numdummies=0' };

export interface ModuleFiles {
  /** initramfs path -> content */
  files: Record<string, Buffer | string>;
  loaded: string[];
}

/** The modules (with dependencies, in load order) providing the case's kconfig needs that are =m. */
export async function modulesForCase(k: KernelArtifact, kconfig: string[], cacheDir: string): Promise<ModuleFiles> {
  if (!k.modules) return { files: {}, loaded: [] };
  const cfg = parseKconfig(readInputFile(k.config, FILE_LIMITS.config, 'config'));
  const asModule = kconfig.filter((o) => cfg.get(o) === 'm');
  if (asModule.length === 0) return { files: {}, loaded: [] };
  if (!k.modules.sourcePackage) throw new HarnessError('bad-input', `${asModule.join(', ')} ${asModule.length > 1 ? 'are modules' : 'is a module'} in ${k.name} (release ${k.modules.release}), and no Debian linux-source package is known for that release to find the module files by`, { field: 'kconfig' });
  const map = await moduleMap(k.modules.sourcePackage, cacheDir);
  const wanted: string[] = [];
  for (const o of asModule) {
    const mods = map.get(o);
    if (!mods?.length) throw new HarnessError('bad-input', `${o} is a module in ${k.name}, but no module for it was found in ${k.modules.sourcePackage}'s Makefiles`, { field: 'kconfig' });
    wanted.push(...mods);
  }
  // the modules directory and everything in it are untrusted (a user's --modules, a .deb, a cache
  // entry): the release is a plain name, modules.dep and each module are read bounded, under the
  // directory (no symlink out), and each module path must be a relative kernel/...ko-style path
  const dir = k.modules.dir;
  const where = { def: path.join(dir, 'modules.dep'), field: 'modules' };
  const release = safeComponent(k.modules.release, { ...where, field: 'modules.release' });
  const dep = parseModulesDep(readUnder(dir, 'modules.dep', FILE_LIMITS.modulesDep, where).toString('utf8'));
  const { order, missing } = loadOrder(dep, wanted);
  if (missing.length) throw new HarnessError('bad-input', `modules not shipped with ${k.name}: ${missing.join(', ')}`, { field: 'kconfig' });
  const files: Record<string, Buffer | string> = {};
  const list: string[] = [];
  for (const name of order) {
    const rel = dep.get(name)!.path;
    if (!MODULE_PATH.test(rel))
      throw new HarnessError('bad-input', `modules.dep names ${JSON.stringify(rel)} for ${name}: not a relative kernel/...ko path inside the modules directory`, { file: where.def, field: where.field });
    files[`/lib/modules/${release}/${rel}`] = readUnder(dir, rel, FILE_LIMITS.module, where);
    list.push(`/lib/modules/${release}/${rel}${PARAMS[name] ? ' ' + PARAMS[name] : ''}`);
  }
  files['/case/modules.list'] = list.join('\n') + '\n';
  return { files, loaded: order };
}
