// Booted-guest snapshots, and case snapshots (the same guest once a case is set up, for repeats): the state of a guest that has booted the kernel and whose agent waits for
// its case, saved once (QEMU migration to a file) and restored for every later run of the same
// kernel + image + command line + QEMU. A restored guest is the freshly booted guest, bit for bit:
// same kernel memory, same clock, same random state; only the case it then receives differs.
import fs from 'node:fs';
import path from 'node:path';
import { cachedFileId, EntryStore, hashOf, sha256 } from '../util/cache.ts';
import { kernelCmdline, type VmSpec } from './qemu.ts';

const SNAPSHOT_FORMAT = 2; // bump when the agent's boot phase or the session protocol changes

export interface SnapshotMeta {
  /** boot: the booted guest waiting for its case; case: a guest whose case is set up, waiting for
   *  the go of one repeat (kr_checkpoint) */
  level?: 'boot' | 'case';
  /** records the agent wrote before the state was saved (hello, links-at-start; for a case
   *  snapshot also the case's setup: steps, counters before, servers, checkpoint) */
  bootResults: string;
  /** guest uptime (ms) when the agent was ready */
  bootMs: number | null;
  /** wall time from QEMU start to the agent being ready (or checkpointed), and to save the state */
  bootWallMs: number;
  saveMs: number;
  sizeBytes: number;
  qemu: string;
}

export interface Snapshot {
  key: string;
  file: string;
  /** the kernel's boot messages (boot-console.log) */
  bootConsole: string;
  /** a case snapshot: the kernel's messages from the case's setup, before the state was saved */
  setupConsole?: string;
  meta: SnapshotMeta;
}

/**
 * Everything the saved state depends on. A file in the cache by its path relative to the cache
 * (content-keyed entries never change in place), so that a snapshot's key is the same on another
 * machine with the same cache entries and QEMU; any other file by path, size and mtime.
 */
export function snapshotKey(spec: Omit<VmSpec, 'session' | 'resultsFile'>, qemu: string, cacheDir: string): string {
  return hashOf({
    format: SNAPSHOT_FORMAT,
    qemu,
    accel: spec.accel,
    machine: spec.machine,
    memoryMb: spec.memoryMb ?? 256,
    // KVM runs -cpu host: a state saved on one CPU model may not load on another (TCG's CPU is QEMU's)
    ...(spec.accel === 'kvm' ? { hostCpu: hostCpuId() } : {}),
    cmdline: kernelCmdline(spec),
    kernel: cachedFileId(spec.kernel, cacheDir),
    initrd: cachedFileId(spec.initrd, cacheDir),
  });
}

let cpuId: string | null = null;
/** The host CPU's model and flags, hashed (what -cpu host hands a KVM guest). */
export function hostCpuId(): string {
  if (cpuId === null) {
    let text = '';
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      /* not Linux: no KVM either */
    }
    const first = text.split('\n\n')[0] ?? '';
    const pick = (k: string): string => first.split('\n').find((l) => l.startsWith(k))?.split(':')[1]?.trim() ?? '';
    cpuId = sha256(`${pick('vendor_id')}|${pick('model name')}|${pick('flags')}`).slice(0, 16);
  }
  return cpuId;
}

/** A case snapshot's key: the booted guest's, and the case bundle it was set up with. */
export function caseSnapshotKey(bootKey: string, bundle: Buffer): string {
  return hashOf({ format: SNAPSHOT_FORMAT, level: 'case', boot: bootKey, bundle: sha256(bundle) });
}

function fileSize(p: string): number | null {
  try {
    return fs.statSync(p).size;
  } catch {
    return null;
  }
}

/** Which entries to drop so that the rest fit in `maxBytes`: least recently used first. Pure. */
export function pruneVictims(entries: Array<{ key: string; bytes: number; usedAt: number }>, maxBytes: number, keep?: string): string[] {
  let total = entries.reduce((s, e) => s + e.bytes, 0);
  const victims: string[] = [];
  for (const e of [...entries].sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    if (e.key === keep) continue;
    victims.push(e.key);
    total -= e.bytes;
  }
  return victims;
}

/** Snapshot space in the cache: KERNEL_REPRO_SNAPSHOT_CACHE_MB, default 2048 (a snapshot is ~35 MB). */
export function snapshotBudgetBytes(env: NodeJS.ProcessEnv = process.env): number {
  const mb = Number(env.KERNEL_REPRO_SNAPSHOT_CACHE_MB ?? 2048);
  return (Number.isFinite(mb) && mb >= 0 ? mb : 2048) * 1024 * 1024;
}

const downloads = new Map<string, Promise<boolean>>();

export class SnapshotStore {
  readonly store: EntryStore<SnapshotMeta>;
  constructor(readonly cacheDir: string) {
    this.store = new EntryStore<SnapshotMeta>(path.join(cacheDir, 'snapshots'));
  }

  /** A complete entry whose state file has the size recorded when it was saved, or null. */
  lookup(key: string): Snapshot | null {
    // not re-hashed on every run (tens of MB): QEMU checks the stream's structure when it loads it,
    // and a state that fails to load is discarded and made again by a cold boot. get() marks the
    // entry used (its manifest's mtime), which pruning and `cache gc` go by
    const m = this.store.get(key, { verify: false });
    if (!m) return null;
    const dir = this.store.entryDir(key);
    const file = path.join(dir, 'snapshot.bin');
    if (fileSize(file) !== m.meta.sizeBytes) {
      this.discard(key);
      return null;
    }
    const setup = path.join(dir, 'setup-console.log');
    return { key, file, bootConsole: path.join(dir, 'boot-console.log'), ...(fs.existsSync(setup) ? { setupConsole: setup } : {}), meta: m.meta };
  }

  /**
   * lookup(), and when there is no local snapshot, the remote cache's (KERNEL_REPRO_REMOTE_CACHE):
   * downloaded whole, every file checked against its manifest, then used like a local one. A key
   * names the files it was made from by their place in the cache and QEMU's version, so a snapshot
   * made on another machine with the same cache entries and QEMU restores here.
   */
  async lookupShared(key: string, label: string): Promise<Snapshot | null> {
    const local = this.lookup(key);
    if (local || !this.store.remote?.available) return local;
    // guests of one process that start together wait for one download
    const id = `${this.store.dir}\0${key}`;
    let fetching = downloads.get(id);
    if (!fetching) {
      fetching = this.store.fetch(key, { label }).then((m) => m !== null);
      downloads.set(id, fetching);
      void fetching.finally(() => downloads.delete(id));
    }
    return (await fetching) ? this.lookup(key) : null;
  }

  /** With push on (KERNEL_REPRO_REMOTE_CACHE_PUSH=1), share a snapshot this run made. */
  async share(key: string, label: string): Promise<void> {
    await this.store.push(key, { label });
  }

  /** Drop least recently used snapshots beyond the budget (never `keep`, the one just made). */
  prune(keep: string, maxBytes = snapshotBudgetBytes()): string[] {
    const entries: Array<{ key: string; bytes: number; usedAt: number }> = [];
    for (const name of fs.readdirSync(this.store.dir)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      try {
        const dir = this.store.entryDir(name);
        entries.push({ key: name, bytes: fs.statSync(path.join(dir, 'snapshot.bin')).size, usedAt: fs.statSync(path.join(dir, 'manifest.json')).mtimeMs });
      } catch {
        /* incomplete or being removed */
      }
    }
    const victims = pruneVictims(entries, maxBytes, keep);
    for (const v of victims) this.discard(v);
    return victims;
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
