// What a case needs besides its own fields, derived from what it declares. Pure.
//   - guest packages: UDP probes and servers use socat, captures tcpdump, rulesets nftables, bridge VLANs iproute2;
//   - the kconfig options the topology's elements need (checked against the case's kconfig at load);
//   - what its signals need from the guest (tracepoints, counters, symbols, sysctls, a kernel-log watch).
import { mergedNeeds, signalNeeds } from '../observe/signals/index.ts';
import { addressPrefix, ruleFamily, type CaseDef, type Topology } from './schema.ts';

export interface CaseNeeds {
  /** Debian packages for the guest: the case's own plus what its features use */
  packages: string[];
  /** tracepoints to enable during the probes: the case's plus its signals' */
  tracepoints: string[];
  /** counters reported even at zero */
  counters: string[];
  /** event fields holding kernel addresses to turn into symbols */
  symbolize: string[];
  /** sysctls the signals need, applied before the case's own ("*" = every namespace) */
  sysctls: Array<{ ns: string; key: string; value: string }>;
  /** ERE for the kernel log that probes with stopOnSignal stop at (the signature's martian/log signals) */
  logWatch: string | null;
  /** arm the tracepoints before the case's steps (a tracepoint signal records `during` them), marking the trace at each phase */
  traceSteps: boolean;
  /** read /proc/net/snmp6 too: the case uses IPv6 or names an IPv6 counter (it costs guest time otherwise spared) */
  snmp6: boolean;
}

/** The packages a case's features run in the guest (the harness provides everything else from busybox and iproute2). */
export function featurePackages(c: CaseDef): string[] {
  const out: string[] = [];
  if (c.probes.some((p) => 'udp' in p || ('tcp' in p && p.tcp.sport !== undefined)) || c.servers.some((s) => s.udpListen !== undefined || s.bind !== undefined || s.v6only)) out.push('socat');
  if (c.captures.length) out.push('tcpdump');
  if (c.nftables.length) out.push('nftables');
  // `bridge` (bridge VLANs) is iproute2's, which the base image has only ip and tc of
  if (c.bridgeVlans.length) out.push('iproute2');
  return out;
}

/** Any IPv6 address in the topology or the probes. */
export function usesIpv6(c: CaseDef): boolean {
  const v6 = (a: string | undefined): boolean => !!a && a.includes(':');
  return (
    c.interfaces.some((i) => i.addresses.some((a) => v6(addressPrefix(a)))) ||
    c.routes.some((r) => v6(r.dst) || v6(r.via) || r.family === 6) ||
    c.nexthops.some((n) => v6(n.via) || n.family === 6) ||
    c.rules.some((r) => ruleFamily(r) === 6) ||
    c.neighbours.some((n) => v6(n.address)) ||
    c.probes.some((p) => ('ping' in p && v6(p.ping)) || ('tcp' in p && v6(p.tcp.host)) || ('udp' in p && v6(p.udp.host)))
  );
}

export function caseNeeds(c: CaseDef): CaseNeeds {
  const m = mergedNeeds(c.signals);
  const uniq = (xs: string[]): string[] => [...new Set(xs)];
  const watches = c.signals
    .filter((s) => c.signature.signals.includes(s.name))
    .map((s) => signalNeeds(s).logWatch)
    .filter((w): w is string => !!w);
  return {
    packages: uniq([...c.packages, ...featurePackages(c)]).sort(),
    tracepoints: uniq([...c.tracepoints, ...m.tracepoints]),
    counters: uniq([...c.counters, ...m.counters]),
    symbolize: m.symbolize,
    sysctls: m.sysctls,
    logWatch: watches.length ? watches.map((w) => `(${w})`).join('|') : null,
    traceSteps: m.traceSteps,
    snmp6: usesIpv6(c) || [...c.counters, ...m.counters].some((n) => /^(?:Ip6|Icmp6|Udp6|UdpLite6)/.test(n)),
  };
}

