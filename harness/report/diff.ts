// Compare runs of the same case (and sysctl variant) across kernels. Pure: no I/O.

import type { RunRecord, Verdict } from '../observe/types.ts';
import type { SignalRole } from '../observe/signals/types.ts';

export type ProbeOutcome = 'pass' | 'fail' | 'skip' | 'xfail' | 'n/a';

export interface ProbeDiffRow {
  probe: string;
  /** kernel -> outcome; 'n/a' when that kernel's run has no probe of this name */
  results: Record<string, ProbeOutcome>;
  differs: boolean;
}

export interface CounterDiffRow {
  /** counter name as recorded; delta rows are prefixed with "Δ " */
  name: string;
  /** kernel -> value. Delta rows hold every kernel (missing = 0); absolute rows omit kernels
   * whose run did not record the counter. */
  values: Record<string, number>;
  differs: boolean;
  /** a counter the case names (shown by default); others moved as a side effect */
  named: boolean;
}

export interface CaseDiff {
  case: string;
  /** sysctls rendered as sorted "k=v" joined by ","; "" when none */
  variant: string;
  /** kernel labels in first-seen order. A kernel that ran the same case/variant more than
   * once gets labels "name", "name#2", ... so no run is dropped. */
  kernels: string[];
  verdicts: Record<string, Verdict>;
  /** the verdicts of the kernels in this group are not all equal */
  flips: boolean;
  probes: ProbeDiffRow[];
  /** the case's signals: what each kernel showed */
  signals: SignalDiffRow[];
  counters: CounterDiffRow[];
}

export interface SignalDiffRow {
  name: string;
  role: SignalRole;
  description: string;
  /** kernel -> how many times it fired (0 when it did not) */
  counts: Record<string, number>;
  /** kernel -> fired */
  fired: Record<string, boolean>;
  /** kernel -> its distinct evidence lines, " (xN)" when a line came N > 1 times */
  evidence: Record<string, string[]>;
  differs: boolean;
}

export const DELTA_PREFIX = 'Δ ';

/** sysctls as sorted "k=v" joined by ","; "" when there are none. */
export function variantOf(sysctls: Record<string, string>): string {
  return Object.keys(sysctls)
    .sort()
    .map((k) => `${k}=${sysctls[k] ?? ''}`)
    .join(',');
}

/** Distinct lines in first-seen order, with " (xN)" when one came N > 1 times. */
export function distinctLines(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const t of lines) counts.set(t, (counts.get(t) ?? 0) + 1);
  return [...counts].map(([t, n]) => (n > 1 ? `${t} (x${n})` : t));
}

function allEqual<T>(xs: T[]): boolean {
  return xs.every((x) => x === xs[0]);
}

interface Group {
  case: string;
  variant: string;
  entries: Array<{ label: string; run: RunRecord }>;
}

function groupRuns(runs: RunRecord[]): Group[] {
  const groups = new Map<string, Group>();
  for (const run of runs) {
    const variant = variantOf(run.sysctls);
    const key = JSON.stringify([run.case, variant]);
    let g = groups.get(key);
    if (!g) {
      g = { case: run.case, variant, entries: [] };
      groups.set(key, g);
    }
    const taken = new Set(g.entries.map((e) => e.label));
    let label = run.kernel;
    for (let i = 2; taken.has(label); i++) label = `${run.kernel}#${i}`;
    g.entries.push({ label, run });
  }
  return [...groups.values()];
}

function probeOutcome(run: RunRecord, name: string): ProbeOutcome {
  const p = run.probes.find((x) => x.name === name);
  if (!p) return 'n/a';
  if (p.skipped) return 'skip';
  if (p.xfail) return 'xfail';
  return p.passed ? 'pass' : 'fail';
}

function diffGroup(g: Group): CaseDiff {
  const kernels = g.entries.map((e) => e.label);
  const verdicts: Record<string, Verdict> = {};
  for (const { label, run } of g.entries) verdicts[label] = run.verdict;

  const probeNames: string[] = [];
  for (const { run } of g.entries) {
    for (const p of run.probes) if (!probeNames.includes(p.name)) probeNames.push(p.name);
  }
  const probes: ProbeDiffRow[] = probeNames.map((probe) => {
    const results: Record<string, ProbeOutcome> = {};
    for (const { label, run } of g.entries) results[label] = probeOutcome(run, probe);
    return { probe, results, differs: !allEqual(kernels.map((k) => results[k])) };
  });

  const absNames: string[] = [];
  const deltaNames: string[] = [];
  for (const { run } of g.entries) {
    for (const n of Object.keys(run.counters)) if (!absNames.includes(n)) absNames.push(n);
    for (const n of Object.keys(run.counterDeltas)) if (!deltaNames.includes(n)) deltaNames.push(n);
  }
  const counters: CounterDiffRow[] = [];
  for (const name of absNames) {
    const values: Record<string, number> = {};
    const seen: Array<number | undefined> = [];
    for (const { label, run } of g.entries) {
      const v = run.counters[name];
      seen.push(v);
      if (v !== undefined) values[label] = v;
    }
    counters.push({ name, values, differs: !allEqual(seen), named: true });
  }
  for (const name of deltaNames) {
    const values: Record<string, number> = {};
    for (const { label, run } of g.entries) values[label] = run.counterDeltas[name] ?? 0;
    counters.push({
      name: `${DELTA_PREFIX}${name}`,
      values,
      differs: !allEqual(kernels.map((k) => values[k])),
      named: absNames.includes(name),
    });
  }

  const signalNames: string[] = [];
  for (const { run } of g.entries) for (const x of run.signals) if (!signalNames.includes(x.name)) signalNames.push(x.name);
  const signals: SignalDiffRow[] = signalNames.map((name) => {
    const counts: Record<string, number> = {};
    const fired: Record<string, boolean> = {};
    const evidence: Record<string, string[]> = {};
    let first: RunRecord['signals'][number] | undefined;
    for (const { label, run } of g.entries) {
      const x = run.signals.find((y) => y.name === name);
      first ??= x;
      counts[label] = x?.count ?? 0;
      fired[label] = x?.fired ?? false;
      evidence[label] = distinctLines((x?.matches ?? []).map((m) => m.text));
    }
    return {
      name,
      role: first?.role ?? 'evidence',
      description: first?.description ?? name,
      counts,
      fired,
      evidence,
      differs: !allEqual(kernels.map((k) => fired[k])) || !allEqual(kernels.map((k) => counts[k])),
    };
  });

  return {
    case: g.case,
    variant: g.variant,
    kernels,
    verdicts,
    flips: !allEqual(kernels.map((k) => verdicts[k])),
    probes,
    signals,
    counters,
  };
}

/** Group runs by case + sysctl variant (first-seen order) and compare them across kernels. */
export function diffRuns(runs: RunRecord[]): CaseDiff[] {
  return groupRuns(runs).map(diffGroup);
}
