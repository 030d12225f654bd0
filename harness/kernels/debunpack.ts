// A Debian kernel image package (linux-image-*.deb) made into a kernel cache entry: unpacked (not
// installed), its /boot/vmlinuz-* and /boot/config-* taken out, depmod run on its modules. Shared
// by the debian-image provider (apt-get download) and the deb provider (a local file).
import fs from 'node:fs';
import path from 'node:path';
import type { EntryStore } from '../util/cache.ts';
import { sha256 } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
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
  const boot = path.join(root, 'boot');
  const files = fs.existsSync(boot) ? fs.readdirSync(boot) : [];
  const vmlinuz = files.find((f) => f.startsWith('vmlinuz-'));
  const config = files.find((f) => f.startsWith('config-'));
  if (!vmlinuz || !config)
    throw new HarnessError('bad-input', `${what} has no /boot/vmlinuz-* or /boot/config-*: not a kernel image package`, { file: deb, hint: 'give a linux-image-<release> package (not a metapackage such as linux-image-cloud-amd64)' });
  const release = vmlinuz.slice('vmlinuz-'.length);
  fs.renameSync(path.join(boot, vmlinuz), path.join(staging, 'bzImage'));
  fs.renameSync(path.join(boot, config), path.join(staging, 'config'));
  fs.rmSync(boot, { recursive: true, force: true });
  fs.rmSync(path.join(root, 'usr'), { recursive: true, force: true });
  if (fs.existsSync(path.join(root, 'lib/modules', release))) {
    const dep = await run('depmod', ['-b', root, release], { timeoutMs: 5 * 60_000 });
    if (dep.exitCode !== 0) throw new HarnessError('missing-prereq', `depmod failed: ${dep.stderr.trim()}`, { hint: 'apt-get install kmod' });
  }
  return { release, configText: fs.readFileSync(path.join(staging, 'config'), 'utf8') };
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
  const modulesDir = path.join(dir, 'root/lib/modules', meta.modulesRelease);
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
