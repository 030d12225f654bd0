// Host prerequisites: what a run needs on the machine, and how to install it on Debian/Ubuntu.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { run } from '../util/proc.ts';

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
 * Make sure every package is present: as root on a Debian/Ubuntu machine install them with apt-get
 * (saying what), otherwise throw a missing-prereq error with the exact command to run.
 */
export async function ensurePrereqs(
  extra: Array<{ file: string; pkg: string }>,
  log: Logger,
  opts: { install: boolean },
): Promise<void> {
  let prereqs = checkPrereqs(extra);
  let missing = missingPackages(prereqs);
  if (onPath('busybox') && !(await busyboxIsStatic())) missing.push('busybox-static');
  missing = [...new Set(missing)];
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  const canInstall = opts.install && process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall)
    throw new HarnessError('missing-prereq', `missing host packages: ${missing.join(', ')}`, {
      hint: `run as root: apt-get update && ${cmd}`,
    });
  log.info(`installing missing host packages with apt-get: ${missing.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  let r = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { timeoutMs: 30 * 60_000, env });
  if (r.exitCode !== 0) {
    log.info('apt-get install failed; running apt-get update and trying again');
    await run('apt-get', ['update', '-q'], { timeoutMs: 10 * 60_000, env });
    r = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { timeoutMs: 30 * 60_000, env });
  }
  prereqs = checkPrereqs(extra);
  const still = missingPackages(prereqs);
  if (r.exitCode !== 0 || still.length > 0)
    throw new HarnessError('missing-prereq', `could not install: ${(still.length ? still : missing).join(', ')}`, {
      excerpt: (r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n'),
      hint: `run as root: apt-get update && ${cmd}`,
    });
}
