// Debian's package tools, behind one small interface: what the archive serves (apt-cache), what is
// installed (dpkg-query), refreshing the package lists (apt-get update), installing and downloading.
// The decisions (are the lists stale? is this version served?) are pure functions below, so that
// they are unit-tested with a fake `AptOps`; `systemApt()` is the real thing.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { run, tail } from '../util/proc.ts';

/** Package lists older than this are refreshed before anything is installed or fetched. */
export const LISTS_MAX_AGE_MS = 24 * 3600_000;

export interface AptOps {
  /** ms since the package lists were last refreshed (by anyone), or null when unknown (never) */
  listsAgeMs(): number | null;
  /** changes whenever the package lists change (what apt would resolve a name to may change with it) */
  listsStamp(): string;
  /** `apt-get update`; true when it succeeded */
  update(): Promise<{ ok: boolean; output: string }>;
  /** the versions the archive serves, newest first (empty when apt knows no such package) */
  served(pkg: string): Promise<string[]>;
  /** the version apt would install, or null */
  candidate(pkg: string): Promise<string | null>;
  /** the installed version, or null */
  installed(pkg: string): Promise<string | null>;
  /** `apt-get install` of exact specs (`pkg` or `pkg=version`) */
  install(specs: string[]): Promise<{ ok: boolean; output: string }>;
  /** `apt-get download pkg=version` into `dir` (no install, no root needed); the .deb's path or null */
  download(pkg: string, version: string, dir: string): Promise<{ deb: string | null; output: string }>;
}

// apt sets a list file's mtime to the archive's Release date, not to the time of the update, so the
// freshness of the lists is the newest of: that date, apt's own update-success stamp (written by
// apt.systemd.daily or update-notifier on some systems) and the stamp this harness writes after
// every successful `apt-get update` it runs.
const LISTS_DIR = '/var/lib/apt/lists';
const APT_STAMP = '/var/lib/apt/periodic/update-success-stamp';
export const OWN_STAMP = '/var/lib/apt/periodic/kernel-repro-update-success-stamp';

function mtime(f: string): number | null {
  try {
    return fs.statSync(f).mtimeMs;
  } catch {
    return null;
  }
}

/** The newest of the given times (null entries ignored); null when there is none. */
export function newestTime(times: Array<number | null>): number | null {
  const known = times.filter((t): t is number => t !== null);
  return known.length ? Math.max(...known) : null;
}

/** Are lists of this age stale? Unknown age (never updated) is stale. */
export function listsStale(ageMs: number | null, maxAgeMs = LISTS_MAX_AGE_MS): boolean {
  return ageMs === null || ageMs > maxAgeMs;
}

/** `apt-cache madison PKG` -> versions in the order apt prints them (newest first). */
export function parseMadison(text: string, pkg: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const cols = line.split('|').map((c) => c.trim());
    if (cols.length >= 3 && cols[0] === pkg && cols[1] && !out.includes(cols[1])) out.push(cols[1]);
  }
  return out;
}

/** `apt-cache policy PKG` -> its Candidate (null for "(none)" or no such package). */
export function parsePolicyCandidate(text: string): string | null {
  const m = /^\s*Candidate:\s*(\S+)/m.exec(text);
  return m?.[1] && m[1] !== '(none)' ? m[1] : null;
}

const ENV = { DEBIAN_FRONTEND: 'noninteractive' };

/** Where an apt instance keeps its package lists and how it is called: the host's, or a private one (./aptSuite.ts). */
export interface AptContext {
  /** the package lists directory (Dir::State::Lists) */
  listsDir: string;
  /** files whose mtime says when the lists were last refreshed successfully */
  stamps: string[];
  /** the stamp this harness writes after a successful update (null: none) */
  ownStamp: string | null;
  /** environment of every apt command (e.g. APT_CONFIG for a private configuration) */
  env: Record<string, string>;
}

const HOST_APT: AptContext = { listsDir: LISTS_DIR, stamps: [APT_STAMP, OWN_STAMP], ownStamp: OWN_STAMP, env: ENV };

const LIST_FILE = /(?:InRelease|Release|Packages(?:\.\w+)?)$/;

function listFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((f) => LIST_FILE.test(f));
  } catch {
    return []; // no lists at all
  }
}

/** An apt failure the archive itself reports for a suite it does not serve (no Release file, 404 on it). */
export function suiteMissingIn(output: string): boolean {
  return /does not have a Release file|Release\s+404\s+Not Found|404\s+Not Found.*Release/i.test(output);
}

/** The host's apt. */
export function systemApt(): AptOps {
  return aptWith(HOST_APT);
}

/** apt with the given lists and environment. */
export function aptWith(ctx: AptContext): AptOps {
  const env = { ...ENV, ...ctx.env };
  return {
    listsAgeMs() {
      const lists = listFiles(ctx.listsDir);
      const newest = newestTime([...ctx.stamps.map(mtime), ...lists.map((f) => mtime(path.join(ctx.listsDir, f)))]);
      return newest === null ? null : Math.max(0, Date.now() - newest);
    },
    listsStamp() {
      return listFiles(ctx.listsDir)
        .sort()
        .map((f) => `${f}:${mtime(path.join(ctx.listsDir, f)) ?? 0}`)
        .join(',');
    },
    async update() {
      const r = await run('apt-get', ['update', '-q'], { timeoutMs: 10 * 60_000, env });
      const ok = r.exitCode === 0 && !/^(?:W|E): (?:Failed to fetch|Some index files failed)/m.test(r.stderr);
      if (ok && ctx.ownStamp) {
        try {
          fs.mkdirSync(path.dirname(ctx.ownStamp), { recursive: true });
          fs.writeFileSync(ctx.ownStamp, new Date().toISOString() + '\n');
        } catch {
          /* not root: nothing to remember it with */
        }
      }
      return { ok, output: tail(r.stderr || r.stdout, 8) };
    },
    async served(pkg) {
      const r = await run('apt-cache', ['madison', pkg], { timeoutMs: 60_000, env });
      return r.exitCode === 0 ? parseMadison(r.stdout, pkg) : [];
    },
    async candidate(pkg) {
      const r = await run('apt-cache', ['policy', pkg], { timeoutMs: 60_000, env });
      return r.exitCode === 0 ? parsePolicyCandidate(r.stdout) : null;
    },
    async installed(pkg) {
      const r = await run('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', pkg], { timeoutMs: 10_000 });
      const m = /^installed (\S+)/.exec(r.stdout.trim());
      return r.exitCode === 0 && m?.[1] ? m[1] : null;
    },
    async install(specs) {
      const r = await run('apt-get', ['install', '-y', '-q', '-o', 'DPkg::Lock::Timeout=600', '--no-install-recommends', ...specs], { timeoutMs: 30 * 60_000, env });
      return { ok: r.exitCode === 0, output: tail(r.stderr || r.stdout, 8) };
    },
    async download(pkg, version, dir) {
      fs.mkdirSync(dir, { recursive: true });
      const r = await run('apt-get', ['download', '-q', `${pkg}=${version}`], { cwd: dir, timeoutMs: 30 * 60_000, env });
      const deb = fs.readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      return { deb: r.exitCode === 0 && deb ? path.join(dir, deb) : null, output: tail(r.stderr || r.stdout, 8) };
    },
  };
}

/**
 * Refresh the package lists once per process when they are stale, or when `force` (a package or
 * version was not found in them). Returns whether an update ran. A failed update is a warning: the
 * lists apt has are still used.
 */
export class ListsRefresher {
  private done = false;
  constructor(
    private readonly apt: AptOps,
    private readonly log: Logger,
    private readonly canUpdate: boolean,
  ) {}

  async ensureFresh(why?: string): Promise<boolean> {
    if (this.done || !this.canUpdate) return false;
    const age = this.apt.listsAgeMs();
    const reason = why ?? (listsStale(age) ? (age === null ? 'never refreshed' : `last refreshed ${Math.round(age / 3600_000)} h ago`) : null);
    if (reason === null) return false;
    this.done = true;
    this.log.info(`refreshing the package lists (apt-get update): ${reason}`);
    const r = await this.apt.update();
    if (!r.ok) this.log.warn(`apt-get update failed; using the package lists apt has:\n${r.output}`);
    return true;
  }
}

/** Refresh allowed: as root with apt-get on the machine, unless KERNEL_REPRO_APT_UPDATE=0. */
export function canRefreshLists(): boolean {
  return process.getuid?.() === 0 && process.env.KERNEL_REPRO_APT_UPDATE !== '0';
}

/** The error for a pinned version the archive does not serve (exit 3), with the one-line change. */
export function versionNotServed(o: {
  pkg: string;
  version: string;
  served: string[];
  file: string;
  type: string;
  /** the suite the definition names (debian-source with suite:), kept in the suggested line */
  suite?: string | undefined;
}): HarnessError {
  const newest = o.served[0];
  const suite = o.suite ? `, suite: ${o.suite}` : '';
  return new HarnessError(
    'missing-prereq',
    `the package archive no longer serves ${o.pkg} ${o.version}; it serves ${o.served.length ? o.served.join(', ') : 'no version of it'}`,
    {
      file: o.file,
      field: 'source.version',
      hint: newest
        ? `pin a version it serves: change the definition's source line to  source: { type: ${o.type}, package: ${o.pkg}${suite}, version: "${newest}" }`
        : `apt knows no ${o.pkg}: check the package name (apt-cache search) and the machine's apt sources`,
    },
  );
}
