// The one place that spawns processes. Every child runs in its own process group with a hard
// deadline; on timeout or on SIGINT/SIGTERM of the harness the whole group is killed, so no make,
// gcc or QEMU is left behind.
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { abortRun } from './cancel.ts';
import { readHostBytes } from '../trust/files.ts';
import { isNoSpace } from './disk.ts';
import { ExitCode, HarnessError, NO_SPACE_HINT, normalizeError } from './errors.ts';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** hard deadline; the whole process group gets SIGKILL when it passes */
  timeoutMs: number;
  /** append stdout+stderr to this file as they arrive */
  logFile?: string;
  /** called for each line of stdout/stderr (progress display, early detection) */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** kill the process group as soon as a line satisfies this (e.g. a fatal QEMU error) */
  killWhen?: (line: string) => boolean;
  input?: string;
  /** keep the child's stdin open as a pipe and hand its writable end to the caller */
  onStdin?: (stdin: NodeJS.WritableStream) => void;
  /** kill the process group when this is aborted (the caller gave up on it) */
  abort?: AbortSignal;
  /** keep at most this many bytes of stdout/stderr in memory (default 8 MiB) */
  maxBuffer?: number;
  /** open this file read-only as the child's file descriptor 3 (QEMU's `-incoming fd:3`) */
  fd3File?: string;
}

export interface RunResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** killed because a line matched `killWhen` */
  killedOnLine: boolean;
  interrupted: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const live = new Set<number>();
/** Lines handed to onLine/killWhen are cut at this length (the rest follows as another line). */
const MAX_LINE_CHARS = 4096;

/**
 * Every child carries `KERNEL_REPRO_RUN=<pid>:<start time>` of the harness process that started
 * it, and so do its children (make's cc1, QEMU's helpers). A run killed with SIGKILL cannot stop
 * its process groups; the run that takes over its lock finds them by this mark and ends them
 * (`killLeftoversOf`) before it touches what the lock guards.
 */
export const RUN_MARK_ENV = 'KERNEL_REPRO_RUN';

/** Field 22 (starttime) of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses. */
export function parseStatStartTime(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  return stat.slice(close + 2).split(' ')[19]; // fields 3.. after the name: starttime is field 22
}

/** A process as /proc/<pid>/stat shows it (state letter, start time), or undefined when it is gone. */
export function procStat(pid: number): { state: string; startTime: string | undefined } | undefined {
  let stat: string;
  try {
    stat = readHostBytes(`/proc/${pid}/stat`, 64 * 1024).toString('utf8');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  return { state: close < 0 ? '' : stat.slice(close + 2, close + 3), startTime: parseStatStartTime(stat) };
}

/** Gone, or a zombie (killed, not yet reaped by its parent): holds nothing, runs nothing. */
export function procGone(pid: number): boolean {
  const s = procStat(pid);
  return s === undefined || s.state === 'Z' || s.state === 'X';
}

const runMark = `${process.pid}:${procStat(process.pid)?.startTime ?? '0'}`;

/**
 * SIGKILL every process on this machine that carries the run mark of a dead harness process
 * (`pid` with its `startTime`), and wait (at most `waitMs`) until they are gone. Returns how many
 * were killed. Only for a holder known to be dead: its pid is gone or is another process now.
 */
export function killLeftoversOf(pid: number, startTime: string, waitMs = 3000): number {
  const needle = Buffer.from(`${RUN_MARK_ENV}=${pid}:${startTime}\0`);
  const victims: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let env: Buffer;
    try {
      env = readHostBytes(`/proc/${e}/environ`);
    } catch {
      continue; // gone, or a kernel thread
    }
    if (env.indexOf(needle) === 0 || env.indexOf(Buffer.concat([Buffer.from([0]), needle])) >= 0) victims.push(Number(e));
  }
  for (const v of victims) {
    try {
      process.kill(v, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const until = Date.now() + waitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < until && !victims.every(procGone)) Atomics.wait(pause, 0, 0, 20);
  return victims.length;
}
let interruptedFlag = false;

function killGroup(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** Kill every live child group (used on SIGINT/SIGTERM and at exit). */
export function killAll(): void {
  for (const pid of live) killGroup(pid);
}

/** Temporary directories of runs in progress: removed when the harness exits, even on SIGINT. */
const temps = new Set<string>();
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.add(dir);
  return {
    dir,
    remove: () => {
      temps.delete(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
function removeTemps(): void {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
}

/**
 * Cleanup actions run when the process exits, however it exits (its end, an error, SIGINT or
 * SIGTERM, the backstop below): remove a staging directory or a download in progress, release a
 * lock. `fn` must be synchronous and quick, and may run when its thing is already gone. Returns
 * the function that unregisters it (call it once the thing is gone or handed over).
 */
const cleanups = new Set<() => void>();
export function onExitCleanup(fn: () => void): () => void {
  const entry = (): void => fn();
  cleanups.add(entry);
  return () => void cleanups.delete(entry);
}

/** Run (once) every registered cleanup action, newest first; one that throws does not stop the others. */
export function runExitCleanups(): void {
  const all = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of all) {
    try {
      fn();
    } catch {
      /* best effort: the next run's sweep removes what is left */
    }
  }
}

/** After SIGINT/SIGTERM, the longest the command body may take to unwind before the process is ended anyway. */
export const INTERRUPT_BACKSTOP_MS = 1_500;

/** Stop now: children killed, cleanups run, temporary directories removed, exit 130. */
function hardExit(): never {
  killAll();
  runExitCleanups();
  removeTemps();
  process.exit(ExitCode.interrupted);
}

export function wasInterrupted(): boolean {
  return interruptedFlag;
}

let handlersInstalled = false;
/**
 * Install SIGINT/SIGTERM handlers that kill all children, abort the run's signal and then run
 * `onInterrupt`; the command body then unwinds with an `interrupted` error (exit 130). Backstop:
 * if the process has not exited INTERRUPT_BACKSTOP_MS later (something did not listen to the
 * signal), or on a second signal, it exits 130 anyway after the cleanups.
 */
export function installSignalHandlers(onInterrupt: () => void): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const handler = (): void => {
    if (interruptedFlag) hardExit();
    interruptedFlag = true;
    // however the process ends from here (the body unwinding to guarded()'s exit, the backstop, or
    // the event loop running dry while a wait of the killed guest never settles, which Node ends
    // with 13, "unsettled top-level await", unless an exit code is set): exit 130
    process.exitCode = ExitCode.interrupted;
    killAll();
    abortRun();
    setTimeout(hardExit, INTERRUPT_BACKSTOP_MS).unref();
    onInterrupt();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  process.on('exit', () => {
    killAll();
    runExitCleanups();
    removeTemps();
  });
}

export async function run(file: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  // after SIGINT/SIGTERM nothing new starts: the command body unwinds with an 'interrupted' error
  if (interruptedFlag) throw new HarnessError('interrupted', `interrupted (not starting ${file})`);
  const started = Date.now();
  const command = [file, ...args].join(' ');
  const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  let logError: NodeJS.ErrnoException | undefined;
  const fd3 = opts.fd3File !== undefined ? fs.openSync(opts.fd3File, 'r') : undefined;
  const stdinMode = opts.input !== undefined || opts.onStdin ? ('pipe' as const) : ('ignore' as const);
  const child: ResultPromise = execa(file, args, {
    cwd: opts.cwd,
    env: { ...opts.env, [RUN_MARK_ENV]: runMark },
    extendEnv: true,
    detached: true, // own process group, so we can kill make's and QEMU's children too
    reject: false,
    stripFinalNewline: false,
    buffer: true,
    maxBuffer: opts.maxBuffer ?? 8 * 1024 * 1024,
    ...(fd3 !== undefined
      ? // (execa's types admit only fd numbers 3-9 here; at run time any open descriptor is passed on)
        { stdio: [stdinMode, 'pipe', 'pipe', fd3] as unknown as ['pipe', 'pipe', 'pipe'], ...(opts.input !== undefined ? { input: opts.input } : {}) }
      : opts.input !== undefined
        ? { input: opts.input }
        : { stdin: stdinMode }),
  });
  if (fd3 !== undefined) fs.closeSync(fd3); // the child has its own
  if (opts.onStdin && child.stdin) {
    child.stdin.on('error', () => undefined); // the child may exit before reading all of it
    opts.onStdin(child.stdin);
  }
  const pid = child.pid;
  if (pid !== undefined) live.add(pid);
  // a log we cannot write (full disk) stops the child: its output would be lost, and it is
  // almost certainly failing for the same reason
  log?.on('error', (e: NodeJS.ErrnoException) => {
    logError ??= e;
    if (pid !== undefined) killGroup(pid);
  });
  let timedOut = false;
  let killedOnLine = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (pid !== undefined) killGroup(pid);
  }, opts.timeoutMs);
  const onAbort = (): void => {
    if (pid !== undefined) killGroup(pid);
  };
  opts.abort?.addEventListener('abort', onAbort);

  const attach = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr'): void => {
    if (!stream) return;
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      if (!logError) log?.write(chunk);
      if (!opts.onLine && !opts.killWhen) return;
      partial += chunk.toString('utf8');
      let nl: number;
      // a line without an end (a guest's console, say) is handed on in pieces of at most
      // MAX_LINE_CHARS rather than accumulated
      while ((nl = partial.indexOf('\n')) >= 0 || partial.length > MAX_LINE_CHARS) {
        const cut = nl < 0 || nl > MAX_LINE_CHARS;
        if (cut) nl = MAX_LINE_CHARS;
        const line = partial.slice(0, nl).replace(/\r$/, '');
        partial = partial.slice(cut ? nl : nl + 1);
        opts.onLine?.(line, name);
        if (opts.killWhen?.(line) && pid !== undefined) {
          killedOnLine = true;
          killGroup(pid);
        }
      }
    });
    stream.on('end', () => {
      if (partial) opts.onLine?.(partial, name);
    });
  };
  attach(child.stdout, 'stdout');
  attach(child.stderr, 'stderr');

  const res = await child;
  clearTimeout(timer);
  opts.abort?.removeEventListener('abort', onAbort);
  if (pid !== undefined) {
    // the leader is gone; make sure nothing of its group survives (e.g. QEMU helpers)
    killGroup(pid);
    live.delete(pid);
  }
  await new Promise<void>((resolve) => (log && !logError ? log.end(resolve) : resolve()));
  const text = (v: unknown): string => (typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : '');
  if (logError) {
    const e = normalizeError(Object.assign(logError, { path: logError.path ?? opts.logFile }));
    if (e instanceof HarnessError) throw e;
    throw new HarnessError('internal', `cannot write ${opts.logFile}: ${logError.message} (stopped ${file})`, { cause: logError });
  }
  // a tool that failed because the disk is full (tar, make, cc, ld, git, cpio): one typed error
  if (typeof res.exitCode === 'number' && res.exitCode !== 0 && !timedOut && !killedOnLine && !interruptedFlag && !opts.abort?.aborted) {
    const out = text(res.stderr).slice(-65536) + text(res.stdout).slice(-65536);
    if (isNoSpace(out))
      throw new HarnessError('no-space', `${path.basename(file)} failed: no space left on the device${opts.cwd ? ` (in ${opts.cwd})` : ''}`, {
        excerpt: tail(out.split('\n').filter((l) => /No space left|quota/i.test(l)).join('\n'), 5),
        ...(opts.logFile ? { logPath: opts.logFile } : {}),
        hint: NO_SPACE_HINT,
      });
  }
  return {
    command,
    exitCode: typeof res.exitCode === 'number' ? res.exitCode : null,
    signal: res.signal ?? null,
    timedOut,
    killedOnLine,
    interrupted: interruptedFlag,
    stdout: text(res.stdout),
    stderr: text(res.stderr),
    durationMs: Date.now() - started,
  };
}

/** Run and return stdout, or throw with the tail of stderr. */
export async function runOk(file: string, args: readonly string[], opts: RunOptions): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs} ms` : `exit ${r.exitCode ?? r.signal}`;
    throw new Error(`${r.command}: ${why}\n${tail(r.stderr || r.stdout, 20)}`);
  }
  return r.stdout;
}

export function tail(text: string, lines: number): string {
  const all = text.replace(/\r/g, '').trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}
