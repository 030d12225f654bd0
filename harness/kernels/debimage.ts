// Distribution kernels without building: a Debian linux-image package fetched with
// `apt-get download`, unpacked (not installed), depmod run on its modules, cached like a build.
import fs from 'node:fs';
import path from 'node:path';
import { EntryStore, hashOf, withLock } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import { run, tail } from '../util/proc.ts';
import type { BuildOptions, KernelArtifact, KernelMeta } from './build.ts';
import type { LoadedKernel } from './load.ts';
import { parseKconfig } from './kconfig.ts';
import { sha256 } from '../util/cache.ts';
import type { Logger } from '../util/log.ts';
import { canRefreshLists, ListsRefresher, systemApt, versionNotServed, type AptOps } from '../host/apt.ts';

async function aptField(spec: string, field: string): Promise<string | null> {
  const r = await run('apt-cache', ['show', '--no-all-versions', spec], { timeoutMs: 60_000 });
  if (r.exitCode !== 0) return null;
  const m = new RegExp(`^${field}: (.*)$`, 'm').exec(r.stdout);
  return m ? m[1]!.trim() : null;
}

/** The concrete image package a metapackage's Depends names, with its exact version when given. */
export function concreteImage(depends: string): { pkg: string; version?: string } | null {
  const m = /(linux-image-\d[^\s,(|]*)(?:\s*\(\s*=\s*([^)\s]+)\s*\))?/.exec(depends);
  if (!m?.[1]) return null;
  return { pkg: m[1], ...(m[2] ? { version: m[2] } : {}) };
}

/**
 * A package (or a metapackage such as linux-image-cloud-amd64, at a pinned version or at apt's
 * candidate) -> the concrete image package and exact version to fetch. The package lists are
 * refreshed when stale, or when the package or the pinned version is not in them.
 */
export async function resolveImagePackage(pkg: string, defFile: string, o: { version?: string | undefined; log: Logger; apt?: AptOps }): Promise<{ pkg: string; version: string }> {
  const apt = o.apt ?? systemApt();
  const refresher = new ListsRefresher(apt, o.log, canRefreshLists());
  await refresher.ensureFresh();
  let served = await apt.served(pkg);
  const wanted = o.version ?? served[0];
  if ((!wanted || !served.includes(wanted)) && (await refresher.ensureFresh(`${pkg}${o.version ? ' ' + o.version : ''} is not in the package lists`)))
    served = await apt.served(pkg);
  const version = o.version ?? (await apt.candidate(pkg)) ?? served[0];
  if (!version || !served.includes(version)) {
    if (o.version) throw versionNotServed({ pkg, version: o.version, served, file: defFile, type: 'debian-image' });
    throw new HarnessError('bad-input', `apt knows no package ${pkg}`, { file: defFile, field: 'source.package', hint: 'check the name with apt-cache search linux-image' });
  }
  if (/^linux-image-\d/.test(pkg)) return { pkg, version };
  const concrete = concreteImage((await aptField(`${pkg}=${version}`, 'Depends')) ?? '');
  if (!concrete) return { pkg, version };
  const v = concrete.version ?? (await aptField(concrete.pkg, 'Version'));
  return v ? { pkg: concrete.pkg, version: v } : { pkg, version };
}

export async function ensureDebianImage(k: LoadedKernel, pkg: string, pinned: string | undefined, opts: BuildOptions): Promise<KernelArtifact> {
  const { cacheDir, log } = opts;
  const { pkg: concrete, version } = await resolveImagePackage(pkg, k.file, { version: pinned, log });
  const key = hashOf({ kind: 'debian-image', concrete, version });
  const store = new EntryStore<KernelMeta & { modulesRelease: string }>(path.join(cacheDir, 'kernels'));
  const artifact = (meta: KernelMeta & { modulesRelease: string }, cached: boolean): KernelArtifact => {
    const dir = store.entryDir(key);
    return {
      name: k.def.name,
      key,
      dir,
      bzImage: path.join(dir, 'bzImage'),
      vmlinux: path.join(dir, 'vmlinux'), // absent: boots through bzImage
      config: path.join(dir, 'config'),
      modules: { dir: path.join(dir, 'root/lib/modules', meta.modulesRelease), release: meta.modulesRelease, sourcePackage: `linux-source-${/^(\d+\.\d+)/.exec(meta.modulesRelease)?.[1] ?? ''}` },
      meta: { ...meta, name: k.def.name, sourceVersion: version, pinned: pinned !== undefined },
      cached,
    };
  };
  const hit = store.get(key, { verify: false });
  if (hit) return artifact(hit.meta, true);
  return withLock(path.join(store.dir, `.lock-${key.slice(0, 16)}`), async () => {
    const again = store.get(key, { verify: false });
    if (again) return artifact(again.meta, true);
    const t0 = Date.now();
    log.info(`fetching ${concrete} ${version} with apt-get download (no build)`);
    const staging = store.staging(key);
    const dl = await run('apt-get', ['download', `${concrete}=${version}`], { cwd: staging, timeoutMs: 30 * 60_000 });
    const deb = fs.readdirSync(staging).find((f) => f.endsWith('.deb'));
    if (dl.exitCode !== 0 || !deb) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw new HarnessError('missing-prereq', `apt-get download ${concrete} failed`, { file: k.file, field: 'source.package', excerpt: tail(dl.stderr || dl.stdout, 8), hint: 'run apt-get update first' });
    }
    const root = path.join(staging, 'root');
    const x = await run('dpkg-deb', ['-x', path.join(staging, deb), root], { timeoutMs: 10 * 60_000 });
    if (x.exitCode !== 0) throw new HarnessError('build-failed', `cannot unpack ${deb}: ${x.stderr.trim()}`);
    fs.rmSync(path.join(staging, deb));
    const boot = path.join(root, 'boot');
    const vmlinuz = fs.readdirSync(boot).find((f) => f.startsWith('vmlinuz-'));
    const config = fs.readdirSync(boot).find((f) => f.startsWith('config-'));
    if (!vmlinuz || !config) throw new HarnessError('build-failed', `${concrete} has no /boot/vmlinuz-* or /boot/config-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    fs.renameSync(path.join(boot, vmlinuz), path.join(staging, 'bzImage'));
    fs.renameSync(path.join(boot, config), path.join(staging, 'config'));
    fs.rmSync(boot, { recursive: true, force: true });
    fs.rmSync(path.join(root, 'usr'), { recursive: true, force: true });
    const dep = await run('depmod', ['-b', root, release], { timeoutMs: 5 * 60_000 });
    if (dep.exitCode !== 0) throw new HarnessError('missing-prereq', `depmod failed: ${dep.stderr.trim()}`, { hint: 'apt-get install kmod' });
    const configText = fs.readFileSync(path.join(staging, 'config'), 'utf8');
    const meta = {
      name: k.def.name,
      release,
      configHash: sha256(configText),
      source: `${concrete} ${version} (Debian, prebuilt)`,
      sourceId: key,
      sourceVersion: version,
      pinned: pinned !== undefined,
      patches: [],
      compiler: (parseKconfig(configText).get('CONFIG_CC_VERSION_TEXT') ?? '').replace(/"/g, ''),
      buildMs: Date.now() - t0,
      builtAt: new Date().toISOString(),
      modulesRelease: release,
    };
    log.info(`unpacked ${concrete} (${release}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const m = store.publish(key, staging, meta);
    return artifact(m.meta, false);
  });
}
