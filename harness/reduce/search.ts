// The whole reduction, pure: ddmin over the case's elements, then the simplifications (a
// per-interface sysctl instead of `all`), then ddmin again while a simplification changed the case,
// so that the end result is 1-minimal over what it finally holds. The test is given (fake oracles
// in the unit tests, real kernels in the driver).
import { ddmin, type BatchTest, type RoundInfo, type TestOutcome } from './ddmin.ts';
import { closure, type CaseElements } from './elements.ts';

export interface Simplification {
  element: string;
  tried: Array<{ variant: string; trial: string; bug: boolean }>;
  /** the variant that replaced the element */
  adopted: string | null;
}

export interface SearchResult {
  kept: string[];
  /** element -> the trial that showed it unnecessary (first time it went) */
  removed: Map<string, string>;
  /** kept element -> the trial that showed it necessary (in the last ddmin) */
  necessary: Map<string, string>;
  simplifications: Simplification[];
  /** distinct candidates tested, the original's check included */
  tests: number;
  ddminPasses: number;
}

export async function reduceSearch(
  ce: CaseElements,
  o: {
    test: BatchTest;
    key: (ids: readonly string[]) => string;
    parallel: number;
    /** the original's outcome (already confirmed) */
    original: TestOutcome;
    onRound?: (r: RoundInfo & { pass: number }) => void;
    /** most ddmin passes (a simplification starts another); default 3 */
    maxPasses?: number;
  },
): Promise<SearchResult> {
  const close = (ids: readonly string[]): string[] => closure(ce, ids);
  const memo = new Map<string, TestOutcome>();
  let current = close(ce.elements.map((e) => e.id));
  memo.set(o.key(current), o.original);
  const removed = new Map<string, string>();
  const simplifications: Simplification[] = [];
  const triedVariant = new Set<string>();
  let necessary = new Map<string, string>();
  let passes = 0;
  const maxPasses = o.maxPasses ?? 3;
  for (;;) {
    passes++;
    const r = await ddmin(current, {
      test: o.test,
      closure: close,
      key: o.key,
      parallel: o.parallel,
      known: memo,
      // after a simplification the case was 1-minimal a moment ago: a sweep of single removals is
      // what can still succeed (coarser chunks were tried on the unsimplified case)
      ...(passes > 1 ? { granularity: current.length } : {}),
      ...(o.onRound ? { onRound: (x: RoundInfo) => o.onRound!({ ...x, pass: passes }) } : {}),
    });
    for (const [k, v] of r.memo) memo.set(k, v);
    for (const x of r.removed) if (!removed.has(x.id)) removed.set(x.id, x.trial);
    current = r.kept;
    necessary = new Map(r.necessary.map((x) => [x.id, x.trial]));
    if (passes >= maxPasses) break;
    // simplifications: each kept element with alternatives, one element at a time (each changes the case)
    let changed = false;
    for (const id of [...current]) {
      const alts = (ce.variants.get(id) ?? []).filter((v) => !triedVariant.has(v.id));
      if (!alts.length) continue;
      for (const v of alts) triedVariant.add(v.id);
      const cands = alts.map((v) => close(current.map((x) => (x === id ? v.id : x))));
      const outcomes: TestOutcome[] = [];
      const unknown = cands.map((c, i) => ({ c, i, k: o.key(c) })).filter((x) => !memo.has(x.k));
      // in waves of `parallel`, stopping at the first (in order) that keeps the behaviour
      let adopted = -1;
      for (let w = 0; adopted < 0 && w < cands.length; w += o.parallel) {
        const wave = cands.slice(w, w + o.parallel);
        const todo = unknown.filter((u) => u.i >= w && u.i < w + o.parallel);
        const got = await o.test(todo.map((u) => u.c));
        todo.forEach((u, j) => memo.set(u.k, got[j]!));
        wave.forEach((c, j) => (outcomes[w + j] = memo.get(o.key(c))!));
        adopted = outcomes.findIndex((x) => x?.bug === true);
      }
      simplifications.push({
        element: id,
        tried: outcomes.map((x, i) => ({ variant: alts[i]!.id, trial: x.trial, bug: x.bug })),
        adopted: adopted >= 0 ? alts[adopted]!.id : null,
      });
      if (adopted >= 0) {
        current = cands[adopted]!;
        changed = true;
      }
    }
    if (!changed) break;
  }
  return { kept: current, removed, necessary, simplifications, tests: memo.size, ddminPasses: passes };
}
