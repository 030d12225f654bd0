// Cache locks (util/lock.ts): a lock is taken over only from a holder that is gone, never from a
// live one however long it has been silent (defect 12); waits say who holds the lock and stop on
// the run's signal.
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { withLock } from '../../harness/util/cache.ts';
import { abortRun } from '../../harness/util/cancel.ts';
import {
  acquireLock,
  heldLocks,
  holderState,
  lockFileOf,
  lockStatus,
  parseStatStartTime,
  systemProbe,
  tryLock,
  withFileLock,
  type LockOwner,
  type ProcessProbe,
} from '../../harness/util/lock.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const children: ResultPromise[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await c.catch(() => undefined);
  }
});

/** A child process that takes the lock on `target` through the harness's withLock and holds it until killed. */
async function holderProcess(dir: string, target: string): Promise<{ child: ResultPromise }> {
  const script = path.join(dir, 'holder.mts');
  fs.writeFileSync(
    script,
    `import { withLock } from ${JSON.stringify(path.join(repoRoot, 'harness/util/cache.ts'))};\n` +
      `await withLock(${JSON.stringify(target)}, async () => { console.log('locked'); await new Promise(() => setInterval(() => {}, 1000)); });\n`,
  );
  // node itself with tsx's loader (the tsx command would be a wrapper around another process)
  const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = execa(process.execPath, ['--import', loader, script], { reject: false, stdin: 'ignore' });
  children.push(child);
  await new Promise<void>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && res());
    void child.then((r) => rej(new Error(`holder ended: ${String(r.stderr)}`)));
  });
  return { child }; // (not the child itself: a promise, an async function would wait for its end)
}

/** Every lock-looking file and directory next to `target`, dated `ms` back: as if its holder had not been heard of since. */
function backdate(dir: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  for (const name of fs.readdirSync(dir)) if (name.includes('lock')) fs.utimesSync(path.join(dir, name), t, t);
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('defect 12: a live holder keeps its lock however long it is silent', () => {
  it('a holder that is alive but frozen (no heartbeat for 2 min) is waited for, not taken over; once it is killed, the lock is taken over', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const { child: holder } = await holderProcess(dir, target);
    holder.kill('SIGSTOP'); // its event loop frozen: it refreshes nothing
    backdate(dir, 120_000);
    let ran = false;
    const waiter = withLock(target, async () => {
      ran = true;
    }, () => undefined);
    await sleepMs(2500);
    expect(ran).toBe(false); // proper-lockfile (stale: 30 s) took it over here
    holder.kill('SIGKILL');
    await holder.catch(() => undefined);
    await waiter;
    expect(ran).toBe(true);
  }, 20_000);
});

describe('util/lock.ts: who may take a lock over', () => {
  const fakeOwner = (o: Partial<LockOwner> = {}): LockOwner => ({
    pid: 4242,
    host: 'here',
    bootId: 'boot-1',
    pidNs: 'pid:[1]',
    startTime: '1000',
    what: 'building 6.1-vanilla',
    command: 'kernel-repro verify --kernel 6.1-fixed',
    since: new Date(Date.now() - 95_000).toISOString(),
    token: 'tok',
    ...o,
  });
  const probe = (p: Partial<ProcessProbe> = {}): ProcessProbe => ({
    host: () => 'here',
    bootId: () => 'boot-1',
    pidNs: () => 'pid:[1]',
    alive: (pid) => pid === 4242,
    startTime: (pid) => (pid === 4242 ? '1000' : undefined),
    ...p,
  });
  const HOUR = 3_600_000;

  it('a live holder on this machine is alive whatever its heartbeat; a dead, recycled or pre-reboot pid is not', () => {
    expect(holderState(fakeOwner(), HOUR, { probe: probe() }).state).toBe('alive');
    expect(holderState(fakeOwner({ pid: 7 }), 0, { probe: probe() })).toEqual({ state: 'dead', why: 'pid 7 is gone' });
    expect(holderState(fakeOwner({ startTime: '999' }), 0, { probe: probe() }).why).toMatch(/pid 4242 is now another process/);
    expect(holderState(fakeOwner({ bootId: 'boot-0' }), 0, { probe: probe() }).why).toMatch(/before a reboot/);
    // no start time to compare (not Linux): a live pid is the holder
    expect(holderState(fakeOwner({ startTime: undefined } as Partial<LockOwner>), HOUR, { probe: probe({ startTime: () => undefined }) }).state).toBe('alive');
  });

  it('a holder whose pid cannot be checked (another host, another pid namespace) is gone only after 10 min without a heartbeat', () => {
    for (const o of [fakeOwner({ host: 'there' }), fakeOwner({ pidNs: 'pid:[2]' })]) {
      expect(holderState(o, 9 * 60_000, { probe: probe({ alive: () => false }) }).state).toBe('alive');
      expect(holderState(o, 11 * 60_000, { probe: probe() }).state).toBe('dead');
    }
    // an owner record that cannot be read: being written, unless it is old
    expect(holderState(null, 1000).state).toBe('alive');
    expect(holderState(null, 60_000).state).toBe('dead');
  });

  it('parses the start time from /proc/<pid>/stat, whatever the command name holds', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // fields 3..52
    expect(parseStatStartTime(`123 (a) b (c) ${fields.join(' ')}`)).toBe('22');
    expect(systemProbe.startTime(process.pid)).toMatch(/^\d+$/);
  });
});

describe('util/lock.ts: taking, holding, waiting', () => {
  const quiet = { info: () => undefined };
  function plant(target: string, owner: LockOwner, ageMs: number): void {
    fs.writeFileSync(lockFileOf(target), JSON.stringify(owner));
    const t = new Date(Date.now() - ageMs);
    fs.utimesSync(lockFileOf(target), t, t);
  }
  async function realOwner(): Promise<{ live: LockOwner; dead: LockOwner; recycled: LockOwner; child: ResultPromise }> {
    const child = execa('sleep', ['60'], { reject: false });
    children.push(child);
    const gone = execa('true');
    await gone;
    const base = { host: systemProbe.host(), what: 'building 6.1-vanilla', command: 'kernel-repro repro --kernel 6.1-vanilla', since: new Date().toISOString() };
    const ids = { ...(systemProbe.bootId() ? { bootId: systemProbe.bootId()! } : {}), ...(systemProbe.pidNs() ? { pidNs: systemProbe.pidNs()! } : {}) };
    return {
      child,
      live: { ...base, ...ids, pid: child.pid!, startTime: systemProbe.startTime(child.pid!)!, token: 'live' },
      dead: { ...base, ...ids, pid: gone.pid!, startTime: '1', token: 'dead' },
      recycled: { ...base, ...ids, pid: child.pid!, startTime: String(Number(systemProbe.startTime(child.pid!)) - 5), token: 'recycled' },
    };
  }

  it('never takes a live holder\'s lock (silent for an hour), takes a dead or recycled pid\'s lock at once', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const { live, dead, recycled } = await realOwner();
    plant(target, live, 3_600_000);
    expect(tryLock(target)).toBeNull();
    expect(lockStatus(target)).toEqual({ held: true, owner: live });
    for (const o of [dead, recycled]) {
      plant(target, o, 0);
      expect(lockStatus(target).held).toBe(false);
      const h = tryLock(target, { what: 'building 6.1-fixed' });
      expect(h).not.toBeNull();
      const rec = JSON.parse(fs.readFileSync(lockFileOf(target), 'utf8')) as LockOwner;
      expect(rec).toMatchObject({ pid: process.pid, what: 'building 6.1-fixed', startTime: systemProbe.startTime(process.pid) });
      expect(heldLocks()).toContain(lockFileOf(target));
      h!.release();
      expect(fs.existsSync(lockFileOf(target))).toBe(false);
      expect(heldLocks()).not.toContain(lockFileOf(target));
    }
  });

  it('a holder keeps its heartbeat fresh; a release removes only its own lock', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const h = tryLock(target, { heartbeatMs: 50 })!;
    const t = new Date(Date.now() - 600_000);
    fs.utimesSync(h.file, t, t);
    await sleepMs(300);
    expect(Date.now() - fs.statSync(h.file).mtimeMs).toBeLessThan(5_000);
    // its tree removed under it (cache gc): the heartbeat and the release say nothing
    fs.rmSync(h.file);
    await sleepMs(120);
    const { live } = await realOwner();
    plant(target, live, 0);
    h.release();
    expect(JSON.parse(fs.readFileSync(lockFileOf(target), 'utf8'))).toEqual(live);
  });

  it('a wait says what it waits for and who holds it, again every report period and when the holder changes, and stops when the run is aborted', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const { live, child } = await realOwner();
    plant(target, live, 3_600_000);
    const lines: string[] = [];
    const ac = new AbortController();
    const t0 = Date.now();
    const wait = acquireLock(target, { waitingFor: 'the kernel tree debian-6.1', log: { info: (m) => lines.push(m) }, signal: ac.signal, pollMs: 20, reportEveryMs: 250 });
    await sleepMs(700);
    expect(lines[0]).toMatch(new RegExp(`^waiting for the kernel tree debian-6\\.1: held by pid ${live.pid} on ${systemProbe.host()} \\(building 6\\.1-vanilla, since \\d\\d:\\d\\d:\\d\\d, \\d+ s ago; kernel-repro repro --kernel 6\\.1-vanilla\\)`));
    expect(lines.slice(1).length).toBeGreaterThanOrEqual(2);
    expect(lines[1]).toMatch(/^still waiting for the kernel tree debian-6\.1 \(\d+ s\): held by pid \d+/);
    // another holder (alive) takes its place: said at once
    const n = lines.length;
    plant(target, { ...live, token: 'other', what: 'verify of fix.patch' }, 0);
    await sleepMs(100);
    expect(lines.slice(n).some((l) => /now held by .*verify of fix\.patch/.test(l))).toBe(true);
    const a0 = Date.now();
    ac.abort(new HarnessError('interrupted', 'interrupted (SIGINT)'));
    await expect(wait).rejects.toMatchObject({ kind: 'interrupted' });
    expect(Date.now() - a0).toBeLessThan(200);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(tryLock(target)).toBeNull(); // the holder still has it
    child.kill('SIGKILL');
    await child;
    // the holder died: the next wait takes its lock over without a word of waiting
    const got: string[] = [];
    const h = await acquireLock(target, { log: { info: (m) => got.push(m) }, pollMs: 20 });
    expect(got).toEqual([]);
    h.release();
  });

  it('the run signal (SIGINT) ends a wait', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const { live } = await realOwner();
    plant(target, live, 0);
    const wait = withFileLock(target, async () => 'ran', { log: quiet, pollMs: 20 });
    await sleepMs(100);
    abortRun('interrupted (SIGINT)');
    await expect(wait).rejects.toMatchObject({ kind: 'interrupted', message: 'interrupted (SIGINT)' });
  });
});

describe('util/lock.ts: between processes', () => {
  it('a process that exits holding locks leaves none behind; of many processes racing for a dead holder\'s lock, one at a time holds it', async () => {
    const dir = testTempDir('kr-lock-');
    const target = path.join(dir, '.lock');
    const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
    const script = path.join(dir, 'racer.mts');
    const journal = path.join(dir, 'journal');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';\nimport { acquireLock } from ${JSON.stringify(path.join(repoRoot, 'harness/util/lock.ts'))};\n` +
        `const h = await acquireLock(${JSON.stringify(target)}, { pollMs: 5, log: { info() {} } });\n` +
        `fs.appendFileSync(${JSON.stringify(journal)}, 'in ' + process.pid + '\\n');\n` +
        `await new Promise((r) => setTimeout(r, 30));\n` +
        `fs.appendFileSync(${JSON.stringify(journal)}, 'out ' + process.pid + '\\n');\n` +
        `process.exit(0); // without releasing: the exit hook does\n`,
    );
    const gone = execa('true');
    await gone;
    fs.writeFileSync(lockFileOf(target), JSON.stringify({ pid: gone.pid, host: systemProbe.host(), startTime: '1', what: 'x', command: 'x', since: new Date().toISOString(), token: 'dead' }));
    const racers = Array.from({ length: 4 }, () => execa(process.execPath, ['--import', loader, script], { reject: false }));
    const done = await Promise.all(racers);
    expect(done.map((r) => r.exitCode)).toEqual([0, 0, 0, 0]);
    const lines = fs.readFileSync(journal, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(8);
    for (let i = 0; i < 8; i += 2) {
      expect(lines[i]).toMatch(/^in (\d+)$/);
      expect(lines[i + 1]).toBe(lines[i]!.replace('in', 'out'));
    }
    expect(fs.existsSync(lockFileOf(target))).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp') || f.endsWith('.break'))).toEqual([]);
  }, 30_000);
});

describe('util/lock.ts: a zombie holds nothing', () => {
  it('a holder killed but not yet reaped by its parent is dead', async () => {
    const { spawn } = await import('node:child_process');
    // a shell that starts a child and then sleeps without ever reaping it
    const sh = spawn('sh', ['-c', 'sleep 0.1 & exec sleep 30'], { stdio: 'ignore' });
    try {
      await sleepMs(600);
      const kids = fs.readFileSync(`/proc/${sh.pid}/task/${sh.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      expect(kids.length).toBe(1);
      expect(fs.readFileSync(`/proc/${kids[0]}/stat`, 'utf8')).toMatch(/\) Z /);
      expect(systemProbe.alive(kids[0]!)).toBe(false);
      expect(systemProbe.alive(sh.pid!)).toBe(true);
    } finally {
      sh.kill('SIGKILL');
    }
  });
});

describe('leftovers of a holder killed with SIGKILL', () => {
  it('a dead holder\'s marked processes are ended at takeover, an unmarked or other-run process is not', async () => {
    const { spawn } = await import('node:child_process');
    const { killLeftoversOf, RUN_MARK_ENV } = await import('../../harness/util/proc.ts');
    const mark = { pid: 999_999_01, start: '4242' };
    const startSleep = (env: Record<string, string>) => spawn('sleep', ['60'], { detached: true, stdio: 'ignore', env: { ...process.env, ...env } });
    const orphan = startSleep({ [RUN_MARK_ENV]: `${mark.pid}:${mark.start}` });
    const other = startSleep({ [RUN_MARK_ENV]: `${mark.pid}:${mark.start}1` }); // another run (same pid, other start time)
    const plain = startSleep({});
    const exited = (c: ReturnType<typeof startSleep>) => new Promise<string | null>((r) => c.once('exit', (_code, sig) => r(sig)));
    const orphanExit = exited(orphan);
    try {
      await new Promise((r) => setTimeout(r, 200)); // the environments are in place after exec
      expect(killLeftoversOf(mark.pid, mark.start)).toBe(1);
      expect(await orphanExit).toBe('SIGKILL');
      expect(other.exitCode).toBeNull();
      expect(plain.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
    } finally {
      for (const c of [orphan, other, plain]) c.kill('SIGKILL');
    }
  });
});
