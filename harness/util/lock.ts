// Cross-process locks on the shared cache (kernel trees, cache entries, downloads) that are only
// ever taken over from a holder that is gone. proper-lockfile's "stale after 30 s without an mtime
// update" rule broke the lock of a run that was alive but busy (its event loop blocked, or its
// mtime update failing), so two runs built in one tree at once (defect 12). Here ownership is
// decided by the holder's process itself:
//
//   - the lock is the file `<target>.owner.json`, created whole and atomically (a private file
//     hard-linked to that name: the link fails when it exists), holding who owns it: pid, host,
//     boot id, pid namespace, the pid's start time (/proc/<pid>/stat), what it does and since when;
//   - a holder on this machine (same host, boot and pid namespace) holds it as long as its pid is
//     alive and is the same process (same start time: a recycled pid is not the holder), however
//     long it has not been heard of; a dead holder's lock is taken over at once;
//   - a holder whose pid cannot be checked from here (another host sharing the cache, another pid
//     namespace) keeps the lock fresh with a heartbeat (the file's mtime, every 10 s, off the
//     event loop's critical path); its lock is taken over only after 10 min without one;
//   - a waiter says once what it waits for and who holds it, again every 30 s, and stops at once
//     when the run is interrupted (runSignal);
//   - locks this process holds are released on exit, even when it ends on a signal.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSignal, sleep, throwIfAborted } from './cancel.ts';
import { HarnessError } from './errors.ts';
import { killLeftoversOf, procStat } from './proc.ts';
import { readHostBytes, readInputFile } from '../trust/files.ts';

/** Who holds a lock, as written in the lock file. */
export interface LockOwner {
  pid: number;
  host: string;
  /** /proc/sys/kernel/random/boot_id: a pid from before a reboot is not a live process */
  bootId?: string;
  /** the pid namespace (/proc/self/ns/pid): pids of another container cannot be checked from here */
  pidNs?: string;
  /** the pid's start time in clock ticks since boot (field 22 of /proc/<pid>/stat) */
  startTime?: string;
  /** what the holder does under the lock: "building 6.1-vanilla" */
  what: string;
  /** the holder's command line (which run: repro, verify of ..., matrix) */
  command: string;
  /** ISO time the lock was taken */
  since: string;
  /** unique per acquisition: a release removes only its own lock */
  token: string;
}

/** What the system says about a process: injectable so that tests can fake holders. */
export interface ProcessProbe {
  host(): string;
  bootId(): string | undefined;
  pidNs(): string | undefined;
  /** true: the pid exists (even if not ours to signal); false: no such process */
  alive(pid: number): boolean;
  /** the pid's start time, or undefined when it cannot be read */
  startTime(pid: number): string | undefined;
}

function readTrim(file: string): string | undefined {
  try {
    return readHostBytes(file, 64 * 1024).toString('utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export { parseStatStartTime } from './proc.ts';

export const systemProbe: ProcessProbe = {
  host: () => os.hostname(),
  bootId: () => readTrim('/proc/sys/kernel/random/boot_id'),
  pidNs: () => {
    try {
      return fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      return undefined;
    }
  },
  alive(pid) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
    }
    // a zombie (killed, not yet reaped by its parent) holds nothing; a stat that cannot be read
    // leaves the signal's answer (alive) standing
    const s = procStat(pid);
    return !(s && (s.state === 'Z' || s.state === 'X'));
  },
  startTime: (pid) => procStat(pid)?.startTime,
};

export interface LockOptions {
  /** what this process does under the lock, for whoever waits: "building 6.1-vanilla" */
  what?: string;
  /** what a wait is for, in the waiting message: "the kernel tree debian-6.1" (default: the lock's path) */
  waitingFor?: string;
  /** where waiting messages go (default: stderr) */
  log?: { info(msg: string): void };
  /** called once when the lock is found held (besides the message) */
  onWait?: (holder: LockOwner | null) => void;
  /** ends a wait with the `interrupted` error (default: the run's signal) */
  signal?: AbortSignal;
  /** how often a waiter looks again (default 500 ms) */
  pollMs?: number;
  /** how often a waiter says it still waits (default 30 s) */
  reportEveryMs?: number;
  /** how often a holder refreshes its heartbeat (default 10 s) */
  heartbeatMs?: number;
  /** a holder whose pid cannot be checked from here is gone after this long without a heartbeat (default 10 min) */
  foreignStaleMs?: number;
  probe?: ProcessProbe;
  /** end the processes a dead local holder left running before taking its lock over (default true; tests with fake holders turn it off) */
  killLeftovers?: boolean;
}

export const LOCK_SUFFIX = '.owner.json';
export function lockFileOf(target: string): string {
  return target + LOCK_SUFFIX;
}

const DEFAULTS = { pollMs: 500, reportEveryMs: 30_000, heartbeatMs: 10_000, foreignStaleMs: 10 * 60_000 };
/** an unreadable or empty lock file younger than this is being written (or is a torn copy): held */
const UNREADABLE_GRACE_MS = 30_000;
/** the short mutex around a takeover: older than this, its maker died in the middle of it */
const BREAK_STALE_MS = 10_000;

function readOwner(file: string): { owner: LockOwner | null; mtimeMs: number; ino: number } | null {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
  } catch {
    return null; // not held
  }
  try {
    // bounded, regular files only: a lock file is small, and nothing in the cache may block a run
    text = readInputFile(file, 64 * 1024, 'lock owner', { noFollow: true });
  } catch {
    return { owner: null, mtimeMs: st.mtimeMs, ino: st.ino }; // unreadable: judged as a lock without an owner record
  }
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || typeof o.host !== 'string' || typeof o.token !== 'string') return { owner: null, mtimeMs: st.mtimeMs, ino: st.ino };
    return { owner: o as LockOwner, mtimeMs: st.mtimeMs, ino: st.ino };
  } catch {
    return { owner: null, mtimeMs: st.mtimeMs, ino: st.ino };
  }
}

export type HolderState = { state: 'alive'; why: string } | { state: 'dead'; why: string };

/**
 * Whether the holder of a lock is still there. Only `dead` holders' locks are taken over; a holder
 * on this machine whose pid is alive and is the same process is alive, whatever its heartbeat says.
 */
export function holderState(owner: LockOwner | null, heartbeatAgeMs: number, o: { probe?: ProcessProbe; foreignStaleMs?: number } = {}): HolderState {
  const probe = o.probe ?? systemProbe;
  const foreignStale = o.foreignStaleMs ?? DEFAULTS.foreignStaleMs;
  if (!owner) {
    return heartbeatAgeMs > UNREADABLE_GRACE_MS
      ? { state: 'dead', why: 'lock file without an owner record' }
      : { state: 'alive', why: 'lock file being written' };
  }
  const local =
    owner.host === probe.host() &&
    (owner.pidNs === undefined || probe.pidNs() === undefined || owner.pidNs === probe.pidNs());
  if (!local) {
    return heartbeatAgeMs > foreignStale
      ? { state: 'dead', why: `holder on ${owner.host} silent for ${Math.round(heartbeatAgeMs / 1000)} s` }
      : { state: 'alive', why: `holder on ${owner.host} (its pid cannot be checked from here), heartbeat ${Math.round(heartbeatAgeMs / 1000)} s ago` };
  }
  const boot = probe.bootId();
  if (owner.bootId !== undefined && boot !== undefined && owner.bootId !== boot) return { state: 'dead', why: `pid ${owner.pid} is from before a reboot` };
  if (!probe.alive(owner.pid)) return { state: 'dead', why: `pid ${owner.pid} is gone` };
  const start = probe.startTime(owner.pid);
  if (owner.startTime !== undefined && start !== undefined && start !== owner.startTime)
    return { state: 'dead', why: `pid ${owner.pid} is now another process (started at tick ${start}, not ${owner.startTime})` };
  return { state: 'alive', why: `pid ${owner.pid} is alive` };
}

/** A held lock. `release` is idempotent. */
export interface LockHandle {
  readonly file: string;
  readonly owner: LockOwner;
  release(): void;
}

/** Locks this process holds, released on exit (also after SIGINT/SIGTERM, whose handlers end in process.exit). */
const held = new Map<string, { token: string; stop: () => void }>();
let exitHook = false;
function releaseAllHeld(): void {
  for (const [file, h] of [...held]) {
    h.stop();
    removeIfOurs(file, h.token);
  }
  held.clear();
}

function removeIfOurs(file: string, token: string): void {
  const cur = readOwner(file);
  if (cur?.owner?.token !== token) return; // moved away (a gc of its tree) or, after our death, someone else's
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone */
  }
}

function commandLine(): string {
  const args = process.argv.slice(2).map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a));
  return ['kernel-repro', ...args].join(' ').slice(0, 300);
}

let seq = 0;
/** Take the lock at once if free (or held by a dead holder); null when a live holder has it. */
export function tryLock(target: string, opts: LockOptions = {}): LockHandle | null {
  const probe = opts.probe ?? systemProbe;
  const file = lockFileOf(target);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const owner: LockOwner = {
    pid: process.pid,
    host: probe.host(),
    ...optional('bootId', probe.bootId()),
    ...optional('pidNs', probe.pidNs()),
    ...optional('startTime', probe.startTime(process.pid)),
    what: opts.what ?? `holding ${path.basename(path.dirname(target))}/${path.basename(target)}`,
    command: commandLine(),
    since: new Date().toISOString(),
    token: `${process.pid}-${++seq}-${crypto.randomBytes(6).toString('hex')}`,
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(file, owner)) return hold(file, owner, opts.heartbeatMs ?? DEFAULTS.heartbeatMs);
    // held: take it over only from a dead holder
    const cur = readOwner(file);
    if (!cur) continue; // released meanwhile: try again
    const s = holderState(cur.owner, Date.now() - cur.mtimeMs, opts);
    if (s.state === 'alive') return null;
    breakDead(file, cur.ino, opts);
  }
  return null;
}

function optional<K extends string>(k: K, v: string | undefined): { [P in K]?: string } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: string };
}

/** Create `file` with the owner record, atomically: a private file linked to the lock's name. */
function create(file: string, owner: LockOwner): boolean {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(owner, null, 1) + '\n');
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
      // a file system without hard links: exclusive create (a reader may briefly see it empty: held)
      try {
        fs.writeFileSync(file, JSON.stringify(owner, null, 1) + '\n', { flag: 'wx' });
        return true;
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e2;
      }
    }
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Remove a dead holder's lock, under a short mutex so that two waiters never both remove (one the other's fresh lock). */
function breakDead(file: string, ino: number, opts: LockOptions): void {
  const mutex = `${file}.break`;
  try {
    fs.mkdirSync(mutex);
  } catch {
    try {
      if (Date.now() - fs.statSync(mutex).mtimeMs > BREAK_STALE_MS) fs.rmdirSync(mutex);
    } catch {
      /* gone meanwhile */
    }
    return; // someone else is at it: look again next round
  }
  try {
    // synchronous from here: look again (the same file, still dead) and remove it
    const cur = readOwner(file);
    if (!cur || cur.ino !== ino) return;
    if (holderState(cur.owner, Date.now() - cur.mtimeMs, opts).state !== 'dead') return;
    // a holder killed with SIGKILL left its make/cc1/QEMU running in their own process groups:
    // end them before anyone builds in what the lock guards (only a holder of this machine)
    const probe = opts.probe ?? systemProbe;
    const o = cur.owner;
    if (o && o.startTime !== undefined && o.host === probe.host() && o.pidNs === probe.pidNs() && (opts.killLeftovers ?? true)) {
      const n = killLeftoversOf(o.pid, o.startTime);
      if (n > 0) (opts.log?.info ?? ((m: string) => process.stderr.write(m + '\n')))(`ended ${n} process(es) left running by pid ${o.pid} (${o.what}), whose lock is taken over`);
    }
    fs.unlinkSync(file);
  } finally {
    fs.rmdirSync(mutex);
  }
}

function hold(file: string, owner: LockOwner, heartbeatMs: number): LockHandle {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', releaseAllHeld);
  }
  // the heartbeat: for holders whose pid cannot be checked (another host); never throws (a tree
  // removed by `cache gc` takes its lock with it)
  const beat = setInterval(() => {
    try {
      const now = new Date();
      fs.utimesSync(file, now, now);
    } catch {
      /* moved or removed: nothing to refresh */
    }
  }, heartbeatMs);
  beat.unref();
  const stop = (): void => clearInterval(beat);
  held.set(file, { token: owner.token, stop });
  let released = false;
  return {
    file,
    owner,
    release() {
      if (released) return;
      released = true;
      stop();
      held.delete(file);
      removeIfOurs(file, owner.token);
    },
  };
}

function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toTimeString().slice(0, 8);
}

function secs(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Who holds a lock, in words: "pid 4242 on host-a (building 6.1-vanilla, since 02:31:05, 95 s ago; kernel-repro verify ...)". */
export function describeHolder(owner: LockOwner | null, probe: ProcessProbe = systemProbe): string {
  if (!owner) return 'a process that left no owner record';
  const who = owner.pid === process.pid && owner.host === probe.host() ? `this run (pid ${owner.pid})` : `pid ${owner.pid}`;
  return `${who} on ${owner.host} (${owner.what}, since ${clock(owner.since)}, ${secs(Date.now() - Date.parse(owner.since))} ago; ${owner.command})`;
}

/** The state of a lock without taking it (`cache ls`: is a tree in use?). */
export function lockStatus(target: string, opts: { probe?: ProcessProbe; foreignStaleMs?: number } = {}): { held: boolean; owner: LockOwner | null } {
  const cur = readOwner(lockFileOf(target));
  if (!cur) return { held: false, owner: null };
  return { held: holderState(cur.owner, Date.now() - cur.mtimeMs, opts).state === 'alive', owner: cur.owner };
}

/** Wait for the lock (saying what for and who holds it), take it, return it. Ends with `interrupted` when the signal aborts. */
export async function acquireLock(target: string, opts: LockOptions = {}): Promise<LockHandle> {
  const signal = opts.signal ?? runSignal;
  const pollMs = opts.pollMs ?? DEFAULTS.pollMs;
  const reportEvery = opts.reportEveryMs ?? DEFAULTS.reportEveryMs;
  const say = (msg: string): void => (opts.log ? opts.log.info(msg) : void process.stderr.write(`kernel-repro: ${msg}\n`));
  const what = opts.waitingFor ?? target;
  const started = Date.now();
  let lastReport = 0;
  let lastToken: string | undefined;
  for (;;) {
    throwIfAborted(signal, `waiting for ${what}`);
    let cur = readOwner(lockFileOf(target));
    // a live holder: no attempt (no file written) until it is gone
    if (!cur || holderState(cur.owner, Date.now() - cur.mtimeMs, opts).state === 'dead') {
      const h = tryLock(target, opts);
      if (h) {
        if (lastReport) say(`got ${what} after ${secs(Date.now() - started)}`);
        return h;
      }
      cur = readOwner(lockFileOf(target));
    }
    const token = cur?.owner?.token ?? '?';
    const now = Date.now();
    if (!lastReport) {
      opts.onWait?.(cur?.owner ?? null);
      say(`waiting for ${what}: held by ${describeHolder(cur?.owner ?? null, opts.probe)}; its lock is kept while that process lives (Ctrl-C stops waiting)`);
      lastReport = now;
    } else if (token !== lastToken) {
      say(`still waiting for ${what} (${secs(now - started)}): now held by ${describeHolder(cur?.owner ?? null, opts.probe)}`);
      lastReport = now;
    } else if (now - lastReport >= reportEvery) {
      say(`still waiting for ${what} (${secs(now - started)}): held by ${describeHolder(cur?.owner ?? null, opts.probe)}`);
      lastReport = now;
    }
    lastToken = token;
    await sleep(pollMs, signal);
  }
}

/** Hold the lock on `target` while `fn` runs; released when `fn` ends, however it ends. */
export async function withFileLock<T>(target: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const h = await acquireLock(target, opts);
  try {
    return await fn();
  } finally {
    h.release();
  }
}

/** For tests: the locks this process holds. */
export function heldLocks(): string[] {
  return [...held.keys()];
}

/** An `interrupted` error is what an aborted wait throws (exit 130 through the CLI's error path). */
export function isInterrupted(e: unknown): boolean {
  return e instanceof HarnessError && e.kind === 'interrupted';
}
