// Signal kind `splat`: a kernel splat (WARN, BUG, refcount_t, KASAN, UBSAN report) in the kernel log
// from the moment the agent received the case (setup, steps, probes and after: observe/splat.ts),
// optionally only one naming a function (an RE2 pattern on the whole C name of the faulting
// function). Its evidence is each splat's header and call trace.
import { z } from 'zod';
import { parseSplats, SPLAT_TYPES, splatWatch, type Splat } from '../splat.ts';
import { compileCasePattern, matchDeadline, matchLines } from '../../trust/regex.ts';
import { regexString, type SignalKind, type SignalMatch } from './types.ts';

/** Splats kept as evidence (each with its excerpt of at most SPLAT_MAX_LINES lines). */
export const MAX_SPLAT_EVIDENCE = 3;

export const schema = z.strictObject({
  kind: z.literal('splat'),
  /** warn (WARNING: CPU: ... at file:line func), bug (kernel BUG at, BUG: ...), refcount (refcount_t: ...), kasan (BUG: KASAN: ...), ubsan (UBSAN: ...), or any */
  type: z.enum([...SPLAT_TYPES, 'any']).default('any'),
  /** an RE2 pattern the faulting function's whole C name must match (e.g. "fib6_.*") */
  function: regexString(200).optional(),
  min: z.number().int().min(1).max(1_000_000).default(1),
});
export type SplatSignal = z.output<typeof schema>;

function evidence(s: Splat): SignalMatch {
  const fields: Record<string, string | number> = { type: s.type, function: s.function ?? '' };
  if (s.kind !== undefined) fields.kind = s.kind;
  if (s.at !== undefined) fields.at = s.at;
  if (s.file !== undefined) fields.file = s.file;
  if (s.line !== undefined) fields.line = s.line;
  if (s.phase !== undefined) fields.phase = s.phase;
  if (s.time !== undefined) fields.time = s.time;
  const where = s.function ? ` (function ${s.function}${s.phase ? `, during ${s.phase}` : ''})` : s.phase ? ` (during ${s.phase})` : '';
  return { text: `${s.title}${where}`, fields, excerpt: s.excerpt };
}

// the splats of the console last read: every splat signal of a run reads the same console
let last: { console: string; splats: Splat[] } | null = null;
function splatsOf(consoleText: string): Splat[] {
  if (last?.console !== consoleText) last = { console: consoleText, splats: parseSplats(consoleText) };
  return last.splats;
}

export const splatSignal: SignalKind<SplatSignal> = {
  kind: 'splat',
  schema,
  describe: (s) => `kernel ${s.type === 'any' ? 'splat' : `${s.type} splat`}${s.function ? ` in a function matching /${s.function}/` : ''}`,
  needs: (s) => ({ logWatch: splatWatch(s.type) }),
  evaluate(s, o) {
    const typed = splatsOf(o.console).filter((x) => s.type === 'any' || x.type === s.type);
    let hits = typed;
    let incomplete: string | undefined;
    if (s.function !== undefined) {
      const re = compileCasePattern(`^(?:${s.function})$`);
      const named = typed.filter((x) => x.function !== null);
      ({ hits, incomplete } = matchLines(re, named, (x) => x.function ?? '', o.matchDeadline ?? matchDeadline()));
    }
    return {
      fired: hits.length >= s.min,
      count: hits.length,
      matches: hits.slice(0, MAX_SPLAT_EVIDENCE).map(evidence),
      ...(incomplete ? { incomplete } : {}),
    };
  },
};
