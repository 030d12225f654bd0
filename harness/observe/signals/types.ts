// Signals: the kernel's own evidence a case declares (its signature, or plain evidence). Each kind
// is one module in this folder behind the `SignalKind` interface and registered in index.ts:
// what it needs from the guest, how it reads its evidence, how it describes a match. Pure.
import { z } from 'zod';
import type { Counters } from '../counters.ts';
import type { TraceEvent } from '../trace.ts';
import { casePattern } from '../../trust/regex.ts';

/** What the kernel and the agent reported for one run, as the signals read it. */
export interface Observations {
  /** every kernel message of the run (the console) */
  console: string;
  /** tracepoint events (events the case or its signals enabled) during the probes */
  trace: TraceEvent[];
  /** every tracepoint event recorded, each with its phase (steps, probes): more than `trace` when tracing was armed before the steps; default `trace` */
  traceAll?: TraceEvent[];
  /** tracepoints ("group/event" or "group") the guest said it could not enable */
  unavailable?: string[];
  /** counters per namespace, before and after the probes */
  countersBefore: Record<string, Counters>;
  countersAfter: Record<string, Counters>;
  /** kernel addresses -> "symbol+0xoff" (from the guest's kallsyms), for events that print addresses */
  symbols: Record<string, string>;
  /** the case's namespaces, the initial one first */
  namespaces: string[];
  /** when the run's case-pattern matching must stop (epoch ms, trust/regex.ts matchDeadline); evaluateSignals sets it */
  matchDeadline?: number;
}

/** What a signal needs the guest to collect or set. */
export interface GuestNeeds {
  /** tracepoints to enable during the probes: "group" or "group:event" */
  tracepoints?: string[];
  /** counters to report even when they are zero */
  counters?: string[];
  /** event fields (e.g. `location`) holding kernel addresses the agent turns into symbols */
  symbolize?: string[];
  /** sysctls the kernel needs to produce the signal at all ("*" = every namespace), applied before the case's own */
  sysctls?: Array<{ ns: string; key: string; value: string }>;
  /** record the tracepoints through the case's steps too (not only the probes) */
  traceSteps?: boolean;
  /** an extended regular expression (grep -E) for the kernel log: a probe with stopOnSignal stops at its first new match */
  logWatch?: string;
}

export interface SignalMatch {
  /** one line of evidence, as the kernel printed it (or close to it) */
  text: string;
  /** structured fields, where the kind has them */
  fields?: Record<string, string | number>;
  /** the lines around it worth reading (a splat: its header and call trace; bounded by its kind) */
  excerpt?: string[];
}

export interface SignalOutcome {
  fired: boolean;
  /** how many times it fired (matching lines or events; a counter's delta) */
  count: number;
  /** the first matches (bounded) */
  matches: SignalMatch[];
  /** the evidence was not read to its end (a case pattern ran out of its time budget): why */
  incomplete?: string;
}

export interface SignalKind<S extends { kind: string }> {
  kind: S['kind'];
  /** the case-file fields of this kind, besides `name` and `kind` */
  schema: z.ZodType<S>;
  /** one line saying what the signal looks for */
  describe(s: S): string;
  needs(s: S): GuestNeeds;
  evaluate(s: S, o: Observations): SignalOutcome;
}

export const MAX_MATCHES = 20;

/** A case-supplied regular expression: RE2 syntax, bounded length and size (trust/regex.ts). */
export function regexString(max: number): z.ZodType<string> {
  return casePattern(max);
}

/** Escape a literal for a POSIX extended regular expression. */
export function ereEscape(s: string): string {
  return s.replace(/[.[\]()*+?{}|^$\\]/g, '\\$&');
}

export type SignalRole = 'signature' | 'absent' | 'evidence';

/** What one run says about one declared signal. */
export interface SignalResult {
  name: string;
  kind: string;
  /** part of the case's signature (must fire), in its `absent` list (must not fire), or evidence only */
  role: SignalRole;
  description: string;
  fired: boolean;
  count: number;
  matches: SignalMatch[];
  incomplete?: string;
}
