// Host prerequisites: what a run needs on the machine, and how to install it on Debian/Ubuntu.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { run } from '../util/proc.ts';
import { canRefreshLists, ListsRefresher, systemApt, type AptOps } from './apt.ts';

export interface Prereq {
  what: string;
  /** Debian/Ubuntu package that provides it */
  pkg: string;
  present: boolean;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some((d) => {
      try {
        fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

const COMMANDS: Array<[string, string]> = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['busybox', 'busybox-static'],
  ['ip', 'iproute2'],
  ['tc', 'iproute2'],
  ['gcc', 'gcc'],
  ['make', 'make'],
  ['flex', 'flex'],
  ['bison', 'bison'],
  ['bc', 'bc'],
  ['cpio', 'cpio'],
  ['patch', 'patch'],
  ['xz', 'xz-utils'],
  ['ccache', 'ccache'],
  ['perl', 'perl'],
  ['ldd', 'libc-bin'],
  ['depmod', 'kmod'],
  ['dpkg-deb', 'dpkg'],
];
const FILES: Array<[string, string, string]> = [
  ['/usr/include/libelf.h', 'libelf headers', 'libelf-dev'],
  ['/usr/include/openssl/opensslv.h', 'OpenSSL headers', 'libssl-dev'],
  // the guest's reseed helper (images/agent/reseed.c: RNDADDENTROPY, RNDRESEEDCRNG)
  ['/usr/include/linux/random.h', 'Linux API headers', 'linux-libc-dev'],
];

export function checkPrereqs(extraPackages: Array<{ file: string; pkg: string }> = []): Prereq[] {
  const out: Prereq[] = COMMANDS.map(([cmd, pkg]) => ({ what: cmd, pkg, present: onPath(cmd) }));
  for (const [file, what, pkg] of FILES) out.push({ what, pkg, present: fs.existsSync(file) });
  for (const e of extraPackages) out.push({ what: e.file, pkg: e.pkg, present: fs.existsSync(e.file) });
  return out;
}

export async function busyboxIsStatic(): Promise<boolean> {
  const bb = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
  if (!bb) return false;
  const r = await run('ldd', [bb], { timeoutMs: 10_000 });
  return !/=>/.test(r.stdout);
}

export function missingPackages(prereqs: Prereq[]): string[] {
  return [...new Set(prereqs.filter((p) => !p.present).map((p) => p.pkg))];
}

/**
 * Install `missing` with apt-get, refreshing the package lists first when they are stale, when apt
 * has no candidate for one of the packages, or when the install fails; then say which exact
 * version of each package was installed. Returns the versions, or throws with apt's own words.
 */
export async function installPackages(
  missing: string[],
  apt: AptOps,
  log: Logger,
  refresher: ListsRefresher,
): Promise<Record<string, string | null>> {
  await refresher.ensureFresh();
  const unknown: string[] = [];
  for (const p of missing) if ((await apt.candidate(p)) === null) unknown.push(p);
  if (unknown.length) await refresher.ensureFresh(`apt has no candidate for ${unknown.join(', ')}`);
  log.info(`installing missing host packages with apt-get: ${missing.join(' ')}`);
  let r = await apt.install(missing);
  if (!r.ok && (await refresher.ensureFresh('apt-get install failed'))) r = await apt.install(missing);
  const versions: Record<string, string | null> = {};
  for (const p of missing) versions[p] = await apt.installed(p);
  if (r.ok) log.info(`installed: ${missing.map((p) => `${p} ${versions[p] ?? '(not installed)'}`).join(', ')}`);
  if (!r.ok)
    throw new HarnessError('missing-prereq', `could not install: ${missing.filter((p) => !versions[p]).join(', ') || missing.join(', ')}`, {
      excerpt: r.output,
      hint: `run as root: apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`,
    });
  return versions;
}

/**
 * Make sure every package is present: as root on a Debian/Ubuntu machine install them with apt-get
 * (saying what, and which version), otherwise throw a missing-prereq error with the exact command.
 */
export async function ensurePrereqs(
  extra: Array<{ file: string; pkg: string }>,
  log: Logger,
  opts: { install: boolean; apt?: AptOps },
): Promise<void> {
  let missing = missingPackages(checkPrereqs(extra));
  if (onPath('busybox') && !(await busyboxIsStatic())) missing.push('busybox-static');
  missing = [...new Set(missing)];
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  const canInstall = opts.install && process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall)
    throw new HarnessError('missing-prereq', `missing host packages: ${missing.join(', ')}`, {
      hint: `run as root: apt-get update && ${cmd}`,
    });
  const apt = opts.apt ?? systemApt();
  await installPackages(missing, apt, log, new ListsRefresher(apt, log, canRefreshLists()));
  const still = missingPackages(checkPrereqs(extra));
  if (still.length > 0)
    throw new HarnessError('missing-prereq', `installed, but still missing: ${still.join(', ')}`, {
      hint: `run as root: apt-get update && ${cmd}`,
    });
}
