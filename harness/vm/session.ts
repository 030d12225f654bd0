// One guest run in a controlled session: QEMU starts paused (or from a booted-guest snapshot), the
// harness connects to QMP, sends the case on the console's input (QEMU's stdin; the agent's records
// come back on the second serial port, a file), and the guest runs it under the same hard deadline
// as any boot. The first run of a kernel boots cold, saves the booted state once the agent is
// ready, and carries on; later runs restore it and skip the boot.
// A case with a checkpoint (repeats) goes one step further: once the agent has set the case up it
// reports "checkpoint" and waits; the first run saves that state too (a case snapshot: the kernel,
// the image and the case bundle) and every later repeat restores it, sending only its go line
// (seed, clock, jitter), so that a repeat costs its probes and evidence, not the setup.
import fs from 'node:fs';
import path from 'node:path';
import { run, tempDir, type RunResult } from '../util/proc.ts';
import { qemuVersion } from './accel.ts';
import { Qmp, waitForLine } from './qmp.ts';
import { accelFailure, qemuArgs, shellQuote, type VmSpec } from './qemu.ts';
import { QEMU, judgeQemuExit, type VmResult } from './run.ts';
import { caseSnapshotKey, snapshotKey, type Snapshot, type SnapshotStore } from './snapshot.ts';
import { ensureFree, GB } from '../util/disk.ts';
import { frameCase, helloUptime, isCheckpoint, isDone, isReady } from '../agent/protocol.ts';
import { readChannel, resultChannelCap, watchChannel } from '../trust/channel.ts';

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
    /** a case with a checkpoint: its case snapshot was restored (the setup skipped), created by this
     *  run, or not used (snapshots off, or the case stopped before its checkpoint) */
    case?: { use: 'restored' | 'created' | 'none'; key?: string; note?: string };
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
  /** the case stops at its checkpoint (rendered with one) and this is its go: one repeat */
  checkpoint?: { go: Buffer; /** false: no case snapshot (set up every time), default true */ snapshot?: boolean };
  /** a restore that has not finished loading after this long is abandoned (default 15 s; ~0.1 s is usual) */
  restoreLimitMs?: number;
  /** the result channel's cap (default: trust/channel.ts resultChannelCap, 16 MiB): past it the guest is stopped */
  resultsCapBytes?: number;
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
    let caseKey: string | undefined;
    const notes: string[] = [];
    if (o.snapshots) {
      qemuId ??= qemuVersion().then((v) => v ?? 'unknown');
      key = snapshotKey(o.spec, await qemuId, o.snapshots.cacheDir);
      if (o.checkpoint && o.checkpoint.snapshot !== false) {
        caseKey = caseSnapshotKey(key, o.bundle);
        const cs = await o.snapshots.lookupShared(caseKey, 'case snapshot');
        if (cs) {
          const r = await attempt(o, tmp, 'rc', { restore: cs, level: 'case' });
          if (typeof r !== 'string') return r;
          notes.push(`the case snapshot did not load (${r}); it was discarded and the case set up again`);
          o.log?.(`case snapshot ${caseKey.slice(0, 12)} did not load (${r}): setting the case up again and saving a new one`);
          o.snapshots.discard(caseKey);
        }
      }
      const snap = await o.snapshots.lookupShared(key, 'booted-kernel snapshot');
      if (snap) {
        const r = await attempt(o, tmp, 'r', { restore: snap, level: 'boot', ...(caseKey ? { saveCase: caseKey } : {}) });
        if (typeof r !== 'string') return withNotes(await shared(o, r), notes);
        notes.push(`the snapshot did not load (${r}); it was discarded and the guest booted cold`);
        o.log?.(`snapshot ${key.slice(0, 12)} did not load (${r}): booting cold and saving a new one`);
        o.snapshots.discard(key);
      }
    }
    const r = await attempt(o, tmp, 'c', { ...(key ? { save: key } : {}), ...(caseKey ? { saveCase: caseKey } : {}) });
    if (typeof r === 'string') throw new Error(`internal: a cold boot reported a failed restore (${r})`);
    return withNotes(await shared(o, r), notes);
  } finally {
    temp.remove();
  }
}

/** The snapshots this run made go to the remote cache too, when it is configured with push on (after the run: never while a guest waits). */
async function shared(o: SessionOptions, r: SessionResult): Promise<SessionResult> {
  if (!o.snapshots) return r;
  if (r.snapshot.use === 'created' && r.snapshot.key) await o.snapshots.share(r.snapshot.key, 'booted-kernel snapshot');
  if (r.snapshot.case?.use === 'created' && r.snapshot.case.key) await o.snapshots.share(r.snapshot.case.key, 'case snapshot');
  return r;
}

function withNotes(r: SessionResult, notes: string[]): SessionResult {
  if (notes.length) r.snapshot.note = [...notes, ...(r.snapshot.note ? [r.snapshot.note] : [])].join('; ');
  return r;
}

async function attempt(
  o: SessionOptions,
  tmp: string,
  tag: string,
  mode: { restore?: Snapshot; level?: 'boot' | 'case'; save?: string; saveCase?: string },
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
    ...(mode.restore ? { fd3File: mode.restore.file } : {}),
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
  const send = (data: Buffer): void => {
    stdin?.write(data);
  };
  const restoringCase = mode.restore !== undefined && mode.level === 'case';
  // the guest writes the result channel: past its cap the guest is stopped (trust/channel.ts)
  const cap = o.resultsCapBytes ?? resultChannelCap();
  const watch = watchChannel(o.resultsFile, cap, (bytes) => {
    o.log?.(`the guest wrote ${bytes} bytes to its result channel, past its cap of ${cap}: stopping it`);
    abort.abort();
  });

  let qmp: Qmp | null = null;
  let restoreMs: number | undefined;
  let restoreFailed = false;
  let use: SnapshotUse = mode.restore ? 'restored' : 'cold';
  let caseUse: 'restored' | 'created' | 'none' = restoringCase ? 'restored' : 'none';
  let note: string | undefined;
  let caseNote: string | undefined;
  let stoppedAfterDone = false;
  let hung: string | undefined;
  // where the kernel's boot messages end in this run's console (a cold boot: at "ready")
  let consoleAtReady = 0;
  const guestRunning = (): void => {
    // every record is in the file once "done" is: end QEMU now rather than wait for the guest's reboot
    void waitForLine(o.resultsFile, isDone, isGone).then((line) => {
      if (line && !exited) {
        stoppedAfterDone = true;
        abort.abort();
      }
    });
  };
  // a case with a checkpoint: once it is set up, save it (first run) and send this repeat's go
  const atCheckpoint = async (q: Qmp): Promise<void> => {
    if (!o.checkpoint) return;
    const line = await waitForLine(o.resultsFile, (l) => isCheckpoint(l) || isDone(l), isGone);
    if (!line || !isCheckpoint(line)) return; // the case stopped during its setup (or the guest died)
    if (mode.saveCase && o.snapshots) {
      const bootConsole = mode.restore ? fs.readFileSync(mode.restore.bootConsole) : fs.readFileSync(o.consoleFile).subarray(0, consoleAtReady);
      const setupConsole = fs.readFileSync(o.consoleFile).subarray(mode.restore ? 0 : consoleAtReady);
      const saved = await save(q, o, mode.saveCase, started, {
        level: 'case',
        resultsPrefix: mode.restore?.meta.bootResults ?? '',
        bootConsole,
        setupConsole,
      }).catch((e: Error) => {
        caseNote = `no case snapshot saved: ${e.message}`;
        return false;
      });
      if (saved) caseUse = 'created';
    }
    send(o.checkpoint.go);
    if ((await q.status()) !== 'running') await q.execute('cont');
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
        // a case snapshot waits at its checkpoint for a go; a booted one for its case
        send(restoringCase ? o.checkpoint!.go : frameCase(o.bundle));
        if (status === 'paused') await q.execute('cont');
        restoreMs = Date.now() - started;
        guestRunning();
        if (!restoringCase) await atCheckpoint(q);
      }
    } else {
      await q.execute('cont');
      if (await waitForLine(o.resultsFile, isReady, isGone)) {
        consoleAtReady = fs.statSync(o.consoleFile).size;
        if (mode.save && o.snapshots) {
          const saved = await save(q, o, mode.save, started, { level: 'boot', resultsPrefix: '', bootConsole: fs.readFileSync(o.consoleFile) }).catch((e: Error) => {
            note = `no snapshot saved: ${e.message}`;
            return false;
          });
          if (saved) use = 'created';
        }
        send(frameCase(o.bundle));
        if ((await q.status()) !== 'running') await q.execute('cont');
        guestRunning();
        await atCheckpoint(q);
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
  const r = await proc.finally(() => watch.stop());
  qmp?.close();

  const judged = judgeQemuExit(r, args, accelError);
  if (restoreFailed && !r.timedOut && !judged.accelError) {
    // the caller boots cold instead; say why the state was not used
    const said = r.stderr.trim().split('\n').filter((l) => l.trim()).pop();
    return hung ?? (r.exitCode ? `QEMU refused the state${said ? `: ${said.trim()}` : ''}` : (note ?? 'QEMU refused the state'));
  }
  if (judged.refused) throw judged.refused;
  const read = readChannel(o.resultsFile, cap);
  const flood = watch.flood();
  let results = read.text;
  let console = r.stdout;
  if (mode.restore) {
    // the records of the boot phase (hello, links-at-start; a case snapshot: also the case's setup)
    // were written before the snapshot
    results = mode.restore.meta.bootResults + results;
    fs.writeFileSync(o.resultsFile, results);
    if (mode.restore.setupConsole) {
      // the kernel's messages during the case's setup belong to this run's evidence, as in a run that set it up
      console = fs.readFileSync(mode.restore.setupConsole, 'utf8') + console;
      fs.writeFileSync(o.consoleFile, console);
    }
  }
  return {
    console: console + (r.stderr ? `\n${r.stderr}` : ''),
    results,
    resultsChannel: { ...read.state, flooded: flood !== null, ...(flood ? { floodedAtMs: flood.atMs } : {}) },
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
      ...(o.checkpoint ? { case: { use: caseUse, ...(mode.saveCase || restoringCase ? { key: restoringCase ? mode.restore!.key : mode.saveCase } : {}), ...(caseNote ? { note: caseNote } : {}) } } : {}),
    },
  };
}

const SNAPSHOT_MIN_FREE = 1 * GB;

/** Pause the guest (ready for its case, or at its checkpoint), write its state into a new cache entry, leave it paused. */
async function save(
  q: Qmp,
  o: SessionOptions,
  key: string,
  started: number,
  what: { level: 'boot' | 'case'; resultsPrefix: string; bootConsole: Buffer; setupConsole?: Buffer },
): Promise<boolean> {
  const store = o.snapshots!.store;
  // a snapshot is an optimisation: never the thing that fills the disk
  ensureFree(store.dir, SNAPSHOT_MIN_FREE, `a ${what.level === 'case' ? 'case' : 'booted-kernel'} snapshot (saved only with 1 GB free)`);
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
    fs.writeFileSync(path.join(staging, 'boot-console.log'), what.bootConsole);
    if (what.setupConsole) fs.writeFileSync(path.join(staging, 'setup-console.log'), what.setupConsole);
    const bootResults = what.resultsPrefix + readChannel(o.resultsFile, o.resultsCapBytes ?? resultChannelCap()).text;
    store.publish(key, staging, {
      level: what.level,
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
