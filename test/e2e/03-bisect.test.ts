// End to end: a git history built from Debian's linux-source-6.1 (first commit: the fix reverted;
// then 16 unrelated commits, one of which re-applies the fix). `npm run bisect` must name the
// commit that re-applies it, within ceil(log2(N)) + 2 kernel builds. Then a real `git bisect run`
// with bisect-run over a regression branch that holds a commit that does not build (skipped, the
// culprit still named), and with a case whose kconfig need no commit can enable (the bisection aborts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { loadCase } from '../../harness/cases/load.ts';
import { ensureBaseImage } from '../../harness/images/initramfs.ts';
import { qemuVersion } from '../../harness/vm/accel.ts';
import { snapshotKey } from '../../harness/vm/snapshot.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const work = fileTempDir('kr-bisect-');
const repo = path.join(work, 'linux');
const patch = path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch');
const breaksBuild = path.join(repoRoot, 'test/fixtures/breaks-build.patch');
const N = 16;
const FIX_AT = 11; // commit index (1-based after the base) that re-applies the fix
const commits: string[] = [];

function git(...args: string[]): string {
  // gc.auto=0: no background `git gc` still writing into .git when the test removes the repository
  return execFileSync('git', ['-C', repo, '-c', 'gc.auto=0', '-c', 'user.name=kernel-repro test', '-c', 'user.email=test@kernel-repro.invalid', ...args], {
    maxBuffer: 64 * 1024 * 1024,
  })
    .toString()
    .trim();
}

// the bisect worktree (~1.5 GB in the shared cache) goes with its repository
afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 });
  const g = await cli(['cache', 'gc', '--older-than', '36500d', '--json']);
  expect(g.exitCode).toBe(0);
});

beforeAll(() => {
  fs.mkdirSync(repo);
  execFileSync('tar', ['-xf', '/usr/src/linux-source-6.1.tar.xz', '-C', repo, '--strip-components=1']);
  execFileSync('patch', ['-d', repo, '-p1', '-R', '-s', '-i', patch]);
  git('init', '-q');
  git('add', '-f', '-A'); // Debian's tree ignores everything at its top level
  git('commit', '-q', '-m', 'base: linux-source-6.1 with 66f8209547cc reverted');
  commits.push(git('rev-parse', 'HEAD'));
  for (let i = 1; i <= N; i++) {
    if (i === FIX_AT) {
      execFileSync('patch', ['-d', repo, '-p1', '-s', '-i', patch]);
      git('commit', '-q', '-a', '-m', 'fib: relax source validation check for loopback packets');
    } else if (i % 3 === 0) {
      // an unrelated code change: a comment in a compiled file (rebuilds one object)
      fs.appendFileSync(path.join(repo, 'net/core/dev.c'), `\n/* unrelated change ${i} */\n`);
      git('commit', '-q', '-a', '-m', `net: unrelated comment ${i}`);
    } else {
      fs.appendFileSync(path.join(repo, 'Documentation/networking/ip-sysctl.rst'), `\n.. unrelated documentation change ${i}\n`);
      git('commit', '-q', '-a', '-m', `docs: unrelated change ${i}`);
    }
    commits.push(git('rev-parse', 'HEAD'));
  }
}, 20 * 60_000);

describe('npm run bisect', () => {
  it('names the commit that re-applies the fix, within ceil(log2(N)) + 2 builds', async () => {
    const r = await cli(['bisect', '--repo', repo, '--old', commits[0]!, '--new', commits[N]!, '--case', 'rp-filter-selftest', '--json', '--fresh']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-5000));
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { commit: string; subject: string; builds: number; steps: Array<{ commit: string; verdicts: string[]; kernel?: { key: string } }>; oldVerdict: string; newVerdict: string };
    expect(out.oldVerdict).toBe('reproduced');
    expect(out.newVerdict).toBe('not-reproduced');
    expect(out.commit).toBe(commits[FIX_AT]);
    expect(out.subject).toBe('fib: relax source validation check for loopback packets');
    expect(out.builds).toBeLessThanOrEqual(Math.ceil(Math.log2(N)) + 2);
    expect(out.steps.length).toBeGreaterThanOrEqual(3);
    for (const s of out.steps) expect(s.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(r.stderr).toMatch(/first commit that gives "not-reproduced"/);
    // each kernel ran once: no booted-kernel snapshot was saved for it
    // where the snapshot of each kernel it booted would be (only this bisect's kernels: the cache may be shared)
    const image = await ensureBaseImage(cacheRoot(), () => undefined);
    const qemu = (await qemuVersion()) ?? 'unknown';
    for (const st of out.steps.filter((x) => x.kernel)) {
      for (const accel of ['tcg', 'kvm'] as const) {
        const key = snapshotKey({ accel, machine: 'microvm', kernel: path.join(cacheRoot(), 'kernels', st.kernel!.key, 'vmlinux'), initrd: image.path }, qemu, cacheRoot());
        expect(fs.existsSync(path.join(cacheRoot(), 'snapshots', key)), `snapshot of ${st.commit.slice(0, 12)}'s kernel`).toBe(false);
      }
    }
    expect(out.steps.filter((x) => x.kernel).length).toBeGreaterThanOrEqual(3);
    // the user's checkout was not touched
    expect(git('rev-parse', 'HEAD')).toBe(commits[N]);
    expect(git('status', '--porcelain')).toBe('');
  });

  it('bisect-run (for `git bisect run`): exit 1 where it reproduces, 0 where it does not', async () => {
    const run = async (): Promise<number> => {
      const r = await execa(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'harness/cli/main.ts'), 'bisect-run', '--case', 'rp-filter-selftest'], { cwd: repo, reject: false });
      return r.exitCode ?? -1;
    };
    expect(await run()).toBe(0); // HEAD = the last commit, which has the fix
    git('checkout', '-q', commits[0]!);
    try {
      expect(await run()).toBe(1);
    } finally {
      git('checkout', '-q', '-');
    }
  });

  it('refuses two revisions that behave the same', async () => {
    const r = await cli(['bisect', '--repo', repo, '--old', commits[FIX_AT]!, '--new', commits[N]!, '--case', 'rp-filter-selftest', '--fresh']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--old and --new both give "not-reproduced" on case rp-filter-selftest: nothing to bisect/);
  });
});

describe('git bisect run with bisect-run', () => {
  // a regression branch from the fixed last commit: d1, d2, a commit that does not build, its
  // repair, the fix reverted (the culprit), d3. git tests the middle commit (the broken one) first.
  const branch: Record<string, string> = {};
  const bisectRun = async (args: string[]): Promise<{ exitCode: number; out: string }> => {
    const r = await execa('git', ['bisect', 'run', 'node', path.join(repoRoot, 'bin/kernel-repro.mjs'), 'bisect-run', ...args, '--no-install'], { cwd: repo, reject: false, all: true, stdin: 'ignore' });
    return { exitCode: r.exitCode ?? -1, out: String(r.all) };
  };
  const marks = (): string[] => git('bisect', 'log').split('\n').filter((l) => /^git bisect (good|bad|skip) /.test(l));

  beforeAll(() => {
    git('checkout', '-q', '-b', 'regression', commits[N]!);
    const commit = (name: string, change: () => void, msg: string): void => {
      change();
      git('commit', '-q', '-a', '-m', msg);
      branch[name] = git('rev-parse', 'HEAD');
    };
    const doc = (i: number) => () => fs.appendFileSync(path.join(repo, 'Documentation/networking/ip-sysctl.rst'), `\n.. regression branch change ${i}\n`);
    commit('d1', doc(1), 'docs: regression branch 1');
    commit('d2', doc(2), 'docs: regression branch 2');
    commit('broken', () => execFileSync('patch', ['-d', repo, '-p1', '-s', '-i', breaksBuild]), 'fib: a change that does not build');
    commit('repair', () => execFileSync('patch', ['-d', repo, '-p1', '-R', '-s', '-i', breaksBuild]), 'fib: repair the build');
    commit('culprit', () => execFileSync('patch', ['-d', repo, '-p1', '-R', '-s', '-i', patch]), 'fib: revert the loopback source validation fix');
    commit('d3', doc(3), 'docs: regression branch 3');
  });
  afterAll(() => {
    execFileSync('git', ['-C', repo, 'bisect', 'reset'], { stdio: 'ignore' }); // after a failed test: leave no bisection behind
  });

  it('skips the commit that does not build (125) and still names the culprit', async () => {
    git('bisect', 'start', branch.d3!, commits[N]!);
    const t0 = Date.now();
    const r = await bisectRun(['--case', 'rp-filter-selftest']);
    const said = r.out.split('\n').filter((l) => /^bisect-run:|is the first bad commit|^Bisecting|^bisect /.test(l));
    console.log(`git bisect run over ${Object.keys(branch).length} commits: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${said.join('\n')}\nthe bisect log's marks:\n${marks().join('\n')}`);
    if (r.exitCode !== 0) console.error(r.out.slice(-6000));
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain(`${branch.culprit} is the first bad commit`);
    expect(git('rev-parse', 'refs/bisect/bad')).toBe(branch.culprit);
    const m = marks();
    expect(m).toContain(`git bisect skip ${branch.broken}`);
    expect(m).toContain(`git bisect bad ${branch.culprit}`);
    expect(m.filter((l) => l.includes(branch.broken!))).toEqual([`git bisect skip ${branch.broken}`]); // never good or bad
    expect(r.out).toMatch(/#error kernel-repro: this patch breaks the build/); // the compiler's own words, from the build log
    expect(r.out).toMatch(new RegExp(`bisect-run: ${branch.culprit!.slice(0, 12)}: reproduced: bad \\(exit 1\\)`));
    git('bisect', 'reset');
  });

  it('aborts, marking nothing, when the case needs a kconfig option no commit can enable (its dependencies are off)', async () => {
    const needy = path.join(work, 'needy.yaml');
    fs.writeFileSync(needy, fs.readFileSync(loadCase('rp-filter-selftest').file, 'utf8').replace('name: rp-filter-selftest', 'name: needy').replace('kconfig:\n', 'kconfig:\n  - CONFIG_NFT_FIB_INET\n'));
    // (an option the config merely lacks is merged in, as for any kernel built from source)
    // good = the repair, bad = d3: git tests the culprit first, a commit that builds
    git('bisect', 'start', branch.d3!, branch.repair!);
    const before = marks();
    const r = await bisectRun(['--case', needy]);
    expect(r.exitCode).not.toBe(0);
    expect(r.out).toMatch(/kernel bisect-run cannot enable CONFIG_NFT_FIB_INET, which case needy needs/);
    expect(r.out).toMatch(/bisect-run: this is not about the commit: stopping the bisection \(exit 202\)/);
    expect(r.out).toMatch(/bisect run failed:\s+exit code 202/); // git's own words: it aborted
    expect(marks()).toEqual(before);
    git('bisect', 'reset');
  });
});
