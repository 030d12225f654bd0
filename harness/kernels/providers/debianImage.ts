// Distribution kernels without building: a Debian linux-image package (or a metapackage such as
// linux-image-cloud-amd64), at apt's candidate or a pinned version, fetched with `apt-get download`
// and unpacked into the cache (../debunpack.ts).
import fs from 'node:fs';
import path from 'node:path';
import { canRefreshLists, ListsRefresher, systemApt, versionNotServed, type AptOps } from '../../host/apt.ts';
import { EntryStore, hashOf } from '../../util/cache.ts';
import { HarnessError } from '../../util/errors.ts';
import type { Logger } from '../../util/log.ts';
import { run, tail } from '../../util/proc.ts';
import { debImageArtifact, debImageMeta, unpackKernelDeb, type DebImageMeta } from '../debunpack.ts';
import { readFromDebianSource } from '../debsource.ts';
import type { KernelProvider } from './types.ts';

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

export const debianImage: KernelProvider<'debian-image'> = {
  type: 'debian-image',
  kind: 'prebuilt',
  hostPackages: () => [],
  async identify(src, k, opts) {
    const { pkg, version } = await resolveImagePackage(src.package, k.file, { version: src.version, log: opts.log });
    return { id: hashOf({ kind: 'debian-image', concrete: pkg, version }), label: `${pkg} ${version} (Debian, prebuilt)`, version, pinned: src.version !== undefined };
  },
  async obtain(src, k, opts) {
    const { cacheDir, log } = opts;
    const { pkg: concrete, version } = await resolveImagePackage(src.package, k.file, { version: src.version, log });
    const key = hashOf({ kind: 'debian-image', concrete, version });
    const pinned = { version, pinned: src.version !== undefined };
    const store = new EntryStore<DebImageMeta>(path.join(cacheDir, 'kernels'));
    const { manifest, cached } = await store.getOrFill(
      key,
      async (staging) => {
        const t0 = Date.now();
        log.info(`fetching ${concrete} ${version} with apt-get download (no build)`);
        const dl = await run('apt-get', ['download', `${concrete}=${version}`], { cwd: staging, timeoutMs: 30 * 60_000 });
        const deb = fs.readdirSync(staging).find((f) => f.endsWith('.deb'));
        if (dl.exitCode !== 0 || !deb)
          throw new HarnessError('missing-prereq', `apt-get download ${concrete} failed`, { file: k.file, field: 'source.package', excerpt: tail(dl.stderr || dl.stdout, 8), hint: 'run apt-get update first' });
        const { release, configText } = await unpackKernelDeb(path.join(staging, deb), staging, `${concrete} ${version}`);
        fs.rmSync(path.join(staging, deb));
        const meta = debImageMeta({ name: k.def.name, release, configText, source: `${concrete} ${version} (Debian, prebuilt)`, sourceId: key, version, pinned: pinned.pinned, t0 });
        log.info(`unpacked ${concrete} (${release}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
        return meta;
      },
      { verify: false, label: `kernel ${k.def.name}`, log },
    );
    return debImageArtifact(store, key, k.def.name, manifest.meta, cached, pinned);
  },
  sourceFiles: (_src, k, wants, opts) => readFromDebianSource(k, wants, opts),
};
