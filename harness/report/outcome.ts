// How a verdict counts against its expectation, the same in JUnit, KTAP, the Markdown summary and
// the exit code of `matrix` and `report merge`. Pure.
import type { Verdict } from '../observe/types.ts';
import type { SignalResult } from '../observe/signals/types.ts';

/** Verdicts that mean the run did not give an answer about the bug. */
export const FAILING_VERDICTS: readonly Verdict[] = ['error', 'timeout', 'panic'];

export type Judgement = { kind: 'pass' } | { kind: 'failure'; message: string } | { kind: 'error'; message: string };

/**
 * A verdict that differs from the expectation is a failure. Without an expectation, an
 * error/timeout/panic verdict is an error (the run gave no answer); everything else passes.
 */
export function judge(verdict: Verdict, expected: Verdict | null | undefined, reason: string): Judgement {
  if (expected) return expected === verdict ? { kind: 'pass' } : { kind: 'failure', message: `expected ${expected}, got ${verdict}` };
  if (FAILING_VERDICTS.includes(verdict)) return { kind: 'error', message: `${verdict}: ${reason}` };
  return { kind: 'pass' };
}

/** What a signal showed, as the report says it: an `absent` signal is absent as expected, fired
 *  (against the signature), or unobservable; the others fired or not. */
export type SignalState = 'fired' | 'not-fired' | 'absent-as-expected' | 'fired-must-be-absent' | 'unobservable';
export function signalState(x: Pick<SignalResult, 'role' | 'fired' | 'incomplete'>): SignalState {
  if (x.role !== 'absent') return x.fired ? 'fired' : 'not-fired';
  if (x.fired) return 'fired-must-be-absent';
  return x.incomplete !== undefined ? 'unobservable' : 'absent-as-expected';
}
/** The state in words: "FIRED", "not fired", "absent as expected", "FIRED (must be absent)", "not observable". */
export function signalStateText(x: Pick<SignalResult, 'role' | 'fired' | 'incomplete'>): string {
  return { fired: 'FIRED', 'not-fired': 'not fired', 'absent-as-expected': 'absent as expected', 'fired-must-be-absent': 'FIRED (must be absent)', unobservable: 'not observable' }[signalState(x)];
}
