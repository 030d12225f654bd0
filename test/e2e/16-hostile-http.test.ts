// The CLI against a hostile remote cache: a misbehaving HTTP server of its own (test/hostile-server.ts,
// a separate process on 127.0.0.1) answers the kernel index lookup with an endless body, a trickle,
// a short body or a redirect to file://. Each ends in one clear warning within seconds of its limit
// and local work (as designed for a remote that cannot be used), with the CLI's memory bounded; then
// SIGINT ends the run (now building) with exit 130 within 2 s, leaving no process and no staging
// directory. SIGINT during a trickling request (default limits) and during a boot end it as fast.
// Cheap: no kernel is built (each run is interrupted as its build starts) and one guest boots.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import type { HostileRecord } from '../hostile-server.ts';
import { processAlive } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const tmp = fileTempDir('kr-hostile-e2e-');
const shared = cacheRoot();
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');

let server: ChildProcess;
let base = '';

interface Running {
  child: ChildProcess;
  t0: number;
  stderr: string[];
  /** ms from the start to the first stderr line matching `re` */
  waitLine(re: RegExp, ms: number): Promise<{ line: string; at: number }>;
  /** SIGINT to the whole process group (a terminal's Ctrl-C); the exit code and ms until exit */
  interrupt(): Promise<{ code: number | null; ms: number }>;
  /** highest VmHWM (peak resident memory) seen of the CLI's processes, in MiB */
  peakMiB(): number;
  exited: Promise<number | null>;
}

/** Start the CLI (through tsx, as `npm run` does) in a process group of its own. */
function start(args: string[], env: Record<string, string>): Running {
  const t0 = Date.now();
  const child = spawn(tsx, [path.join(repoRoot, 'harness/cli/main.ts'), ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stderr: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (v: { line: string; at: number }) => void }> = [];
  let partial = '';
  child.stderr!.on('data', (b: Buffer) => {
    partial += b.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      stderr.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) w.resolve({ line, at: Date.now() - t0 });
    }
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  // a failed test must not leave its run building a kernel: SIGINT (the harness stops its tar, make
  // or QEMU), then SIGKILL
  onTestFinished(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-child.pid!, 'SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  const hwm = new Map<number, number>();
  const sample = setInterval(() => {
    for (const pid of groupPids(child.pid!)) {
      const m = /VmHWM:\s+(\d+) kB/.exec(readOr(`/proc/${pid}/status`));
      if (m) hwm.set(pid, Math.max(hwm.get(pid) ?? 0, Number(m[1]) / 1024));
    }
  }, 100);
  void exited.then(() => clearInterval(sample));
  return {
    child,
    t0,
    stderr,
    exited,
    waitLine: (re, ms) =>
      new Promise((resolve, reject) => {
        const seen = stderr.find((l) => re.test(l));
        if (seen) return resolve({ line: seen, at: Date.now() - t0 });
        const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; stderr:\n${stderr.join('\n')}`)), ms);
        waiters.push({ re, resolve: (v) => (clearTimeout(t), resolve(v)) });
        void exited.then(() => setTimeout(() => reject(new Error(`exited before a line matching ${re}; stderr:\n${stderr.join('\n')}`)), 50));
      }),
    interrupt: async () => {
      const t = Date.now();
      process.kill(-child.pid!, 'SIGINT');
      const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(killer);
      return { code, ms: Date.now() - t };
    },
    peakMiB: () => Math.max(0, ...hwm.values()),
  };
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Processes whose process group is `pgid`. */
function groupPids(pgid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      const stat = readOr(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(fields[2]) === pgid;
    });
}

/** Staging directories, downloads and uploads in progress, anywhere under `dir` (three levels). */
function leftovers(dir: string, depth = 3): string[] {
  if (depth === 0 || !fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (/\.staging-|\.download$|^\.upload-/.test(ent.name)) out.push(p);
    else if (ent.isDirectory()) out.push(...leftovers(p, depth - 1));
  }
  return out;
}

async function stats(): Promise<HostileRecord[]> {
  const r = await fetch(`${base}/__stats`);
  return (await r.json()) as HostileRecord[];
}

/** A machine with the guest image but no kernel: its first remote object is a kernel index. */
function machine(name: string, mode: string, limits?: Record<string, number>): { cache: string; env: Record<string, string> } {
  const cache = path.join(tmp, name);
  fs.mkdirSync(cache, { recursive: true });
  for (const d of ['images', 'hashes', 'accel']) if (fs.existsSync(path.join(shared, d))) fs.cpSync(path.join(shared, d), path.join(cache, d), { recursive: true });
  return {
    cache,
    env: {
      KERNEL_REPRO_CACHE: cache,
      KERNEL_REPRO_REMOTE_CACHE: `${base}/${mode}`,
      KERNEL_REPRO_REMOTE_CACHE_PUSH: '',
      KERNEL_REPRO_REMOTE_CACHE_HEADER: '',
      KERNEL_REPRO_REMOTE_CACHE_SIGN: '',
      KERNEL_REPRO_REMOTE_CACHE_LIMITS: limits ? JSON.stringify(limits) : '',
    },
  };
}

const reproArgs = (results: string): string[] => ['repro', '--json', '--no-install', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--results', path.join(tmp, 'results', results)];

/** After SIGINT: exit 130 within 2 s, nothing of the run left. */
async function interruptAndCheck(r: Running, cache: string): Promise<void> {
  const { code, ms } = await r.interrupt();
  console.log(`exit ${code} ${ms} ms after SIGINT`);
  if (code !== 130) console.error(r.stderr.slice(-30).join('\n'));
  expect(code).toBe(130);
  expect(ms).toBeLessThan(2_000);
  expect(r.stderr.some((l) => /interrupted/.test(l))).toBe(true);
  expect(r.stderr.some((l) => /^\s+at /.test(l))).toBe(false); // never a stack trace
  // killed processes may take a moment to be reaped on a loaded machine: at most 2 s more
  for (let i = 0; i < 20 && (groupPids(r.child.pid!).length > 0 || processAlive(cache)); i++) await new Promise((res) => setTimeout(res, 100));
  expect(groupPids(r.child.pid!)).toEqual([]);
  expect(processAlive(cache)).toBe(false); // no tar, make or QEMU working in its cache
  expect(leftovers(cache)).toEqual([]);
}

describe('a hostile remote cache (a misbehaving HTTP server on 127.0.0.1)', () => {
  beforeAll(async () => {
    server = spawn(tsx, [path.join(repoRoot, 'test/hostile-server.ts')], { cwd: repoRoot, env: { ...process.env, HOSTILE_TRICKLE_MS: '100' }, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    base = await new Promise<string>((resolve, reject) => {
      server.stdout!.on('data', (b: Buffer) => {
        const m = /port (\d+)/.exec(b.toString());
        if (m) resolve(`http://127.0.0.1:${m[1]}`);
      });
      server.on('exit', () => reject(new Error('the hostile server exited')));
      setTimeout(() => reject(new Error('the hostile server did not start in 30 s')), 30_000);
    });
  });
  afterAll(() => {
    // (tsx runs the server in a child process: the whole group)
    if (server?.pid) process.kill(-server.pid, 'SIGKILL');
  });

  it('endless body on kernels/index/<key>: rejected at 64 KiB within a second, memory bounded; SIGINT then ends the build in < 2 s', async () => {
    const m = machine('endless', 'endless@index');
    const r = start(reproArgs('endless'), m.env);
    const w = await r.waitLine(/warning: remote cache: index kernels\/index\/[0-9a-f]{12} rejected: it is more than the limit of 65536 bytes; building locally/, 30_000);
    const rec = (await stats()).filter((x) => x.path.startsWith('/endless@index/'));
    expect(rec.length).toBeGreaterThanOrEqual(1);
    expect(rec.every((x) => x.clientClosed && x.sent < 32 * 1024 * 1024)).toBe(true);
    expect(w.at - (rec[0]!.startedAt - r.t0)).toBeLessThan(5_000); // seconds, not the minutes of reading an endless body (~1 s on an idle machine)
    await interruptAndCheck(r, m.cache);
    expect(r.peakMiB()).toBeGreaterThan(0);
    expect(r.peakMiB()).toBeLessThan(400);
    console.log(`endless index: warning ${w.at} ms after start; server sent ${(rec[0]!.sent / 1048576).toFixed(1)} MiB; CLI peak RSS ${r.peakMiB().toFixed(0)} MiB`);
  });

  it('trickle (a byte every 100 ms): the total deadline (1.5 s here) trips, one warning, local work; then SIGINT', async () => {
    const m = machine('trickle', 'trickle@index', { deadlineFloorMs: 1_500, bodyIdleMs: 10_000 });
    const r = start(reproArgs('trickle'), m.env);
    const w = await r.waitLine(/warning: remote cache unreachable \(kernels\/index\/[0-9a-f]{64}: no complete answer within \d\.\d s \(\d+ bytes received\)\): building locally/, 30_000);
    const rec = (await stats()).filter((x) => x.path.startsWith('/trickle@index/'));
    expect(rec).toHaveLength(1); // unreachable: not asked again
    // 1000 bytes declared: 1.5 s + 2 s per MiB (2 ms)
    expect(w.line).toMatch(/within 1\.5 s \(\d+ bytes received\)/);
    const took = w.at - (rec[0]!.startedAt - r.t0);
    expect(took).toBeGreaterThan(1_300);
    expect(took).toBeLessThan(3_000);
    await interruptAndCheck(r, m.cache);
  });

  it('a short body and a redirect to file://: one warning each, nothing followed; then SIGINT', async () => {
    for (const [mode, why] of [
      ['short@index', /\d+ bytes received, its Content-Length says 1000/],
      ['redirect-file@index', /HTTP 302 for GET kernels\/index\/[0-9a-f]{64}/],
    ] as const) {
      const m = machine(mode.replace('@', '-'), mode);
      const r = start(reproArgs(mode.replace('@', '-')), m.env);
      const w = await r.waitLine(/warning: remote cache/, 30_000);
      expect(w.line).toMatch(why);
      expect(w.line).toMatch(/: building locally$/);
      await interruptAndCheck(r, m.cache);
    }
  });

  it('SIGINT during a trickling request (default limits: 60 s idle, minutes of deadline) ends the run in < 2 s, exit 130', async () => {
    const m = machine('sigint', 'trickle@index');
    const before = (await stats()).length;
    const r = start(reproArgs('sigint'), m.env);
    // the request is in progress once the server has sent a few bytes
    for (let i = 0; i < 600 && !(await stats()).slice(before).some((x) => x.sent >= 3); i++) await new Promise((res) => setTimeout(res, 100));
    await interruptAndCheck(r, m.cache);
    expect(r.stderr.some((l) => /warning: remote cache/.test(l))).toBe(false);
    const rec = (await stats()).slice(before);
    expect(rec.every((x) => x.endedAt !== undefined && x.clientClosed)).toBe(true);
  });

  it('SIGINT during a boot (the shared cache: kernel and image there) ends QEMU and the run in < 2 s, exit 130', async () => {
    const results = path.join(tmp, 'results', 'boot');
    const r = start(['repro', '--json', '--no-install', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--results', results], {
      KERNEL_REPRO_CACHE: shared,
      KERNEL_REPRO_REMOTE_CACHE: '',
    });
    // QEMU's command line names the run's results folder
    for (let i = 0; i < 1200 && !processAlive(`qemu-system.*${results}`); i++) await new Promise((res) => setTimeout(res, 100));
    expect(processAlive(`qemu-system.*${results}`)).toBe(true);
    const { code, ms } = await r.interrupt();
    expect(code).toBe(130);
    expect(ms).toBeLessThan(2_000);
    expect(processAlive(`qemu-system.*${results}`)).toBe(false);
    expect(groupPids(r.child.pid!)).toEqual([]);
  });
});
