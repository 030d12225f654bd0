// The Markdown summary of a matrix run (summary.md): what a CI job summary shows. Pure.
import type { BaselineChange, KernelChange } from '../matrix/logic.ts';
import { describeKernel, kernelsOf } from './kernels.ts';
import type { MatrixResult } from '../matrix/result.ts';
import { flipsOf } from '../matrix/result.ts';
import { judge } from './outcome.ts';

/** Text for a Markdown table cell or list item: no line breaks, pipes escaped. */
function md(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/\|/g, '\\|');
}

const code = (s: string): string => '`' + s.replace(/`/g, "'") + '`';

export function renderMatrixMarkdown(res: MatrixResult, o: { changes?: BaselineChange[]; baselineRunId?: string; kernelChanges?: KernelChange[] } = {}): string {
  const cells = res.cells;
  const judged = cells.map((c) => ({ c, j: judge(c.verdict, c.expected, c.reason) }));
  const failures = judged.filter((x) => x.j.kind === 'failure');
  const errors = judged.filter((x) => x.j.kind === 'error');
  const bad = failures.length + errors.length;
  const lines = [`## kernel-repro matrix ${code(res.matrix)}: ${cells.length} cells, ${bad === 0 ? 'all as expected' : `${bad} not as expected`}`, ''];
  if (res.shards?.length) {
    lines.push('| shard | kernels | accelerator | run |', '|---|---|---|---|');
    for (const s of res.shards) lines.push(`| ${s.index}/${s.of} | ${md(s.kernels.join(', '))} | **${md(s.accel)}** (${md(s.accelReason)}) | ${code(s.runId)} |`);
  } else lines.push(`accelerator: **${md(res.accel)}** (${md(res.accelReason)}); run ${code(res.runId)}`);
  lines.push('');
  // each kernel with the exact source it was built from: a verdict flip is told apart from a kernel update
  for (const k of kernelsOf(cells.map((c) => c.run))) lines.push(`- ${code(k.name)}: ${md(describeKernel(k))}`);
  lines.push('');

  // kernels x (case, variant) grid, in first-seen order
  const kernels = [...new Set(cells.map((c) => c.kernel))];
  const rows = [...new Set(cells.map((c) => `${c.case}\u0000${c.variant}`))];
  lines.push(`| case | variant | ${kernels.map(md).join(' | ')} |`, `|---|---|${kernels.map(() => '---|').join('')}`);
  for (const row of rows) {
    const [cs, variant] = row.split('\u0000') as [string, string];
    const marks = kernels.map((k) => {
      const x = judged.find((y) => y.c.kernel === k && y.c.case === cs && y.c.variant === variant);
      if (!x) return '';
      return x.j.kind === 'pass' ? md(x.c.verdict) : `**${md(x.c.verdict)}** ✗${x.c.expected ? ` (expected ${md(x.c.expected)})` : ''}`;
    });
    lines.push(`| ${md(cs)} | ${code(variant)} | ${marks.join(' | ')} |`);
  }
  lines.push('', `JUnit (junit.xml): ${cells.length} tests, ${failures.length} failures, ${errors.length} errors`);

  if (bad) {
    lines.push('', '### Not as expected');
    for (const { c, j } of [...failures, ...errors]) if (j.kind !== 'pass') lines.push(`- ${code(c.id)}: ${md(j.message)}${j.kind === 'failure' ? ` (${md(c.reason)})` : ''}`);
  }
  const flips = flipsOf(res);
  lines.push('', `### Flips (verdict differs between kernels): ${flips.length || 'none'}`);
  for (const f of flips) lines.push(`- ${md(f.case)} ${code(f.variant || 'as-is')}: ${f.kernels.map((k) => `${md(k)}=${md(f.verdicts[k] ?? '?')}`).join(', ')}`);
  if (o.changes) {
    lines.push('', `### Changes against the baseline ${code(o.baselineRunId ?? '?')}: ${o.changes.length || 'none'}`);
    for (const ch of o.changes) lines.push(`- ${code(ch.id)}: ${ch.before} -> ${ch.after}${ch.kernelChanged ? ` (kernel changed: ${md(ch.kernelChanged)})` : ' (same kernel)'}`);
    lines.push('', `### Kernel changed since the baseline: ${o.kernelChanges?.length || 'none'}`);
    for (const k of o.kernelChanges ?? []) lines.push(`- ${code(k.kernel)}: ${md(k.change)} (${k.cells.length} cells, ${k.verdictChanges} with another verdict)`);
  }
  return lines.join('\n') + '\n';
}
