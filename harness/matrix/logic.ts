// Pure matrix logic: expand a matrix into cells, shard cells, compare with a baseline.
import type { KernelInfo, Verdict } from '../observe/types.ts';
import { identityChange } from '../report/kernels.ts';
import { HarnessError } from '../util/errors.ts';
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

/**
 * The matrix with every kernel and case named by its definition's name instead of the reference
 * the file gives (a built-in name or a path): cells, their ids and their results folders carry
 * names, as with kernels and cases given by name. `variants[].cases`, `variants[].kernels` and `variants[].expect` may
 * use either the reference or the name. A name given twice collapses to one.
 */
export function byDefinitionName(m: MatrixDef, kernelName: (ref: string) => string, caseName: (ref: string) => string, file?: string): MatrixDef {
  const uniq = (xs: string[]): string[] => [...new Set(xs)];
  const kernelOf = (k: string): string => (m.kernels.includes(k) ? kernelName(k) : k);
  const caseOf = (c: string): string => (m.cases.includes(c) ? caseName(c) : c);
  const kernels = new Set(m.kernels.map(kernelName));
  const cases = new Set(m.cases.map(caseName));
  // a name in a variant must be the reference or the name of one of the matrix's definitions
  m.variants.forEach((v, i) => {
    const bad = (field: string, what: string, x: string): never => {
      throw new HarnessError('bad-input', `${what} "${x}" is not in the matrix's ${what}s (by reference or by its definition's name)`, { ...(file ? { file } : {}), field });
    };
    (v.cases ?? []).forEach((c, j) => cases.has(caseOf(c)) || bad(`variants[${i}].cases[${j}]`, 'case', c));
    (v.kernels ?? []).forEach((k, j) => kernels.has(kernelOf(k)) || bad(`variants[${i}].kernels[${j}]`, 'kernel', k));
    if (v.expect && typeof v.expect === 'object') for (const k of Object.keys(v.expect)) if (!kernels.has(kernelOf(k))) bad(`variants[${i}].expect.${k}`, 'kernel', k);
  });
  return {
    ...m,
    kernels: uniq(m.kernels.map(kernelName)),
    cases: uniq(m.cases.map(caseName)),
    variants: m.variants.map((v) => ({
      ...v,
      ...(v.cases ? { cases: uniq(v.cases.map(caseOf)) } : {}),
      ...(v.kernels ? { kernels: uniq(v.kernels.map(kernelOf)) } : {}),
      ...(v.expect !== undefined ? { expect: typeof v.expect === 'string' ? v.expect : Object.fromEntries(Object.entries(v.expect).map(([k, e]) => [kernelOf(k), e])) } : {}),
    })),
  };
}

export function expandMatrix(m: MatrixDef): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const kernel of m.kernels)
    for (const c of m.cases)
      for (const v of m.variants) {
        if (v.cases && !v.cases.includes(c)) continue;
        if (v.kernels && !v.kernels.includes(kernel)) continue;
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

/**
 * The cells a re-run asks for: each pattern is a cell id "kernel|case|variant" in which any part
 * may be "*" (e.g. "*|rp-filter-selftest|all.rp_filter=1": that cell on every kernel).
 */
export function selectCells(cells: CellSpec[], patterns: string[]): CellSpec[] {
  const match = (id: string, p: string): boolean => {
    const a = id.split('|');
    const b = p.split('|');
    return a.length === b.length && b.every((x, i) => x === '*' || x === a[i]);
  };
  return cells.filter((c) => patterns.some((p) => match(c.id, p)));
}

/** One shard of a matrix run: whole kernels, so a shard builds only its own kernels. */
export interface ShardPlan {
  index: number;
  of: number;
  kernels: string[];
  /** how many cells the shard runs */
  cells: number;
}

/**
 * Split the cells into `of` shards by kernel: each kernel in exactly one shard, shards balanced by
 * cell count (the kernel with the most cells goes first, to the shard with the fewest so far; ties
 * to the lower index), kernels in matrix order within a shard. Deterministic. More shards than
 * kernels is an error (a shard would be empty).
 */
export function planShards(cells: CellSpec[], of: number): ShardPlan[] {
  const kernels = [...new Set(cells.map((c) => c.kernel))];
  if (!Number.isInteger(of) || of < 1) throw new HarnessError('bad-input', `must be a whole number of shards, got ${of}`, { field: '--shard' });
  if (of > kernels.length)
    throw new HarnessError('bad-input', `${of} shards, but the matrix has ${kernels.length} kernel${kernels.length === 1 ? '' : 's'} (${kernels.join(', ')}): a shard holds whole kernels`, {
      field: '--shard',
    });
  const count = new Map(kernels.map((k) => [k, cells.filter((c) => c.kernel === k).length]));
  const order = [...kernels].sort((a, b) => count.get(b)! - count.get(a)! || kernels.indexOf(a) - kernels.indexOf(b));
  const plan: ShardPlan[] = Array.from({ length: of }, (_, i) => ({ index: i + 1, of, kernels: [], cells: 0 }));
  for (const k of order) {
    // the lightest shard (an empty one first: every kernel has a cell), ties to the lower index
    const target = plan.reduce((best, s) => (s.cells < best.cells ? s : best));
    target.kernels.push(k);
    target.cells += count.get(k)!;
  }
  for (const s of plan) s.kernels.sort((a, b) => kernels.indexOf(a) - kernels.indexOf(b));
  return plan;
}

/** The cells of shard `index` of `of` (1-based): the cells of its kernels. */
export function shardCells(cells: CellSpec[], index: number, of: number): CellSpec[] {
  const plan = planShards(cells, of);
  const shard = plan[index - 1];
  if (!Number.isInteger(index) || !shard) throw new HarnessError('bad-input', `shard ${index}/${of} does not exist`, { field: '--shard' });
  return cells.filter((c) => shard.kernels.includes(c.kernel));
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
