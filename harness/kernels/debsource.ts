// Debian's kernel source packages (linux-source-X.Y), unpinned or pinned to an exact version.
// Unpinned: the package installed on the host (/usr/src/<package>.tar.xz), whatever version that
// is, resolved and recorded at run time. Pinned (`version:`): that exact version; the installed one
// when it matches, else fetched with `apt-get download` into the cache (no system-wide install).
// A version the archive no longer serves is a missing prerequisite (exit 3) that lists what it
// does serve and the one-line change to the definition.
import fs from 'node:fs';
import path from 'node:path';
import { canRefreshLists, ListsRefresher, systemApt, versionNotServed, type AptOps } from '../host/apt.ts';
import { EntryStore, hashOf } from '../util/cache.ts';
import { ensureFree, GB } from '../util/disk.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { tail } from '../util/proc.ts';
import type { KernelArtifact, BuildOptions } from './artifact.ts';
import { debMemberTo, readTarMembers } from '../util/extract.ts';
import type { LoadedKernel } from './load.ts';
import { sourcePackageOf } from './debunpack.ts';

export interface DebianSource {
  tarball: string;
  /** the Debian version of the package the tarball came from ("unknown" if dpkg cannot tell) */
  version: string;
  /** the definition named this version */
  pinned: boolean;
  /** where it came from: the host's installed package, or the harness's cache */
  from: 'installed' | 'cache';
}

export interface FetchMeta {
  package: string;
  version: string;
  fetchedAt: string;
  sizeBytes: number;
}

/** Where a fetched package's files are kept: the cache's downloads area, one entry per package and version. */
export function fetchKey(pkg: string, version: string): string {
  return hashOf({ kind: 'debian-package', pkg, version });
}

/**
 * Find (or fetch) the tarball of a Debian kernel source package. `file` is the kernel definition,
 * named in errors. `apt` and `refresher` are seams for tests.
 */
export async function resolveDebianSource(o: {
  pkg: string;
  version?: string | undefined;
  cacheDir: string;
  file: string;
  log: Logger;
  apt?: AptOps;
  refresher?: ListsRefresher;
}): Promise<DebianSource> {
  const apt = o.apt ?? systemApt();
  const system = `/usr/src/${o.pkg}.tar.xz`;
  const installed = fs.existsSync(system) ? await apt.installed(o.pkg) : null;
  if (!o.version) {
    if (!fs.existsSync(system))
      throw new HarnessError('missing-prereq', `${system} not found: the Debian package ${o.pkg} is not installed`, {
        file: o.file,
        field: 'source.package',
        hint: `apt-get install ${o.pkg} (npm run doctor -- --install does it), or pin a version in the definition (source.version) to fetch it into the cache`,
      });
    return { tarball: system, version: installed ?? 'unknown', pinned: false, from: 'installed' };
  }
  if (installed === o.version) return { tarball: system, version: o.version, pinned: true, from: 'installed' };

  const version = o.version;
  const store = new EntryStore<FetchMeta>(path.join(o.cacheDir, 'downloads'));
  const key = fetchKey(o.pkg, version);
  const tarballIn = (k: string): string => path.join(store.entryDir(k), `${o.pkg}.tar.xz`);
  // the manifest's digests are checked on first use after a fetch only: re-hashing 140 MB on every
  // run would cost a second; the kernel's own cache key hashes the tarball anyway
  const { manifest, cached } = await store.getOrFill(
    key,
    async (staging) => {
      const refresher = o.refresher ?? new ListsRefresher(apt, o.log, canRefreshLists());
      await refresher.ensureFresh();
      let served = await apt.served(o.pkg);
      if (!served.includes(version) && (await refresher.ensureFresh(`${o.pkg} ${version} is not in the package lists`))) served = await apt.served(o.pkg);
      if (!served.includes(version)) throw versionNotServed({ pkg: o.pkg, version, served, file: o.file, type: 'debian-source' });
      // the .deb (~140 MB) and the tarball taken out of it
      ensureFree(store.dir, 0.4 * GB, `fetching ${o.pkg} ${version}`);
      o.log.info(`fetching ${o.pkg} ${version} into the cache (apt-get download; nothing is installed)`);
      const dl = await apt.download(o.pkg, version, staging);
      if (!dl.deb)
        throw new HarnessError('missing-prereq', `apt-get download ${o.pkg}=${version} failed`, {
          file: o.file,
          field: 'source.version',
          excerpt: dl.output,
          hint: 'is the package archive reachable? (apt-get update)',
        });
      const out = path.join(staging, `${o.pkg}.tar.xz`);
      const member = `./usr/src/${o.pkg}.tar.xz`;
      const x = await debMemberTo(dl.deb, member, out);
      fs.rmSync(dl.deb, { force: true });
      if (!x.ok)
        throw new HarnessError('build-failed', `${path.basename(dl.deb)} holds no ${member.slice(1)}`, { excerpt: tail(x.stderr, 8) });
      return { package: o.pkg, version, fetchedAt: new Date().toISOString(), sizeBytes: fs.statSync(out).size };
    },
    { verify: false, label: `${o.pkg} ${version}`, log: o.log },
  );
  if (!cached) o.log.info(`fetched ${o.pkg} ${version} (${Math.round(manifest.meta.sizeBytes / 1e6)} MB)`);
  return { tarball: tarballIn(key), version, pinned: true, from: 'cache' };
}

const SOURCE_FILE_MAX = 1024 * 1024;

/** A prebuilt Debian kernel's source files: from the linux-source package of the same version (fetched into the cache when it is not the installed one). */
export async function readFromDebianSource(k: LoadedKernel, paths: string[], opts: BuildOptions & { field?: string; artifact?: KernelArtifact }): Promise<Record<string, string>> {
  if (paths.length === 0) return {};
  const pkg = opts.artifact?.modules?.sourcePackage ?? (opts.artifact ? sourcePackageOf(opts.artifact.meta.release) : null);
  if (!pkg) throw new HarnessError('bad-input', `no source package is known for ${k.def.name}, so its source files cannot be read`, { file: k.file, field: opts.field ?? 'sourceFiles' });
  const deb = await resolveDebianSource({ pkg, version: opts.artifact?.meta.sourceVersion, cacheDir: opts.cacheDir, file: k.file, log: opts.log });
  const out: Record<string, string> = {};
  for (const p of paths) {
    const r = await readTarMembers(deb.tarball, [`${pkg}/${p}`], { maxBytes: 2 * SOURCE_FILE_MAX, timeoutMs: 5 * 60_000 });
    if ('error' in r) throw new HarnessError('bad-input', `${p} is not in ${pkg} ${deb.version}`, { field: opts.field ?? 'sourceFiles', excerpt: r.error });
    if (r.text.length > SOURCE_FILE_MAX) throw new HarnessError('bad-input', `${p} in ${pkg} is over 1 MB; source files are limited to 1 MB`, { field: opts.field ?? 'sourceFiles' });
    out[p] = r.text;
  }
  return out;
}
