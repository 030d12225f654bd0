// The files of a matrix run: matrix.json, junit.xml, report.html and summary.md; reading a
// matrix.json back (merge, baseline) as a bounded input file.
import { readChannelText } from '../trust/channel.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { RunRecord } from '../observe/types.ts';
import { renderHtmlReport, type MatrixCell } from '../report/html.ts';
import { renderJUnit } from '../report/junit.ts';
import { renderMatrixMarkdown } from '../report/markdown.ts';
import { renderDiff, renderRunDetails, renderRunsTable } from '../report/table.ts';
import { HarnessError } from '../util/errors.ts';
import { readInputFile } from '../util/load.ts';
import { compareBaseline, compareKernels, type BaselineChange, type KernelChange } from './logic.ts';
import { parseAgentOutput, SECTION } from '../agent/protocol.ts';
import { diffRuns } from '../report/diff.ts';
import { renderDivergences } from '../report/divergence.ts';
import { kernelsOf, renderKernels } from '../report/kernels.ts';
import { cellFailed, checkMatrixResult, flipsOf, type MatrixResult } from './result.ts';

const EVIDENCE_LINES = 400;
/** A matrix.json keeps 400 console lines per cell: 64 MB is thousands of cells. */
export const MAX_RESULT_BYTES = 64 * 1024 * 1024;

export function readEvidence(r: RunRecord): { console: string; trace: string } {
  const lines = (f: string): string[] => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').replace(/\r/g, '').split('\n') : []);
  const con = lines(r.files.console);
  const results = readChannelText(r.files.results); // bounded: the guest wrote it
  const trace = (parseAgentOutput(results).sections[SECTION.trace] ?? '').split('\n').filter(Boolean);
  return { console: con.slice(-EVIDENCE_LINES).join('\n'), trace: trace.slice(0, EVIDENCE_LINES).join('\n') };
}

export function loadResult(file: string, forMerge: boolean): MatrixResult {
  let data: unknown;
  const text = readInputFile(file, MAX_RESULT_BYTES);
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new HarnessError('bad-input', `not valid JSON: ${(err as Error).message}`, { file, field: '(file)' });
  }
  return checkMatrixResult(data, file, forMerge);
}

/** Write matrix.json, junit.xml, report.html, report.txt and summary.md; return the text summary. */
export function writeReports(
  res: MatrixResult,
  dir: string,
  baseline?: MatrixResult,
  o: { color?: boolean } = {},
): { text: string; changes: BaselineChange[]; kernelChanges: KernelChange[] } {
  fs.mkdirSync(dir, { recursive: true });
  const runs = res.cells.map((c) => c.run);
  const kernels = kernelsOf(runs);
  const changes = baseline ? compareBaseline(baseline.cells, res.cells) : [];
  const kernelChanges = baseline ? compareKernels(baseline.cells, res.cells) : [];
  const { baseline: _old, ...rest } = res;
  const against = baseline ? { baseline: { runId: baseline.runId, changes, kernelChanges } } : {};
  fs.writeFileSync(path.join(dir, 'matrix.json'), JSON.stringify({ ...rest, kernels, ...against }, null, 2));
  const changedIn = new Map(kernelChanges.flatMap((k) => k.cells.map((id) => [id, k.change] as const)));
  const cells: MatrixCell[] = res.cells.map((c) => ({
    run: c.run,
    ...(c.expected ? { expected: c.expected } : {}),
    evidence: c.evidence,
    ...(changedIn.has(c.id) ? { kernelChange: changedIn.get(c.id)! } : {}),
  }));
  fs.writeFileSync(path.join(dir, 'junit.xml'), renderJUnit(cells, { name: `kernel-repro matrix ${res.matrix}`, timestamp: res.startedAt }));
  fs.writeFileSync(
    path.join(dir, 'report.html'),
    renderHtmlReport(cells, {
      title: `kernel-repro matrix ${res.matrix}`,
      runId: res.runId,
      startedAt: res.startedAt,
      accel: res.accel,
      kernels,
      ...(baseline ? { baseline: { runId: baseline.runId, kernelChanges } } : {}),
      ...(res.divergences ? { divergences: res.divergences } : {}),
    }),
  );
  fs.writeFileSync(path.join(dir, 'summary.md'), renderMatrixMarkdown(res, baseline ? { changes, baselineRunId: baseline.runId, kernelChanges } : {}));
  // report.txt as repro writes it: the kernels, the table, the diff with every counter, each run's evidence
  fs.writeFileSync(
    path.join(dir, 'report.txt'),
    [
      renderKernels(kernels),
      '',
      renderRunsTable(runs),
      '',
      renderDiff(diffRuns(runs), { allCounters: true }),
      ...(res.divergences ? ['', renderDivergences(res.divergences)] : []),
      ...runs.map((r) => '\n' + renderRunDetails(r)),
    ].join('\n') + '\n',
  );
  const flips = flipsOf(res);
  const lines = [renderKernels(kernels), '', renderRunsTable(runs, { color: o.color ?? false }), ''];
  lines.push(`accelerator: ${res.accel} (${res.accelReason})`);
  const failed = res.cells.filter(cellFailed);
  lines.push(`unexpected verdicts: ${failed.length}${failed.map((c) => `\n  ${c.id}: ${c.expected ? `expected ${c.expected}, got` : 'no expectation, got'} ${c.verdict} (${c.reason})`).join('')}`);
  lines.push(`flips (verdict differs between kernels): ${flips.length ? '' : 'none'}`);
  for (const f of flips) lines.push(`  ${f.case} [${f.variant}]: ${f.kernels.map((k) => `${k}=${f.verdicts[k]}`).join('  ')}`);
  if (baseline) {
    // a verdict that moved on the same kernel is a change in behaviour; on another kernel it may be the kernel's doing
    lines.push(`changes against the baseline ${baseline.runId}: ${changes.length ? '' : 'none'}`);
    for (const ch of changes) lines.push(`  ${ch.id}: ${ch.before} -> ${ch.after}${ch.kernelChanged ? '  (kernel changed)' : '  (same kernel)'}`);
    lines.push(`kernel changed since the baseline: ${kernelChanges.length ? '' : 'none'}`);
    for (const k of kernelChanges)
      lines.push(`  ${k.kernel}: ${k.change} (${k.cells.length} cell${k.cells.length === 1 ? '' : 's'}, ${k.verdictChanges} with another verdict)`);
  }
  if (res.divergences) lines.push('', renderDivergences(res.divergences));
  lines.push('', `reports: ${path.join(dir, 'report.html')}, report.txt, junit.xml, matrix.json, summary.md`);
  return { text: lines.join('\n'), changes, kernelChanges };
}
