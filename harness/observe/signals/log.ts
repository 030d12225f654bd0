// Signal kind `log`: a kernel message matching a regular expression (a WARN, a "refused" line, ...).
// The pattern is a POSIX extended regular expression, so that the agent can also watch the kernel
// log for it with grep -E (a probe with stopOnSignal); the harness matches it per message line
// with RE2 (trust/regex.ts: linear time, lines capped at 4 KiB, a time budget per run), which
// knows the POSIX bracket classes ([[:space:]], [[:alpha:]], ...) itself.
import { z } from 'zod';
import { parseKernelLine, splitLines } from '../kernelLog.ts';
import { capLine, compileCasePattern, matchDeadline, matchLines } from '../../trust/regex.ts';
import { MAX_MATCHES, regexString, type SignalKind } from './types.ts';

/** An ERE that means the same to grep -E and to RE2: no escapes for classes, no lookaround, no backreferences. */
export const erePattern = regexString(200).refine(
  (p) => !/\\[dDwWsSbB1-9]|\(\?/.test(p),
  'must be a POSIX extended regular expression: use [0-9] not \\d, [[:space:]] not \\s, no (?...) or backreferences',
);

export const schema = z.strictObject({
  kind: z.literal('log'),
  pattern: erePattern,
  min: z.number().int().min(1).max(1_000_000).default(1),
});
export type LogSignal = z.output<typeof schema>;

export const logSignal: SignalKind<LogSignal> = {
  kind: 'log',
  schema,
  describe: (s) => `kernel log /${s.pattern}/`,
  needs: (s) => ({ logWatch: s.pattern }),
  evaluate(s, o) {
    const re = compileCasePattern(s.pattern);
    // a line is parsed (and matched) on its first 4 KiB only: the guest writes these lines
    const msgs = splitLines(o.console).map((l) => parseKernelLine(capLine(l)).msg);
    const { hits, incomplete } = matchLines(re, msgs, (m) => m, o.matchDeadline ?? matchDeadline());
    return {
      fired: hits.length >= s.min,
      count: hits.length,
      matches: hits.slice(0, MAX_MATCHES).map((text) => ({ text })),
      ...(incomplete ? { incomplete } : {}),
    };
  },
};
