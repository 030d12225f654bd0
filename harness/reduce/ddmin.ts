// Delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
// 2002): ddmin over a list of element ids. Pure: the test is given, as an async batch function, so
// that the trials of a round run in parallel. Each distinct candidate is tested once (memoised by
// its content key), and the result is 1-minimal: removing any single remaining element (with what
// depends on it) was tested and loses the behaviour. For every removed element the result names the
// trial that showed it unnecessary, and for every kept element the trial that showed it necessary.

export interface TestOutcome {
  /** the candidate still shows the behaviour ("still the bug") */
  bug: boolean;
  /** the trial that decided it */
  trial: string;
}

/** Test some candidates (each a list of element ids); the outcomes in the same order. */
export type BatchTest = (candidates: string[][]) => Promise<TestOutcome[]>;

export interface RoundInfo {
  round: number;
  /** elements left */
  elements: number;
  /** chunks the elements are split into */
  granularity: number;
  /** distinct candidates tested so far */
  tests: number;
}

export interface DdminOptions {
  test: BatchTest;
  /** what a candidate really keeps (an element goes with its parent); default: itself */
  closure?: (ids: readonly string[]) => string[];
  /** the content of a candidate, for the memo (default: its ids) */
  key?: (ids: readonly string[]) => string;
  /** candidates tested at once (default 1): a round's candidates go in waves of this many, in order,
   *  and the first in order that shows the behaviour wins, so the result does not depend on timing */
  parallel?: number;
  /** also test each chunk on its own (Zeller's "reduce to subset"), not only the complements;
   *  off by default: a configuration rarely keeps its behaviour in one small chunk, and the
   *  complements alone still give a 1-minimal result */
  testSubsets?: boolean;
  /** called at the start of every round */
  onRound?: (r: RoundInfo) => void;
  /** results known before the search (key -> outcome), e.g. the original's confirmation */
  known?: Map<string, TestOutcome>;
  /** the first round's number of chunks (default 2); the number of elements starts with a sweep of
   *  single-element removals, for an input already known to be close to 1-minimal */
  granularity?: number;
}

export interface DdminResult {
  /** the 1-minimal set, in the input's order */
  kept: string[];
  /** each removed element with the trial that showed the rest still shows the behaviour without it */
  removed: Array<{ id: string; trial: string }>;
  /** each kept element with the trial that showed the behaviour is lost without it */
  necessary: Array<{ id: string; trial: string }>;
  /** distinct candidates tested (memo misses) */
  tests: number;
  rounds: number;
  /** every candidate's outcome by key */
  memo: Map<string, TestOutcome>;
}

/** Split into n chunks of near-equal size, in order. */
export function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = start + Math.floor((xs.length - start) / (n - i));
    out.push(xs.slice(start, end));
    start = end;
  }
  return out.filter((c) => c.length > 0);
}

export async function ddmin(elements: readonly string[], o: DdminOptions): Promise<DdminResult> {
  const close = o.closure ?? ((ids: readonly string[]) => [...ids]);
  const keyOf = o.key ?? ((ids: readonly string[]) => JSON.stringify([...ids]));
  const parallel = Math.max(1, o.parallel ?? 1);
  const memo = new Map<string, TestOutcome>(o.known ?? []);
  let tests = 0;

  /** index of the first candidate (in order) that shows the behaviour, or -1; tests in waves */
  const firstBug = async (cands: string[][]): Promise<number> => {
    const keys = cands.map((c) => keyOf(c));
    let i = 0;
    while (i < cands.length) {
      const known = memo.get(keys[i]!);
      if (known) {
        if (known.bug) return i;
        i++;
        continue;
      }
      const wave: number[] = [];
      const inWave = new Set<string>();
      for (let j = i; j < cands.length && wave.length < parallel; j++) {
        const k = memo.get(keys[j]!);
        if (k?.bug) break;
        if (k || inWave.has(keys[j]!)) continue;
        inWave.add(keys[j]!);
        wave.push(j);
      }
      const outcomes = await o.test(wave.map((j) => cands[j]!));
      if (outcomes.length !== wave.length) throw new Error(`internal: the test answered ${outcomes.length} outcomes for ${wave.length} candidates`);
      tests += wave.length;
      wave.forEach((j, w) => memo.set(keys[j]!, outcomes[w]!));
    }
    return -1;
  };

  let c = close(elements);
  const removed: Array<{ id: string; trial: string }> = [];
  const drop = (from: string[], to: string[], trial: string): void => {
    const keep = new Set(to);
    for (const id of from) if (!keep.has(id)) removed.push({ id, trial });
  };
  // elements the closure of the input already lost (a dependent of something absent)
  if (c.length < elements.length) drop([...elements], c, '(closure)');
  let n = Math.max(2, o.granularity ?? 2);
  let offset = 0;
  let round = 0;
  for (;;) {
    round++;
    o.onRound?.({ round, elements: c.length, granularity: Math.min(n, c.length), tests });
    if (c.length === 0) break;
    if (c.length === 1) {
      // the empty candidate is a real test here (a case without its last element is still a case)
      const empty = close([]);
      const i = await firstBug([empty]);
      if (i === 0) {
        drop(c, empty, memo.get(keyOf(empty))!.trial);
        c = empty;
        continue;
      }
      break;
    }
    n = Math.min(n, c.length);
    const parts = chunks(c, n);
    if (o.testSubsets && n > 2) {
      const subsets = parts.map((p) => close(p));
      const i = await firstBug(subsets);
      if (i >= 0) {
        drop(c, subsets[i]!, memo.get(keyOf(subsets[i]!))!.trial);
        c = subsets[i]!;
        n = 2;
        offset = 0;
        continue;
      }
    }
    // the complements, starting where the last successful one was (Hodovan and Kiss's "complement
    // offset", as in picire): a chunk that mattered a round ago still matters, so going on from there
    // instead of from the first chunk saves re-testing them; a round with no success still tries all
    const order = parts.map((_, k) => (k + offset) % parts.length);
    const complements = order.map((k) => close(parts.filter((__, m) => m !== k).flat()));
    const i = await firstBug(complements);
    if (i >= 0) {
      drop(c, complements[i]!, memo.get(keyOf(complements[i]!))!.trial);
      c = complements[i]!;
      offset = order[i]!;
      n = Math.max(n - 1, 2);
      continue;
    }
    offset = 0;
    if (n < c.length) {
      n = Math.min(2 * n, c.length);
      continue;
    }
    break;
  }
  // 1-minimal: at granularity |c| every complement is c without one element, and none kept the behaviour
  const necessary = c.map((id) => {
    const without = c.length === 1 ? close([]) : close(c.filter((x) => x !== id));
    const t = memo.get(keyOf(without));
    if (!t || t.bug) throw new Error(`internal: ${id} has no trial showing it necessary`);
    return { id, trial: t.trial };
  });
  return { kept: c, removed, necessary, tests, rounds: round, memo };
}
