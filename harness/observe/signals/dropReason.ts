// Signal kind `drop-reason`: the kernel freed a packet with this skb drop reason (tracepoint
// skb:kfree_skb, "reason: <REASON>"), optionally in this function (the event's `location`, turned
// into a symbol with the guest's kallsyms).
import { z } from 'zod';
import { eventFields, functionOf, symbolKey, type TraceEvent } from '../trace.ts';
import { MAX_MATCHES, type SignalKind } from './types.ts';
import { unavailable } from './tracepoint.ts';

export const schema = z.strictObject({
  kind: z.literal('drop-reason'),
  /** SKB_DROP_REASON_<REASON> without the prefix, e.g. IP_RPFILTER, NETFILTER_DROP, NOT_SPECIFIED */
  reason: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'must be a drop reason like IP_RPFILTER'),
  /** the function that dropped it (the C name, e.g. ip_rcv_finish_core) */
  function: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a C function name').optional(),
});
export type DropReasonSignal = z.output<typeof schema>;

/** A kfree_skb event's reason and where it happened: the symbol the agent found for its `location`, or the one the kernel printed. */
export function dropOf(e: Pick<TraceEvent, 'text' | 'line'>, symbols: Record<string, string>): { reason: string; location: string; at: string | null } | null {
  const reason = /\breason: (\S+)/.exec(e.text)?.[1];
  if (!reason) return null;
  const location = eventFields(e.text).location ?? '';
  const at = symbols[symbolKey(e.line, 'location')] ?? (/^[A-Za-z_]/.test(location) ? location : null); // %pS on newer kernels
  return { reason, location, at };
}

export const dropReasonSignal: SignalKind<DropReasonSignal> = {
  kind: 'drop-reason',
  schema,
  describe: (s) => `packets dropped with reason ${s.reason}${s.function ? ` in ${s.function}` : ''}`,
  needs: () => ({ tracepoints: ['skb:kfree_skb'], symbolize: ['location'] }),
  evaluate(s, o) {
    const hits: Array<{ text: string; fields: Record<string, string> }> = [];
    for (const e of o.trace) {
      if (e.event !== 'kfree_skb') continue;
      const d = dropOf(e, o.symbols);
      if (!d || d.reason !== s.reason) continue;
      if (s.function && (d.at === null || functionOf(d.at) !== s.function)) continue;
      hits.push({ text: `${d.reason} at ${d.at ?? d.location} (${e.task}-${e.pid})`, fields: { reason: d.reason, at: d.at ?? d.location } });
    }
    const missing = hits.length === 0 ? unavailable('skb:kfree_skb', o) : null;
    return { fired: hits.length > 0, count: hits.length, matches: hits.slice(0, MAX_MATCHES), ...(missing ? { incomplete: missing } : {}) };
  },
};
