// Trust rule: a regular expression from a case file cannot hang the host.
// Case patterns (a `log` signal's `pattern`, a `tracepoint` signal's `match`) are untrusted, and the
// lines they run over (kernel messages, trace events) are written by the guest. So every
// case-supplied pattern goes through this module, which enforces:
//   1. RE2 syntax, compiled by re2js (a linear-time automaton: no backtracking). Backreferences,
//      lookahead and lookbehind do not exist there; a pattern re2js refuses (or one that does not
//      compile) is bad input when the case is LOADED (zod refinement: exit 2, naming the field).
//   2. Bounded patterns: at most `max` characters (the field's own limit, never above
//      MAX_PATTERN_CHARS) and a compiled program of at most MAX_PROGRAM_SIZE instructions
//      (RE2 itself refuses a repeat count above 1000, nested ones included).
//   3. Bounded input: a line longer than MAX_LINE_CHARS (4096) is matched on its first 4096
//      characters only, so one line costs at most program size x 4096 steps.
//   4. Bounded total work: the case patterns of one run share MATCH_BUDGET_MS (1 s) of matching, short enough that the
//      event loop, blocked while they match, still answers SIGINT within 2 s;
//      once it has passed, matching stops and the outcome says so (the signal is `incomplete`,
//      an error verdict when the signature needed it), it never blocks the run for longer.
// Patterns the harness builds from its own code may stay JavaScript RegExp.
import { RE2JS } from 're2js';
import { z } from 'zod';

/** The longest pattern any case field may have. */
export const MAX_PATTERN_CHARS = 512;
/** The largest compiled program (re2js instructions) a case pattern may have. */
export const MAX_PROGRAM_SIZE = 2000;
/** Lines longer than this are matched on their first MAX_LINE_CHARS characters (4 KiB of ASCII). */
export const MAX_LINE_CHARS = 4096;
/** Time the case patterns of one run may spend matching, together (a normal pattern takes under 0.3 s over 10 MB of lines). */
export const MATCH_BUDGET_MS = 1000;

/** A compiled case pattern: only `test`, always bounded. */
export interface CaseRegex {
  readonly source: string;
  /** does the pattern match somewhere in the line (its first MAX_LINE_CHARS characters)? */
  test(line: string): boolean;
}

/** Why a case pattern is refused, or null when it is acceptable. */
export function patternProblem(pattern: string, max = MAX_PATTERN_CHARS): string | null {
  const limit = Math.min(max, MAX_PATTERN_CHARS);
  if (pattern.length === 0) return 'must not be empty';
  if (pattern.length > limit) return `is ${pattern.length} characters, more than the ${limit} a pattern may have`;
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    // re2js: "error parsing regexp: invalid or unsupported Perl syntax: `(?!`"
    const why = e instanceof Error ? e.message.replace(/^error parsing regexp:\s*/, '') : String(e);
    return `is not an RE2 regular expression (${why}); patterns are RE2 syntax: no backreferences, lookahead or lookbehind`;
  }
  const size = re.programSize();
  if (size > MAX_PROGRAM_SIZE) return `compiles to ${size} instructions, more than the ${MAX_PROGRAM_SIZE} a pattern may have (use smaller repeat counts)`;
  return null;
}

/** Compile a case pattern; throws when `patternProblem` refuses it (the schema refuses those at load time). */
export function compileCasePattern(pattern: string): CaseRegex {
  const problem = patternProblem(pattern);
  if (problem) throw new Error(`internal: case pattern /${pattern}/ ${problem} (the case schema should have refused it)`);
  const re = RE2JS.compile(pattern);
  return {
    source: pattern,
    test: (line) => re.test(capLine(line)),
  };
}

/** A line as a case pattern sees it: at most MAX_LINE_CHARS characters. */
export function capLine(line: string): string {
  return line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) : line;
}

/** A zod string that is an acceptable case pattern of at most `max` characters (error: "<field>: is not ..."). */
export function casePattern(max: number): z.ZodType<string> {
  return z.string().superRefine((p, ctx) => {
    const problem = patternProblem(p, max);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

export interface LinesMatched<T> {
  /** the items whose line matched, in order */
  hits: T[];
  /** set when the budget ran out before every line was examined */
  incomplete?: string;
}

/** The deadline (epoch ms) of one run's case-pattern matching: every pattern of the run shares it. */
export function matchDeadline(now: number = Date.now()): number {
  return now + MATCH_BUDGET_MS;
}

/**
 * The items whose text matches `re`, examined in order until `deadline` (epoch ms, see
 * matchDeadline) has passed: the clock is read before every line, and one line costs at most
 * program size x MAX_LINE_CHARS steps (~0.2 s at the worst), so this returns soon after it.
 */
export function matchLines<T>(re: CaseRegex, items: readonly T[], text: (item: T) => string, deadline: number, now: () => number = Date.now): LinesMatched<T> {
  const hits: T[] = [];
  for (let i = 0; i < items.length; i++) {
    if (now() > deadline)
      return { hits, incomplete: `/${re.source}/ ran out of the ${MATCH_BUDGET_MS} ms case patterns may take per run after ${i} of ${items.length} lines` };
    const item = items[i]!;
    if (re.test(text(item))) hits.push(item);
  }
  return { hits };
}
