// The one module that takes archives apart (kernels/ and images/ both use it): kernel source tarballs (trusted ones with the host's
// tar, downloaded ones with the member rules of ../trust/archive.ts: no path traversal, no escaping
// links, no devices, modes normalised), single members of a tarball, and Debian packages (.deb).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar';
import { HarnessError, type ErrorKind } from './errors.ts';
import { escapingSymlinks, tarMemberFilter } from '../trust/archive.ts';
import { isNoSpace, noSpace } from './disk.ts';
import { onExitCleanup, run, tail } from './proc.ts';

/** Extract a tarball into `dest` atomically (staging dir + rename); the tree's top directory is stripped.
 * `untrusted` (downloaded) archives go through the checks of extractTarballSafe. */
export async function extractTarball(tarball: string, dest: string, logFile: string, untrusted = false): Promise<void> {
  if (untrusted) return extractTarballSafe(tarball, dest);
  const staging = `${dest}.staging-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  const forget = onExitCleanup(() => fs.rmSync(staging, { recursive: true, force: true })); // even on SIGINT
  try {
    const r = await run('tar', ['-xf', tarball, '-C', staging, '--strip-components=1', '--no-same-owner'], {
      timeoutMs: 15 * 60_000,
      logFile,
      killWhen: (l) => isNoSpace(l), // GNU tar would go on failing through the whole archive
    });
    if (r.killedOnLine) throw noSpace(path.dirname(dest), `extracting ${path.basename(tarball)}`);
    if (r.exitCode !== 0)
      throw new HarnessError('build-failed', `cannot extract ${tarball}${r.timedOut ? ' (timed out)' : ''}`, {
        excerpt: tail(r.stderr, 10),
        logPath: logFile,
      });
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(staging, dest);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true }); // gone after the rename; else a partial tree
    forget();
  }
}

/** Members of a (compressed) tarball matching shell patterns, concatenated on stdout (null when tar fails). */
export async function readTarMembers(tarball: string, patterns: string[], o: { maxBytes: number; timeoutMs?: number; wildcards?: boolean }): Promise<{ text: string } | { error: string }> {
  const r = await run('tar', ['-xOf', tarball, ...(o.wildcards ? ['--wildcards'] : []), ...patterns], { timeoutMs: o.timeoutMs ?? 10 * 60_000, maxBuffer: o.maxBytes });
  if (r.exitCode !== 0) return { error: tail(r.stderr, 5) };
  return { text: r.stdout };
}

/** Unpack a .deb's files under `root` (dpkg-deb -x: nothing is installed). A .deb the user gave is
 * bad input when it does not unpack; one the harness fetched is a failed build of what it makes. */
export async function unpackDeb(deb: string, root: string, kind: ErrorKind = 'bad-input'): Promise<void> {
  const x = await run('dpkg-deb', ['-x', deb, root], { timeoutMs: 10 * 60_000 });
  if (x.exitCode !== 0) throw new HarnessError(kind, `cannot unpack ${deb}: ${x.stderr.trim().split('\n')[0] ?? ''}`, { file: deb, excerpt: tail(x.stderr, 5) });
}

/** A control member of a .deb (its postinst, say), at most `maxBytes`; '' when it has none. */
export async function debControlMember(deb: string, member: string, maxBytes = 256 * 1024): Promise<string> {
  const r = await run('dpkg-deb', ['--info', deb, member], { timeoutMs: 60_000, maxBuffer: maxBytes });
  return r.exitCode === 0 ? r.stdout.slice(0, maxBytes) : '';
}

/** One member of a .deb's data archive, written to `out`. */
export async function debMemberTo(deb: string, member: string, out: string): Promise<{ ok: boolean; stderr: string }> {
  const x = await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xOf - "$2" > "$3"', 'x', deb, member, out], { timeoutMs: 10 * 60_000 });
  return { ok: x.exitCode === 0 && fs.existsSync(out) && fs.statSync(out).size > 0, stderr: x.stderr };
}

/** Control fields of a .deb (Package, Version, Source, ...); a file that is no .deb is an error naming it. */
export async function debFields(deb: string, field = '--kernel'): Promise<Record<string, string>> {
  const r = await run('dpkg-deb', ['-f', deb], { timeoutMs: 60_000 });
  if (r.exitCode !== 0)
    throw new HarnessError('bad-input', `not a Debian package: ${r.stderr.trim().split('\n')[0] ?? ''}`, { file: deb, field, hint: 'give a linux-image-*.deb (apt-get download linux-image-cloud-amd64 fetches one)' });
  const out: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/^([A-Za-z0-9-]+): (.*)$/gm)) out[m[1]!] = m[2]!.trim();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Extraction

type Compression = 'xz' | 'bzip2' | 'native';

function sniff(file: string): Compression {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(6);
    const n = fs.readSync(fd, b, 0, 6, 0);
    if (n >= 6 && b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (n >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    return 'native'; // plain tar, gzip or zstd: handled by the tar package itself
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Extract `tarball` (plain, gzip, zstd; xz and bzip2 through the host's xz/bzip2) with its top
 * directory stripped, into a staging directory next to `dest`, then rename it into place. An
 * absolute or `..` entry, or a link whose target would resolve outside the tree, fails the whole
 * extraction (bad-input naming the entry) and leaves nothing at `dest`.
 */
export async function extractTarballSafe(tarball: string, dest: string): Promise<void> {
  if (!fs.existsSync(tarball)) throw new HarnessError('bad-input', `tarball not found: ${tarball}`);
  const destAbs = path.resolve(dest);
  fs.mkdirSync(path.dirname(destAbs), { recursive: true });
  const tag = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const staging = `${destAbs}.staging-${tag}`;
  fs.mkdirSync(staging);
  const forget = onExitCleanup(() => fs.rmSync(staging, { recursive: true, force: true })); // even on SIGINT
  try {
    const unsafe: string[] = [];
    let full = false;
    let stop = (): void => undefined;
    const failures: string[] = [];
    const compression = sniff(tarball);
    const unpack = tar.x({
      cwd: staging,
      strip: 1,
      preserveOwner: false,
      // the member rules (names, types, in-tree links, modes) are trust/archive.ts's
      filter: tarMemberFilter({ links: 'in-tree', strip: 1 }, (p, why) => unsafe.push(`${p}: ${why}`)),
      onwarn: (code, message, data) => {
        // a full disk fails every later entry too: stop reading at the first one
        if (!full && (isNoSpace(data) || isNoSpace(message))) {
          full = true;
          stop();
        }
        // entry errors mean a file is missing from the tree: fatal. Info/unsupported types are not.
        if (code === 'TAR_ENTRY_ERROR' || code === 'TAR_ENTRY_INVALID') {
          const entry = data.entry as { path?: unknown } | undefined;
          failures.push(`${typeof entry?.path === 'string' ? entry.path + ': ' : ''}${message}`);
        }
      },
    });

    const child = compression === 'native' ? undefined : spawn(compression, ['-dc', tarball], { stdio: ['ignore', 'pipe', 'pipe'] });
    const source: Readable = child ? (child.stdout as Readable) : fs.createReadStream(tarball);
    stop = () => {
      source.unpipe();
      source.destroy();
      child?.kill();
      unpack.abort(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    };
    let childErr = '';
    child?.stderr?.on('data', (d: Buffer) => (childErr += d.toString()));
    const childDone: Promise<number | null> = child
      ? new Promise((resolve, reject) => {
          child.on('error', reject);
          child.on('close', (exit) => resolve(exit));
        })
      : Promise.resolve(0);
    const unpackDone = new Promise<void>((resolve, reject) => {
      unpack.on('error', reject);
      unpack.on('close', () => resolve());
      source.on('error', reject);
      source.pipe(unpack);
    });
    let exit: number | null;
    try {
      [, exit] = await Promise.all([unpackDone, childDone]);
    } catch (err) {
      source.destroy();
      child?.kill();
      if (full) throw noSpace(path.dirname(destAbs), `extracting ${path.basename(tarball)}`);
      if (child && (err as { code?: unknown }).code === 'ENOENT' && String((err as { syscall?: unknown }).syscall).startsWith('spawn'))
        throw new HarnessError('missing-prereq', `cannot extract ${tarball}: ${compression} is not installed`, {
          hint: `install ${compression === 'xz' ? 'xz-utils' : 'bzip2'}`,
        });
      if (isNoSpace(err)) throw noSpace(path.dirname(destAbs), `extracting ${path.basename(tarball)}`);
      throw new HarnessError('bad-input', `cannot extract ${tarball}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (full || failures.some((f) => isNoSpace(f))) throw noSpace(path.dirname(destAbs), `extracting ${path.basename(tarball)}`);
    if (exit !== 0)
      throw new HarnessError('bad-input', `cannot extract ${tarball}: ${compression} -d failed (exit ${String(exit)})`, {
        excerpt: childErr.trim().split('\n').slice(-10).join('\n'),
      });
    if (unsafe.length > 0)
      throw new HarnessError('bad-input', `unsafe entry in ${tarball}: ${unsafe[0]}`, {
        excerpt: unsafe.slice(0, 20).join('\n'),
        hint: 'the tarball tries to write outside its own tree; it is not a kernel source release',
      });
    const escaping = escapingSymlinks(staging);
    if (escaping.length > 0)
      throw new HarnessError('bad-input', `unsafe entry in ${tarball}: ${escaping[0]}`, { excerpt: escaping.slice(0, 20).join('\n') });
    if (failures.length > 0)
      throw new HarnessError('bad-input', `cannot extract ${tarball}: ${failures[0]}`, { excerpt: failures.slice(0, 20).join('\n') });
    if (fs.readdirSync(staging).length === 0)
      throw new HarnessError('bad-input', `cannot extract ${tarball}: no files below a top-level directory`);

    // into place: move an old tree aside first so `dest` is never half-written
    let aside: string | undefined;
    if (fs.existsSync(destAbs)) {
      aside = `${destAbs}.old-${tag}`;
      fs.renameSync(destAbs, aside);
    }
    fs.renameSync(staging, destAbs);
    if (aside) fs.rmSync(aside, { recursive: true, force: true });
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
    forget();
  }
}
