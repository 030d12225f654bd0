// Debian's kernel source packages (linux-source-X.Y), unpinned or pinned to an exact version.
// Unpinned: the package installed on the host (/usr/src/<package>.tar.xz), whatever version that
// is, resolved and recorded at run time. Pinned (`version:`): that exact version; the installed one
// when it matches, else fetched with `apt-get download` into the cache (no system-wide install).
// A version the archive no longer serves is a missing prerequisite (exit 3) that lists what it
// does serve and the one-line change to the definition.
import { readInputFile } from '../trust/files.ts';
import fs from 'node:fs';
import path from 'node:path';
import { canRefreshLists, listsStale, ListsRefresher, suiteMissingIn, systemApt, versionNotServed, type AptOps } from '../host/apt.ts';
import { DEBIAN_ARCHIVE, suiteApt, suiteAptCommand, suiteDir, suiteSourcesLine } from '../host/aptSuite.ts';
import { rerunWithInstall } from '../images/packages.ts';
import { EntryStore, hashOf, withLock } from '../util/cache.ts';
import { ensureFree, GB } from '../util/disk.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { tail } from '../util/proc.ts';
import type { KernelArtifact, BuildOptions } from './artifact.ts';
import { debMemberTo, readTarMembers } from '../util/extract.ts';
import type { LoadedKernel } from './load.ts';
import { sourcePackageOf } from './debunpack.ts';
import type { SourceFileWant } from './source.ts';

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

/** Where a suite's last resolution of an unpinned package is recorded (what --no-install uses). */
export function resolvedRecord(cacheDir: string, suite: string, pkg: string): string {
  return path.join(suiteDir(cacheDir, suite), `resolved-${pkg}.json`);
}

export interface Resolved {
  version: string;
  at: string;
}

/** A suite's last resolution of a package, or null. */
export function readResolved(file: string): Resolved | null {
  try {
    const v = JSON.parse(readInputFile(file, 64 * 1024, file)) as Partial<Resolved>;
    return typeof v.version === 'string' && typeof v.at === 'string' ? { version: v.version, at: v.at } : null;
  } catch {
    return null;
  }
}

/** With --no-install, a package not in the cache: exit 3 with the command that fetches it (nothing is installed). */
export function notFetchedWithoutApt(o: { what: string; file: string; field: string; argv?: readonly string[] }): HarnessError {
  return new HarnessError('missing-prereq', `${o.what}, and --no-install runs no apt to fetch it`, {
    file: o.file,
    field: o.field,
    hint: `run once without --no-install, which fetches it into the cache with apt-get download (nothing is installed on this machine):  ${rerunWithInstall(o.argv)}`,
  });
}

type ResolveOptions = {
  pkg: string;
  version?: string | undefined;
  /** a Debian suite to fetch from with a private apt (../host/aptSuite.ts) instead of the host's */
  suite?: string | undefined;
  cacheDir: string;
  file: string;
  log: Logger;
  /** false (--no-install): no apt at all; what is not in the cache is exit 3 with the command */
  install?: boolean | undefined;
  apt?: AptOps;
  refresher?: ListsRefresher;
  /** the command line (for the --no-install hint) */
  argv?: readonly string[];
};

/**
 * Find (or fetch) the tarball of a Debian kernel source package. `file` is the kernel definition,
 * named in errors. `apt` and `refresher` are seams for tests.
 */
export async function resolveDebianSource(o: ResolveOptions): Promise<DebianSource> {
  if (o.suite) return resolveFromSuite({ ...o, suite: o.suite });
  const apt = o.apt ?? systemApt();
  const system = `/usr/src/${o.pkg}.tar.xz`;
  const installed = fs.existsSync(system) ? await apt.installed(o.pkg) : null;
  if (!o.version) {
    if (!fs.existsSync(system))
      throw new HarnessError('missing-prereq', `${system} not found: the Debian package ${o.pkg} is not installed`, {
        file: o.file,
        field: 'source.package',
        hint: `apt-get install ${o.pkg} (npm run doctor -- --install does it), or pin a version in the definition (source.version) to fetch it into the cache, or name a suite (source.suite) to fetch its version`,
      });
    return { tarball: system, version: installed ?? 'unknown', pinned: false, from: 'installed' };
  }
  if (installed === o.version) return { tarball: system, version: o.version, pinned: true, from: 'installed' };
  const version = o.version;
  const refresher = o.refresher ?? new ListsRefresher(apt, o.log, canRefreshLists());
  return fetchToCache(o, version, (why) => refresher.ensureFresh(why), () => apt, 'source.version');
}

/** A package fetched into the cache with `apt` (cached: no apt at all). `field` is named when --no-install stops it. */
async function fetchToCache(
  o: ResolveOptions,
  version: string,
  ensureFresh: (why?: string) => Promise<boolean>,
  aptOf: () => AptOps,
  field: string,
  from?: string,
): Promise<DebianSource> {
  const store = new EntryStore<FetchMeta>(path.join(o.cacheDir, 'downloads'));
  const key = fetchKey(o.pkg, version);
  const tarballIn = (k: string): string => path.join(store.entryDir(k), `${o.pkg}.tar.xz`);
  if (o.install === false && !store.get(key, { verify: false }))
    throw notFetchedWithoutApt({ what: `${o.pkg} ${version} is not in the cache`, file: o.file, field, ...(o.argv ? { argv: o.argv } : {}) });
  // the manifest's digests are checked on first use after a fetch only: re-hashing 140 MB on every
  // run would cost a second; the kernel's own cache key hashes the tarball anyway
  const { manifest, cached } = await store.getOrFill(
    key,
    async (staging) => {
      const apt = aptOf();
      await ensureFresh();
      let served = await apt.served(o.pkg);
      if (!served.includes(version) && (await ensureFresh(`${o.pkg} ${version} is not in the package lists`))) served = await apt.served(o.pkg);
      if (!served.includes(version)) throw versionNotServed({ pkg: o.pkg, version, served, file: o.file, type: 'debian-source', suite: o.suite });
      // the .deb (~140 MB) and the tarball taken out of it
      ensureFree(store.dir, 0.4 * GB, `fetching ${o.pkg} ${version}`);
      o.log.info(`fetching ${o.pkg} ${version}${from ? ` from ${from}` : ''} into the cache (apt-get download; nothing is installed)`);
      const t0 = Date.now();
      const dl = await apt.download(o.pkg, version, staging);
      if (!dl.deb)
        throw new HarnessError('missing-prereq', `apt-get download ${o.pkg}=${version} failed`, {
          file: o.file,
          field,
          excerpt: dl.output,
          hint: 'is the package archive reachable? (apt-get update)',
        });
      o.log.info(`downloaded ${path.basename(dl.deb)} (${Math.round(fs.statSync(dl.deb).size / 1e6)} MB) in ${Math.round((Date.now() - t0) / 1000)} s`);
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
  return { tarball: tarballIn(key), version, pinned: o.version !== undefined, from: 'cache' };
}

/**
 * Refresh a suite's private package lists when they are missing or stale, or when `why` (a package
 * was not found in them). One update at a time per suite (apt's own lock would fail, not wait). A
 * suite the archive does not serve is exit 3 naming source.suite; an archive that cannot be reached
 * is a warning while there are lists to use, else exit 3.
 */
export async function refreshSuite(o: { apt: AptOps; suite: string; cacheDir: string; file: string; log: Logger; why?: string }): Promise<boolean> {
  const dir = suiteDir(o.cacheDir, o.suite);
  fs.mkdirSync(dir, { recursive: true });
  return withLock(
    path.join(dir, 'update.lock'),
    async () => {
      const age = o.apt.listsAgeMs();
      const reason = o.why ?? (listsStale(age) ? (age === null ? 'never fetched' : `last refreshed ${Math.round(age / 3600_000)} h ago`) : null);
      if (reason === null) return false;
      o.log.info(`refreshing the ${o.suite} package lists (apt-get update, private lists in ${dir}): ${reason}`);
      const r = await o.apt.update();
      if (r.ok) return true;
      const where = { file: o.file, field: 'source.suite', excerpt: r.output };
      if (suiteMissingIn(r.output))
        throw new HarnessError('missing-prereq', `the Debian archive does not serve the suite ${JSON.stringify(o.suite)} (${suiteSourcesLine(o.suite).trim()})`, {
          ...where,
          hint: 'name a suite the archive serves: a release name (bookworm, trixie, sid) or its -security, -updates or -backports suite',
        });
      if (age === null)
        throw new HarnessError('missing-prereq', `cannot fetch the ${o.suite} package lists from the Debian archive`, {
          ...where,
          hint: `is ${DEBIAN_ARCHIVE.uri} reachable? The same update by hand:  ${suiteAptCommand(o.cacheDir, o.suite, 'apt-get update')}`,
        });
      o.log.warn(`apt-get update of the ${o.suite} lists failed; using the lists fetched ${Math.round(age / 3600_000)} h ago:\n${r.output}`);
      return true;
    },
    { what: `refreshing the ${o.suite} package lists`, waitingFor: `the update of the ${o.suite} package lists`, log: o.log },
  );
}

/** A package from a named suite: its candidate there (recorded) or the pinned version, fetched into the cache. */
async function resolveFromSuite(o: ResolveOptions & { suite: string }): Promise<DebianSource> {
  const record = resolvedRecord(o.cacheDir, o.suite, o.pkg);
  const argv = o.argv ? { argv: o.argv } : {};
  if (o.install === false) {
    // no apt at all: a pinned version or the last resolution, from the cache
    const rec = o.version ? null : readResolved(record);
    const version = o.version ?? rec?.version;
    if (!version) throw notFetchedWithoutApt({ what: `${o.pkg} has never been resolved in ${o.suite}`, file: o.file, field: 'source.suite', ...argv });
    if (rec) o.log.info(`${o.pkg}: ${rec.version}, the ${o.suite} candidate when last resolved (${rec.at}); --no-install: the ${o.suite} package lists are not refreshed`);
    // (fetchToCache stops before any apt when the package is not in the cache)
    return fetchToCache(o, version, async () => false, () => o.apt ?? suiteApt(o.cacheDir, o.suite), o.version ? 'source.version' : 'source.suite');
  }
  const apt = o.apt ?? suiteApt(o.cacheDir, o.suite);
  const base = { apt, suite: o.suite, cacheDir: o.cacheDir, file: o.file, log: o.log };
  let refreshed = await refreshSuite(base);
  // a later refresh (a version not in the lists) through the same rule, once
  const ensureFresh = async (why?: string): Promise<boolean> => (why && !refreshed ? (refreshed = await refreshSuite({ ...base, why })) : false);
  let version = o.version;
  if (!version) {
    let candidate = await apt.candidate(o.pkg);
    if (!candidate && !refreshed) {
      refreshed = await refreshSuite({ ...base, why: `${o.pkg} is not in the lists` });
      candidate = await apt.candidate(o.pkg);
    }
    if (!candidate)
      throw new HarnessError('missing-prereq', `the ${o.suite} suite serves no ${o.pkg}`, {
        file: o.file,
        field: 'source.package',
        hint: `the linux-source packages it serves:  ${suiteAptCommand(o.cacheDir, o.suite, "apt-cache search --names-only '^linux-source-'")}`,
      });
    version = candidate;
    const prev = readResolved(record);
    if (prev && prev.version !== version) o.log.info(`${o.pkg} in ${o.suite}: ${version} (was ${prev.version} when last resolved)`);
    fs.writeFileSync(record, JSON.stringify({ version, at: new Date().toISOString() } satisfies Resolved) + '\n');
  }
  return fetchToCache(o, version, ensureFresh, () => apt, o.version ? 'source.version' : 'source.suite', o.suite);
}

const SOURCE_FILE_MAX = 1024 * 1024;

/** Does GNU tar's error say only that the member is not in the archive? */
export function memberNotFound(tarError: string): boolean {
  const lines = tarError.split('\n').filter((l) => l.trim() && !/Exiting with failure status due to previous errors/.test(l));
  return lines.length > 0 && lines.every((l) => /: Not found in archive$/.test(l.trim()));
}

/** A prebuilt Debian kernel's source files: from the linux-source package of the same version (fetched into the cache when it is not the installed one). */
export async function readFromDebianSource(k: LoadedKernel, wants: SourceFileWant[], opts: BuildOptions & { field?: string; artifact?: KernelArtifact }): Promise<Record<string, string>> {
  if (wants.length === 0) return {};
  const pkg = opts.artifact?.modules?.sourcePackage ?? (opts.artifact ? sourcePackageOf(opts.artifact.meta.release) : null);
  if (!pkg) throw new HarnessError('bad-input', `no source package is known for ${k.def.name}, so its source files cannot be read`, { file: k.file, field: opts.field ?? 'sourceFiles' });
  const deb = await resolveDebianSource({ pkg, version: opts.artifact?.meta.sourceVersion, cacheDir: opts.cacheDir, file: k.file, log: opts.log });
  const out: Record<string, string> = {};
  for (const { path: p, optional } of wants) {
    const r = await readTarMembers(deb.tarball, [`${pkg}/${p}`], { maxBytes: 2 * SOURCE_FILE_MAX, timeoutMs: 5 * 60_000 });
    // an optional file the package lacks is left out; any other failure stays an error
    if ('error' in r && optional && memberNotFound(r.error)) continue;
    if ('error' in r) throw new HarnessError('bad-input', `${p} is not in ${pkg} ${deb.version}`, { field: opts.field ?? 'sourceFiles', excerpt: r.error });
    if (r.text.length > SOURCE_FILE_MAX) throw new HarnessError('bad-input', `${p} in ${pkg} is over 1 MB; source files are limited to 1 MB`, { field: opts.field ?? 'sourceFiles' });
    out[p] = r.text;
  }
  return out;
}
