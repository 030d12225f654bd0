// Signal kind `counter`: a counter of /proc/net/netstat, /proc/net/snmp or /proc/net/snmp6 moved
// during the probes, in one namespace or summed over all of them.
import { z } from 'zod';
import { diffCounters, pickCounters } from '../counters.ts';
import type { SignalKind } from './types.ts';

export const schema = z.strictObject({
  kind: z.literal('counter'),
  /** "Section.Name" (TcpExt.ListenDrops, Ip6.InNoRoutes) or a bare name matching it in every section */
  counter: z.string().regex(/^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)?$/, 'must be a counter like TcpExt.ListenDrops or Ip6InNoRoutes'),
  /** only this namespace (default: the sum over all of the case's namespaces) */
  ns: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,31}$/, 'must be a namespace name').optional(),
  /** fired when the change is at least this (default 1) */
  min: z.number().int().min(1).max(1_000_000_000).default(1),
});
export type CounterSignal = z.output<typeof schema>;

export const counterSignal: SignalKind<CounterSignal> = {
  kind: 'counter',
  schema,
  describe: (s) => `${s.ns ? `${s.ns}:` : ''}${s.counter} +${s.min} or more`,
  needs: (s) => ({ counters: [s.counter] }),
  evaluate(s, o) {
    let sum = 0;
    const matches: Array<{ text: string; fields: Record<string, string | number> }> = [];
    for (const ns of s.ns ? [s.ns] : o.namespaces) {
      const after = o.countersAfter[ns];
      if (!after) continue;
      const delta = pickCounters(diffCounters(o.countersBefore[ns] ?? {}, after), [s.counter]);
      for (const [name, d] of Object.entries(delta)) {
        sum += d;
        matches.push({ text: `${ns}:${name} ${d >= 0 ? '+' : ''}${d}`, fields: { ns, counter: name, delta: d } });
      }
    }
    return { fired: sum >= s.min, count: sum, matches };
  },
};
