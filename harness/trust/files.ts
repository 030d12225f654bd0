// Trust boundary: the files a definition (kernel, case, matrix) or an untrusted tree names.
//
// Rules, all enforced here and nowhere else:
//  - a file is refused BEFORE it is opened when it is not a regular file (a directory, a device
//    such as /dev/zero, a FIFO, a socket): nothing can block on it or read forever;
//  - it is opened with O_NONBLOCK (and O_NOFOLLOW when the caller says a symlink is not allowed),
//    then fstat'ed: the opened file must still be a regular file and the one that was checked;
//  - at most max + 1 bytes are ever read, so a file that grows while it is read is still bounded;
//  - every refusal is HarnessError('bad-input') naming the file and the field at fault (the
//    definition's field, e.g. `patches[1].file`, `config.fragments[0]`, `modules`), never a stack.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { HarnessError } from '../util/errors.ts';

/** Where a refused file came from: the field at fault and, when a definition named the file, that
 * definition (then it is the error's `file`, and the refused path is in the message). */
export interface Where {
  field: string;
  def?: string;
}

export type WhereLike = Where | string;

const asWhere = (w: WhereLike): Where => (typeof w === 'string' ? { field: w } : w);

/** The typed refusal of `file`. */
export function refuse(file: string, where: WhereLike, msg: string): HarnessError {
  const w = asWhere(where);
  return new HarnessError('bad-input', w.def && w.def !== file ? `${file}: ${msg}` : msg, { file: w.def ?? file, field: w.field });
}

/** What a non-regular file is, for messages. */
export function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

export interface OpenOptions {
  /** refuse a symbolic link as the last component (O_NOFOLLOW) */
  noFollow?: boolean;
}

/** stat (lstat with noFollow) a file that must be a regular file of at most `maxBytes`. */
export function statRegular(file: string, maxBytes: number, where: WhereLike, o: OpenOptions = {}): fs.Stats {
  let st: fs.Stats;
  try {
    st = o.noFollow ? fs.lstatSync(file) : fs.statSync(file);
  } catch (err) {
    throw refuse(file, where, `cannot read file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!st.isFile()) throw refuse(file, where, `is ${kindOf(st)}, not a regular file`);
  if (st.size > maxBytes) throw refuse(file, where, `is ${st.size} bytes, more than the ${maxBytes} bytes such a file may have`);
  return st;
}

/** Open a regular file for reading, checked before and after the open; the caller closes the fd. */
export function openRegular(file: string, maxBytes: number, where: WhereLike, o: OpenOptions = {}): { fd: number; st: fs.Stats } {
  const before = statRegular(file, maxBytes, where, o);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | (o.noFollow ? fs.constants.O_NOFOLLOW : 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw refuse(file, where, code === 'ELOOP' ? 'is a symbolic link, which is not allowed here' : `cannot read file: ${code ?? String(err)}`);
  }
  try {
    // it may have been replaced between the check and the open: check the opened file
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw refuse(file, where, `is ${kindOf(st)}, not a regular file`);
    if (st.dev !== before.dev || st.ino !== before.ino) throw refuse(file, where, 'changed while it was opened');
    return { fd, st };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Read an open file's bytes in chunks, at most `maxBytes` (reading max + 1 to tell). */
function eachChunk(fd: number, file: string, maxBytes: number, where: WhereLike, onChunk: (b: Buffer) => void): number {
  const buf = Buffer.allocUnsafe(Math.min(1 << 20, maxBytes + 1));
  let total = 0;
  for (;;) {
    const r = fs.readSync(fd, buf, 0, Math.min(buf.length, maxBytes + 1 - total), null);
    if (r === 0) return total;
    total += r;
    if (total > maxBytes) throw refuse(file, where, `is more than the ${maxBytes} bytes such a file may have`);
    onChunk(buf.subarray(0, r));
  }
}

/** All the bytes of an open file (at most `maxBytes`); `file` names it in refusals. */
export function readOpen(fd: number, file: string, maxBytes: number, where: WhereLike): Buffer {
  const chunks: Buffer[] = [];
  eachChunk(fd, file, maxBytes, where, (b) => chunks.push(Buffer.from(b)));
  return Buffer.concat(chunks);
}

/** The bytes of a regular file of at most `maxBytes`. */
export function readInputBytes(file: string, maxBytes: number, where: WhereLike = '(file)', o: OpenOptions = {}): Buffer {
  const { fd } = openRegular(file, maxBytes, where, o);
  try {
    return readOpen(fd, file, maxBytes, where);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Read an input file the user named: it must be a regular file (a device, pipe or directory is
 * refused before it is opened, so `/dev/zero` or a FIFO cannot hang the run) of at most `maxBytes`.
 */
export function readInputFile(file: string, maxBytes: number, where: WhereLike = '(file)', o: OpenOptions = {}): string {
  return readInputBytes(file, maxBytes, where, o).toString('utf8');
}

/** sha256 (hex) of a regular file of at most `maxBytes`, streamed. */
export function sha256Input(file: string, maxBytes: number, where: WhereLike = '(file)', o: OpenOptions = {}): string {
  const { fd } = openRegular(file, maxBytes, where, o);
  try {
    const h = crypto.createHash('sha256');
    eachChunk(fd, file, maxBytes, where, (b) => h.update(b));
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/** Copy a regular file of at most `maxBytes` to `dest` (created 0644), never blocking on what it is. */
export function copyInput(file: string, dest: string, maxBytes: number, where: WhereLike = '(file)', o: OpenOptions = {}): void {
  const { fd } = openRegular(file, maxBytes, where, o);
  try {
    const out = fs.openSync(dest, 'w', 0o644);
    try {
      eachChunk(fd, file, maxBytes, where, (b) => {
        let off = 0;
        while (off < b.length) off += fs.writeSync(out, b, off, b.length - off);
      });
    } finally {
      fs.closeSync(out);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Size limits of the files definitions name (one place, so a reviewer sees them together). */
export const LIMITS = {
  /** kernel, case and matrix definitions: a few KB */
  definition: 1024 * 1024,
  /** a patch */
  patch: 64 * 1024 * 1024,
  /** a config fragment or a whole .config: a few hundred KB */
  config: 4 * 1024 * 1024,
  /** a kernel image: a bzImage is a few MB, a vmlinux with debug info a few hundred */
  image: 1024 * 1024 * 1024,
  /** a source tarball or a .deb */
  archive: 4 * 1024 * 1024 * 1024,
  /** one loadable module (.ko); modules.dep */
  module: 64 * 1024 * 1024,
  modulesDep: 16 * 1024 * 1024,
  /** a file a case takes from the kernel tree (a kselftest script) */
  sourceFile: 1024 * 1024,
} as const;

/**
 * A file of the host's kernel interfaces (/proc/<pid>/stat, /proc/<pid>/environ, boot_id): trusted,
 * but read the same bounded way (at most `maxBytes`; /proc files report size 0, so no size check).
 * Throws the file system's error when it cannot be read (a process gone meanwhile).
 */
export function readHostBytes(file: string, maxBytes = 1024 * 1024): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < maxBytes) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, maxBytes - total));
      const r = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (r === 0) break;
      chunks.push(chunk.subarray(0, r));
      total += r;
    }
    return Buffer.concat(chunks);
  } finally {
    fs.closeSync(fd);
  }
}
