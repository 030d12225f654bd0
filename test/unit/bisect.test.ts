import { describe, expect, it } from 'vitest';
import {
  type BisectState,
  type CommitGraph,
  type Mark,
  type Next,
  type StepLog,
  candidates,
  classifyRuns,
  linearGraph,
  nextStep,
  runBisect,
} from '../../harness/bisect/algorithm.ts';

// ---- fake environments ------------------------------------------------------------------------

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${i + 1}`);

/** ancestors-or-self of `c` within the graph, computed independently of the module under test */
function ancestry(graph: CommitGraph, c: string): Set<string> {
  const inGraph = new Set(graph.commits);
  const out = new Set<string>([c]);
  const stack = [c];
  for (let x = stack.pop(); x !== undefined; x = stack.pop()) {
    for (const p of graph.parents[x] ?? []) {
      if (inGraph.has(p) && !out.has(p)) {
        out.add(p);
        stack.push(p);
      }
    }
  }
  return out;
}

/**
 * A fake repository where `culprit` changes behaviour: a commit behaves like `new` iff the culprit
 * is among its ancestors-or-self. Commits in `skip` fail to build. Records every tested commit.
 */
function fakeEnv(graph: CommitGraph, culprit: string, skip: string[] = []) {
  const tested: string[] = [];
  const test = async (commit: string): Promise<{ mark: Mark; note?: string }> => {
    tested.push(commit);
    if (skip.includes(commit)) return { mark: 'skip', note: 'build failed' };
    return { mark: ancestry(graph, commit).has(culprit) ? 'new' : 'old' };
  };
  return { tested, test };
}

const start = (graph: CommitGraph): BisectState => ({ old: 'OLD', new: graph.commits[graph.commits.length - 1] ?? '', marks: {} });

// ---- commit selection -------------------------------------------------------------------------

describe('nextStep / candidates', () => {
  it('a single commit is the culprit without any test', () => {
    const g = linearGraph(['c1']);
    expect(nextStep(g, start(g))).toEqual({ kind: 'found', commit: 'c1' });
  });

  it('picks the middle of a linear history and estimates the steps', () => {
    const g = linearGraph(names(16));
    expect(nextStep(g, start(g))).toEqual({ kind: 'test', commit: 'c8', remaining: 16, stepsLeftEstimate: 4 });
    expect(nextStep(g, { ...start(g), marks: { c8: 'old' } })).toEqual({
      kind: 'test',
      commit: 'c12',
      remaining: 8,
      stepsLeftEstimate: 3,
    });
    expect(nextStep(g, { ...start(g), marks: { c8: 'new' } })).toEqual({
      kind: 'test',
      commit: 'c4',
      remaining: 8,
      stepsLeftEstimate: 3,
    });
  });

  it('candidates are in history order and shrink with marks', () => {
    const g = linearGraph(names(10));
    // graph.commits order is irrelevant for the result
    const shuffled: CommitGraph = { commits: [...g.commits].reverse(), parents: g.parents };
    expect(candidates(shuffled, { old: 'OLD', new: 'c10', marks: {} })).toEqual(names(10));
    expect(candidates(g, { old: 'OLD', new: 'c10', marks: { c3: 'old', c7: 'new', c5: 'skip' } })).toEqual([
      'c4',
      'c5',
      'c6',
      'c7',
    ]);
  });

  it('when the best commit is skipped, takes the next best (ties by graph order)', () => {
    const g = linearGraph(names(16));
    // c7 and c9 are both 1 away from half; c7 comes first in graph.commits
    expect(nextStep(g, { ...start(g), marks: { c8: 'skip' } })).toMatchObject({ kind: 'test', commit: 'c7' });
    expect(nextStep(g, { ...start(g), marks: { c8: 'skip', c7: 'skip' } })).toMatchObject({ kind: 'test', commit: 'c9' });
  });

  it('never proposes new, and does not need it tested', () => {
    const g = linearGraph(names(2));
    expect(nextStep(g, start(g))).toEqual({ kind: 'test', commit: 'c1', remaining: 2, stepsLeftEstimate: 1 });
    expect(nextStep(g, { ...start(g), marks: { c1: 'old' } })).toEqual({ kind: 'found', commit: 'c2' });
    expect(nextStep(g, { ...start(g), marks: { c1: 'new' } })).toEqual({ kind: 'found', commit: 'c1' });
  });

  it('rejects states that contradict the endpoints or a graph without new', () => {
    const g = linearGraph(names(4));
    expect(() => nextStep(g, { ...start(g), marks: { c4: 'old' } })).toThrow(/marks the new revision/);
    expect(() => nextStep(g, { old: 'OLD', new: 'nope', marks: {} })).toThrow(/does not contain the new revision/);
    expect(() => nextStep({ commits: ['a', 'b'], parents: { a: ['b'], b: ['a'] } }, { old: 'X', new: 'b', marks: {} })).toThrow(
      /cycle/,
    );
  });

  it('ignores marks on commits outside the graph', () => {
    const g = linearGraph(names(16));
    expect(nextStep(g, { ...start(g), marks: { elsewhere: 'new' } })).toEqual(nextStep(g, start(g)));
  });

  it('non-monotonic marks leave no candidate and are reported, not looped on', () => {
    // OLD - a - b1 (branch b) and a - c1 (branch c), merged in m
    const g: CommitGraph = { commits: ['a', 'b1', 'c1', 'm'], parents: { a: ['OLD'], b1: ['a'], c1: ['a'], m: ['b1', 'c1'] } };
    const next = nextStep(g, { old: 'OLD', new: 'm', marks: { b1: 'new', c1: 'new', a: 'old' } });
    expect(next.kind).toBe('ambiguous');
    expect(next.kind === 'ambiguous' ? next.candidates : null).toEqual([]);
  });
});

// ---- full runs on fake environments -----------------------------------------------------------

describe('runBisect on linear histories', () => {
  for (const n of [1, 2, 16, 100]) {
    const g = linearGraph(names(n));
    const positions = n === 16 ? names(16) : [...new Set([names(n)[0], names(n)[Math.floor(n / 2)], names(n)[n - 1]])];
    for (const culprit of positions) {
      if (culprit === undefined) continue;
      it(`n=${n}: finds ${culprit} within ceil(log2 n)+1 tests`, async () => {
        const env = fakeEnv(g, culprit);
        const r = await runBisect(g, start(g), env.test);
        expect(r.outcome).toEqual({ kind: 'found', commit: culprit });
        expect(env.tested.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)) + 1);
        expect(new Set(env.tested).size).toBe(env.tested.length);
        expect(env.tested).not.toContain(g.commits[n - 1]);
        expect(r.steps.map((s) => s.commit)).toEqual(env.tested);
        expect(Object.keys(r.state.marks).sort()).toEqual([...env.tested].sort());
      });
    }
  }

  it('n=16, culprit c11: exact test sequence', async () => {
    const g = linearGraph(names(16));
    const env = fakeEnv(g, 'c11');
    const r = await runBisect(g, start(g), env.test);
    expect(r.steps).toEqual([
      { commit: 'c8', mark: 'old' },
      { commit: 'c12', mark: 'new' },
      { commit: 'c10', mark: 'old' },
      { commit: 'c11', mark: 'new' },
    ]);
  });

  it('fix bisection is identical: marks are relative to the verdicts at old and new', async () => {
    // Bug present before c6, fixed from c6 on. old = crashes, new = ok.
    const g = linearGraph(names(16));
    const verdict = (c: string): 'crash' | 'ok' => (Number(c.slice(1)) >= 6 ? 'ok' : 'crash');
    const oldVerdict = 'crash';
    const tested: string[] = [];
    const r = await runBisect(g, start(g), async (c) => {
      tested.push(c);
      return { mark: verdict(c) === oldVerdict ? 'old' : 'new' };
    });
    expect(r.outcome).toEqual({ kind: 'found', commit: 'c6' });
    // same commits as an "introduced" bisection with the culprit at c6
    const env = fakeEnv(g, 'c6');
    await runBisect(g, start(g), env.test);
    expect(tested).toEqual(env.tested);
    expect(r.steps.filter((s) => s.mark === 'old').map((s) => s.commit)).toEqual(
      tested.filter((c) => verdict(c) === 'crash'),
    );
  });
});

describe('skips', () => {
  const g = linearGraph(names(16));

  it('a skip next to the culprit gives ambiguous with exactly [skipped, culprit]', async () => {
    const env = fakeEnv(g, 'c8', ['c7']);
    const r = await runBisect(g, start(g), env.test);
    expect(r.outcome).toEqual({
      kind: 'ambiguous',
      candidates: ['c7', 'c8'],
      reason: "1 commit could not be tested (skipped); the first 'new' commit is one of these 2",
    });
    expect(env.tested.filter((c) => c === 'c7')).toEqual(['c7']);
  });

  it('two skips before the culprit give [skip, skip, culprit]', async () => {
    const env = fakeEnv(g, 'c8', ['c6', 'c7']);
    const r = await runBisect(g, start(g), env.test);
    expect(r.outcome).toEqual({
      kind: 'ambiguous',
      candidates: ['c6', 'c7', 'c8'],
      reason: "2 commits could not be tested (skipped); the first 'new' commit is one of these 3",
    });
    expect(new Set(env.tested).size).toBe(env.tested.length);
  });

  it('a skipped culprit: the candidates run from it to the first commit known to be new', async () => {
    const env = fakeEnv(g, 'c8', ['c8', 'c9']);
    const r = await runBisect(g, start(g), env.test);
    expect(r.outcome).toMatchObject({ kind: 'ambiguous', candidates: ['c8', 'c9', 'c10'] });
    expect(r.state.marks['c10']).toBe('new');
  });

  it('skips far from the culprit do not prevent finding it', async () => {
    const env = fakeEnv(g, 'c3', ['c8', 'c12', 'c13', 'c14']);
    const r = await runBisect(g, start(g), env.test);
    expect(r.outcome).toEqual({ kind: 'found', commit: 'c3' });
    // c8 skipped -> c7 (new) -> c1..c7: c3 and c4 tie at 3.5, c3 first -> c1..c3: c1 -> c2
    expect(env.tested).toEqual(['c8', 'c7', 'c3', 'c1', 'c2']);
    expect(r.steps[0]).toEqual({ commit: 'c8', mark: 'skip', note: 'build failed' });
  });

  it('everything skipped: ambiguous over the whole range', async () => {
    const small = linearGraph(names(4));
    const env = fakeEnv(small, 'c2', ['c1', 'c2', 'c3']);
    const r = await runBisect(small, start(small), env.test);
    expect(r.outcome).toMatchObject({ kind: 'ambiguous', candidates: ['c1', 'c2', 'c3', 'c4'] });
    expect([...env.tested].sort()).toEqual(['c1', 'c2', 'c3']);
  });
});

describe('DAG with a merge', () => {
  // OLD - a1 - a2 -+- b1 - b2 - b3 -+- m - d1 - NEW
  //                 \- x1 - x2 - x3 -/
  const g: CommitGraph = {
    commits: ['a1', 'a2', 'b1', 'b2', 'b3', 'x1', 'x2', 'x3', 'm', 'd1', 'NEW'],
    parents: {
      a1: ['OLD'],
      a2: ['a1'],
      b1: ['a2'],
      b2: ['b1'],
      b3: ['b2'],
      x1: ['a2'],
      x2: ['x1'],
      x3: ['x2'],
      m: ['x3', 'b3'],
      d1: ['m'],
      NEW: ['d1'],
    },
  };
  const st = (): BisectState => ({ old: 'OLD', new: 'NEW', marks: {} });

  it('finds a culprit on a side branch', async () => {
    const env = fakeEnv(g, 'b2');
    const r = await runBisect(g, st(), env.test);
    expect(r.outcome).toEqual({ kind: 'found', commit: 'b2' });
    expect(env.tested.length).toBeLessThanOrEqual(Math.ceil(Math.log2(g.commits.length)) + 1);
  });

  it('finds the culprit wherever it is', async () => {
    for (const culprit of g.commits) {
      const env = fakeEnv(g, culprit);
      const r = await runBisect(g, st(), env.test);
      expect(r.outcome, culprit).toEqual({ kind: 'found', commit: culprit });
      expect(new Set(env.tested).size, culprit).toBe(env.tested.length);
    }
  });

  it('a new mark on one branch removes the other branch from the candidates', () => {
    expect(candidates(g, { ...st(), marks: { b3: 'new' } })).toEqual(['a1', 'a2', 'b1', 'b2', 'b3']);
    expect(candidates(g, { ...st(), marks: { x3: 'old' } })).toEqual(['b1', 'b2', 'b3', 'm', 'd1', 'NEW']);
  });

  it('chooses by ancestor count, not by position in the list', () => {
    // 11 candidates: a2 has 2 ancestors-or-self, x3 5, b3 5, m 9 -> 5 is closest to 5.5; b3 is
    // listed before x3
    expect(nextStep(g, st())).toEqual({ kind: 'test', commit: 'b3', remaining: 11, stepsLeftEstimate: 4 });
  });
});

describe('resume', () => {
  it('continues from a half-done state without testing any commit twice', async () => {
    const g = linearGraph(names(100));
    const full = fakeEnv(g, 'c37');
    const fullRun = await runBisect(g, start(g), full.test);

    // first session: interrupted after 3 tests; the state given to onStep is persisted as JSON
    const first = fakeEnv(g, 'c37');
    let saved = '';
    const interrupted = new Error('interrupted');
    await expect(
      runBisect(g, start(g), first.test, (_s: StepLog, _n: Next, state: BisectState) => {
        saved = JSON.stringify(state);
        if (first.tested.length === 3) throw interrupted;
      }),
    ).rejects.toBe(interrupted);
    expect(first.tested).toHaveLength(3);

    const second = fakeEnv(g, 'c37');
    const resumed = await runBisect(g, JSON.parse(saved) as BisectState, second.test);
    expect(resumed.outcome).toEqual({ kind: 'found', commit: 'c37' });
    expect(second.tested.filter((c) => first.tested.includes(c))).toEqual([]);
    expect([...first.tested, ...second.tested]).toEqual(full.tested);
    expect(resumed.state).toEqual(fullRun.state);
    expect(resumed.steps).toHaveLength(full.tested.length - 3);
  });

  it('does not mutate the state it is given', async () => {
    const g = linearGraph(names(8));
    const s = start(g);
    await runBisect(g, s, fakeEnv(g, 'c5').test);
    expect(s.marks).toEqual({});
  });

  it('state is JSON round-trippable', () => {
    const g = linearGraph(names(16));
    const s: BisectState = { old: 'OLD', new: 'c16', marks: { c8: 'old', c12: 'new', c10: 'skip' } };
    const back = JSON.parse(JSON.stringify(s)) as BisectState;
    expect(back).toEqual(s);
    expect(nextStep(g, back)).toEqual(nextStep(g, s));
    // candidates c9..c12; c10 (the best) is skipped, c9 and c11 tie, c9 comes first
    expect(nextStep(g, back)).toEqual({ kind: 'test', commit: 'c9', remaining: 4, stepsLeftEstimate: 2 });
  });

  it('onStep sees each step and what comes next', async () => {
    const g = linearGraph(names(4));
    const seen: Array<[string, Mark, Next['kind']]> = [];
    await runBisect(g, start(g), fakeEnv(g, 'c3').test, (s, next) => {
      seen.push([s.commit, s.mark, next.kind]);
    });
    expect(seen).toEqual([
      ['c2', 'old', 'test'],
      ['c3', 'new', 'found'],
    ]);
  });
});

// ---- repeated runs ----------------------------------------------------------------------------

describe('classifyRuns', () => {
  const strict = { runs: 5, threshold: 1.0 };
  const half = { runs: 4, threshold: 0.5 };

  it('strict: only unanimous verdicts count', () => {
    expect(classifyRuns(['new', 'new', 'new', 'new', 'new'], strict)).toEqual({
      mark: 'new',
      counts: { old: 0, new: 5, error: 0 },
      note: '5/5 new',
    });
    expect(classifyRuns(['old', 'old', 'old', 'old', 'old'], strict)).toMatchObject({ mark: 'old', note: '5/5 old' });
    expect(classifyRuns(['old', 'old', 'new', 'old', 'old'], strict)).toEqual({
      mark: 'skip',
      counts: { old: 4, new: 1, error: 0 },
      note: 'flaky: 1/5 new, below the threshold 1',
    });
    // errors (at most half) are ignored for the ratio
    expect(classifyRuns(['new', 'error', 'new', 'new', 'error'], strict)).toEqual({
      mark: 'new',
      counts: { old: 0, new: 3, error: 2 },
      note: '3/3 new (2 of 5 runs failed)',
    });
  });

  it('0.5: the majority wins and a tie is new', () => {
    expect(classifyRuns(['new', 'old', 'new', 'old'], half)).toMatchObject({ mark: 'new', note: '2/4 new' });
    expect(classifyRuns(['new', 'old', 'old', 'old'], half)).toMatchObject({ mark: 'old', note: '3/4 old' });
  });

  it('flaky below the threshold in both directions is skipped', () => {
    const p = { runs: 10, threshold: 0.8 };
    const o: Array<'old' | 'new' | 'error'> = ['new', 'new', 'new', 'old', 'old', 'old', 'old', 'old', 'old', 'old'];
    expect(classifyRuns(o, p)).toEqual({
      mark: 'skip',
      counts: { old: 7, new: 3, error: 0 },
      note: 'flaky: 3/10 new, below the threshold 0.8',
    });
    // 8 of 10 agree: exactly at the threshold counts
    expect(classifyRuns(['new', 'new', 'old', 'old', 'old', 'old', 'old', 'old', 'old', 'old'], p).mark).toBe('old');
  });

  it('more than half of the runs failing is inconclusive', () => {
    expect(classifyRuns(['error', 'error', 'error', 'new'], half)).toEqual({
      mark: 'skip',
      counts: { old: 0, new: 1, error: 3 },
      note: 'inconclusive: 3 of 4 runs failed',
    });
    // exactly half failing is not
    expect(classifyRuns(['error', 'error', 'new', 'new'], half).mark).toBe('new');
    // runs that never reported count as failed
    expect(classifyRuns(['new'], half)).toEqual({
      mark: 'skip',
      counts: { old: 0, new: 1, error: 3 },
      note: 'inconclusive: 3 of 4 runs failed',
    });
  });

  it('rejects nonsensical policies', () => {
    expect(() => classifyRuns(['new'], { runs: 0, threshold: 1 })).toThrow(/runs/);
    expect(() => classifyRuns(['new'], { runs: 1, threshold: 0 })).toThrow(/threshold/);
    expect(() => classifyRuns(['new'], { runs: 1, threshold: 1.5 })).toThrow(/threshold/);
  });
});
