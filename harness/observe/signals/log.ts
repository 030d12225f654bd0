// Signal kind `log`: a kernel message matching a regular expression (a WARN, a "refused" line, ...).
// The pattern is a POSIX extended regular expression, so that the agent can also watch the kernel
// log for it with grep -E (a probe with stopOnSignal); the harness matches it per message line.
import { z } from 'zod';
import { parseKernelLine, splitLines } from '../kernelLog.ts';
import { MAX_MATCHES, regexString, type SignalKind } from './types.ts';

/** An ERE that means the same to grep -E and to JavaScript: no escapes for classes, no lookaround, no backreferences. */
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

/** POSIX bracket classes JavaScript does not know, for matching on the harness side. */
function toJs(ere: string): RegExp {
  const classes: Record<string, string> = { space: '\\s', digit: '0-9', alpha: 'A-Za-z', alnum: 'A-Za-z0-9', upper: 'A-Z', lower: 'a-z', xdigit: '0-9A-Fa-f', punct: '!-/:-@[-`{-~' };
  return new RegExp(ere.replace(/\[:(\w+):\]/g, (m, c: string) => classes[c] ?? m));
}

export const logSignal: SignalKind<LogSignal> = {
  kind: 'log',
  schema,
  describe: (s) => `kernel log /${s.pattern}/`,
  needs: (s) => ({ logWatch: s.pattern }),
  evaluate(s, o) {
    const re = toJs(s.pattern);
    const hits = splitLines(o.console)
      .map((l) => parseKernelLine(l).msg)
      .filter((m) => re.test(m));
    return { fired: hits.length >= s.min, count: hits.length, matches: hits.slice(0, MAX_MATCHES).map((text) => ({ text })) };
  },
};
