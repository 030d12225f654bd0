// How a verdict counts against its expectation, the same in JUnit, KTAP, the Markdown summary and
// the exit code of `matrix` and `report merge`. Pure.
import type { Verdict } from '../observe/types.ts';

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
