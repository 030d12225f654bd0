// Trust boundary: paths that untrusted input puts under a root the harness chose (a kernel tree, a
// modules directory, a cache entry, a staging directory). The idea of Go's os.Root.
//
// Rules, all enforced here:
//  - confine(root, rel): rel is a non-empty relative path without NUL and without any `..`
//    component; the result is root joined with it, lexically under root (checked, not assumed);
//  - confineReal(root, rel): the same, then symlinks are resolved: the real path must stay under
//    the real root (a symlink inside the tree that points inside it is fine; one leading out is not);
//  - openUnder/readUnder: confineReal, then open with O_NOFOLLOW|O_NONBLOCK (regular files only,
//    bounded, see files.ts), then the opened file's own path (/proc/self/fd) is checked to be under
//    the real root, so a directory swapped for a symlink between the check and the open is caught.
// Every refusal is HarnessError('bad-input') naming the file and field at fault.
import fs from 'node:fs';
import path from 'node:path';
import { openRegular, readOpen, refuse, type WhereLike } from './files.ts';

/** `p` is `root` or below it (both absolute, compared as they are: no symlink is resolved). */
export function isUnder(root: string, p: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}

/** Why `rel` is not a safe relative path, or null. */
export function relPathProblem(rel: unknown): string | null {
  if (typeof rel !== 'string') return 'is not a path';
  if (rel === '') return 'is an empty path';
  if (rel.includes('\0')) return 'contains a NUL byte';
  if (path.isAbsolute(rel)) return 'is an absolute path';
  if (rel.split('/').includes('..')) return "climbs out with '..'";
  return null;
}

/** `root`/`rel`, lexically under `root`, or a typed refusal. */
export function confine(root: string, rel: string, where: WhereLike): string {
  const why = relPathProblem(rel);
  if (why) throw refuse(String(rel).replace(/\0/g, '\\0'), where, `${why}: only paths inside ${root} are allowed`);
  const abs = path.resolve(root, rel);
  if (!isUnder(root, abs)) throw refuse(rel, where, `is outside ${root}`);
  return abs;
}

/** The real path of `p`; for a path that does not exist, its deepest existing ancestor's real path with the rest appended. */
function realOf(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
    const parent = path.dirname(p);
    if (parent === p) return p;
    return path.join(realOf(parent), path.basename(p));
  }
}

/**
 * `root`/`rel` with every symlink resolved, refused unless it stays under the real `root`. A path
 * that does not exist is refused too unless `allowMissing` (then its existing part is checked).
 */
export function confineReal(root: string, rel: string, where: WhereLike, o: { allowMissing?: boolean } = {}): string {
  const abs = confine(root, rel, where);
  let realRoot: string;
  try {
    realRoot = fs.realpathSync.native(root);
  } catch (e) {
    throw refuse(root, where, `cannot resolve the directory: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let real: string;
  try {
    real = o.allowMissing ? realOf(abs) : fs.realpathSync.native(abs);
  } catch (e) {
    throw refuse(abs, where, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!isUnder(realRoot, real)) throw refuse(abs, where, `leads out of ${root} through a symbolic link (to ${real})`);
  return real;
}

/**
 * Is there nothing at `root`/`rel` (no file, directory or symlink, not even a dangling one)? Asked
 * only of a path that stays under `root` (confineReal, symlinks resolved): a path leading out is
 * refused, never reported absent. What is there is for readUnder to accept or refuse.
 */
export function absentUnder(root: string, rel: string, where: WhereLike): boolean {
  const real = confineReal(root, rel, where, { allowMissing: true });
  try {
    fs.lstatSync(real);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return true;
    throw refuse(real, where, `cannot read file: ${code ?? String(e)}`);
  }
}

/** Open the regular file `rel` under `root` (symlinks only where they stay under it); the caller closes the fd. */
export function openUnder(root: string, rel: string, maxBytes: number, where: WhereLike): { fd: number; st: fs.Stats; path: string } {
  const real = confineReal(root, rel, where);
  const { fd, st } = openRegular(real, maxBytes, where, { noFollow: true });
  try {
    // what was really opened (an intermediate directory may have been swapped for a symlink meanwhile)
    let opened: string | null = null;
    try {
      opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      /* no /proc: the realpath check above stands */
    }
    if (opened !== null && !isUnder(fs.realpathSync.native(root), opened)) throw refuse(real, where, `leads out of ${root} (opened ${opened})`);
    return { fd, st, path: real };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** The bytes of the regular file `rel` under `root`, at most `maxBytes`, never read through a symlink leading out. */
export function readUnder(root: string, rel: string, maxBytes: number, where: WhereLike): Buffer {
  const { fd, path: real } = openUnder(root, rel, maxBytes, where);
  try {
    return readOpen(fd, real, maxBytes, where);
  } finally {
    fs.closeSync(fd);
  }
}

/** A single path component an untrusted source gives (a kernel release in /lib/modules/<release>): letters, digits and . _ + ~ - only, not `.` or `..`. */
export function safeComponent(name: unknown, where: WhereLike): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_+~-][A-Za-z0-9._+~-]{0,127}$/.test(name))
    throw refuse(String(name).replace(/\0/g, '\\0'), where, 'is not a plain file name (letters, digits and . _ + ~ - only)');
  return name;
}
