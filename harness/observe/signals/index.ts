// The registry of signal kinds. Adding a kind: a module in this folder, and one line here.
import { z } from 'zod';
import { counterSignal, schema as counter } from './counter.ts';
import { dropReasonSignal, schema as dropReason } from './dropReason.ts';
import { logSignal, schema as log } from './log.ts';
import { martianSignal, schema as martian } from './martian.ts';
import { schema as tracepoint, tracepointSignal } from './tracepoint.ts';
import { schema as splat, splatSignal } from './splat.ts';
import { matchDeadline } from '../../trust/regex.ts';
import type { GuestNeeds, Observations, SignalKind, SignalResult } from './types.ts';

export const SIGNAL_KINDS = [martianSignal, counterSignal, dropReasonSignal, logSignal, tracepointSignal, splatSignal] as const;

const byKind = new Map<string, SignalKind<{ kind: string }>>(SIGNAL_KINDS.map((k) => [k.kind, k as unknown as SignalKind<{ kind: string }>]));

const named = { name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a name: letters, digits, _ . or - (at most 64)') };

/** The case-file entry of a signal: a name, plus the fields of its kind. */
export const signalSchema = z.discriminatedUnion('kind', [
  martian.extend(named),
  counter.extend(named),
  dropReason.extend(named),
  log.extend(named),
  tracepoint.extend(named),
  splat.extend(named),
]);
export type SignalSpec = z.output<typeof signalSchema>;

function kindOf(s: { kind: string }): SignalKind<{ kind: string }> {
  const k = byKind.get(s.kind);
  if (!k) throw new Error(`internal: no signal kind ${s.kind}`);
  return k;
}

export function describeSignal(s: SignalSpec): string {
  return kindOf(s).describe(s);
}

export function signalNeeds(s: SignalSpec): GuestNeeds {
  return kindOf(s).needs(s);
}

/** Each declared signal's outcome; `signature` names the signals that must fire, `absent` those that must not. */
export function evaluateSignals(specs: SignalSpec[], signature: string[], obs: Observations, absent: string[] = []): SignalResult[] {
  // the case patterns of the run share one matching budget (trust/regex.ts)
  const o: Observations = { ...obs, matchDeadline: obs.matchDeadline ?? matchDeadline() };
  return specs.map((s) => ({
    name: s.name,
    kind: s.kind,
    role: signature.includes(s.name) ? 'signature' : absent.includes(s.name) ? 'absent' : 'evidence',
    description: describeSignal(s),
    ...kindOf(s).evaluate(s, o),
  }));
}

/** Everything the guest must do for these signals, merged. */
export function mergedNeeds(specs: SignalSpec[]): Required<Omit<GuestNeeds, 'logWatch'>> {
  const out = { tracepoints: [] as string[], counters: [] as string[], symbolize: [] as string[], sysctls: [] as Array<{ ns: string; key: string; value: string }>, traceSteps: false };
  for (const s of specs) {
    const n = signalNeeds(s);
    if (n.traceSteps) out.traceSteps = true;
    for (const t of n.tracepoints ?? []) if (!out.tracepoints.includes(t)) out.tracepoints.push(t);
    for (const c of n.counters ?? []) if (!out.counters.includes(c)) out.counters.push(c);
    for (const f of n.symbolize ?? []) if (!out.symbolize.includes(f)) out.symbolize.push(f);
    for (const x of n.sysctls ?? []) if (!out.sysctls.some((y) => y.ns === x.ns && y.key === x.key)) out.sysctls.push(x);
  }
  return out;
}

export type { GuestNeeds, Observations, SignalMatch, SignalResult, SignalRole } from './types.ts';
