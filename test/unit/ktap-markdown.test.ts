import { describe, expect, it } from 'vitest';
import { renderMatrixMarkdown } from '../../harness/report/markdown.ts';
import { matrixKtap, renderKtap, reproKtap } from '../../harness/report/ktap.ts';
import { matrixResult, runRecord, SMALL_MATRIX } from './records.ts';

/** The lines KTAP v1 allows at the top level, per Documentation/dev-tools/ktap.rst (no nesting here). */
function checkKtap(text: string): { plan: number; results: Array<{ ok: boolean; n: number; name: string; rest: string }> } {
  const lines = text.trimEnd().split('\n');
  expect(lines[0]).toBe('KTAP version 1');
  const planLine = lines.find((l) => /^1\.\.\d+$/.test(l));
  expect(planLine).toBeDefined();
  const results: Array<{ ok: boolean; n: number; name: string; rest: string }> = [];
  for (const l of lines.slice(1)) {
    if (l === planLine || l.startsWith('# ')) continue;
    const m = /^(ok|not ok) (\d+) ([^#]+?)(?: # (.*))?$/.exec(l);
    expect(m, `not a KTAP line: ${JSON.stringify(l)}`).not.toBeNull();
    results.push({ ok: m![1] === 'ok', n: Number(m![2]), name: m![3]!, rest: m![4] ?? '' });
  }
  results.forEach((r, i) => expect(r.n).toBe(i + 1));
  const plan = Number(planLine!.slice(3));
  expect(results).toHaveLength(plan);
  return { plan, results };
}

describe('KTAP', () => {
  it('renders version, header, plan, notes and results; descriptions lose "#" and line breaks', () => {
    const text = renderKtap(
      [
        { name: 'a', ok: true },
        { name: 'b # tricky\nname', ok: false, directive: 'TIMEOUT', diagnostic: 'after\n60 s', notes: ['line one\r\n', 'two\x1b[31m red\x1b[0m'] },
        { name: 'c', ok: true, directive: 'SKIP', diagnostic: 'no kvm' },
      ],
      ['kernel-repro test'],
    );
    expect(text).toBe(['KTAP version 1', '# kernel-repro test', '1..3', 'ok 1 a', '# line one', '# two red', 'not ok 2 b _ tricky name # TIMEOUT after 60 s', 'ok 3 c # SKIP no kvm', ''].join('\n'));
    checkKtap(text);
  });

  it('repro: ok for a verdict about the bug, not ok with ERROR/TIMEOUT otherwise; the signals that fired as notes', () => {
    const runs = [runRecord('6.1-vanilla', 'c', 'reproduced'), runRecord('6.1-fixed', 'c', 'not-reproduced'), runRecord('k', 'c', 'timeout'), runRecord('k', 'd', 'panic', { 'host:net.ipv4.conf.all.rp_filter': '1' })];
    const text = reproKtap(runs, ['kernel-repro repro']);
    const { results } = checkKtap(text);
    expect(results.map((r) => `${r.ok ? 'ok' : 'not ok'} ${r.name} # ${r.rest}`)).toEqual([
      'ok 6.1-vanilla/c # reproduced',
      'ok 6.1-fixed/c # not-reproduced',
      'not ok k/c # TIMEOUT the guest ended in timeout',
      'not ok k/d/host:net.ipv4.conf.all.rp_filter=1 # ERROR the guest ended in panic',
    ]);
    expect(text).toContain('# signal martian (signature) x1: martian source 10.53.180.130 from 10.53.180.130, on dev lo\nok 1 6.1-vanilla/c');
  });

  it('matrix: a cell is ok when it meets its expectation', () => {
    const res = matrixResult(SMALL_MATRIX, { verdictOf: (c) => (c.kernel === 'k-a' && c.variant === 'rp0' ? 'reproduced' : (c.expected ?? 'error')) });
    const { results } = checkKtap(matrixKtap(res.cells, ['m']));
    expect(results.filter((r) => !r.ok).map((r) => `${r.name} # ${r.rest}`)).toEqual(['k-a/case-x/rp0 # expected not-reproduced, got reproduced', 'k-c/case-x/rp1 # ERROR the guest ended in error']);
    expect(results).toHaveLength(6);
  });
});

describe('the Markdown summary of a matrix run', () => {
  it('a whole run: accelerator, grid of verdicts, JUnit totals, flips', () => {
    const md = renderMatrixMarkdown(matrixResult(SMALL_MATRIX));
    expect(md).toContain('## kernel-repro matrix `small`: 6 cells, all as expected');
    expect(md).toContain('accelerator: **tcg** (no /dev/kvm); run `run-whole`');
    expect(md).toContain('| case | variant | k-a | k-b | k-c |');
    expect(md).toContain('| case-x | `rp1` | reproduced | not-reproduced | not-reproduced |');
    expect(md).toContain('JUnit (junit.xml): 6 tests, 0 failures, 0 errors');
    expect(md).toContain('### Flips (verdict differs between kernels): 1');
    expect(md).not.toContain('### Not as expected');
  });
  it('marks failed cells, lists them, and the changes against a baseline; pipes are escaped', () => {
    const res = matrixResult(SMALL_MATRIX, { verdictOf: (c) => (c.kernel === 'k-b' && c.variant === 'rp1' ? 'reproduced' : (c.expected ?? 'not-reproduced')) });
    res.cells[2]!.reason = 'a | b';
    const md = renderMatrixMarkdown(res, { changes: [{ id: 'k-b|case-x|rp1', before: 'not-reproduced', after: 'reproduced' }], baselineRunId: 'old-run' });
    expect(md).toContain('6 cells, 1 not as expected');
    expect(md).toContain('| case-x | `rp1` | reproduced | **reproduced** ✗ (expected not-reproduced) | not-reproduced |');
    expect(md).toContain('- `k-b|case-x|rp1`: expected not-reproduced, got reproduced (a \\| b)');
    expect(md).toContain('### Changes against the baseline `old-run`: 1\n- `k-b|case-x|rp1`: not-reproduced -> reproduced');
  });
});
