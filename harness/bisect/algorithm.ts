// Pure logic behind `npm run bisect`: which commit to test next, when the culprit is known, how to
// turn repeated (possibly flaky) runs into one mark, and a driver loop over an injected test
// function. Modelled on git bisect's commit selection (bisect.c: "best bisection") and on
// syzkaller's pkg/bisect (logic behind an interface, unit-tested with fake environments).
//
// Terminology is relative, like `git bisect start --term-old/--term-new`: the user gives an `old`
// and a `new` revision whose verdicts differ, and we look for the FIRST commit that behaves like
// `new`. That covers "which commit introduced the bug" (old = works, new = broken) and "which
// commit fixed it" (old = broken, new = works) with the same code.
//
// No I/O here: git, builds and VM runs live behind the `test` callback of runBisect.

import { HarnessError } from '../util/errors.ts';

export type Mark = 'old' | 'new' | 'skip';

export interface CommitGraph {
  /** every commit on the ancestry path old..new (excluding old, including new), any order */
  commits: string[];
  /** commit -> parent hashes (parents outside `commits` may appear and are ignored) */
  parents: Record<string, string[]>;
}

/** JSON-serialisable, for resume. `new` is implicitly 'new' and `old` implicitly 'old'. */
export interface BisectState {
  old: string;
  new: string;
  marks: Record<string, Mark>;
}

export type Next =
  | { kind: 'test'; commit: string; remaining: number; stepsLeftEstimate: number }
  | { kind: 'found'; commit: string }
  | { kind: 'ambiguous'; candidates: string[]; reason: string }; // skips next to the culprit

// ---------------------------------------------------------------------------------------------
// Graph analysis

interface Analysis {
  /** remaining candidates, ancestors before descendants (ties: order in graph.commits) */
  candidates: number[];
  /** index -> commit hash (graph.commits order) */
  names: string[];
  /** index -> in-graph parent indices */
  parentIdx: number[][];
  /** marks restricted to commits in the graph, with the implicit mark on `new` */
  markOf: Map<number, Mark>;
  newIdx: number;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function analyse(graph: CommitGraph, state: BisectState): Analysis {
  const names = graph.commits;
  const n = names.length;
  const index = new Map<string, number>();
  names.forEach((c, i) => {
    if (index.has(c)) throw new HarnessError('bad-input', `bisect graph lists commit ${c} twice`);
    index.set(c, i);
  });
  const newIdx = index.get(state.new);
  if (newIdx === undefined) {
    throw new HarnessError('bad-input', `bisect graph does not contain the new revision ${state.new}`);
  }

  const parentIdx: number[][] = names.map((c) => {
    const ps = hasOwn(graph.parents, c) ? (graph.parents[c] ?? []) : [];
    const out: number[] = [];
    for (const p of ps) {
      const pi = index.get(p);
      if (pi !== undefined && !out.includes(pi)) out.push(pi);
    }
    return out;
  });

  // Topological order (parents first), Kahn's algorithm with a min-index ready set so the order
  // is deterministic and, on a linear history, is simply history order.
  const children: number[][] = names.map(() => []);
  const pending = parentIdx.map((ps) => ps.length);
  parentIdx.forEach((ps, i) => ps.forEach((p) => children[p]?.push(i)));
  const ready = new MinHeap();
  pending.forEach((k, i) => {
    if (k === 0) ready.push(i);
  });
  const topo: number[] = [];
  for (let i = ready.pop(); i !== undefined; i = ready.pop()) {
    topo.push(i);
    for (const ch of children[i] ?? []) {
      const left = (pending[ch] ?? 0) - 1;
      pending[ch] = left;
      if (left === 0) ready.push(ch);
    }
  }
  if (topo.length !== n) throw new HarnessError('bad-input', 'bisect graph has a cycle in its parent links');

  // Marks. Marks on commits outside the graph are ignored (they cannot narrow anything).
  const markOf = new Map<number, Mark>();
  for (const [commit, mark] of Object.entries(state.marks)) {
    if (mark !== 'old' && mark !== 'new' && mark !== 'skip') {
      throw new HarnessError('bad-input', `bisect state: invalid mark ${JSON.stringify(mark)} for ${commit}`);
    }
    if (commit === state.new && mark !== 'new') {
      throw new HarnessError('bad-input', `bisect state marks the new revision ${commit} as '${mark}'`);
    }
    if (commit === state.old && mark !== 'old') {
      throw new HarnessError('bad-input', `bisect state marks the old revision ${commit} as '${mark}'`);
    }
    const i = index.get(commit);
    if (i !== undefined) markOf.set(i, mark);
  }
  markOf.set(newIdx, 'new');
  const oldIdx = index.get(state.old);
  if (oldIdx !== undefined) markOf.set(oldIdx, 'old'); // normally absent (old..new excludes old)

  // Candidates = ∩ ancestors-or-self(new marks) − ∪ ancestors-or-self(old marks).
  // Independent of the order in which marks were given, so a Record is enough for resume.
  const alive = new Uint8Array(n).fill(1);
  const seen = new Uint8Array(n);
  const ancestorsOrSelf = (start: number): Uint8Array => {
    seen.fill(0);
    const stack = [start];
    seen[start] = 1;
    for (let i = stack.pop(); i !== undefined; i = stack.pop()) {
      for (const p of parentIdx[i] ?? []) {
        if (!seen[p]) {
          seen[p] = 1;
          stack.push(p);
        }
      }
    }
    return seen;
  };
  for (const [i, mark] of markOf) {
    if (mark === 'skip') continue;
    const anc = ancestorsOrSelf(i);
    for (let j = 0; j < n; j++) {
      if (mark === 'new' ? !anc[j] : anc[j]) alive[j] = 0;
    }
  }
  const candidates = topo.filter((i) => alive[i] === 1);
  return { candidates, names, parentIdx, markOf, newIdx };
}

/** Remaining candidates for the first 'new' commit, ancestors first (history order when linear). */
export function candidates(graph: CommitGraph, state: BisectState): string[] {
  const a = analyse(graph, state);
  return a.candidates.map((i) => a.names[i] ?? '');
}

/**
 * The next thing to do. git's "best bisection": among remaining candidates that are neither
 * marked nor `new`, test the one whose number of ancestors-or-self within the candidates is
 * closest to half of the candidates, ties broken by order in graph.commits. Skipped commits are
 * never proposed again; the next best one is chosen instead.
 */
export function nextStep(graph: CommitGraph, state: BisectState): Next {
  const a = analyse(graph, state);
  const cand = a.candidates;
  const total = cand.length;
  const name = (i: number): string => a.names[i] ?? '';

  if (total === 0) {
    // Only reachable with hand-edited or non-monotonic marks, e.g. 'new' on two branches whose
    // common ancestors are all 'old': the behaviour does not change at a single commit.
    return {
      kind: 'ambiguous',
      candidates: [],
      reason: 'no candidate commit is left: the marks contradict each other (the behaviour does not change at a single commit)',
    };
  }
  const only = cand[0];
  if (total === 1 && only !== undefined) return { kind: 'found', commit: name(only) };

  const testable = cand.filter((i) => !a.markOf.has(i) && i !== a.newIdx);
  if (testable.length === 0) {
    const skipped = cand.filter((i) => a.markOf.get(i) === 'skip').length;
    return {
      kind: 'ambiguous',
      candidates: cand.map(name),
      reason:
        `${skipped} ${skipped === 1 ? 'commit' : 'commits'} could not be tested (skipped); ` +
        `the first 'new' commit is one of these ${total}`,
    };
  }

  // Ancestors-or-self counts within the candidate set. The candidate set is convex (every commit
  // on a path between two candidates is a candidate), so walking parents restricted to the
  // candidates is exact. One bitset per candidate, filled in topological order.
  const local = new Map<number, number>();
  cand.forEach((g, j) => local.set(g, j));
  const words = Math.ceil(total / 32);
  const bits: Uint32Array[] = [];
  cand.forEach((g, j) => {
    const b = new Uint32Array(words);
    b[j >>> 5] = (b[j >>> 5] ?? 0) | (1 << (j & 31));
    for (const p of a.parentIdx[g] ?? []) {
      const pj = local.get(p);
      const pb = pj === undefined ? undefined : bits[pj];
      if (pb) for (let w = 0; w < words; w++) b[w] = (b[w] ?? 0) | (pb[w] ?? 0);
    }
    bits.push(b);
  });

  let best: number | undefined;
  let bestDist = Infinity;
  for (const g of testable) {
    const b = bits[local.get(g) ?? -1];
    if (!b) continue;
    let weight = 0;
    for (let w = 0; w < words; w++) weight += popcount(b[w] ?? 0);
    const dist = Math.abs(2 * weight - total); // twice the distance from half, stays integral
    if (dist < bestDist || (dist === bestDist && best !== undefined && g < best)) {
      best = g;
      bestDist = dist;
    }
  }
  if (best === undefined) throw new HarnessError('internal', 'bisect: no commit chosen although some are testable');
  return { kind: 'test', commit: name(best), remaining: total, stepsLeftEstimate: Math.ceil(Math.log2(total)) };
}

function popcount(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

class MinHeap {
  private readonly a: number[] = [];
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pv = a[p] ?? 0;
      if (pv <= x) break;
      a[i] = pv;
      i = p;
    }
    a[i] = x;
  }
  pop(): number | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let mv = last;
      const lv = a[l];
      const rv = a[r];
      if (lv !== undefined && lv < mv) {
        m = l;
        mv = lv;
      }
      if (rv !== undefined && rv < mv) {
        m = r;
        mv = rv;
      }
      if (m === i) break;
      a[i] = mv;
      i = m;
    }
    a[i] = last;
    return top;
  }
}

/** A linear history: each commit's parent is the previous one, the first's parent is 'OLD'. */
export function linearGraph(commits: string[]): CommitGraph {
  const parents: Record<string, string[]> = {};
  commits.forEach((c, i) => {
    parents[c] = [i === 0 ? 'OLD' : (commits[i - 1] ?? 'OLD')];
  });
  return { commits: [...commits], parents };
}

// ---------------------------------------------------------------------------------------------
// Repeated runs (flaky reproducers)

export interface RepeatPolicy {
  runs: number;
  /** fraction of runs that must agree, e.g. 1.0 strict, 0.5 */
  threshold: number;
}

/**
 * Turn the outcomes of repeated runs of one commit into a mark.
 *
 * Rule (M = max(policy.runs, outcomes.length); runs that were planned but did not report count
 * as errors, so a short list can never look more certain than it is):
 *   1. errors > M/2                      -> 'skip'  "inconclusive: N of M runs failed"
 *   2. p = new / (old + new)             (errors ignored from here on)
 *      p >= threshold                    -> 'new'
 *      else old / (old + new) >= threshold -> 'old'
 *      else                              -> 'skip'  "flaky: k/N new, below the threshold"
 * With threshold 1.0 only unanimous verdicts count; with 0.5 the majority wins and an exact tie
 * is 'new' (the new behaviour was seen to occur). threshold must be in (0, 1].
 */
export function classifyRuns(
  outcomes: Array<'old' | 'new' | 'error'>,
  policy: RepeatPolicy,
): { mark: Mark; counts: { old: number; new: number; error: number }; note: string } {
  if (!Number.isInteger(policy.runs) || policy.runs < 1) {
    throw new HarnessError('bad-input', `repeat policy: runs must be a positive integer, got ${policy.runs}`);
  }
  if (!(policy.threshold > 0 && policy.threshold <= 1)) {
    throw new HarnessError('bad-input', `repeat policy: threshold must be in (0, 1], got ${policy.threshold}`);
  }
  const counts = { old: 0, new: 0, error: 0 };
  for (const o of outcomes) counts[o]++;
  const total = Math.max(policy.runs, outcomes.length);
  counts.error += total - outcomes.length;

  if (counts.error * 2 > total) {
    return { mark: 'skip', counts, note: `inconclusive: ${counts.error} of ${total} runs failed` };
  }
  const verdicts = counts.old + counts.new; // >= 1 here since errors <= total/2 and total >= 1
  const eps = 1e-9;
  const errNote = counts.error > 0 ? ` (${counts.error} of ${total} runs failed)` : '';
  if (counts.new / verdicts >= policy.threshold - eps) {
    return { mark: 'new', counts, note: `${counts.new}/${verdicts} new${errNote}` };
  }
  if (counts.old / verdicts >= policy.threshold - eps) {
    return { mark: 'old', counts, note: `${counts.old}/${verdicts} old${errNote}` };
  }
  return {
    mark: 'skip',
    counts,
    note: `flaky: ${counts.new}/${verdicts} new, below the threshold ${policy.threshold}${errNote}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Driver

export interface StepLog {
  commit: string;
  mark: Mark;
  note?: string;
}

export interface BisectResult {
  outcome: Next & { kind: 'found' | 'ambiguous' };
  steps: StepLog[];
  state: BisectState;
}

/**
 * Loop nextStep -> test -> record the mark until found/ambiguous. Works on a copy of `state`;
 * the final state is returned. `onStep` gets the step just taken, what comes next and a snapshot
 * of the state so far (persist it to resume: commits already marked are never tested again).
 * If `test` throws, the error propagates; the last snapshot given to onStep is a valid resume point.
 */
export async function runBisect(
  graph: CommitGraph,
  state: BisectState,
  test: (commit: string) => Promise<{ mark: Mark; note?: string }>,
  onStep?: (s: StepLog, next: Next, state: BisectState) => void | Promise<void>,
): Promise<BisectResult> {
  const cur: BisectState = { old: state.old, new: state.new, marks: { ...state.marks } };
  const steps: StepLog[] = [];
  let next = nextStep(graph, cur);
  // Each round marks a commit that was unmarked, so this ends within graph.commits.length rounds.
  while (next.kind === 'test') {
    const commit = next.commit;
    if (Object.prototype.hasOwnProperty.call(cur.marks, commit)) {
      throw new HarnessError('internal', `bisect proposed ${commit} again although it is already marked`);
    }
    const r = await test(commit);
    if (r.mark !== 'old' && r.mark !== 'new' && r.mark !== 'skip') {
      throw new HarnessError('internal', `bisect test of ${commit} returned invalid mark ${JSON.stringify(r.mark)}`);
    }
    cur.marks[commit] = r.mark;
    const log: StepLog = r.note !== undefined ? { commit, mark: r.mark, note: r.note } : { commit, mark: r.mark };
    steps.push(log);
    next = nextStep(graph, cur);
    if (onStep) await onStep(log, next, { old: cur.old, new: cur.new, marks: { ...cur.marks } });
  }
  return { outcome: next, steps, state: cur };
}
