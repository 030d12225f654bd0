// `bisect-run`'s exit code, in the language of `git bisect run`: 0 good, 1-127 except 125 bad,
// 125 skip, 128-255 abort the bisection. Only the case's own verdict may mark a commit good or bad;
// a commit that cannot be judged is skipped; a harness that cannot judge any commit aborts, so a
// misconfiguration (a bad case, a kconfig need the config lacks, a missing QEMU, a full disk)
// never marks a commit. Pure.
import type { Verdict } from '../observe/types.ts';
import { ExitCode, HarnessError, normalizeError } from '../util/errors.ts';

/** Abort codes are 200 + the harness's own exit code (202 bad input, 203 missing prerequisite, ...). */
export const BISECT_RUN_ABORT_BASE = 200;
export const BISECT_RUN_GOOD = 0;
export const BISECT_RUN_BAD = 1;
export const BISECT_RUN_SKIP = 125;

export type BisectRunOutcome =
  /** the case ran on this commit's kernel */
  | { kind: 'verdict'; verdict: Verdict }
  /** this commit's kernel did not build */
  | { kind: 'kernel-build-failed' }
  /** anything else went wrong: the harness, not the commit */
  | { kind: 'harness-error'; error: unknown };

export function bisectRunExitCode(o: BisectRunOutcome): number {
  if (o.kind === 'verdict') return o.verdict === 'reproduced' ? BISECT_RUN_BAD : o.verdict === 'not-reproduced' ? BISECT_RUN_GOOD : BISECT_RUN_SKIP;
  if (o.kind === 'kernel-build-failed') return BISECT_RUN_SKIP;
  const err = normalizeError(o.error);
  if (!(err instanceof HarnessError)) return BISECT_RUN_ABORT_BASE + ExitCode.runFailed;
  if (err.kind === 'interrupted') return ExitCode.interrupted; // 130: git aborts too
  // build-failed here is the harness's own boot image (a kernel build failure is its own outcome);
  // boot-failed is QEMU refusing to start, and internal errors: 201
  return BISECT_RUN_ABORT_BASE + err.exitCode;
}

/** What the exit code tells `git bisect run`. */
export function bisectRunMeaning(code: number): 'good' | 'bad' | 'skip' | 'abort' {
  if (code === 0) return 'good';
  if (code === 125) return 'skip';
  if (code >= 1 && code <= 127) return 'bad';
  return 'abort';
}
