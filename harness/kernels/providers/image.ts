// A kernel built elsewhere (`--kernel path/to/bzImage|vmlinux`), booted as it is. Its identity is
// the file's sha256. Its config: the one given, else the image's own (IKCONFIG), else a .config or
// config-<release> beside it; the cases' kconfig needs are checked against it before any boot. Its
// modules: the directory given, else lib/modules/<release> beside it (or beside its boot/ folder).
import fs from 'node:fs';
import path from 'node:path';
import { EntryStore, hashOf, sha256 } from '../../util/cache.ts';
import { copyInput, LIMITS as FILE_LIMITS, readInputBytes, readInputFile } from '../../trust/files.ts';
import { confineReal, isUnder, safeComponent } from '../../trust/paths.ts';
import { HarnessError } from '../../util/errors.ts';
import type { KernelArtifact, KernelMeta } from '../artifact.ts';
import { sourcePackageOf } from '../debunpack.ts';
import { bannerRelease, bzImageRelease, imageKind, readImageConfig, type ImageKind } from '../ikconfig.ts';
import { parseKconfig } from '../kconfig.ts';
import type { LoadedKernel } from '../load.ts';
import type { SourceOf } from '../schema.ts';
import type { KernelProvider } from './types.ts';
import type { Logger } from '../../util/log.ts';

/** Kernel images are a few MB (a bzImage) to a few hundred (a vmlinux with debug info); a .config a few hundred KB. */
const MAX_IMAGE_BYTES = FILE_LIMITS.image;
const MAX_CONFIG_BYTES = FILE_LIMITS.config;

type ImageMeta = KernelMeta & { imageKind: ImageKind; modulesDir?: string };

/** Where a prebuilt image's modules may be, in the order they are looked for. */
export function moduleDirCandidates(imageDir: string, release: string, given?: string): string[] {
  if (given) return [given, path.join(given, 'lib/modules', release)];
  return [path.join(imageDir, 'lib/modules', release), path.join(imageDir, '..', 'lib/modules', release), path.join(imageDir, 'modules', 'lib/modules', release)];
}

/** A modules directory is one with modules.dep (or modules.order: depmod not run yet). */
export function isModulesDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'modules.dep')) || fs.existsSync(path.join(dir, 'modules.order'));
}

/** Where a prebuilt image's config may be, beside it, in the order they are looked for (after its IKCONFIG). */
export function configCandidates(imageDir: string, release: string | null): string[] {
  return [path.join(imageDir, '.config'), ...(release ? [path.join(imageDir, `config-${release}`), path.join(imageDir, '..', 'boot', `config-${release}`)] : [])];
}

interface Resolved {
  file: string;
  kind: ImageKind;
  sha: string;
  release: string;
  configText: string;
  configFrom: string;
  modules?: string;
}

async function resolveImage(src: SourceOf<'image'>, k: LoadedKernel, workDir: string): Promise<Resolved> {
  const at = (p: string): string => path.resolve(path.dirname(k.file), p);
  const file = at(src.path);
  if (!fs.existsSync(file)) throw new HarnessError('bad-input', `no such kernel image: ${file}`, { file: k.file, field: 'source.path' });
  const img = readInputBytes(file, MAX_IMAGE_BYTES, { def: k.file, field: 'source.path' });
  const kind = imageKind(img);
  if (!kind)
    throw new HarnessError('bad-input', `${file} is not a kernel image: neither a bzImage (no "HdrS" boot header) nor an ELF vmlinux`, {
      file: k.file,
      field: 'source.path',
      hint: 'give arch/x86/boot/bzImage or vmlinux from a kernel build',
    });
  const release = (kind === 'bzImage' ? bzImageRelease(img) : bannerRelease(img)) ?? null;
  let configText: string | null = null;
  let configFrom = '';
  if (src.config) {
    configFrom = at(src.config);
    configText = readInputFile(configFrom, MAX_CONFIG_BYTES, 'source.config');
  } else {
    configText = await readImageConfig(img, workDir);
    configFrom = `the IKCONFIG of ${file}`;
    if (configText === null) {
      const beside = configCandidates(path.dirname(file), release).find((f) => fs.existsSync(f));
      if (beside) {
        configFrom = beside;
        configText = readInputFile(beside, MAX_CONFIG_BYTES, 'source.config');
      }
    }
  }
  if (configText === null || parseKconfig(configText).size === 0)
    throw new HarnessError('bad-input', `no kernel config for ${file}: the image carries none (CONFIG_IKCONFIG) and there is no ${[...new Set(configCandidates(path.dirname(file), release).map((f) => path.basename(f)))].join(' or ')} beside it`, {
      file: k.file,
      field: src.config ? 'source.config' : 'source.path',
      hint: 'put the .config it was built with beside the image, build it with CONFIG_IKCONFIG=y, or name it in a kernel definition: source: { type: image, path: ..., config: ... }',
    });
  const cfg = parseKconfig(configText);
  if (kind === 'vmlinux' && cfg.get('CONFIG_PVH') !== 'y')
    throw new HarnessError('bad-input', `${file} is a vmlinux without CONFIG_PVH: QEMU boots an uncompressed kernel only through PVH`, {
      file: k.file,
      field: 'source.path',
      hint: 'give its bzImage (arch/x86/boot/bzImage) instead',
    });
  const rel = release ?? 'unknown';
  let modules: string | undefined;
  if (src.modules || cfg.get('CONFIG_MODULES') === 'y') {
    modules = moduleDirCandidates(path.dirname(file), rel, src.modules ? at(src.modules) : undefined).find(isModulesDir);
    if (src.modules && !modules)
      throw new HarnessError('bad-input', `no modules for ${rel} in ${at(src.modules)}: neither it nor its lib/modules/${rel} has modules.dep`, {
        file: k.file,
        field: 'source.modules',
        hint: `give the lib/modules/<release> directory of the build (make modules_install INSTALL_MOD_PATH=DIR puts it in DIR/lib/modules/${rel})`,
      });
    if (modules && !fs.existsSync(path.join(modules, 'modules.dep')))
      throw new HarnessError('bad-input', `${modules} has no modules.dep`, { file: k.file, field: src.modules ? 'source.modules' : 'source.path', hint: `run depmod -b <root> ${rel} (make modules_install runs it)` });
  }
  return { file, kind, sha: sha256(img), release: rel, configText, configFrom, ...(modules ? { modules: fs.realpathSync(modules) } : {}) };
}

/** Kernels whose origin this process has said (a run asks for each kernel once per case). */
const told = new Set<string>();

/**
 * The modules directory of an entry. Its manifest may come from a remote cache: the directory it
 * names is used only when it is the one this definition resolved to (`resolved`) or lies inside the
 * entry (symlinks resolved), and the release must be a plain name (it becomes /lib/modules/<release>).
 */
export function entryModulesDir(entryDir: string, meta: Pick<ImageMeta, 'modulesDir' | 'release'>, resolved: string | undefined): string | undefined {
  const md: unknown = meta.modulesDir;
  if (md === undefined) return undefined;
  const where = { def: path.join(entryDir, 'manifest.json'), field: 'meta.modulesDir' };
  safeComponent(meta.release, { ...where, field: 'meta.release' });
  if (typeof md === 'string' && resolved !== undefined && md === resolved) return md;
  if (typeof md !== 'string' || !path.isAbsolute(md) || !isUnder(entryDir, md) || md === entryDir)
    throw new HarnessError('bad-input', `the kernel entry names the modules directory ${JSON.stringify(md)}, which is neither the one its definition names${resolved ? ` (${resolved})` : ''} nor inside the entry`, {
      file: where.def,
      field: where.field,
      hint: 'a cache entry (local or from the remote cache) was tampered with; remove it (npm run cache) and run again',
    });
  return confineReal(entryDir, path.relative(entryDir, md), where);
}

function artifactOf(store: EntryStore<ImageMeta>, key: string, name: string, meta: ImageMeta, cached: boolean, log: Logger, resolvedModules: string | undefined): KernelArtifact {
  const dir = store.entryDir(key);
  const modulesDir = entryModulesDir(dir, meta, resolvedModules);
  if (!told.has(key)) {
    told.add(key);
    log.info(`prebuilt ${meta.imageKind} ${meta.source.replace(/ \(prebuilt.*$/, '')}: release ${meta.release}, config from ${meta.configFrom ?? '?'}${meta.modulesDir ? `, modules from ${meta.modulesDir}` : ''}`);
  }
  return {
    name,
    key,
    dir,
    bzImage: path.join(dir, 'bzImage'), // absent for a vmlinux
    vmlinux: path.join(dir, 'vmlinux'), // absent for a bzImage: booted on the pc machine
    config: path.join(dir, 'config'),
    ...(modulesDir ? { modules: { dir: modulesDir, release: meta.release, sourcePackage: sourcePackageOf(meta.release) } } : {}),
    meta: { ...meta, name },
    cached,
  };
}

export const image: KernelProvider<'image'> = {
  type: 'image',
  kind: 'prebuilt',
  hostPackages: () => [],
  async identify(src, k, opts) {
    const r = await resolveImage(src, k, path.join(opts.cacheDir, 'tmp', `ikconfig-${process.pid}`));
    return { id: `image-${r.sha.slice(0, 16)}`, label: `${r.file} (prebuilt ${r.kind}, sha256 ${r.sha.slice(0, 12)})` };
  },
  async obtain(src, k, opts) {
    const t0 = Date.now();
    const r = await resolveImage(src, k, path.join(opts.cacheDir, 'tmp', `ikconfig-${process.pid}`));
    const configHash = sha256(r.configText);
    // the file's content is its identity; what is read beside it (config, modules) is part of the entry
    const key = hashOf({ kind: 'image', sha: r.sha, configHash, modules: r.modules ?? null });
    const store = new EntryStore<ImageMeta>(path.join(opts.cacheDir, 'kernels'));
    const { manifest, cached } = await store.getOrFill(
      key,
      async (staging) => {
        copyInput(r.file, path.join(staging, r.kind === 'bzImage' ? 'bzImage' : 'vmlinux'), MAX_IMAGE_BYTES, { def: k.file, field: 'source.path' });
        fs.writeFileSync(path.join(staging, 'config'), r.configText);
        const meta: ImageMeta = {
          name: k.def.name,
          release: r.release,
          configHash,
          source: `${r.file} (prebuilt ${r.kind}, sha256 ${r.sha.slice(0, 12)})`,
          sourceId: `image-${r.sha.slice(0, 16)}`,
          configFrom: r.configFrom,
          patches: [],
          compiler: (parseKconfig(r.configText).get('CONFIG_CC_VERSION_TEXT') ?? '').replace(/"/g, ''),
          buildMs: Date.now() - t0,
          builtAt: new Date().toISOString(),
          imageKind: r.kind,
          ...(r.modules ? { modulesDir: r.modules } : {}),
        };
        return meta;
      },
      { verify: false, label: `kernel ${k.def.name}`, log: opts.log },
    );
    return artifactOf(store, key, k.def.name, manifest.meta, cached, opts.log, r.modules);
  },
  async sourceFiles(src, k, wants) {
    if (wants.length === 0) return {};
    // (optional files too: without a tree, whether it has them is unknown)
    throw new HarnessError('bad-input', `${k.def.name} is a prebuilt image (${src.path}) without a source tree, so the case's sourceFiles (${wants.map((w) => w.path).join(', ')}) cannot be read from it`, {
      file: k.file,
      field: 'source',
      hint: 'run the case on a kernel built from source (--kernel path/to/tree)',
    });
  },
};
