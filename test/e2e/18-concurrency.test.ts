// End to end: two real runs on one cache sharing one kernel tree (Debian's linux-source-6.1).
// One builds a kernel with another config fragment (6.1-lock-a), the other verifies a patch on
// 6.1-fixed: the second to come waits for the tree (saying for what and who holds it), neither
// breaks the other's lock, both finish right (defect 12). Then a run holding the tree is killed
// (SIGKILL, with its make): the waiting run takes the lock over and finishes.
// Each run's kernel carries a patch unique to this test run (a comment in fib_frontend.c), so that
// it really builds under the tree's lock (an incremental build: one file, then the link).
import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { lockFileOf, type LockOwner } from '../../harness/util/lock.ts';
import { holdLockFor } from '../lock-holder.ts';
import { fileTempDir } from '../tmp.ts';

const tmp = fileTempDir('kr-conc-');
const tag = crypto.randomBytes(4).toString('hex');
const made = new Set<string>(); // kernel names this file builds: removed from the shared cache at the end
const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;

/** A comment-only patch of fib_frontend.c, unique to this test run. */
function uniquePatch(name: string): string {
  const file = path.join(tmp, `${name}.patch`);
  const fixture = fs.readFileSync(path.join(repoRoot, 'test/fixtures/comment-only.patch'), 'utf8');
  fs.writeFileSync(file, fixture.replace('(comment-only test change)', `(${name})`).replace('reword a comment', `comment ${name}`));
  return file;
}

/** 6.1-fixed with one more config fragment (a fixed one: its build directory is reused from run to run) and a unique patch. */
function kernelA(name: string): string {
  const frag = path.join(tmp, 'lock-a.config');
  fs.writeFileSync(frag, 'CONFIG_LOCALVERSION="-kr-lock-a"\n');
  const file = path.join(tmp, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `name: ${name}`,
      'description: 6.1-fixed with another config fragment (concurrency test)',
      'source: { type: debian-source, package: linux-source-6.1 }',
      `patches: [{ file: ${JSON.stringify(uniquePatch(name))} }]`,
      `config: { base: tinyconfig, fragments: [${JSON.stringify(path.join(repoRoot, 'kernels/config/base.config'))}, ${JSON.stringify(frag)}] }`,
      'expect: bug-absent',
      '',
    ].join('\n'),
  );
  made.add(name);
  return file;
}

interface Run {
  child: ResultPromise;
  stderr: () => string;
  done: Promise<{ exitCode: number; stdout: string; stderr: string; ms: number }>;
}

/** The CLI as a user runs it, but node itself (its pid is the lock's holder, not a tsx wrapper's). */
function start(args: string[]): Run {
  const t0 = Date.now();
  const child = execa(process.execPath, ['--import', loader, path.join(repoRoot, 'harness/cli/main.ts'), ...args], {
    cwd: repoRoot,
    reject: false,
    stdin: 'ignore',
    timeout: 20 * 60_000,
    env: { KERNEL_REPRO_SNAPSHOT: '0' },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = child.then((r) => ({ exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: err, ms: Date.now() - t0 }));
  return { child, stderr: () => err, done };
}

function treeLock(): string {
  const trees = path.join(cacheRoot(), 'trees');
  const tree = fs.readdirSync(trees).find((d) => d.startsWith('debian-linux-source-6.1-'));
  if (!tree) throw new Error(`no linux-source-6.1 tree in ${trees}: run 01-repro first`);
  return path.join(trees, tree, '.lock');
}

function owner(lock: string): LockOwner | null {
  try {
    return JSON.parse(fs.readFileSync(lockFileOf(lock), 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

async function until(what: string, cond: () => boolean, ms: number, runs: Run[]): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${runs.map((r) => r.stderr().slice(-2000)).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGKILL a run alone (`kill -9 <pid>`): its make and compilers, in process groups of their own,
 * go on running. Returns the pids of those descendants, for the test to check who ends them. */
function killLeader(pid: number): number[] {
  const groups = new Set<number>();
  const walk = (p: number): void => {
    let kids: number[] = [];
    try {
      kids = fs.readdirSync(`/proc/${p}/task`).flatMap((t) => fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      return;
    }
    for (const k of kids) {
      try {
        const stat = fs.readFileSync(`/proc/${k}/stat`, 'utf8');
        groups.add(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]));
      } catch {
        /* gone */
      }
      walk(k);
    }
  };
  walk(pid);
  process.kill(pid, 'SIGKILL');
  return [...groups];
}

function running(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(st.slice(st.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

afterAll(() => {
  // the kernels this file built leave the shared cache (their build directory stays, for next time)
  const kernels = path.join(cacheRoot(), 'kernels');
  const removed = new Set<string>();
  for (const key of fs.readdirSync(kernels)) {
    try {
      const m = JSON.parse(fs.readFileSync(path.join(kernels, key, 'manifest.json'), 'utf8')) as { meta: { name: string } };
      if (![...made].some((n) => m.meta.name === n || m.meta.name.startsWith(`${n}`))) continue;
      fs.rmSync(path.join(kernels, key), { recursive: true, force: true });
      removed.add(key);
    } catch {
      /* not an entry */
    }
  }
  const index = path.join(kernels, 'index');
  for (const f of fs.existsSync(index) ? fs.readdirSync(index) : []) {
    if (f.endsWith('.merged')) continue;
    if (removed.has(fs.readFileSync(path.join(index, f), 'utf8').trim())) {
      fs.rmSync(path.join(index, f), { force: true });
      fs.rmSync(path.join(index, `${f}.merged`), { force: true });
    }
  }
});

interface Summary {
  runs: Array<{ kernel: string; case: string; verdict: string }>;
}
interface VerifyJson {
  cases: Array<{ case: string; conclusion: string; before: { reproduced: number }; after: { reproduced: number } }>;
}

describe('two runs on one kernel tree', () => {
  it('a build of another config and a verify on 6.1-fixed: the later one waits, saying for whom; both finish right', async () => {
    const lock = treeLock();
    const a = `6.1-lock-a-${tag}`;
    const defA = kernelA(a);
    const patchB = uniquePatch(`kr-lock-b-${tag}`);
    made.add(`6.1-fixed+kr-lock-b-${tag}`);
    const verify = start(['verify', '--patch', patchB, '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--repeat', '1', '--json', '--no-install']);
    await until('the verify run to hold the tree', () => owner(lock)?.pid === verify.child.pid, 5 * 60_000, [verify]);
    expect(owner(lock)).toMatchObject({ what: `building 6.1-fixed+kr-lock-b-${tag}`, command: expect.stringMatching(/^kernel-repro verify --patch /) });
    const build = start(['repro', '--kernel', defA, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    const [v, b] = await Promise.all([verify.done, build.done]);
    if (v.exitCode !== 0) console.error(v.stderr.slice(-4000));
    if (b.exitCode !== 0) console.error(b.stderr.slice(-4000));
    console.log(`verify ${(v.ms / 1000).toFixed(1)} s, build ${(b.ms / 1000).toFixed(1)} s`);
    console.log(b.stderr.split('\n').filter((l) => /waiting for|got the kernel tree/.test(l)).join('\n'));
    expect(v.exitCode).toBe(0);
    expect(b.exitCode).toBe(0);
    // the build waited for the verify's tree, said for what and who had it, and got it when the verify let it go
    expect(b.stderr).toMatch(
      new RegExp(`waiting for the kernel tree debian-linux-source-6\\.1-[0-9a-f]+ \\(to (build|read .*for) ${a}\\): held by pid ${verify.child.pid} on \\S+ \\(building 6\\.1-fixed\\+kr-lock-b-${tag}, since \\d\\d:\\d\\d:\\d\\d, \\d+ s ago; kernel-repro verify --patch `),
    );
    expect(b.stderr).toMatch(/got the kernel tree debian-linux-source-6\.1-[0-9a-f]+ \(to .*\) after \d+ s/);
    expect(b.stderr).toMatch(new RegExp(`built ${a} `));
    expect(v.stderr).toMatch(new RegExp(`built 6\\.1-fixed\\+kr-lock-b-${tag} `));
    expect(`${v.stderr}\n${b.stderr}`).not.toMatch(/error \(internal\)|ENOENT|compromised/);
    const vj = JSON.parse(v.stdout) as VerifyJson;
    expect(vj.cases).toEqual([expect.objectContaining({ case: 'rp-filter-selftest', conclusion: 'unchanged', before: expect.objectContaining({ reproduced: 0 }), after: expect.objectContaining({ reproduced: 0 }) })]);
    const bj = JSON.parse(b.stdout) as Summary;
    expect(bj.runs).toEqual([expect.objectContaining({ kernel: a, case: 'rp-filter-selftest', verdict: 'not-reproduced' })]);
    expect(owner(lock)).toBeNull(); // both released the tree
  });

  it('a run killed (SIGKILL) while it holds the tree: the waiting run takes the lock over and finishes', async () => {
    const lock = treeLock();
    const c = `6.1-lock-c-${tag}`;
    const defC = kernelA(c);
    const patchD = uniquePatch(`kr-lock-d-${tag}`);
    made.add(`6.1-fixed+kr-lock-d-${tag}`);
    const doomed = start(['repro', '--kernel', defC, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    await until('the doomed run to hold the tree', () => owner(lock)?.pid === doomed.child.pid, 5 * 60_000, [doomed]);
    const waiter = start(['verify', '--patch', patchD, '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--repeat', '1', '--json', '--no-install']);
    await until('the verify to wait for the tree', () => /waiting for the kernel tree/.test(waiter.stderr()), 5 * 60_000, [doomed, waiter]);
    // killed in the middle of its build when it gets that far, else where it is
    await until('the doomed run to build', () => new RegExp(`building ${c} `).test(doomed.stderr()) || (owner(lock)?.pid !== doomed.child.pid), 3 * 60_000, [doomed, waiter]).catch(() => undefined);
    const killedAt = Date.now();
    const left = killLeader(doomed.child.pid!).filter(running);
    const d = await doomed.done;
    expect(d.exitCode).not.toBe(0);
    const w = await waiter.done;
    if (w.exitCode !== 0) console.error(w.stderr.slice(-4000));
    console.log(`killed holder; the verify finished ${((Date.now() - killedAt) / 1000).toFixed(1)} s later (${(w.ms / 1000).toFixed(1)} s in all)`);
    console.log(w.stderr.split('\n').filter((l) => /waiting for|got the kernel tree/.test(l)).join('\n'));
    expect(w.exitCode).toBe(0);
    // the make/cc1 the killed run left behind were ended by the run that took its lock over,
    // before it built in the same tree
    console.log(`left running by the killed run: ${left.length} process group(s)`);
    if (left.length > 0) expect(w.stderr).toMatch(new RegExp(`ended \\d+ process\\(es\\) left running by pid ${doomed.child.pid} \\(building ${c}`));
    expect(left.filter(running)).toEqual([]);
    expect(w.stderr).toMatch(new RegExp(`held by pid ${doomed.child.pid} on \\S+ \\(building ${c}`));
    expect(w.stderr).toMatch(/got the kernel tree .* after \d+ s/);
    const wj = JSON.parse(w.stdout) as VerifyJson;
    expect(wj.cases).toEqual([expect.objectContaining({ case: 'rp-filter-selftest', conclusion: 'unchanged' })]);
    expect(owner(lock)).toBeNull();
  });
});

describe('a wait for a held tree', () => {
  it('Ctrl-C (SIGINT) ends it at once: exit 130, the holder\'s lock untouched', async () => {
    // a private cache whose tree is held by a live process (a sleep, as if it were a long build)
    const cache = path.join(tmp, 'cache-sigint');
    const lock = path.join(cache, 'trees', path.basename(path.dirname(treeLock())), '.lock');
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const holder = execa('sleep', ['120'], { reject: false });
    try {
      const rec = holdLockFor(holder.pid!, lock, { what: 'building 6.1-vanilla', since: new Date(Date.now() - 3_600_000) });
      const old = new Date(Date.now() - 3_600_000);
      fs.utimesSync(lockFileOf(lock), old, old); // no heartbeat for an hour: still its lock
      const t0 = Date.now();
      const child = execa(process.execPath, ['--import', loader, path.join(repoRoot, 'harness/cli/main.ts'), 'repro', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--no-install'], {
        cwd: repoRoot,
        reject: false,
        stdin: 'ignore',
        env: { KERNEL_REPRO_CACHE: cache },
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const r0 = { stderr: () => err } as Run;
      await until('the run to wait for the tree', () => /waiting for the kernel tree/.test(err), 3 * 60_000, [r0]);
      const waited = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1500));
      const s0 = Date.now();
      child.kill('SIGINT');
      const r = await child;
      const stopMs = Date.now() - s0;
      console.log(`waiting after ${(waited / 1000).toFixed(1)} s; SIGINT -> exit ${r.exitCode} in ${stopMs} ms`);
      console.log(err.split('\n').filter((l) => /waiting|interrupted|error/.test(l)).join('\n'));
      expect(err).toMatch(new RegExp(`waiting for the kernel tree \\S+ \\(to build 6\\.1-fixed\\): held by pid ${holder.pid} on \\S+ \\(building 6\\.1-vanilla, since \\d\\d:\\d\\d:\\d\\d, 60 min \\d+ s ago; kernel-repro repro\\)`));
      expect(r.exitCode).toBe(130);
      expect(stopMs).toBeLessThan(3000);
      expect(err).not.toMatch(/\n\s+at /); // no stack trace
      expect(JSON.parse(fs.readFileSync(lockFileOf(lock), 'utf8'))).toEqual(rec);
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
  });
});
