// End to end: --trace-path on real kernels. The tracing variants of 6.1-vanilla and 6.1-fixed
// (built through the shared cache beside the plain ones) record the signature probe's path; the
// report must name __fib_validate_source (or its caller fib_validate_source), -EXDEV on vanilla, a
// non-negative return on fixed, and the IP_RPFILTER drop in ip_rcv_finish_core, for both built-in
// cases. A comment-only patch on 6.1-fixed must show no divergence. A matrix cell re-run and a
// bisect's culprit report carry the same section.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

interface Side {
  kernel: string;
  ret: number | string | null;
  retText: string | null;
  next: string | null;
  drop: { reason: string; at: string | null } | null;
}
interface Entry {
  case: string;
  before: string;
  after: string;
  passes: number;
  probed: number;
  note: string;
  /** the results files of the runs compared (the second pass's when there was one) */
  files: { before: string; after: string };
  divergence: null | { function: string; via: string[]; how: string; before: Side; after: Side; drop: { reason: string; at: string | null; kernel: string } | null };
}

const FUNCTION = /^(__)?fib_validate_source$/;

/** The divergence the issue asks for: __fib_validate_source (or its caller), -EXDEV before, >= 0 after, IP_RPFILTER in ip_rcv_finish_core before. */
function expectTheSplit(e: Entry, before: string, after: string): void {
  expect(e.before).toBe(before);
  expect(e.after).toBe(after);
  const d = e.divergence;
  expect(d, e.note).not.toBeNull();
  expect(d!.function).toMatch(FUNCTION);
  expect(d!.how).toBe('return');
  expect(d!.before.ret).toBe(-18);
  expect(d!.before.retText).toBe('-18 (-EXDEV)');
  expect(typeof d!.after.ret === 'number' && d!.after.ret >= 0).toBe(true);
  expect(d!.drop).toMatchObject({ reason: 'IP_RPFILTER', kernel: before });
  expect(d!.drop!.at).toMatch(/^ip_rcv_finish_core(\.|$)/);
  expect(e.passes).toBe(2);
  expect(e.probed).toBeGreaterThan(0);
}

describe('--trace-path', () => {
  it('repro: both cases split at __fib_validate_source, -EXDEV on 6.1-vanilla, then the IP_RPFILTER drop', async () => {
    const r = await cli(['repro', '--trace-path', '--json']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(r.stdout) as {
      kernels: Array<{ name: string; release: string; traceConfig?: string[] }>;
      runs: Array<{ kernel: string; case: string; verdict: string; path?: { calls: number; units: number; lost: number; truncated: number }; files: { results: string } }>;
      divergences: Entry[];
    };
    expect(s.runs.map((x) => `${x.kernel} ${x.case} ${x.verdict}`).sort()).toEqual([
      '6.1-fixed rp-filter-mesos not-reproduced',
      '6.1-fixed rp-filter-selftest not-reproduced',
      '6.1-vanilla rp-filter-mesos reproduced',
      '6.1-vanilla rp-filter-selftest reproduced',
    ]);
    // the kernels are the tracing variants, and say so
    for (const k of s.kernels) expect(k.traceConfig).toEqual(expect.arrayContaining(['CONFIG_FUNCTION_GRAPH_TRACER', 'CONFIG_KPROBE_EVENTS']));
    for (const run of s.runs) {
      expect(run.path!.calls).toBeGreaterThan(50);
      expect(run.path!.units).toBeGreaterThan(0);
      expect(run.path!.lost).toBe(0);
      expect(run.path!.truncated).toBe(0);
      // what the kernel printed: the agent's path section holds the graph of the signature probe
      expect(fs.readFileSync(run.files.results, 'utf8')).toMatch(/@@KR begin path\r?\n@ \d+ \S+\r?\n/);
    }
    expect(s.divergences.map((d) => d.case).sort()).toEqual(['rp-filter-mesos', 'rp-filter-selftest']);
    for (const e of s.divergences) expectTheSplit(e, '6.1-vanilla', '6.1-fixed');
    // the second pass's kretprobe recorded the value in the guest: the raw line is in its results
    const second = fs.readFileSync(s.divergences[0]!.files.before, 'utf8');
    expect(second).toMatch(/# kr\d+: \(\S+ <- (__)?fib_validate_source\) ret=0xf+ee\b/);
    const report = fs.readFileSync(path.join(path.dirname(s.runs[0]!.files.results), '..', 'report.txt'), 'utf8');
    expect(report).toMatch(/== divergence: rp-filter-selftest: 6\.1-vanilla vs 6\.1-fixed ==/);
    expect(report).toMatch(/6\.1-vanilla: (__)?fib_validate_source returned -18 \(-EXDEV\)/);
    expect(report).toMatch(/drop: IP_RPFILTER in ip_rcv_finish_core\S* on 6\.1-vanilla/);
    expect(r.stderr).toContain('== divergence: rp-filter-mesos: 6.1-vanilla vs 6.1-fixed ==');
  });

  it('verify: a comment-only patch on 6.1-fixed shows no divergence', async () => {
    const patch = path.join(repoRoot, 'test/fixtures/comment-only.patch');
    const r = await cli(['verify', '--patch', patch, '--kernel', '6.1-fixed', '--repeat', '1', '--trace-path', '--json']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout) as { cases: Array<{ case: string; conclusion: string; divergence?: Entry }> };
    expect(j.cases).toHaveLength(2);
    for (const c of j.cases) {
      expect(c.conclusion).toBe('unchanged');
      expect(c.divergence, c.case).toBeDefined();
      expect(c.divergence!.divergence, `${c.case}: ${c.divergence!.note}`).toBeNull();
      expect(c.divergence!.note).toMatch(/^(the same path on both kernels|no split seen in both passes): /);
      expect(c.divergence!.after).toBe('6.1-fixed+comment-only');
    }
    expect(r.stderr).toMatch(/#### Divergence: none \(6\.1-fixed vs 6\.1-fixed\+comment-only\)/);
  });

  it('a matrix cell re-run: the flip of rp-filter-mesos under all.rp_filter=1, traced', async () => {
    const r = await cli(['matrix', '--cell', '*|rp-filter-mesos|all.rp_filter=1', '--trace-path', '--json']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout) as { cells: Array<{ kernel: string; verdict: string }>; divergences: Entry[] };
    expect(j.cells.map((c) => `${c.kernel} ${c.verdict}`)).toEqual(['6.1-vanilla reproduced', '6.1-fixed not-reproduced']);
    expect(j.divergences).toHaveLength(1);
    expectTheSplit(j.divergences[0]!, '6.1-vanilla', '6.1-fixed');
    const html = /reports: (\S+report\.html)/.exec(r.stderr)?.[1];
    expect(fs.readFileSync(html!, 'utf8')).toMatch(/<section id="divergence">[\s\S]*<code>(__)?fib_validate_source<\/code>/);
    const bad = await cli(['matrix', '--cell', '*|no-such-case|*', '--trace-path']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--cell: no cell of default matches \*\|no-such-case\|\*/);
  });
});

describe('bisect --trace-path', () => {
  const work = fileTempDir('kr-bisect-trace-');
  const repo = path.join(work, 'linux');
  const fix = path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch');
  const commits: string[] = [];
  const git = (...args: string[]): string =>
    execFileSync('git', ['-C', repo, '-c', 'gc.auto=0', '-c', 'user.name=kernel-repro test', '-c', 'user.email=test@kernel-repro.invalid', ...args], { maxBuffer: 64 * 1024 * 1024 })
      .toString()
      .trim();

  beforeAll(() => {
    // four commits: the fix reverted, a documentation change, the fix, another documentation change
    fs.mkdirSync(repo);
    execFileSync('tar', ['-xf', '/usr/src/linux-source-6.1.tar.xz', '-C', repo, '--strip-components=1']);
    execFileSync('patch', ['-d', repo, '-p1', '-R', '-s', '-i', fix]);
    git('init', '-q');
    git('add', '-f', '-A');
    git('commit', '-q', '-m', 'base: linux-source-6.1 with 66f8209547cc reverted');
    commits.push(git('rev-parse', 'HEAD'));
    const doc = (n: number): void => {
      fs.appendFileSync(path.join(repo, 'Documentation/networking/ip-sysctl.rst'), `\n.. unrelated documentation change ${n}\n`);
      git('commit', '-q', '-a', '-m', `docs: unrelated change ${n}`);
      commits.push(git('rev-parse', 'HEAD'));
    };
    doc(1);
    execFileSync('patch', ['-d', repo, '-p1', '-s', '-i', fix]);
    git('commit', '-q', '-a', '-m', 'fib: relax source validation check for loopback packets');
    commits.push(git('rev-parse', 'HEAD'));
    doc(3);
  }, 20 * 60_000);

  // the bisect worktree goes with its repository
  afterAll(async () => {
    fs.rmSync(work, { recursive: true, force: true, maxRetries: 5 });
    await cli(['cache', 'gc', '--older-than', '36500d', '--json']);
  });

  it("the culprit's report compares its path with its parent's", async () => {
    const r = await cli(['bisect', '--repo', repo, '--old', commits[0]!, '--new', commits[3]!, '--case', 'rp-filter-selftest', '--trace-path', '--json', '--fresh']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-5000));
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout) as { commit: string; divergence: Entry };
    expect(j.commit).toBe(commits[2]);
    // the parent (the documentation change) drops, the culprit (the fix) delivers
    expectTheSplit(j.divergence, `bisect-${commits[1]!.slice(0, 12)}`, `bisect-${commits[2]!.slice(0, 12)}`);
    expect(r.stderr).toMatch(/the culprit against its parent \(--trace-path\):\n== divergence: rp-filter-selftest: bisect-\w+ vs bisect-\w+ ==/);
  });
});
