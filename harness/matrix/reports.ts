// The files of a matrix run: matrix.json, junit.xml, report.html and summary.md; reading a
// matrix.json back (merge, baseline) as a bounded input file.
import fs from 'node:fs';
import path from 'node:path';
import type { RunRecord } from '../observe/types.ts';
import { renderHtmlReport, type MatrixCell } from '../report/html.ts';
import { renderJUnit } from '../report/junit.ts';
import { renderMatrixMarkdown } from '../report/markdown.ts';
import { renderRunsTable } from '../report/table.ts';
import { HarnessError } from '../util/errors.ts';
import { readInputFile } from '../util/load.ts';
import { compareBaseline, type BaselineChange } from './logic.ts';
import { cellFailed, checkMatrixResult, flipsOf, type MatrixResult } from './result.ts';

const EVIDENCE_LINES = 400;
/** A matrix.json keeps 400 console lines per cell: 64 MB is thousands of cells. */
export const MAX_RESULT_BYTES = 64 * 1024 * 1024;

export function readEvidence(r: RunRecord): { console: string; trace: string } {
  const lines = (f: string): string[] => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').replace(/\r/g, '').split('\n') : []);
  const con = lines(r.files.console);
  const res = lines(r.files.results);
  const s = res.indexOf('@@KR begin trace');
  const e = res.indexOf('@@KR end trace');
  const trace = s >= 0 ? res.slice(s + 1, e > s ? e : undefined) : [];
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

/** Write matrix.json, junit.xml, report.html and summary.md; return the text summary. */
export function writeReports(res: MatrixResult, dir: string, baseline?: MatrixResult, o: { color?: boolean } = {}): { text: string; changes: BaselineChange[] } {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'matrix.json'), JSON.stringify(res, null, 2));
  const cells: MatrixCell[] = res.cells.map((c) => ({ run: c.run, ...(c.expected ? { expected: c.expected } : {}), evidence: c.evidence }));
  fs.writeFileSync(path.join(dir, 'junit.xml'), renderJUnit(cells, { name: `kernel-repro matrix ${res.matrix}`, timestamp: res.startedAt }));
  fs.writeFileSync(path.join(dir, 'report.html'), renderHtmlReport(cells, { title: `kernel-repro matrix ${res.matrix}`, runId: res.runId, startedAt: res.startedAt, accel: res.accel }));
  const changes = baseline ? compareBaseline(baseline.cells, res.cells) : [];
  fs.writeFileSync(path.join(dir, 'summary.md'), renderMatrixMarkdown(res, baseline ? { changes, baselineRunId: baseline.runId } : {}));
  const flips = flipsOf(res);
  const lines = [renderRunsTable(res.cells.map((c) => c.run), { color: o.color ?? false }), ''];
  lines.push(`accelerator: ${res.accel} (${res.accelReason})`);
  const failed = res.cells.filter(cellFailed);
  lines.push(`unexpected verdicts: ${failed.length}${failed.map((c) => `\n  ${c.id}: ${c.expected ? `expected ${c.expected}, got` : 'no expectation, got'} ${c.verdict} (${c.reason})`).join('')}`);
  lines.push(`flips (verdict differs between kernels): ${flips.length ? '' : 'none'}`);
  for (const f of flips) lines.push(`  ${f.case} [${f.variant}]: ${f.kernels.map((k) => `${k}=${f.verdicts[k]}`).join('  ')}`);
  if (baseline) {
    lines.push(`changes against the baseline ${baseline.runId}: ${changes.length ? '' : 'none'}`);
    for (const ch of changes) lines.push(`  ${ch.id}: ${ch.before} -> ${ch.after}`);
  }
  lines.push('', `reports: ${path.join(dir, 'report.html')}, junit.xml, matrix.json, summary.md`);
  return { text: lines.join('\n'), changes };
}
