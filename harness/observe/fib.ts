// Parse fib_table_lookup tracepoint events from /sys/kernel/tracing/trace (or trace_pipe). Pure: no I/O.
//
// include/trace/events/fib.h, v4.18+ (one event per lookup, result included):
//   "table %u oif %d iif %d proto %u %pI4/%u -> %pI4/%u tos %d scope %d flags %x
//    ==> dev %s gw %pI4/%pI6c err %d"
//   (4.18 .. 5.1 printed "... ==> dev %s gw %pI4 src %pI4 err %d" instead; both are accepted.)
// Before 4.18 there were two events:
//   fib_table_lookup:    "table %u oif %d iif %d src %pI4 dst %pI4 tos %d scope %d flags %x"
//   fib_table_lookup_nh: "nexthop dev %s oif %d src %pI4"   (dev may be "not set")
//
// The columns before the event name differ between kernel versions and tracing options
// (irq-flags width, tgid column, `<...>` task names), so lines are anchored on
// "<timestamp>: <event>:" and the prefix is only used to tell tasks apart.

import type { FibLookupEvent } from './types.ts';

const LINE_RE = /^(.*?)\s*(\d+(?:\.\d+)?):\s+(fib_table_lookup|fib_table_lookup_nh):\s+(.*)$/;
const PREFIX_RE = /^\s*(.*?)\s+(?:\(\s*[\d-]+\)\s+)?\[(\d+)\]/;

const V418_RE =
  /^table (\d+) oif (-?\d+) iif (-?\d+) proto (\d+) (\S+)\/(\d+) -> (\S+)\/(\d+) tos (-?\d+) scope (-?\d+) flags ([0-9a-fA-F]+) ==> dev (.*?) gw (\S+)(?: src \S+)? err (-?\d+)/;
const PRE418_RE =
  /^table (\d+) oif (-?\d+) iif (-?\d+) src (\S+) dst (\S+) tos (-?\d+) scope (-?\d+) flags ([0-9a-fA-F]+)/;
const NH_RE = /^nexthop dev (.*?) oif (-?\d+) src (\S+)/;

/** Identify the context that emitted a trace line: task (comm-pid) plus CPU. */
function contextKey(prefix: string): string {
  const m = PREFIX_RE.exec(prefix);
  if (!m) return prefix.trim();
  const task = m[1] ?? '';
  // `<...>-311708` and `ping-311708` are the same task: key on the pid when there is one.
  const pid = /-(\d+)$/.exec(task);
  return `${pid ? pid[1] : task}@${m[2] ?? ''}`;
}

function num(s: string | undefined): number {
  return Number(s);
}

function hex(s: string | undefined): number {
  return Number.parseInt(s ?? '', 16);
}

/**
 * Every fib_table_lookup event in `trace`, in trace order. Comment lines (`#`), other
 * tracepoints (fib6_table_lookup included) and unparsable payloads are skipped.
 * A pre-4.18 lookup is combined with the fib_table_lookup_nh event that follows it from the
 * same task on the same CPU (lines from other CPUs may sit in between); a lookup that found
 * no nexthop is still returned, without nhDev/nhOif.
 */
export function parseFibTrace(trace: string): FibLookupEvent[] {
  const events: FibLookupEvent[] = [];
  /** context -> index in `events` of a pre-4.18 lookup still waiting for its _nh line */
  const pending = new Map<string, number>();

  for (const rawLine of trace.split(/\r?\n/)) {
    const line = rawLine.replace(/\r/g, '').trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const m = LINE_RE.exec(line);
    if (!m) continue;
    const key = contextKey(m[1] ?? '');
    const event = m[3];
    const body = (m[4] ?? '').trim();

    if (event === 'fib_table_lookup') {
      const v = V418_RE.exec(body);
      if (v) {
        pending.delete(key);
        events.push({
          format: 'v4.18+',
          table: num(v[1]),
          oif: num(v[2]),
          iif: num(v[3]),
          proto: num(v[4]),
          src: v[5] ?? '',
          sport: num(v[6]),
          dst: v[7] ?? '',
          dport: num(v[8]),
          tos: num(v[9]),
          scope: num(v[10]),
          flags: hex(v[11]),
          nhDev: v[12] ?? '',
          // gw is "%pI4/%pI6c"; without CONFIG_IPV6 the second half can be anything.
          gw: (v[13] ?? '').split('/')[0] ?? '',
          err: num(v[14]),
          raw: line,
        });
        continue;
      }
      const p = PRE418_RE.exec(body);
      if (p) {
        events.push({
          format: 'pre-4.18',
          table: num(p[1]),
          oif: num(p[2]),
          iif: num(p[3]),
          src: p[4] ?? '',
          dst: p[5] ?? '',
          tos: num(p[6]),
          scope: num(p[7]),
          flags: hex(p[8]),
          raw: line,
        });
        pending.set(key, events.length - 1);
      }
      continue;
    }

    // fib_table_lookup_nh
    const n = NH_RE.exec(body);
    const idx = pending.get(key);
    if (!n || idx === undefined) continue;
    const ev = events[idx];
    pending.delete(key);
    if (!ev) continue;
    ev.nhDev = n[1] ?? '';
    ev.nhOif = num(n[2]);
    ev.raw = `${ev.raw}\n${line}`;
  }
  return events;
}

/** The lookups made for packets received on interface index `iif` (e.g. rp_filter's reverse lookups). */
export function reverseLookupsOn(events: FibLookupEvent[], iif: number): FibLookupEvent[] {
  return events.filter((ev) => ev.iif === iif);
}

/**
 * One line for a report, e.g. `table 255 iif 1 192.0.2.1 -> 192.0.2.1 ==> dev veth1 err 0`.
 * `oif` is shown only when set, ports only when non-zero, `gw` only when not 0.0.0.0, `err`
 * only when the trace format has it; a pre-4.18 lookup without a nexthop ends in `==> no nexthop`.
 */
export function summarizeFib(ev: FibLookupEvent): string {
  const addr = (a: string, port: number | undefined): string => (port ? `${a}:${port}` : a);
  const parts = [`table ${ev.table}`];
  if (ev.oif) parts.push(`oif ${ev.oif}`);
  parts.push(`iif ${ev.iif}`, `${addr(ev.src, ev.sport)} -> ${addr(ev.dst, ev.dport)}`);
  if (ev.nhDev !== undefined) {
    parts.push(`==> dev ${ev.nhDev === '' ? '""' : ev.nhDev}`);
    if (ev.gw !== undefined && ev.gw !== '' && ev.gw !== '0.0.0.0') parts.push(`gw ${ev.gw}`);
  } else {
    parts.push('==> no nexthop');
  }
  if (ev.err !== undefined) parts.push(`err ${ev.err}`);
  return parts.join(' ');
}
