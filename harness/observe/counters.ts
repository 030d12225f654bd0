// Parse /proc/net/netstat and /proc/net/snmp. Pure: no I/O.
//
// Both files are made of line pairs, a header naming the counters and a line with their values:
//   TcpExt: SyncookiesSent SyncookiesRecv ... IPReversePathFilter ...
//   TcpExt: 0 0 ... 1 ...
// netstat has TcpExt, IpExt (and MPTcpExt on newer kernels); snmp has Ip, Icmp, IcmpMsg, Tcp,
// Udp, UdpLite. Note that rp_filter drops are counted as TcpExt.IPReversePathFilter
// (LINUX_MIB_IPRPFILTER lives in the TcpExt section despite its name).

/** Counter name ("Section.Name") -> value. */
export type Counters = Record<string, number>;

const SECTION_RE = /^([A-Za-z][A-Za-z0-9]*):(.*)$/;
const NUMBER_RE = /^-?\d+$/;

/**
 * Counters from /proc/net/netstat or /proc/net/snmp text (or both concatenated), keyed
 * `Section.Name` (e.g. `TcpExt.IPReversePathFilter`, `IpExt.InNoRoutes`, `Ip.InAddrErrors`).
 * Tolerates \r, blank lines, headers and values of different lengths (extras ignored) and
 * non-numeric values (skipped). A values line without a header before it is ignored.
 */
export function parseNetstat(text: string): Counters {
  const out: Counters = {};
  /** section -> names from its header line, waiting for the values line */
  const headers = new Map<string, string[]>();

  for (const rawLine of text.split(/\r?\n|\r/)) {
    const line = rawLine.trim();
    if (line === '') continue;
    const m = SECTION_RE.exec(line);
    if (!m) continue;
    const section = m[1] ?? '';
    const tokens = (m[2] ?? '').trim().split(/\s+/).filter((t) => t !== '');
    const header = headers.get(section);
    const anyNumber = tokens.some((t) => NUMBER_RE.test(t));

    if (header !== undefined && anyNumber) {
      headers.delete(section);
      const n = Math.min(header.length, tokens.length);
      for (let i = 0; i < n; i++) {
        const name = header[i];
        const value = tokens[i];
        if (name === undefined || value === undefined || !NUMBER_RE.test(value)) continue;
        out[`${section}.${name}`] = Number(value);
      }
    } else if (!anyNumber && tokens.length > 0) {
      headers.set(section, tokens); // a (new) header line
    }
    // else: values with no header before them -- nothing to name them with.
  }
  return out;
}

/**
 * What changed from `before` to `after`: `after - before` for every counter whose value
 * differs; counters only in `after` count from 0 (so they appear when non-zero).
 * Counters only in `before` are ignored.
 */
export function diffCounters(before: Counters, after: Counters): Counters {
  const out: Counters = {};
  for (const [name, value] of Object.entries(after)) {
    const delta = value - (before[name] ?? 0);
    if (delta !== 0) out[name] = delta;
  }
  return out;
}

/**
 * The counters named in `names`. A name with a section (`TcpExt.IPReversePathFilter`) matches
 * exactly; a bare name (`IPReversePathFilter`) matches that counter in every section that has it,
 * and `Ip6InNoRoutes` (snmp6's own spelling) matches `Ip6.InNoRoutes`.
 * Names that match nothing are left out.
 */
export function pickCounters(c: Counters, names: string[]): Counters {
  const out: Counters = {};
  for (const want of names) {
    if (want.includes('.')) {
      const v = c[want];
      if (v !== undefined) out[want] = v;
      continue;
    }
    // a bare name: the name in any section, or section and name written together as snmp6 does (Icmp6InNeighborSolicits)
    for (const [key, value] of Object.entries(c)) {
      if (key.slice(key.indexOf('.') + 1) === want || key.replace('.', '') === want) out[key] = value;
    }
  }
  return out;
}
