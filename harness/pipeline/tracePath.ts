// --trace-path: run cases on tracing kernels and name where the kernels' packet paths split.
// Two passes: the first records every run's function graph around the signature probe (these are
// the runs of the report); kernels whose paths differ run again with return probes (kretprobes) on
// the functions around the split, and the second pass names the function and its return values.
import { readChannelText } from '../trust/channel.ts';
import fs from 'node:fs';
import { parseAgentOutput, SECTION } from '../agent/protocol.ts';
import { comparePaths, confirmDivergence, returnProbes } from '../observe/divergence.ts';
import type { DivergenceEntry } from '../report/divergence.ts';
import { parsePath, type PathTrace } from '../observe/path.ts';
import type { RunRecord } from '../observe/types.ts';
import { variantOf } from '../report/diff.ts';
import type { Logger } from '../util/log.ts';
import type { RunSpec } from './prepare.ts';

/** Two kernels' paths for one case (and sysctl variant) compared: the first kernel is "before". */
export interface PathReport extends DivergenceEntry {
  /** the runs whose graphs were compared (their results files) */
  files: { before: string; after: string };
}

/** The recorded path of a run (its results file), or an empty one. */
export function pathOf(r: RunRecord): PathTrace {
  const text = readChannelText(r.files.results); // bounded: the guest wrote it
  return parsePath(parseAgentOutput(text).sections[SECTION.path] ?? '');
}

interface Group {
  case: string;
  variant: string;
  /** per kernel, in spec order: its first run's index */
  first: Map<string, number>;
}

function groupsOf(specs: RunSpec[], runs: RunRecord[]): Group[] {
  const out = new Map<string, Group>();
  runs.forEach((r, i) => {
    const variant = variantOf(r.sysctls);
    const key = JSON.stringify([r.case, variant]);
    let g = out.get(key);
    if (!g) out.set(key, (g = { case: r.case, variant, first: new Map() }));
    if (!g.first.has(specs[i]!.kernel.name)) g.first.set(specs[i]!.kernel.name, i);
  });
  return [...out.values()];
}

/**
 * Run the specs traced, then compare each case's kernels (the first against each other one).
 * `run` runs specs (a guest each) and returns their records in order.
 */
export async function runTraced(specs: RunSpec[], run: (specs: RunSpec[]) => Promise<RunRecord[]>, log: Logger): Promise<{ runs: RunRecord[]; paths: PathReport[] }> {
  const runs = await run(specs.map((s) => ({ ...s, tracePath: { returns: [] } })));
  const groups = groupsOf(specs, runs);
  // first pass: where do they split? which functions get return probes on the second pass?
  const firsts: Array<{ g: Group; a: number; b: number; cmp: ReturnType<typeof comparePaths> }> = [];
  const probes = new Map<number, Set<string>>();
  for (const g of groups) {
    const [a, ...others] = [...g.first.values()];
    if (a === undefined) continue;
    for (const b of others) {
      const cmp = comparePaths({ kernel: runs[a]!.kernel, trace: pathOf(runs[a]!) }, { kernel: runs[b]!.kernel, trace: pathOf(runs[b]!) });
      firsts.push({ g, a, b, cmp });
      // around the first few splits (the first may be run-to-run variation), at most 40 functions per kernel
      for (const split of cmp.splits.slice(0, 3)) {
        const fns = returnProbes(split);
        for (const [i, list] of [[a, fns.before], [b, fns.after]] as const) {
          const set = probes.get(i) ?? new Set<string>();
          for (const f of list) if (set.size < 40) set.add(f);
          probes.set(i, set);
        }
      }
    }
  }
  // second pass: the runs whose kernels split, again, with return probes
  const again = [...probes.keys()];
  if (again.length) log.info(`paths differ: running ${again.length} guest(s) again with return probes on the functions around the split`);
  const second = again.length
    ? await run(again.map((i) => ({ ...specs[i]!, label: `${specs[i]!.label ? `${specs[i]!.label}-` : ''}path`, tracePath: { returns: [...probes.get(i)!] } })))
    : [];
  const secondOf = new Map(again.map((i, k) => [i, second[k]!]));
  const paths: PathReport[] = firsts.map(({ g, a, b, cmp }) => {
    const ra = secondOf.get(a);
    const rb = secondOf.get(b);
    const base = { case: g.case, variant: g.variant };
    if (ra && rb) {
      // a split counts when the second pass shows it where the first did, and neither kernel shows it between its own two runs
      const cmp2 = confirmDivergence(
        { before: { kernel: runs[a]!.kernel, trace: pathOf(runs[a]!) }, after: { kernel: runs[b]!.kernel, trace: pathOf(runs[b]!) } },
        { before: { kernel: ra.kernel, trace: pathOf(ra) }, after: { kernel: rb.kernel, trace: pathOf(rb) } },
      );
      const probed = Math.max(ra.path?.probed ?? 0, rb.path?.probed ?? 0);
      return { ...base, before: cmp2.before, after: cmp2.after, divergence: cmp2.divergence, note: cmp2.note, passes: 2, probed, files: { before: ra.files.results, after: rb.files.results } };
    }
    return { ...base, before: cmp.before, after: cmp.after, divergence: cmp.divergence, note: cmp.note, passes: 1, probed: 0, files: { before: runs[a]!.files.results, after: runs[b]!.files.results } };
  });
  return { runs, paths };
}
