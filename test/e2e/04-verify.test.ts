// End to end: patch verification on 6.1-vanilla with the forward fix (fixed), a comment-only
// patch (unchanged) and a patch that does not apply (clear error with the rejected hunk).
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { VERIFY_SCHEMA_VERSION } from '../../harness/verify/logic.ts';

const fix = path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch');
const commentOnly = path.join(repoRoot, 'test/fixtures/comment-only.patch');
const broken = path.join(repoRoot, 'test/fixtures/does-not-apply.patch');
const N = 2;

interface VerifyJson {
  schemaVersion: number;
  patch: { subject: string };
  cases: Array<{ case: string; before: { reproduced: number; runs: number }; after: { reproduced: number; runs: number }; conclusion: string }>;
}

describe('npm run verify', () => {
  it('the forward fix on 6.1-vanilla: fixed for both cases, N/N before and 0/N after', async () => {
    const r = await cli(['verify', '--patch', fix, '--kernel', '6.1-vanilla', '--repeat', String(N), '--json']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout) as VerifyJson;
    expect(j.schemaVersion).toBe(VERIFY_SCHEMA_VERSION);
    expect(j.patch.subject).toBe('fib: relax source validation check for loopback packets');
    expect(j.cases.map((c) => c.case).sort()).toEqual(['rp-filter-mesos', 'rp-filter-selftest']);
    for (const c of j.cases) {
      expect(c.before).toMatchObject({ reproduced: N, runs: N });
      expect(c.after).toMatchObject({ reproduced: 0, runs: N });
      expect(c.conclusion).toBe('fixed');
    }
    expect(r.stderr).toMatch(/\| rp-filter-mesos \| 2\/2 \| 0\/2 \| \*\*fixed\*\* \|/);
    expect(r.stderr).toContain('martian source 10.53.180.130 from 10.53.180.130, on dev lo');
  });

  it('a comment-only patch: unchanged for both cases', async () => {
    const r = await cli(['verify', '--patch', commentOnly, '--kernel', '6.1-vanilla', '--repeat', String(N), '--json']);
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout) as VerifyJson;
    for (const c of j.cases) {
      expect(c.before.reproduced).toBe(N);
      expect(c.after.reproduced).toBe(N);
      expect(c.conclusion).toBe('unchanged');
    }
  });

  it('a patch that does not apply: exit 4 and the rejected hunk is shown', async () => {
    const r = await cli(['verify', '--patch', broken, '-k', '6.1-vanilla', '--repeat', '1', '--case', 'rp-filter-selftest']);
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toMatch(/build failed.*does-not-apply\.patch does not apply/);
    expect(r.stdout).toMatch(/Hunk #1 FAILED at 4/);
    expect(r.stdout).toMatch(/rejected hunks/);
    expect(r.stdout).toContain("THIS LINE IS NOT IN THE TREE");
  });
});
