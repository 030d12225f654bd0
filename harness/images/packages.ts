// Guest packages: Debian packages a case needs in the guest (nftables, tcpdump, socat, bash, ...),
// put with their shared libraries into an image layer (a cpio archive appended to the base image),
// cached by content: the exact package versions. The packages are fetched with `apt-get download`
// and unpacked (never installed on the host); their library dependencies come along (Debian's own
// Depends, library packages only), and every program in the layer is checked with ldd: a library
// found nowhere is an error naming it, a library the host has but the layer lacks is copied in.
import { debControlMember, unpackDeb } from '../util/extract.ts';
import { chooseAlternatives, parseAlternatives, type Alternative } from './alternatives.ts';
import fs from 'node:fs';
import path from 'node:path';
import { canRefreshLists, ListsRefresher, systemApt, type AptOps } from '../host/apt.ts';
import { EntryStore, hashOf, withLock } from '../util/cache.ts';
import { confine, confineReal } from '../trust/paths.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { run, tail } from '../util/proc.ts';
import { cpioDir } from './initramfs.ts';

const LAYER_FORMAT = 2; // bump when the way a layer is made changes (2: the packages' alternatives)

/** Provided by the base image (the host's own libc and loader): never fetched. */
const SKIP = new Set(['libc6', 'libgcc-s1', 'gcc-12-base', 'libc-bin']);
/** What the guest never needs from a package. */
const PRUNE = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian', 'usr/share/bug', 'usr/share/bash-completion', 'usr/share/zsh', 'usr/share/menu', 'usr/share/doc-base', 'etc/cron.d', 'etc/cron.daily', 'lib/systemd', 'usr/lib/systemd'];

export interface LayerMeta {
  packages: Array<{ name: string; version: string }>;
  /** libraries copied from the host because no fetched package had them */
  hostLibs: string[];
  /** links the packages' update-alternatives calls would make (link -> target), as dpkg's automatic mode chooses */
  alternatives?: Record<string, string>;
  sizeBytes: number;
}

export interface PackageLayer {
  path: string;
  key: string;
  meta: LayerMeta;
  cached: boolean;
}

/** `apt-cache depends --important PKG` -> the packages it depends on (first of each alternative; virtual ones left out). */
export function parseDepends(text: string): string[] {
  const out: string[] = [];
  let skipNext = false;
  for (const line of text.split('\n')) {
    const m = /^\s*(\|)?(?:Pre)?Depends:\s+(\S+)/.exec(line);
    if (!m) continue;
    const alt = m[1] === '|';
    if (!skipNext && !m[2]!.startsWith('<')) out.push(m[2]!);
    skipNext = alt; // "|Depends: a" then "Depends: b" means a or b: a is enough
  }
  return [...new Set(out)];
}

/** The packages to fetch: the named ones, plus the library packages they need, transitively. */
export async function packageClosure(named: string[], depends: (pkg: string) => Promise<string[]>): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...named];
  while (queue.length) {
    const p = queue.shift()!;
    if (seen.has(p) || SKIP.has(p)) continue;
    seen.add(p);
    for (const d of await depends(p)) if (d.startsWith('lib') && !SKIP.has(d) && !seen.has(d)) queue.push(d);
  }
  return [...seen].sort();
}

async function aptDepends(pkg: string): Promise<string[]> {
  const r = await run('apt-cache', ['depends', '--important', pkg], { timeoutMs: 60_000 });
  return r.exitCode === 0 ? parseDepends(r.stdout) : [];
}

function isElf(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(4);
      return fs.readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === '\x7fELF';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...walkFiles(p));
    else if (ent.isFile()) out.push(p);
  }
  return out;
}

/** The command line of this run without --no-install: what fetches the guest packages into the cache. */
export function rerunWithInstall(argv: readonly string[] = process.argv): string {
  const args = argv.slice(2).filter((a) => a !== '--no-install').map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return ['kernel-repro', ...args].join(' ');
}

/** With --no-install, guest packages not in the cache: the exact command that fetches them (nothing is installed). */
export function notFetched(versions: Array<{ name: string; version: string }>, file: string, argv: readonly string[] = process.argv): HarnessError {
  return new HarnessError('missing-prereq', `the guest packages ${versions.map((v) => `${v.name} ${v.version}`).join(', ')} are not in the cache, and --no-install runs no apt-get to fetch them`, {
    file,
    field: 'packages',
    hint: `run once without --no-install, which fetches them into the cache with apt-get download (nothing is installed on this machine):  ${rerunWithInstall(argv)}`,
  });
}

/**
 * The layer holding `packages` (and their libraries); null when there are none. `baseLibs` are the
 * libraries the base image has already (not copied again). `file` and `field` name the case in errors.
 */
export async function ensurePackageLayer(o: {
  packages: string[];
  cacheDir: string;
  log: Logger;
  baseLibs: string[];
  file: string;
  apt?: AptOps;
  /** false (--no-install): no apt-get at all (no update, no download); packages not in the cache are a missing-prereq error */
  install?: boolean;
}): Promise<PackageLayer | null> {
  if (o.packages.length === 0) return null;
  const install = o.install !== false;
  const apt = o.apt ?? systemApt();
  const store = new EntryStore<LayerMeta>(path.join(o.cacheDir, 'images'));
  // what these names resolved to with these package lists: a warm run asks apt nothing (~20 apt-cache calls)
  const memo = path.join(store.dir, 'package-index', hashOf({ LAYER_FORMAT, packages: [...o.packages].sort(), lists: apt.listsStamp(), baseLibs: o.baseLibs }));
  if (fs.existsSync(memo)) {
    const k = fs.readFileSync(memo, 'utf8').trim();
    const m = store.get(k, { verify: false });
    if (m) return { path: path.join(store.entryDir(k), 'layer.cpio'), key: k, meta: m.meta, cached: true };
    if (store.lastDiscard) o.log.warn(`the guest package layer: ${store.lastDiscard} (making it again)`);
  }
  const remember = (k: string): void => {
    fs.mkdirSync(path.dirname(memo), { recursive: true });
    fs.writeFileSync(`${memo}.tmp`, k);
    fs.renameSync(`${memo}.tmp`, memo);
  };
  const refresher = new ListsRefresher(apt, o.log, install && canRefreshLists());
  const closure = await packageClosure(o.packages, aptDepends);
  const versions: Array<{ name: string; version: string }> = [];
  for (const name of closure) {
    let v = await apt.candidate(name);
    if (v === null && (await refresher.ensureFresh(`no candidate for ${name}`))) v = await apt.candidate(name);
    if (v === null)
      throw new HarnessError('bad-input', `the package archive has no package ${name}${o.packages.includes(name) ? '' : ' (a library one of the case\'s packages needs)'}`, {
        file: o.file,
        field: 'packages',
        hint: `check the name with apt-cache search (the guest takes Debian packages of the host's release)${install ? '' : '; the package lists were not refreshed (--no-install): as root, apt-get update may find it'}`,
      });
    versions.push({ name, version: v });
  }
  const key = hashOf({ LAYER_FORMAT, kind: 'packages', versions, baseLibs: o.baseLibs });
  const layerOf = (meta: LayerMeta, cached: boolean): PackageLayer => ({ path: path.join(store.entryDir(key), 'layer.cpio'), key, meta, cached });
  store.lastDiscard = null;
  const hit = store.get(key, { verify: false });
  if (hit) {
    remember(key);
    return layerOf(hit.meta, true);
  }
  if (store.lastDiscard) o.log.warn(`the guest package layer: ${store.lastDiscard} (making it again)`);
  return withLock(path.join(store.dir, `.lock-${key.slice(0, 16)}`), async () => {
    // made here before, or by another machine (the remote cache)
    const again = await store.fetch(key, { verify: false, label: 'the guest package layer', log: o.log });
    if (again) {
      remember(key);
      return layerOf(again.meta, true);
    }
    if (!install) throw notFetched(versions, o.file);
    const t0 = Date.now();
    o.log.info(`building the guest package layer: ${versions.map((v) => `${v.name} ${v.version}`).join(', ')}`);
    const staging = store.staging(key);
    try {
      const debs = path.join(staging, 'debs');
      const root = path.join(staging, 'root');
      fs.mkdirSync(root, { recursive: true });
      const alternatives: Alternative[] = [];
      for (const v of versions) {
        const dl = await apt.download(v.name, v.version, debs);
        if (!dl.deb)
          throw new HarnessError('missing-prereq', `apt-get download ${v.name}=${v.version} failed`, { file: o.file, field: 'packages', excerpt: dl.output, hint: 'is the package archive reachable? (apt-get update)' });
        await unpackDeb(dl.deb, root, 'build-failed');
        // the maintainer scripts do not run: their update-alternatives calls are read instead
        alternatives.push(...parseAlternatives(await debControlMember(dl.deb, 'postinst')));
        fs.rmSync(dl.deb, { force: true });
      }
      const altLinks = linkAlternatives(root, alternatives, o.file);
      fs.rmSync(debs, { recursive: true, force: true });
      for (const p of PRUNE) fs.rmSync(path.join(root, p), { recursive: true, force: true });
      // every program and library must find its libraries in the layer, the base image or the host
      const libDirs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib'].map((d) => path.join(root, d));
      const hostLibs = new Set<string>();
      const missing: string[] = [];
      for (const f of walkFiles(root).filter(isElf)) {
        const r = await run('ldd', [f], { timeoutMs: 30_000, env: { LD_LIBRARY_PATH: libDirs.join(':') } });
        if (r.exitCode !== 0) continue; // not dynamic (static, or a kernel module)
        for (const line of r.stdout.split('\n')) {
          const nf = /^\s*(\S+) => not found/.exec(line);
          if (nf) missing.push(`${nf[1]} (needed by /${path.relative(root, f)})`);
          const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
          const lib = m?.[1];
          if (lib && !lib.startsWith(root) && !o.baseLibs.includes(lib)) hostLibs.add(lib);
        }
      }
      if (missing.length)
        throw new HarnessError('bad-input', `the guest packages need libraries found nowhere: ${[...new Set(missing)].join(', ')}`, {
          file: o.file,
          field: 'packages',
          hint: 'add the Debian package that ships them to the case\'s packages (apt-file search <library>)',
        });
      for (const lib of hostLibs) {
        // under the layer's root even when a package ships a directory symlink leading out (trust/paths.ts)
        const dest = confineReal(root, lib.replace(/^\/+/, ''), { def: o.file, field: 'packages' }, { allowMissing: true });
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        if (!fs.existsSync(dest)) fs.copyFileSync(fs.realpathSync(lib), dest);
      }
      const out = path.join(staging, 'layer.cpio');
      await cpioDir(root, out, false);
      fs.rmSync(root, { recursive: true, force: true });
      const meta: LayerMeta = { packages: versions, hostLibs: [...hostLibs].sort(), ...(altLinks.size ? { alternatives: Object.fromEntries(altLinks) } : {}), sizeBytes: fs.statSync(out).size };
      const m = store.publish(key, staging, meta);
      remember(key);
      await store.push(key, { label: 'the guest package layer', log: o.log });
      o.log.info(`guest package layer ready in ${((Date.now() - t0) / 1000).toFixed(1)}s (${(meta.sizeBytes / 1e6).toFixed(1)} MB)`);
      return layerOf(m.meta, false);
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e instanceof HarnessError ? e : new HarnessError('build-failed', `cannot build the guest package layer: ${(e as Error).message}`, { excerpt: tail(String((e as Error).stack ?? ''), 3) });
    }
  });
}

/**
 * Make the links the packages' `update-alternatives --install` calls would (automatic mode: the
 * highest priority whose target the layer has), where nothing is in the way. Every path stays
 * under the layer's root (trust/paths.ts). Returns link -> target.
 */
export function linkAlternatives(root: string, all: readonly Alternative[], file: string): Map<string, string> {
  const under = (p: string): string => confine(root, p.replace(/^\/+/, ''), { def: file, field: 'packages' });
  const exists = (p: string): boolean => {
    try {
      fs.lstatSync(under(p));
      return true;
    } catch {
      return false;
    }
  };
  const made = new Map<string, string>();
  for (const [link, target] of chooseAlternatives(all, exists)) {
    if (exists(link)) continue; // the package ships that file itself
    // where the link goes, with symlinks in the layer resolved: still under its root
    const at = confineReal(root, link.replace(/^\/+/, ''), { def: file, field: 'packages' }, { allowMissing: true });
    fs.mkdirSync(path.dirname(at), { recursive: true });
    fs.symlinkSync(target, at);
    made.set(link, target);
  }
  return made;
}
