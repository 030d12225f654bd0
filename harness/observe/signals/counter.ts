// Signal kind `counter`: a counter of /proc/net/netstat, /proc/net/snmp or /proc/net/snmp6 moved
// in one namespace or summed over all of them: from the end of the namespace's setup to after the
// probes (the case's steps and probes, `during: all`, the default), or over the steps or the probes only.
import { z } from 'zod';
import { diffCounters, pickCounters } from '../counters.ts';
import type { SignalKind } from './types.ts';

export const schema = z.strictObject({
  kind: z.literal('counter'),
  /** "Section.Name" (TcpExt.ListenDrops, Ip6.InNoRoutes) or a bare name matching it in every section */
  counter: z.string().regex(/^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)?$/, 'must be a counter like TcpExt.ListenDrops or Ip6InNoRoutes'),
  /** only this namespace (default: the sum over all of the case's namespaces) */
  ns: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,31}$/, 'must be a namespace name').optional(),
  /** when its change counts: the steps and the probes (`all`, the default: from the end of each
   *  namespace's setup to after the probes), the case's `steps` only, or the `probes` only (the
   *  counters are then read just before the probes too) */
  during: z.enum(['probes', 'steps', 'all']).optional(),
  /** fired when the change is at least this (default 1) */
  min: z.number().int().min(1).max(1_000_000_000).default(1),
});
export type CounterSignal = z.output<typeof schema>;

export const counterSignal: SignalKind<CounterSignal> = {
  kind: 'counter',
  schema,
  describe: (s) => `${s.ns ? `${s.ns}:` : ''}${s.counter} +${s.min} or more${s.during === 'steps' ? ' during the steps' : s.during === 'probes' ? ' during the probes' : ''}`,
  needs: (s) => ({ counters: [s.counter], ...(s.during === 'steps' || s.during === 'probes' ? { countersAtProbes: true } : {}) }),
  evaluate(s, o) {
    let sum = 0;
    const matches: Array<{ text: string; fields: Record<string, string | number> }> = [];
    const split = s.during === 'steps' || s.during === 'probes';
    for (const ns of s.ns ? [s.ns] : o.namespaces) {
      // the window's ends: before the steps (end of the setup), before the probes, after the probes
      const mid = o.countersAtProbes?.[ns];
      if (split && !mid && (o.countersAfter[ns] || o.countersBefore[ns]))
        return { fired: false, count: sum, matches, incomplete: `the counters of ${ns} were not read before the probes` };
      const from = s.during === 'probes' ? mid : o.countersBefore[ns];
      const to = s.during === 'steps' ? mid : o.countersAfter[ns];
      if (!to) continue;
      const delta = pickCounters(diffCounters(from ?? {}, to), [s.counter]);
      for (const [name, d] of Object.entries(delta)) {
        sum += d;
        matches.push({ text: `${ns}:${name} ${d >= 0 ? '+' : ''}${d}`, fields: { ns, counter: name, delta: d } });
      }
    }
    return { fired: sum >= s.min, count: sum, matches };
  },
};
