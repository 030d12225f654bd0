// Generic ftrace output (the `trace` file): one event per line, whatever the event. Pure.
//
//   <task>-<pid>  [<cpu>] <flags> <timestamp>: <event>: <text>
//   e.g. "            ping-62      [000] ..s1.     2.345678: fib_table_lookup: table 255 oif 0 ..."
// The flags column is absent on old kernels and with some trace options; the task may contain
// spaces and dashes ("<idle>-0", "kworker/u2:1-30"). Comment lines start with '#'.

export interface TraceEvent {
  task: string;
  pid: number;
  cpu: number;
  /** seconds */
  ts: number;
  /** the event's name as printed (without its group): fib_table_lookup, kfree_skb, ... */
  event: string;
  /** what the event printed after "<event>: " */
  text: string;
  raw: string;
  /** its line in the trace (from 0), which the agent's symbols refer to */
  line: number;
  /** the case's phase it was recorded in (tracePhases) */
  phase?: TracePhase;
}

export type TracePhase = 'steps' | 'probes';
const MARK_RE = /^kernel-repro: phase (steps|probes)\s*$/;

/**
 * The events of a trace, each with the phase of the case it was recorded in, without the agent's
 * phase marks: the agent writes "kernel-repro: phase steps|probes" into trace_marker (a
 * tracing_mark_write event) when it arms the tracepoints before the case's steps. A trace without
 * marks was recorded during the probes only (the tracepoints are armed just before them).
 */
export function tracePhases(events: TraceEvent[]): TraceEvent[] {
  let phase: TracePhase = 'probes';
  const marked = events.some((e) => e.event === 'tracing_mark_write' && MARK_RE.test(e.text));
  if (marked) phase = 'steps';
  const out: TraceEvent[] = [];
  for (const e of events) {
    const m = e.event === 'tracing_mark_write' ? MARK_RE.exec(e.text) : null;
    if (m) phase = m[1] as TracePhase;
    else out.push({ ...e, phase });
  }
  return out;
}

const LINE_RE = /^\s*(.*?)-(\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(\d{3,})\]\s+(?:\S{4,6}\s+)?(\d+\.\d+):\s+([A-Za-z0-9_]+):\s?(.*)$/;

export function parseTraceLine(line: string, index = 0): TraceEvent | null {
  const s = line.replace(/\r$/, '');
  if (s.startsWith('#')) return null;
  const m = LINE_RE.exec(s);
  if (!m) return null;
  return { task: m[1]!.trim(), pid: Number(m[2]), cpu: Number(m[3]), ts: Number(m[4]), event: m[5]!, text: m[6] ?? '', raw: s, line: index };
}

export function parseTrace(text: string): TraceEvent[] {
  const out: TraceEvent[] = [];
  text.split('\n').forEach((line, i) => {
    const e = parseTraceLine(line, i);
    if (e) out.push(e);
  });
  return out;
}

/** `group:event` or `event` -> the event name as the trace prints it. */
export function eventName(spec: string): string {
  const i = spec.indexOf(':');
  return i >= 0 ? spec.slice(i + 1) : spec;
}

/** `key=value` words of an event's text (`skbaddr=... protocol=2048 location=...`). */
export function eventFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) out[m[1]!] = m[2]!;
  return out;
}

/** Where a symbolised address was: event line and field, e.g. "12:location". */
export function symbolKey(line: number, field: string): string {
  return `${line}:${field}`;
}

/**
 * The agent's `symbols` section: "<event line> <field> <address> <symbol>+0x<off>" lines (from the
 * guest's /proc/kallsyms) -> "line:field" -> "symbol+0xoff".
 */
export function parseSymbols(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([A-Za-z_][A-Za-z0-9_]*)\s+(?:0x)?[0-9a-fA-F]{1,16}\s+(\S+)/.exec(line);
    if (m) out[symbolKey(Number(m[1]), m[2]!)] = m[3]!;
  }
  return out;
}

export function normalizeAddress(a: string): string {
  return a.replace(/^0x/i, '').toLowerCase().padStart(16, '0');
}

/** "ip_rcv_finish_core.constprop.0+0x1a3/0x3c0" -> "ip_rcv_finish_core" (the function as written in C). */
export function functionOf(symbol: string): string {
  return symbol.replace(/[+/].*$/, '').replace(/\.(?:constprop|isra|part|cold|llvm)(?:\.\d+)*$/g, '').replace(/\.(?:constprop|isra|part|cold|llvm)\.\d+/g, '');
}

/** The tracepoints the agent said it could not enable ("warn tracepoint <group/event> not available"). */
export function unavailableTracepoints(warnings: readonly string[]): string[] {
  return warnings.map((w) => /^tracepoint (\S+) not available$/.exec(w)?.[1]).filter((x): x is string => x !== undefined);
}
