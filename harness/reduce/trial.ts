// One trial of `reduce`: is this candidate still the bug? Pure: the runs are given as a function.
// "Still the bug": `reproduced` on the buggy kernel and, with a fixed kernel to compare against,
// `not-reproduced` on it. Anything else (error: the scenario stopped working; timeout; panic;
// reproduced on both) is "not the bug". Every answer is confirmed by a repeat before it steers the
// search (a repeat restores the candidate as set up, its case snapshot: ~0.35 s), so that one flaky
// run cannot shrink the case wrongly; runs that disagree make the trial "not the bug" (flaky), which
// can only keep an element, never drop one. A candidate whose setup failed (a setup step failed,
// which is deterministic; its probes never ran) is not repeated.
import type { Verdict } from '../observe/types.ts';

export type Role = 'buggy' | 'fixed';

export interface RunOutcome {
  verdict: Verdict;
  reason: string;
  /** the candidate's setup completed (its probes ran): a repeat restores it as set up from its case
   *  snapshot, or sets it up again with snapshots off */
  repeatable: boolean;
  /** where the run's evidence is */
  dir?: string;
  ms?: number;
}

export type RunFn = (role: Role, attempt: 1 | 2) => Promise<RunOutcome>;

export interface TrialRun extends RunOutcome {
  role: Role;
  attempt: 1 | 2;
}

export interface Judgement {
  bug: boolean;
  /** the two attempts disagreed */
  flaky: boolean;
  /** a second attempt agreed (false: not repeated, the setup failed) */
  confirmed: boolean;
  runs: TrialRun[];
  /** one line: why */
  why: string;
}

interface Attempt {
  bug: boolean;
  runs: TrialRun[];
  why: string;
  /** the run that decided "not the bug" could be repeated cheaply */
  repeatable: boolean;
}

async function attempt(run: RunFn, n: 1 | 2, against: boolean): Promise<Attempt> {
  const b = { ...(await run('buggy', n)), role: 'buggy' as const, attempt: n };
  if (b.verdict !== 'reproduced') return { bug: false, runs: [b], why: `buggy kernel: ${b.verdict} (${b.reason})`, repeatable: b.repeatable };
  if (!against) return { bug: true, runs: [b], why: 'buggy kernel: reproduced', repeatable: true };
  const f = { ...(await run('fixed', n)), role: 'fixed' as const, attempt: n };
  if (f.verdict === 'not-reproduced') return { bug: true, runs: [b, f], why: 'buggy kernel: reproduced, fixed kernel: not-reproduced', repeatable: true };
  return { bug: false, runs: [b, f], why: `fixed kernel: ${f.verdict} (${f.reason}): no longer the difference`, repeatable: f.repeatable };
}

export async function judgeTrial(run: RunFn, o: { against: boolean }): Promise<Judgement> {
  const first = await attempt(run, 1, o.against);
  if (!first.bug && !first.repeatable) return { bug: false, flaky: false, confirmed: false, runs: first.runs, why: `${first.why}; not repeated (the setup failed: deterministic)` };
  const second = await attempt(run, 2, o.against);
  const runs = [...first.runs, ...second.runs];
  if (first.bug === second.bug) return { bug: first.bug, flaky: false, confirmed: true, runs, why: `${first.why}; confirmed by a repeat` };
  return { bug: false, flaky: true, confirmed: false, runs, why: `flaky: attempt 1: ${first.why}; attempt 2: ${second.why} (counted as not the bug)` };
}
