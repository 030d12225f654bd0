// A private apt for one Debian suite (e.g. trixie on a bookworm host): its own sources list, package
// lists and caches inside the harness cache (<cache>/apt/<suite>/), reached through APT_CONFIG with a
// configuration that reads none of the host's (/etc/apt stays as it is, no hook of the host's runs,
// nothing is installed). Only `apt-get update`, `apt-cache` and `apt-get download` are used with it.
// The text of the files is pure (suiteSourcesLine, suiteAptConf), tested without apt.
import { readInputFile } from '../trust/files.ts';
import fs from 'node:fs';
import path from 'node:path';
import { aptWith, type AptOps } from './apt.ts';

/** The Debian archive a suite is fetched from (the host's own, see /etc/apt/sources.list.d/debian.sources). */
export const DEBIAN_ARCHIVE = {
  uri: 'http://deb.debian.org/debian',
  /** <release>-security suites live in their own archive */
  securityUri: 'http://deb.debian.org/debian-security',
  /** debian-archive-keyring: signs bullseye, bookworm and trixie (and their security suites) */
  keyring: '/usr/share/keyrings/debian-archive-keyring.gpg',
  component: 'main',
} as const;

/** A suite name as the schema admits it: trixie, sid, stable, trixie-security, bookworm-backports. */
export const SUITE_PATTERN = /^[a-z]{2,20}(?:-[a-z]{2,20}){0,2}$/;

/** The one line of the suite's private sources list. */
export function suiteSourcesLine(suite: string, archive = DEBIAN_ARCHIVE): string {
  if (!SUITE_PATTERN.test(suite)) throw new Error(`not a suite name: ${JSON.stringify(suite)}`);
  const uri = suite.endsWith('-security') ? archive.securityUri : archive.uri;
  return `deb [signed-by=${archive.keyring}] ${uri} ${suite} ${archive.component}\n`;
}

/** The directory of a suite's private apt inside the cache. */
export function suiteDir(cacheDir: string, suite: string): string {
  return path.join(cacheDir, 'apt', suite);
}

/**
 * apt.conf for the suite's private apt, given as APT_CONFIG: read before anything else, it points
 * the main config and the config parts away from /etc/apt (so neither the host's sources, its
 * preferences nor its hooks apply) and every directory apt writes to into `dir`. The dpkg status
 * is an empty private file: what the host has installed plays no part in what a suite serves.
 */
export function suiteAptConf(dir: string): string {
  const q = (v: string): string => `"${v.replace(/["\\]/g, '')}"`;
  return [
    `Dir::Etc::main "/dev/null";`,
    `Dir::Etc::parts ${q(path.join(dir, 'apt.conf.d'))};`,
    `Dir::Etc::sourcelist ${q(path.join(dir, 'sources.list'))};`,
    `Dir::Etc::sourceparts "-";`,
    `Dir::Etc::preferences "/dev/null";`,
    `Dir::Etc::preferencesparts "-";`,
    `Dir::State::Lists ${q(path.join(dir, 'lists'))};`,
    `Dir::State::status ${q(path.join(dir, 'status'))};`,
    `Dir::Cache ${q(path.join(dir, 'cache'))};`,
    `Acquire::Languages "none";`,
    // smaller (61 MB instead of 137 MB for trixie main): the lists kept compressed, no source package
    // cache (only binary packages are asked for)
    `Acquire::GzipIndexes "true";`,
    `Dir::Cache::srcpkgcache "";`,
    // root's downloads would otherwise run as _apt, which cannot write into the cache
    `APT::Sandbox::User "root";`,
    '',
  ].join('\n');
}

/** The stamp written after each successful update of the suite's lists. */
export function suiteStamp(dir: string): string {
  return path.join(dir, 'update-success-stamp');
}

function writeIfChanged(file: string, text: string): void {
  let old: string | null = null;
  try {
    old = readInputFile(file, 1024 * 1024, file);
  } catch {
    /* not there yet */
  }
  if (old !== text) fs.writeFileSync(file, text);
}

/** The suite's private apt (its files created in the cache when missing). */
export function suiteApt(cacheDir: string, suite: string): AptOps {
  const dir = suiteDir(cacheDir, suite);
  for (const d of ['apt.conf.d', 'lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  writeIfChanged(path.join(dir, 'sources.list'), suiteSourcesLine(suite));
  writeIfChanged(path.join(dir, 'apt.conf'), suiteAptConf(dir));
  if (!fs.existsSync(path.join(dir, 'status'))) fs.writeFileSync(path.join(dir, 'status'), '');
  return aptWith({ listsDir: path.join(dir, 'lists'), stamps: [suiteStamp(dir)], ownStamp: suiteStamp(dir), env: { APT_CONFIG: path.join(dir, 'apt.conf') } });
}

/** The command a person would type to ask the suite's private apt something (shown in errors and hints). */
export function suiteAptCommand(cacheDir: string, suite: string, args: string): string {
  return `APT_CONFIG=${path.join(suiteDir(cacheDir, suite), 'apt.conf')} ${args}`;
}

/** The suites with a private apt in the cache, and the packages resolved in each (resolved-<pkg>.json): what doctor shows. */
export function suitesInCache(cacheDir: string): Array<{ suite: string; packages: string[] }> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(cacheDir, 'apt')).filter((n) => SUITE_PATTERN.test(n)).sort();
  } catch {
    return [];
  }
  return names.map((suite) => {
    let files: string[] = [];
    try {
      files = fs.readdirSync(suiteDir(cacheDir, suite));
    } catch {
      /* gone meanwhile */
    }
    const packages = files.map((f) => /^resolved-(linux-source-[0-9.]+)\.json$/.exec(f)?.[1]).filter((p): p is string => p !== undefined);
    return { suite, packages: packages.sort() };
  });
}
