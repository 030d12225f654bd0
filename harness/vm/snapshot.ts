// Booted-guest snapshots: the state of a guest that has booted the kernel and whose agent waits for
// its case, saved once (QEMU migration to a file) and restored for every later run of the same
// kernel + image + command line + QEMU. A restored guest is the freshly booted guest, bit for bit:
// same kernel memory, same clock, same random state; only the case it then receives differs.
import fs from 'node:fs';
import path from 'node:path';
import { EntryStore, hashOf } from '../util/cache.ts';
import { kernelCmdline, type VmSpec } from './qemu.ts';

const SNAPSHOT_FORMAT = 1; // bump when the agent's boot phase or the session protocol changes

export interface SnapshotMeta {
  /** records the agent wrote before it waited for the case (hello, links-at-start) */
  bootResults: string;
  /** guest uptime (ms) when the agent was ready */
  bootMs: number | null;
  /** wall time from QEMU start to the agent being ready, and to save the state */
  bootWallMs: number;
  saveMs: number;
  sizeBytes: number;
  qemu: string;
}

export interface Snapshot {
  key: string;
  file: string;
  bootConsole: string;
  meta: SnapshotMeta;
}

function fileId(p: string): { path: string; size: number; mtimeMs: number } | null {
  try {
    const st = fs.statSync(p);
    return { path: path.resolve(p), size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  } catch {
    return null;
  }
}

/** Everything the saved state depends on. Files by path, size and mtime (cache entries never change in place). */
export function snapshotKey(spec: Omit<VmSpec, 'session' | 'resultsFile'>, qemu: string): string {
  return hashOf({
    format: SNAPSHOT_FORMAT,
    qemu,
    accel: spec.accel,
    machine: spec.machine,
    memoryMb: spec.memoryMb ?? 256,
    cmdline: kernelCmdline(spec),
    kernel: fileId(spec.kernel),
    initrd: fileId(spec.initrd),
  });
}

export class SnapshotStore {
  readonly store: EntryStore<SnapshotMeta>;
  constructor(cacheDir: string) {
    this.store = new EntryStore<SnapshotMeta>(path.join(cacheDir, 'snapshots'));
  }

  /** A complete entry whose state file has the size recorded when it was saved, or null. */
  lookup(key: string): Snapshot | null {
    // not re-hashed on every run (tens of MB): QEMU checks the stream's structure when it loads it,
    // and a state that fails to load is discarded and made again by a cold boot
    const m = this.store.get(key, { verify: false });
    if (!m) return null;
    const dir = this.store.entryDir(key);
    const file = path.join(dir, 'snapshot.bin');
    if (fileId(file)?.size !== m.meta.sizeBytes) {
      this.discard(key);
      return null;
    }
    return { key, file, bootConsole: path.join(dir, 'boot-console.log'), meta: m.meta };
  }

  discard(key: string): void {
    // renamed aside first: a run that is restoring it right now keeps its open file
    const aside = path.join(this.store.dir, `.discarded-${key}-${process.pid}-${Date.now()}`);
    try {
      fs.renameSync(this.store.entryDir(key), aside);
      fs.rmSync(aside, { recursive: true, force: true });
    } catch {
      /* already gone */
    }
  }
}
