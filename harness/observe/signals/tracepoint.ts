// Signal kind `tracepoint`: an event of a tracepoint (fib:fib_table_lookup, fib6:fib6_table_lookup,
// net:netif_receive_skb, ...) whose text matches a regular expression, during the probes.
import { z } from 'zod';
import { eventName } from '../trace.ts';
import { capLine, compileCasePattern, matchDeadline, matchLines } from '../../trust/regex.ts';
import { MAX_MATCHES, regexString, type Observations, type SignalKind } from './types.ts';

export const TRACEPOINT_RE = /^[a-z0-9_]{1,64}(?::[a-z0-9_]{1,64})?$/;

export const schema = z.strictObject({
  kind: z.literal('tracepoint'),
  /** "group:event", as under /sys/kernel/tracing/events/<group>/<event> */
  event: z.string().regex(/^[a-z0-9_]{1,64}:[a-z0-9_]{1,64}$/, 'must be group:event like fib:fib_table_lookup'),
  /** a regular expression (RE2 syntax: no lookaround or backreferences) the event's text must match; default: any event */
  match: regexString(300).optional(),
  min: z.number().int().min(1).max(1_000_000).default(1),
  /** when its events count: during the probes (default), the case's steps, or both (the tracepoints are then armed before the steps) */
  during: z.enum(['probes', 'steps', 'all']).optional(),
});
export type TracepointSignal = z.output<typeof schema>;

export const tracepointSignal: SignalKind<TracepointSignal> = {
  kind: 'tracepoint',
  schema,
  describe: (s) => `${s.event} events${s.match ? ` matching /${s.match}/` : ''}${s.during === 'steps' ? ' during the steps' : s.during === 'all' ? ' during the steps and probes' : ''}`,
  needs: (s) => ({ tracepoints: [s.event], ...(s.during === 'steps' || s.during === 'all' ? { traceSteps: true } : {}) }),
  evaluate(s, o) {
    const name = eventName(s.event);
    const window = s.during === undefined || s.during === 'probes' ? o.trace : (o.traceAll ?? o.trace).filter((e) => s.during === 'all' || e.phase === 'steps');
    const events = window.filter((e) => e.event === name);
    const missing = unavailable(s.event, o);
    const { hits, incomplete } = s.match ? matchLines(compileCasePattern(s.match), events, (e) => e.text, o.matchDeadline ?? matchDeadline()) : { hits: events, incomplete: undefined };
    // identical lookups repeat (retransmits): the evidence lists each distinct text once
    const distinct = [...new Set(hits.map((e) => capLine(e.text).trim()))];
    return {
      fired: hits.length >= s.min,
      count: hits.length,
      matches: distinct.slice(0, MAX_MATCHES).map((text) => ({ text })),
      ...(incomplete ? { incomplete } : missing && hits.length === 0 ? { incomplete: missing } : {}),
    };
  },
};

/** Why a tracepoint could not be observed (the guest could not enable it), or null. */
export function unavailable(event: string, o: Pick<Observations, 'unavailable'>): string | null {
  const slash = event.replace(':', '/');
  const group = slash.split('/')[0]!;
  return (o.unavailable ?? []).some((u) => u === slash || u === group) ? `tracepoint ${event} is not available on this kernel` : null;
}
