// A Debian kernel image package (linux-image-*.deb) made into a kernel cache entry: unpacked (not
// installed), its /boot/vmlinuz-* and /boot/config-* taken out, depmod run on its modules. Shared
// by the debian-image provider (apt-get download) and the deb provider (a local file).
import fs from 'node:fs';
import path from 'node:path';
import type { EntryStore } from '../util/cache.ts';
import { sha256 } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import { LIMITS as FILE_LIMITS, statRegular } from '../trust/files.ts';
import { confineReal, readUnder, safeComponent } from '../trust/paths.ts';
import { run } from '../util/proc.ts';
import type { KernelArtifact, KernelMeta } from './artifact.ts';
import { unpackDeb } from '../util/extract.ts';
import { parseKconfig } from './kconfig.ts';

export type DebImageMeta = KernelMeta & { modulesRelease: string };

/** The Debian source package of a release's series: 6.1.0-28-cloud-amd64 -> linux-source-6.1. */
export function sourcePackageOf(release: string): string | null {
  const m = /^(\d+\.\d+)/.exec(release);
  return m ? `linux-source-${m[1]}` : null;
}

/** Unpack `deb` into the entry being staged; returns the release and the config text. */
export async function unpackKernelDeb(deb: string, staging: string, what: string): Promise<{ release: string; configText: string }> {
  const root = path.join(staging, 'root');
  await unpackDeb(deb, root);
  // boot/ and lib/modules/<release> must be directories of the package, not symlinks to the host's
  const boot = fs.existsSync(path.join(root, 'boot')) ? confineReal(root, 'boot', { def: deb, field: 'boot' }) : path.join(root, 'boot');
  const files = fs.existsSync(boot) ? fs.readdirSync(boot) : [];
  const vmlinuz = files.find((f) => f.startsWith('vmlinuz-'));
  const config = files.find((f) => f.startsWith('config-'));
  if (!vmlinuz || !config)
    throw new HarnessError('bad-input', `${what} has no /boot/vmlinuz-* or /boot/config-*: not a kernel image package`, { file: deb, hint: 'give a linux-image-<release> package (not a metapackage such as linux-image-cloud-amd64)' });
  // the package is untrusted: the release becomes a path component, and the two files must be
  // regular files in the package (not symlinks to host files)
  const release = safeComponent(vmlinuz.slice('vmlinuz-'.length), { def: deb, field: 'boot/vmlinuz-*' });
  for (const f of [vmlinuz, config]) statRegular(path.join(boot, f), FILE_LIMITS.image, { def: deb, field: `boot/${f}` }, { noFollow: true });
  fs.renameSync(path.join(boot, vmlinuz), path.join(staging, 'bzImage'));
  fs.renameSync(path.join(boot, config), path.join(staging, 'config'));
  fs.rmSync(boot, { recursive: true, force: true });
  fs.rmSync(path.join(root, 'usr'), { recursive: true, force: true });
  if (fs.existsSync(path.join(root, 'lib/modules', release))) {
    confineReal(root, `lib/modules/${release}`, { def: deb, field: 'lib/modules' }); // depmod writes there
    const dep = await run('depmod', ['-b', root, release], { timeoutMs: 5 * 60_000 });
    if (dep.exitCode !== 0) throw new HarnessError('missing-prereq', `depmod failed: ${dep.stderr.trim()}`, { hint: 'apt-get install kmod' });
  }
  return { release, configText: readUnder(staging, 'config', FILE_LIMITS.config, { def: deb, field: `boot/${config}` }).toString('utf8') };
}

/** The meta of an unpacked image package. */
export function debImageMeta(o: { name: string; release: string; configText: string; source: string; sourceId: string; version: string; pinned: boolean; t0: number }): DebImageMeta {
  return {
    name: o.name,
    release: o.release,
    configHash: sha256(o.configText),
    source: o.source,
    sourceId: o.sourceId,
    sourceVersion: o.version,
    pinned: o.pinned,
    patches: [],
    compiler: (parseKconfig(o.configText).get('CONFIG_CC_VERSION_TEXT') ?? '').replace(/"/g, ''),
    buildMs: Date.now() - o.t0,
    builtAt: new Date().toISOString(),
    modulesRelease: o.release,
  };
}

/** The artifact of an unpacked image package's cache entry (booted through its bzImage, modules from the entry). */
export function debImageArtifact(store: EntryStore<DebImageMeta>, key: string, name: string, meta: DebImageMeta, cached: boolean, sourceVersion: { version: string; pinned: boolean }): KernelArtifact {
  const dir = store.entryDir(key);
  // the manifest may come from a remote cache: the release is a plain name and the directory stays inside the entry
  const where = { def: path.join(dir, 'manifest.json'), field: 'meta.modulesRelease' };
  const rel = `root/lib/modules/${safeComponent(meta.modulesRelease, where)}`;
  const modulesDir = fs.existsSync(path.join(dir, rel)) ? confineReal(dir, rel, where) : path.join(dir, rel);
  return {
    name,
    key,
    dir,
    bzImage: path.join(dir, 'bzImage'),
    vmlinux: path.join(dir, 'vmlinux'), // absent: boots through bzImage
    config: path.join(dir, 'config'),
    ...(fs.existsSync(modulesDir) ? { modules: { dir: modulesDir, release: meta.modulesRelease, sourcePackage: sourcePackageOf(meta.modulesRelease) } } : {}),
    meta: { ...meta, name, sourceVersion: sourceVersion.version, pinned: sourceVersion.pinned },
    cached,
  };
}
