// What a matrix run writes (matrix.json) and reads back (`report merge`, baselines), and the merge
// of shards. Pure: data in, data out.
import type { DivergenceEntry } from '../report/divergence.ts';
import type { RunRecord, Verdict } from '../observe/types.ts';
import { diffRuns } from '../report/diff.ts';
import { judge } from '../report/outcome.ts';
import { HarnessError } from '../util/errors.ts';
import type { BaselineChange, CellSpec, KernelChange, ShardPlan } from './logic.ts';
import { kernelsOf, type KernelEntry } from '../report/kernels.ts';

/** Version of the matrix.json layout (and of `matrix --json`); raised when a field changes meaning. */
export const MATRIX_SCHEMA_VERSION = 2;

export interface ShardInfo {
  index: number;
  of: number;
  kernels: string[];
  /** the whole plan, so that a merge can name a missing shard and its kernels */
  plan: ShardPlan[];
}

/** Where each shard of a merged result ran. */
export interface ShardRun {
  index: number;
  of: number;
  kernels: string[];
  runId: string;
  accel: string;
  accelReason: string;
  file: string;
}

export interface MatrixCellResult {
  id: string;
  kernel: string;
  case: string;
  variant: string;
  sysctls: Record<string, string>;
  verdict: Verdict;
  expected: Verdict | null;
  unexpected: boolean;
  reason: string;
  run: RunRecord;
  evidence: { console: string; trace: string };
}

export interface MatrixResult {
  schemaVersion: typeof MATRIX_SCHEMA_VERSION;
  tool: 'kernel-repro';
  kind: 'matrix';
  matrix: string;
  runId: string;
  startedAt: string;
  /** kvm or tcg; a merge of shards that ran on both: "kvm+tcg" */
  accel: string;
  accelReason: string;
  shard: ShardInfo | null;
  /** a merged result: the shards it was made of */
  shards?: ShardRun[];
  /** every kernel of the result, with its source version as resolved at run time */
  kernels?: KernelEntry[];
  /** when compared with a baseline: verdict changes (each saying whether its kernel changed) and the kernels that changed */
  baseline?: { runId: string; changes: BaselineChange[]; kernelChanges: KernelChange[] };
  /** --trace-path: where the kernels' packet paths split, per case and variant */
  divergences?: DivergenceEntry[];
  cells: MatrixCellResult[];
}

/** A cell's result: its spec, the run and the evidence kept with it. */
export function cellResult(c: CellSpec, run: RunRecord, evidence: MatrixCellResult['evidence']): MatrixCellResult {
  return {
    id: c.id,
    kernel: c.kernel,
    case: c.case,
    variant: c.variant,
    sysctls: run.sysctls,
    verdict: run.verdict,
    expected: c.expected ?? null,
    unexpected: c.expected !== undefined && c.expected !== run.verdict,
    reason: run.reason,
    run,
    evidence,
  };
}

/** A cell failed when its verdict is not the expected one, or (without an expectation) is error/timeout/panic. */
export function cellFailed(c: Pick<MatrixCellResult, 'verdict' | 'expected' | 'reason'>): boolean {
  return judge(c.verdict, c.expected, c.reason).kind !== 'pass';
}

/** Exit 1 territory: a cell failed, or (when asked) a verdict changed against the baseline. */
export function matrixFailed(res: MatrixResult, changes: BaselineChange[], failOnChange: boolean): boolean {
  return res.cells.some(cellFailed) || (failOnChange && changes.length > 0);
}

export function flipsOf(res: MatrixResult): Array<{ case: string; variant: string; kernels: string[]; verdicts: Record<string, Verdict> }> {
  return diffRuns(res.cells.map((c) => c.run))
    .filter((d) => d.flips)
    .map((d) => ({ case: d.case, variant: d.variant, kernels: d.kernels, verdicts: d.verdicts }));
}

/** What `matrix --json` and `report merge --json` print. */
export function matrixJson(res: MatrixResult, changes: BaselineChange[], kernelChanges: KernelChange[] = []): unknown {
  return {
    schemaVersion: MATRIX_SCHEMA_VERSION,
    matrix: res.matrix,
    runId: res.runId,
    accel: res.accel,
    accelReason: res.accelReason,
    shard: res.shard ? { index: res.shard.index, of: res.shard.of, kernels: res.shard.kernels } : null,
    kernels: kernelsOf(res.cells.map((c) => c.run)),
    cells: res.cells.map((c) => ({
      kernel: c.kernel,
      case: c.case,
      variant: c.variant,
      sysctls: c.sysctls,
      verdict: c.verdict,
      ...(c.expected ? { expected: c.expected } : {}),
      unexpected: c.unexpected,
      failed: cellFailed(c),
      signals: Object.fromEntries(c.run.signals.map((x) => [x.name, { role: x.role, fired: x.fired, count: x.count, evidence: x.matches.slice(0, 3).map((m) => m.text) }])),
      reason: c.reason,
    })),
    flips: flipsOf(res).map(({ case: c, variant, verdicts }) => ({ case: c, variant, verdicts })),
    unexpected: res.cells.filter((c) => c.unexpected).length,
    failed: res.cells.filter(cellFailed).length,
    changes,
    kernelChanges,
    ...(res.divergences ? { divergences: res.divergences } : {}),
  };
}

/**
 * Check what a matrix.json holds, enough to merge it or compare with it. `forMerge`: it must be
 * written by this version (a baseline only needs its cells' ids and verdicts).
 */
export function checkMatrixResult(data: unknown, file: string, forMerge: boolean): MatrixResult {
  const bad = (field: string, msg: string): never => {
    throw new HarnessError('bad-input', msg, { file, field });
  };
  const d = data as Partial<MatrixResult> | null;
  if (!d || typeof d !== 'object' || d.kind !== 'matrix') bad('kind', 'not a kernel-repro matrix.json');
  if (!Array.isArray(d!.cells)) bad('cells', 'missing: not a kernel-repro matrix.json');
  for (const [i, c] of d!.cells!.entries())
    if (!c || typeof c.id !== 'string' || typeof c.verdict !== 'string') bad(`cells[${i}]`, 'a cell without id or verdict');
  if (forMerge) {
    if (d!.schemaVersion === undefined) bad('schemaVersion', `missing: written by an older kernel-repro; run the matrix again to merge it`);
    if (d!.schemaVersion !== MATRIX_SCHEMA_VERSION) bad('schemaVersion', `is ${String(d!.schemaVersion)}; this kernel-repro reads version ${MATRIX_SCHEMA_VERSION}`);
  }
  return d as MatrixResult;
}

const shardName = (s: { index: number; of: number; kernels: string[] }): string => `shard ${s.index}/${s.of} (${s.kernels.join(', ')})`;

/**
 * Merge the shards of one matrix run into one result. Refuses (bad input, naming the files) a
 * missing shard, a shard given twice, shards of different matrices or plans, a shard whose cells
 * are not the ones its plan gives it, and a whole (unsharded) run among shards. One whole run
 * alone is returned as it is.
 */
export function mergeShards(parts: Array<{ file: string; result: MatrixResult }>): MatrixResult {
  if (parts.length === 0) throw new HarnessError('bad-input', 'no matrix.json given', { field: '<files>' });
  const whole = parts.find((p) => !p.result.shard);
  if (whole) {
    if (parts.length === 1) return whole.result;
    throw new HarnessError('bad-input', 'is a whole matrix run, not a shard: merge the shards of one run, or give this file alone', { file: whole.file, field: 'shard' });
  }
  const first = parts[0]!;
  const plan = first.result.shard!.plan;
  for (const p of parts) {
    if (p.result.matrix !== first.result.matrix)
      throw new HarnessError('bad-input', `is a shard of matrix "${p.result.matrix}", but ${first.file} is one of "${first.result.matrix}"`, { file: p.file, field: 'matrix' });
    if (JSON.stringify(p.result.shard!.plan) !== JSON.stringify(plan))
      throw new HarnessError('bad-input', `was planned as ${p.result.shard!.plan.map(shardName).join(', ')}, but ${first.file} as ${plan.map(shardName).join(', ')}`, {
        file: p.file,
        field: 'shard.plan',
      });
  }
  const seen = new Map<number, string>();
  for (const p of parts) {
    const s = p.result.shard!;
    const before = seen.get(s.index);
    if (before !== undefined) throw new HarnessError('bad-input', `${shardName(s)} is given twice: ${before} and ${p.file}`, { file: p.file, field: 'shard.index' });
    seen.set(s.index, p.file);
    const planned = plan[s.index - 1];
    const kernels = new Set(p.result.cells.map((c) => c.kernel));
    if (!planned || p.result.cells.length !== planned.cells || [...kernels].some((k) => !planned.kernels.includes(k)))
      throw new HarnessError('bad-input', `has ${p.result.cells.length} cells of ${[...kernels].join(', ') || 'no kernel'}; its plan gives ${planned ? shardName(planned) : `shard ${s.index}`} ${planned?.cells ?? 0} cells`, {
        file: p.file,
        field: 'cells',
      });
  }
  const missing = plan.filter((s) => !seen.has(s.index));
  if (missing.length)
    throw new HarnessError('bad-input', `${missing.map(shardName).join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing (given: ${[...seen.keys()].sort((a, b) => a - b).map((i) => `${i}/${plan.length}`).join(', ')})`, {
      field: '<files>',
      hint: 'a shard whose job failed before it wrote its matrix.json left its cells unknown: run that shard again',
    });
  const ordered = [...parts].sort((a, b) => a.result.shard!.index - b.result.shard!.index);
  const accels = [...new Set(ordered.map((p) => p.result.accel))];
  return {
    schemaVersion: MATRIX_SCHEMA_VERSION,
    tool: 'kernel-repro',
    kind: 'matrix',
    matrix: first.result.matrix,
    runId: `${ordered[0]!.result.runId}-merged`,
    startedAt: ordered.map((p) => p.result.startedAt).sort()[0]!,
    accel: accels.join('+'),
    accelReason: ordered.map((p) => `shard ${p.result.shard!.index}/${p.result.shard!.of}: ${p.result.accel} (${p.result.accelReason})`).join('; '),
    shard: null,
    shards: ordered.map((p) => ({
      index: p.result.shard!.index,
      of: p.result.shard!.of,
      kernels: p.result.shard!.kernels,
      runId: p.result.runId,
      accel: p.result.accel,
      accelReason: p.result.accelReason,
      file: p.file,
    })),
    cells: ordered.flatMap((p) => p.result.cells),
  };
}
