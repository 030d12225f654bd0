// Disk space: a kernel tree is ~1.5 GB extracted, a build ~0.3 GB, a booted-kernel snapshot ~35 MB.
// Runs check before they write big things, so a full disk ends in a `no-space` error naming the
// directory and what it needed, never in a crash half-way through an extraction.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError, NO_SPACE_HINT } from './errors.ts';

export const GB = 1024 ** 3;
export const MB = 1024 ** 2;

function existing(dir: string): string {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

/** Bytes available to this user on the file system holding `dir` (or its nearest existing parent). */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(existing(dir));
  return s.bavail * s.bsize;
}

/** Do these two directories (or their nearest existing parents) live on one file system? */
export function sameDisk(a: string, b: string): boolean {
  return fs.statSync(existing(a)).dev === fs.statSync(existing(b)).dev;
}

export function human(bytes: number): string {
  return bytes >= GB ? `${(bytes / GB).toFixed(1)} GB` : `${Math.max(0, Math.round(bytes / MB))} MB`;
}


export function noSpace(dir: string, what: string, need?: number, free?: number): HarnessError {
  const figures = need !== undefined ? `: it needs about ${human(need)}${free !== undefined ? `, ${human(free)} free` : ''}` : '';
  return new HarnessError('no-space', `not enough disk space in ${dir} for ${what}${figures}`, { hint: NO_SPACE_HINT });
}

/** Throw a `no-space` error unless `need` bytes are free where `dir` lives. */
export function ensureFree(dir: string, need: number, what: string, free: (d: string) => number = freeBytes): void {
  const have = free(dir);
  if (have < need) throw noSpace(dir, what, need, have);
}

/** Is this error (or this tool output) the file system saying it is full? */
export function isNoSpace(e: unknown): boolean {
  if (typeof e === 'string') return /No space left on device|ENOSPC|Disk quota exceeded/.test(e);
  if (e && typeof e === 'object') {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    const msg = (e as { message?: unknown }).message;
    return typeof msg === 'string' && isNoSpace(msg);
  }
  return false;
}

/** Space an extracted tarball needs, from its compressed size (kernel trees: xz ~10x, gzip ~5x). */
export function extractedEstimate(tarballBytes: number, name: string): number {
  const ratio = /\.xz$|\.txz$/.test(name) ? 11 : /\.zst$/.test(name) ? 9 : /\.bz2$/.test(name) ? 7 : /\.gz$|\.tgz$/.test(name) ? 6 : 1.2;
  return Math.round(tarballBytes * ratio);
}
