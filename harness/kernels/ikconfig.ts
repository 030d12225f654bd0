// A kernel image's own identity and config, read from the file: the x86 boot header of a bzImage
// (Documentation/arch/x86/boot.rst: "HdrS", kernel_version, payload_offset/payload_length), the
// "Linux version" banner of a vmlinux, and the config the kernel carries with CONFIG_IKCONFIG
// (scripts/extract-ikconfig: gzip data between the markers IKCFG_ST and IKCFG_ED, inside the
// compressed payload of a bzImage). The parsing is pure; readImageConfig decompresses with the
// host's tools where Node has no decompressor (xz, zstd, lz4, bzip2, lzma, lzo).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { HarnessError } from '../util/errors.ts';
import { run } from '../util/proc.ts';

export type ImageKind = 'bzImage' | 'vmlinux';

/** What kind of kernel image these bytes start: an x86 bzImage (boot header "HdrS" at 0x202), an ELF vmlinux, or neither. */
export function imageKind(head: Buffer): ImageKind | null {
  if (head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS') return 'bzImage';
  if (head.length >= 4 && head.readUInt32BE(0) === 0x7f454c46) return 'vmlinux';
  return null;
}

/** The release of a bzImage from its boot header's kernel_version string ("6.1.192 (user@host) #1 ..."), or null. */
export function bzImageRelease(img: Buffer): string | null {
  if (imageKind(img) !== 'bzImage' || img.length < 0x210) return null;
  const ptr = img.readUInt16LE(0x20e);
  if (ptr === 0) return null;
  const at = ptr + 0x200;
  if (at >= img.length) return null;
  const end = img.indexOf(0, at);
  const text = img.toString('latin1', at, end < 0 ? Math.min(img.length, at + 256) : end);
  const m = /^(\S+)/.exec(text);
  return m?.[1] && /^\d+\.\d+/.test(m[1]) ? m[1] : null;
}

/** The release from a "Linux version X ..." banner in an uncompressed kernel (vmlinux), or null. */
export function bannerRelease(img: Buffer): string | null {
  let from = 0;
  for (;;) {
    const i = img.indexOf('Linux version ', from, 'latin1');
    if (i < 0) return null;
    const m = /^Linux version (\d+\.\d+\S*) \(/.exec(img.toString('latin1', i, Math.min(img.length, i + 200)));
    if (m?.[1]) return m[1];
    from = i + 1;
  }
}

export type Compression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'bzip2' | 'lzma' | 'lzo';

const MAGICS: Array<{ method: Compression; magic: Buffer }> = [
  { method: 'gzip', magic: Buffer.from([0x1f, 0x8b, 0x08]) },
  { method: 'xz', magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { method: 'zstd', magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { method: 'lz4', magic: Buffer.from([0x02, 0x21, 0x4c, 0x18]) },
  { method: 'bzip2', magic: Buffer.from('BZh', 'latin1') },
  { method: 'lzma', magic: Buffer.from([0x5d, 0x00, 0x00, 0x00]) },
  { method: 'lzo', magic: Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]) },
];

/** The compressed kernel inside a bzImage (protocol 2.08+: payload_offset and payload_length), with its method, or null. */
export function bzImagePayload(img: Buffer): { method: Compression; data: Buffer } | null {
  if (imageKind(img) !== 'bzImage' || img.length < 0x250) return null;
  const version = img.readUInt16LE(0x206);
  if (version < 0x208) return null;
  const setupSects = img.readUInt8(0x1f1) || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const len = img.readUInt32LE(0x24c);
  if (len === 0 || start + len > img.length) return null;
  const data = img.subarray(start, start + len);
  const found = MAGICS.find((m) => data.subarray(0, m.magic.length).equals(m.magic));
  return found ? { method: found.method, data } : null;
}

/** Every place a known compression magic starts (as scripts/extract-ikconfig scans an unknown image). */
export function compressedCandidates(img: Buffer): Array<{ method: Compression; offset: number }> {
  const out: Array<{ method: Compression; offset: number }> = [];
  for (const m of MAGICS) {
    const i = img.indexOf(m.magic);
    if (i >= 0) out.push({ method: m.method, offset: i });
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/** The config a kernel carries (CONFIG_IKCONFIG): the gzip data between IKCFG_ST and IKCFG_ED, or null. */
export function findIkconfig(kernel: Buffer): string | null {
  const st = kernel.indexOf('IKCFG_ST', 0, 'latin1');
  if (st < 0) return null;
  const ed = kernel.indexOf('IKCFG_ED', st + 8, 'latin1');
  const data = kernel.subarray(st + 8, ed < 0 ? kernel.length : ed);
  if (data.length < 3 || data[0] !== 0x1f || data[1] !== 0x8b) return null;
  try {
    return zlib.gunzipSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
  } catch {
    return null;
  }
}

const TOOL: Record<Exclude<Compression, 'gzip'>, { cmd: string; pkg: string }> = {
  xz: { cmd: 'xz -dc --single-stream', pkg: 'xz-utils' },
  zstd: { cmd: 'zstd -dcq', pkg: 'zstd' },
  lz4: { cmd: 'lz4 -dcq', pkg: 'lz4' },
  bzip2: { cmd: 'bzip2 -dcq', pkg: 'bzip2' },
  lzma: { cmd: 'xz -dc --format=lzma --single-stream', pkg: 'xz-utils' },
  lzo: { cmd: 'lzop -dc', pkg: 'lzop' },
};

/** Decompress `data` as far as it goes (trailing bytes after the stream are ignored, as extract-ikconfig does). */
async function decompress(method: Compression, data: Buffer, workDir: string): Promise<Buffer> {
  if (method === 'gzip') {
    try {
      return zlib.gunzipSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch {
      return Buffer.alloc(0);
    }
  }
  fs.mkdirSync(workDir, { recursive: true });
  const inFile = path.join(workDir, `payload.${method}`);
  const outFile = path.join(workDir, 'payload.out');
  fs.writeFileSync(inFile, data);
  try {
    const r = await run('sh', ['-c', `${TOOL[method].cmd} < "$1" > "$2"`, 'x', inFile, outFile], { timeoutMs: 2 * 60_000 });
    if (r.exitCode === 127 || /not found/.test(r.stderr))
      throw new HarnessError('missing-prereq', `the image is ${method}-compressed and ${TOOL[method].cmd.split(' ')[0]} is not installed`, { hint: `apt-get install ${TOOL[method].pkg}` });
    return fs.existsSync(outFile) ? fs.readFileSync(outFile) : Buffer.alloc(0);
  } finally {
    fs.rmSync(inFile, { force: true });
    fs.rmSync(outFile, { force: true });
  }
}

/**
 * The IKCONFIG of a kernel image file, or null when it carries none: in a vmlinux as it is; in a
 * bzImage inside the payload its boot header points to (a missing decompressor is then an error
 * naming the package); in a bzImage too old to say where its payload is, wherever a compression
 * magic starts (as extract-ikconfig scans), skipping what the host cannot decompress.
 */
export async function readImageConfig(img: Buffer, workDir: string): Promise<string | null> {
  const direct = findIkconfig(img);
  if (direct !== null || imageKind(img) !== 'bzImage') return direct;
  const payload = bzImagePayload(img);
  if (payload) return findIkconfig(await decompress(payload.method, payload.data, workDir));
  for (const c of compressedCandidates(img)) {
    try {
      const cfg = findIkconfig(await decompress(c.method, img.subarray(c.offset), workDir));
      if (cfg !== null) return cfg;
    } catch (e) {
      if (!(e instanceof HarnessError && e.kind === 'missing-prereq')) throw e;
    }
  }
  return null;
}
