// Pure matrix logic: expand a matrix into cells, shard cells, compare with a baseline.
import type { KernelInfo, Verdict } from '../observe/types.ts';
import { identityChange } from '../report/kernels.ts';
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
  /** the run, for its kernel's identity (older results may lack parts of it) */
  run?: { kernelInfo?: KernelInfo };
}

export interface BaselineChange {
  id: string;
  before: Verdict | 'absent';
  after: Verdict | 'absent';
  /** the cell's kernel is not the baseline's kernel (a kernel update, not only a change in behaviour): how it changed */
  kernelChanged?: string;
}

/** A kernel whose identity (source and version, patches, config) differs from the baseline's. */
export interface KernelChange {
  kernel: string;
  /** what changed, in words ("source linux-source-6.1 6.1.176-1 -> linux-source-6.1 6.1.192-1; config ...") */
  change: string;
  /** the cells that ran on it, in both results */
  cells: string[];
  /** how many of those cells changed verdict */
  verdictChanges: number;
}

function kernelChangeOf(b: CellOutcome | undefined, a: CellOutcome): string | null {
  const bi = b?.run?.kernelInfo;
  const ai = a.run?.kernelInfo;
  return bi && ai ? identityChange(bi, ai) : null;
}

/** Verdict changes per cell; each says whether the cell's kernel changed too. */
export function compareBaseline(before: CellOutcome[], after: CellOutcome[]): BaselineChange[] {
  const b = new Map(before.map((c) => [c.id, c]));
  const a = new Map(after.map((c) => [c.id, c]));
  const out: BaselineChange[] = [];
  for (const [id, cell] of a) {
    const old = b.get(id);
    if (old?.verdict === cell.verdict) continue;
    const k = kernelChangeOf(old, cell);
    out.push({ id, before: old?.verdict ?? 'absent', after: cell.verdict, ...(k ? { kernelChanged: k } : {}) });
  }
  for (const [id, cell] of b) if (!a.has(id)) out.push({ id, before: cell.verdict, after: 'absent' });
  return out;
}

/** The kernels whose identity changed since the baseline, one entry per kernel and change, whatever the verdicts did. */
export function compareKernels(before: CellOutcome[], after: CellOutcome[]): KernelChange[] {
  const b = new Map(before.map((c) => [c.id, c]));
  const byKey = new Map<string, KernelChange>();
  for (const cell of after) {
    const old = b.get(cell.id);
    const change = kernelChangeOf(old, cell);
    if (!change) continue;
    const key = JSON.stringify([cell.kernel, change]);
    let k = byKey.get(key);
    if (!k) {
      k = { kernel: cell.kernel, change, cells: [], verdictChanges: 0 };
      byKey.set(key, k);
    }
    k.cells.push(cell.id);
    if (old && old.verdict !== cell.verdict) k.verdictChanges++;
  }
  return [...byKey.values()];
}
