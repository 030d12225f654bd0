// One guest run in a controlled session: QEMU starts paused (or from a booted-guest snapshot), the
// harness connects to QMP, sends the case on the console's input (QEMU's stdin; the agent's records
// come back on the second serial port, a file), and the guest runs it under the same hard deadline
// as any boot. The first run of a kernel boots cold, saves the booted state once the agent is
// ready, and carries on; later runs restore it and skip the boot.
import fs from 'node:fs';
import path from 'node:path';
import { run, tempDir, type RunResult } from '../util/proc.ts';
import { qemuVersion } from './accel.ts';
import { Qmp, waitForLine } from './qmp.ts';
import { accelFailure, qemuArgs, shellQuote, type VmSpec } from './qemu.ts';
import { QEMU, judgeQemuExit, type VmResult } from './run.ts';
import { snapshotKey, type Snapshot, type SnapshotStore } from './snapshot.ts';
import { ensureFree, GB } from '../util/disk.ts';
import { frameCase, helloUptime, isDone, isReady } from '../agent/protocol.ts';

export type SnapshotUse = 'restored' | 'created' | 'cold';

export interface SessionResult extends VmResult {
  snapshot: {
    use: SnapshotUse;
    key?: string;
    /** the boot console of a restored guest (the run's own console starts after the restore) */
    bootConsole?: string;
    /** guest uptime when the agent was ready (from the snapshot when restored) */
    bootMs?: number | null;
    /** QEMU start to guest running again (restored) */
    restoreMs?: number;
    /** why a snapshot was not used or not made */
    note?: string;
  };
  /** the harness ended QEMU itself once the agent reported done (the guest's own reboot adds nothing) */
  stoppedAfterDone: boolean;
}

export interface SessionOptions {
  spec: Omit<VmSpec, 'session' | 'resultsFile'>;
  /** what the agent receives on the console input once ready: the case bundle (render.ts bundleScript) */
  bundle: Buffer;
  deadlineMs: number;
  consoleFile: string;
  resultsFile: string;
  /** null: boot cold every time, make no snapshot */
  snapshots: SnapshotStore | null;
  /** a restore that has not finished loading after this long is abandoned (default 15 s; ~0.1 s is usual) */
  restoreLimitMs?: number;
  log?: (msg: string) => void;
}

const RESTORE_LIMIT_MS = 15_000;

let qemuId: Promise<string> | null = null;

async function poll<T>(fn: () => Promise<T | undefined>, stop: () => boolean): Promise<T | undefined> {
  for (;;) {
    if (stop()) return undefined;
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
}


export async function runSession(o: SessionOptions): Promise<SessionResult> {
  const temp = tempDir('kr-vm-');
  const tmp = temp.dir;
  try {
    let key: string | undefined;
    let note: string | undefined;
    if (o.snapshots) {
      qemuId ??= qemuVersion().then((v) => v ?? 'unknown');
      key = snapshotKey(o.spec, await qemuId);
      const snap = o.snapshots.lookup(key);
      if (snap) {
        const r = await attempt(o, tmp, 'r', { restore: snap });
        if (typeof r !== 'string') return r;
        note = `the snapshot did not load (${r}); it was discarded and the guest booted cold`;
        o.log?.(`snapshot ${key.slice(0, 12)} did not load (${r}): booting cold and saving a new one`);
        o.snapshots.discard(key);
      }
    }
    const r = await attempt(o, tmp, 'c', key ? { save: key } : {});
    if (typeof r === 'string') throw new Error(`internal: a cold boot reported a failed restore (${r})`);
    if (note) r.snapshot.note = note;
    return r;
  } finally {
    temp.remove();
  }
}

async function attempt(
  o: SessionOptions,
  tmp: string,
  tag: string,
  mode: { restore?: Snapshot; save?: string },
): Promise<SessionResult | string> {
  const session = { qmpSocket: path.join(tmp, `${tag}.qmp`), ...(mode.restore ? { incoming: mode.restore.file } : {}) };
  const args = qemuArgs({ ...o.spec, resultsFile: o.resultsFile, session });
  fs.writeFileSync(o.consoleFile, '');
  fs.writeFileSync(o.resultsFile, '');
  const abort = new AbortController();
  let exited = false;
  let accelError: string | null = null;
  let stdin: NodeJS.WritableStream | null = null;
  const started = Date.now();
  const proc: Promise<RunResult> = run(QEMU, args, {
    timeoutMs: o.deadlineMs,
    logFile: o.consoleFile,
    abort: abort.signal,
    onStdin: (w) => (stdin = w),
    killWhen: (line) => {
      if (!accelError) accelError = accelFailure(line);
      return accelError !== null;
    },
  }).finally(() => {
    exited = true;
  });
  const isGone = (): boolean => exited;
  const send = (): void => {
    stdin?.write(frameCase(o.bundle));
  };

  let qmp: Qmp | null = null;
  let restoreMs: number | undefined;
  let restoreFailed = false;
  let use: SnapshotUse = mode.restore ? 'restored' : 'cold';
  let note: string | undefined;
  let stoppedAfterDone = false;
  let hung: string | undefined;
  const guestRunning = (): void => {
    // every record is in the file once "done" is: end QEMU now rather than wait for the guest's reboot
    void waitForLine(o.resultsFile, isDone, isGone).then((line) => {
      if (line && !exited) {
        stoppedAfterDone = true;
        abort.abort();
      }
    });
  };
  try {
    const q = await Qmp.open(session.qmpSocket, isGone);
    qmp = q;
    if (mode.restore) {
      // the saved state arrives paused; anything else means it did not load. A load that never
      // ends (QEMU stuck in `inmigrate`) is abandoned like a refused one
      const limit = o.restoreLimitMs ?? RESTORE_LIMIT_MS;
      const status = await poll(
        async () => {
          const st = await q.status();
          return st === 'inmigrate' ? undefined : st;
        },
        () => isGone() || Date.now() - started > limit,
      );
      if (status === undefined && !exited) {
        hung = `the snapshot was still loading after ${limit} ms`;
        restoreFailed = true;
        abort.abort();
      } else if (status !== 'paused' && status !== 'running') restoreFailed = true;
      else {
        send();
        if (status === 'paused') await q.execute('cont');
        restoreMs = Date.now() - started;
        guestRunning();
      }
    } else {
      await q.execute('cont');
      if (await waitForLine(o.resultsFile, isReady, isGone)) {
        if (mode.save && o.snapshots) {
          const saved = await save(q, o, mode.save, started).catch((e: Error) => {
            note = `no snapshot saved: ${e.message}`;
            return false;
          });
          if (saved) use = 'created';
        }
        send();
        if ((await q.status()) !== 'running') await q.execute('cont');
        guestRunning();
      }
    }
  } catch (e) {
    // QEMU ended (deadline, panic, refusal) or the control socket failed: the outcome is judged below
    if (!exited && !stoppedAfterDone) {
      note = `session control failed: ${(e as Error).message}`;
      if (mode.restore && restoreMs === undefined) restoreFailed = true;
      abort.abort();
    } else if (mode.restore && restoreMs === undefined) restoreFailed = true;
  }
  const r = await proc;
  qmp?.close();

  const judged = judgeQemuExit(r, args, accelError);
  if (restoreFailed && !r.timedOut && !judged.accelError) {
    // the caller boots cold instead; say why the state was not used
    const said = r.stderr.trim().split('\n').filter((l) => l.trim()).pop();
    return hung ?? (r.exitCode ? `QEMU refused the state${said ? `: ${said.trim()}` : ''}` : (note ?? 'QEMU refused the state'));
  }
  if (judged.refused) throw judged.refused;
  let results = fs.readFileSync(o.resultsFile, 'utf8');
  if (mode.restore) {
    // the records of the boot phase (hello, links-at-start) were written before the snapshot
    results = mode.restore.meta.bootResults + results;
    fs.writeFileSync(o.resultsFile, results);
  }
  return {
    console: r.stdout + (r.stderr ? `\n${r.stderr}` : ''),
    results,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    accelError: judged.accelError,
    durationMs: r.durationMs,
    args,
    stoppedAfterDone,
    snapshot: {
      use,
      ...(mode.restore || mode.save ? { key: mode.restore?.key ?? mode.save } : {}),
      ...(mode.restore ? { bootConsole: mode.restore.bootConsole, bootMs: mode.restore.meta.bootMs } : {}),
      ...(restoreMs !== undefined ? { restoreMs } : {}),
      ...(note ? { note } : {}),
    },
  };
}

const SNAPSHOT_MIN_FREE = 1 * GB;

/** Pause the ready guest, write its state into a new cache entry, leave it paused. */
async function save(q: Qmp, o: SessionOptions, key: string, started: number): Promise<boolean> {
  const store = o.snapshots!.store;
  // a snapshot is an optimisation: never the thing that fills the disk
  ensureFree(store.dir, SNAPSHOT_MIN_FREE, 'a booted-kernel snapshot (saved only with 1 GB free)');
  const bootWallMs = Date.now() - started;
  await q.execute('stop');
  const t0 = Date.now();
  const staging = store.staging(key);
  try {
    const file = path.join(staging, 'snapshot.bin');
    await q.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 * 1024 });
    await q.execute('migrate', { uri: `exec:cat > ${shellQuote(file)}` });
    const status = await poll(async () => {
      const m = await q.execute('query-migrate');
      const s = String(m.status ?? '');
      if (s === 'completed') return s;
      if (s === 'failed' || s === 'cancelled') throw new Error(`migration ${s}: ${String(m['error-desc'] ?? '')}`);
      return undefined;
    }, () => false);
    if (status !== 'completed') throw new Error('migration did not complete');
    fs.copyFileSync(o.consoleFile, path.join(staging, 'boot-console.log'));
    const bootResults = fs.readFileSync(o.resultsFile, 'utf8');
    store.publish(key, staging, {
      bootResults,
      bootMs: helloUptime(bootResults),
      bootWallMs,
      saveMs: Date.now() - t0,
      sizeBytes: fs.statSync(file).size,
      qemu: (await qemuId) ?? 'unknown',
    });
    o.snapshots!.prune(key);
    return true;
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}
