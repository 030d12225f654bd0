// End to end: a git history built from Debian's linux-source-6.1 (first commit: the fix reverted;
// then 16 unrelated commits, one of which re-applies the fix). `npm run bisect` must name the
// commit that re-applies it, within ceil(log2(N)) + 2 kernel builds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const work = fileTempDir('kr-bisect-');
const repo = path.join(work, 'linux');
const patch = path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch');
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
    const snapDir = path.join(cacheRoot(), 'snapshots');
    const snapshots = (): string[] => (fs.existsSync(snapDir) ? fs.readdirSync(snapDir).filter((f) => /^[0-9a-f]{64}$/.test(f)) : []);
    const snapshotsBefore = snapshots();
    const r = await cli(['bisect', '--repo', repo, '--old', commits[0]!, '--new', commits[N]!, '--case', 'rp-filter-selftest', '--json', '--fresh']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-5000));
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { commit: string; subject: string; builds: number; steps: Array<{ commit: string; verdicts: string[] }>; oldVerdict: string; newVerdict: string };
    expect(out.oldVerdict).toBe('reproduced');
    expect(out.newVerdict).toBe('not-reproduced');
    expect(out.commit).toBe(commits[FIX_AT]);
    expect(out.subject).toBe('fib: relax source validation check for loopback packets');
    expect(out.builds).toBeLessThanOrEqual(Math.ceil(Math.log2(N)) + 2);
    expect(out.steps.length).toBeGreaterThanOrEqual(3);
    for (const s of out.steps) expect(s.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(r.stderr).toMatch(/first commit that gives "not-reproduced"/);
    // each kernel ran once: no booted-kernel snapshot was saved for it
    expect(snapshots()).toEqual(snapshotsBefore);
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
