// Pure matrix logic: expand a matrix into cells, shard cells, compare with a baseline.
import type { Verdict } from '../observe/types.ts';
import { parseSysctlSpec, type MatrixDef } from './schema.ts';

export interface CellSpec {
  /** stable id: kernel|case|variant */
  id: string;
  index: number;
  kernel: string;
  case: string;
  variant: string;
  sysctls: Array<{ ns: string; key: string; value: string }>;
  expected?: Verdict;
}

export function expandMatrix(m: MatrixDef): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const kernel of m.kernels)
    for (const c of m.cases)
      for (const v of m.variants) {
        if (v.cases && !v.cases.includes(c)) continue;
        const expected = typeof v.expect === 'string' ? v.expect : v.expect?.[kernel];
        cells.push({
          id: `${kernel}|${c}|${v.name}`,
          index: cells.length,
          kernel,
          case: c,
          variant: v.name,
          sysctls: v.sysctls.map(parseSysctlSpec),
          ...(expected ? { expected } : {}),
        });
      }
  return cells;
}

/** Shard i of n (1-based): every n-th cell, so shards get a mix of kernels and cases. */
export function shardCells(cells: CellSpec[], shard: number, of: number): CellSpec[] {
  if (!Number.isInteger(of) || of < 1 || !Number.isInteger(shard) || shard < 1 || shard > of) throw new Error(`bad shard ${shard}/${of}`);
  return cells.filter((c) => c.index % of === shard - 1);
}

export interface CellOutcome {
  id: string;
  kernel: string;
  case: string;
  variant: string;
  verdict: Verdict;
}

export interface BaselineChange {
  id: string;
  before: Verdict | 'absent';
  after: Verdict | 'absent';
}

export function compareBaseline(before: CellOutcome[], after: CellOutcome[]): BaselineChange[] {
  const b = new Map(before.map((c) => [c.id, c.verdict]));
  const a = new Map(after.map((c) => [c.id, c.verdict]));
  const out: BaselineChange[] = [];
  for (const [id, v] of a) if (b.get(id) !== v) out.push({ id, before: b.get(id) ?? 'absent', after: v });
  for (const [id, v] of b) if (!a.has(id)) out.push({ id, before: v, after: 'absent' });
  return out;
}
