// Render a case into the files of the per-run case bundle: /case/steps.sh (a list of calls to the
// agent's kr_* functions) plus iproute2/tc batch files, sysctl scripts and nftables rulesets. Pure:
// data in, file contents out. All quoting happens here: every argument that reaches the guest shell
// goes through shq(), and batch files only ever hold values the schema already constrained to safe
// tokens. A ruleset is a file for `nft -f`, never shell text.
import { HarnessError } from '../util/errors.ts';
import { caseNeeds } from './needs.ts';
import { PATH_MAX_LINES, SYMBOL_RE } from '../observe/path.ts';
import { familyOf, HOST_NS, isTunnel, lowerOf, routeFamily, ruleFamily, type BridgeFdb, type BridgeVlan, type CaseDef, type Filter, type Interface, type Link, type Neighbour, type Nexthop, type Probe, type Route, type Rule } from './schema.ts';

export interface SysctlOverride {
  ns: string;
  key: string;
  value: string;
}

export interface RenderOptions {
  /** sysctls applied after the case's own (matrix variants, CLI --sysctl) */
  sysctlOverrides?: SysctlOverride[];
  /** files from the kernel's source tree: path inside the tree -> content (placed at /src/<path>) */
  sourceFiles?: Record<string, string>;
  /** record the signature probe's path through the kernel (a tracing kernel, --trace-path), with the
   *  return values of these functions (kernel symbols as the trace prints them) */
  tracePath?: { returns: string[] };
  /** stop once the case is set up (before the first probe) and wait for the harness's go: the point
   *  where a case snapshot is saved for repeats, and where each repeat is made independent */
  checkpoint?: boolean;
}

/** POSIX shell single-quoting: safe for any string. */
export function shq(s: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function cmd(...args: string[]): string {
  return args.map(shq).join(' ');
}

const IP = '/usr/lib/kr/ip';
const TC = '/usr/lib/kr/tc';

function byNs<T extends { ns: string }>(items: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const list = m.get(it.ns) ?? [];
    list.push(it);
    m.set(it.ns, list);
  }
  return m;
}

function filterLine(f: Filter): string {
  const parts = ['filter', 'add', 'dev', f.dev, 'parent', f.parent === 'ingress' ? 'ffff:' : f.parent];
  parts.push('protocol', f.protocol);
  if (f.prio !== undefined) parts.push('prio', String(f.prio));
  if (f.match === 'basic') parts.push('basic');
  else {
    parts.push('u32');
    for (const m of f.match.u32) parts.push('match', ...m.split(' '));
  }
  if (f.action === 'pass' || f.action === 'drop') parts.push('action', f.action === 'pass' ? 'pass' : 'drop');
  else parts.push('action', 'mirred', f.action.mirred.direction, f.action.mirred.mode, 'dev', f.action.mirred.dev);
  return parts.join(' ');
}

/** The command a probe runs in the guest (a bare program name is looked up in PATH by the agent). */
export function probeCommand(p: Probe): string[] {
  const secs = Math.max(1, Math.ceil(p.timeoutMs / 1000));
  if ('ping' in p) return ['/bin/busybox', 'ping', ...(familyOf(p.ping) === 6 ? ['-6'] : []), '-c', String(p.count), '-W', String(secs), p.ping];
  // busybox nc binds its -p port in listen mode only: a source port takes socat (reuseaddr: a port a
  // previous probe's connection holds in TIME_WAIT can be bound again); stdin is /dev/null, -t waits for the reply
  if ('tcp' in p && p.tcp.sport !== undefined)
    return ['socat', '-T', String(secs), '-t', String(secs), '-', `TCP:${familyOf(p.tcp.host) === 6 ? `[${p.tcp.host}]` : p.tcp.host}:${p.tcp.port},sourceport=${p.tcp.sport},reuseaddr`];
  if ('tcp' in p) return ['/bin/busybox', 'nc', '-w', String(secs), p.tcp.host, String(p.tcp.port)];
  if ('udp' in p) return ['/kr/udp-probe', p.udp.host, String(p.udp.port), String(secs), ...(p.udp.sport !== undefined ? [String(p.udp.sport)] : [])];
  return [...p.exec.argv];
}

/** The token a probe's output must contain to pass ('' = none) and the exit code it must end with. */
export function probeExpectation(p: Probe): { token: string; rc: number } {
  if ('tcp' in p) return { token: p.tcp.expect, rc: 0 };
  if ('udp' in p) return { token: p.udp.expect, rc: 0 };
  if ('exec' in p) return { token: p.exec.expect ?? '', rc: p.exec.expectRc };
  return { token: '', rc: 0 };
}

export function sysctlPath(key: string): string {
  return '/proc/sys/' + key.split('.').join('/');
}

/** Run a script of agent calls in a namespace: sourced in the initial one (no process), else a shell inside NS. */
function inNs(ns: string, script: string): string {
  return ns === HOST_NS ? cmd('.', script) : cmd('kr_in', ns, '/bin/sh', script);
}

/** An address line for ip -batch: IPv6 addresses skip duplicate address detection unless the interface asks for it. */
function addressLine(a: Interface['addresses'][number], dev: string, dad: boolean): string {
  const prefix = typeof a === 'string' ? a : a.address;
  const peer = typeof a !== 'string' && a.peer !== undefined ? ` peer ${a.peer}` : '';
  const brd = typeof a !== 'string' && a.broadcast !== undefined ? ` broadcast ${a.broadcast}` : '';
  return `address add ${prefix}${peer}${brd} dev ${dev}${familyOf(prefix.split('/')[0]!) === 6 && !dad ? ' nodad' : ''}`;
}

// The topology's lines, as a person would type them after `ip ` (or `bridge `), for ip -batch:
// every value in them is one the schema constrained to a safe token (names, numbers, addresses,
// enumerated words), so a batch line needs no quoting.

/** veth and dummy links are made by the initial namespace's batch (into their namespace); the
 *  others in their own namespace's batch, where their lower device (link:, dev:) is. */
export function madeInOwnNamespace(l: Link): boolean {
  return l.type !== 'veth' && l.type !== 'dummy';
}

/** ip link add ... for a link made in its own namespace */
export function linkLine(l: Link): string {
  const opt = (word: string, v: string | number | undefined): string => (v === undefined ? '' : ` ${word} ${v}`);
  switch (l.type) {
    case 'veth':
    case 'dummy':
      throw new HarnessError('internal', `a ${l.type} link is made by the initial namespace's batch`);
    case 'vrf':
      return `link add ${l.name} type vrf table ${l.table}`;
    case 'bridge':
      return `link add ${l.name} type bridge${l.vlanFiltering === undefined ? '' : ` vlan_filtering ${l.vlanFiltering ? 1 : 0}`}`;
    case 'vlan':
      return `link add link ${l.link} name ${l.name} type vlan id ${l.id}`;
    case 'vxlan':
      return (
        `link add ${l.name} type vxlan id ${l.id}` +
        opt('local', l.local) +
        opt('remote', l.remote) +
        opt('group', l.group) +
        opt('dstport', l.dstport) +
        opt('dev', l.dev) +
        (l.learning === undefined ? '' : l.learning ? ' learning' : ' nolearning')
      );
    case 'macvlan':
      return `link add link ${l.link} name ${l.name} type macvlan${opt('mode', l.mode)}`;
    case 'bond':
      return `link add ${l.name} type bond${opt('mode', l.mode)}`;
    default:
      if (!isTunnel(l)) throw new HarnessError('internal', 'unknown link type');
      return `link add ${l.name} type ${l.type}` + opt('local', l.local) + opt('remote', l.remote) + opt('ttl', l.ttl) + opt('key', l.key) + opt('dev', l.dev);
  }
}

/** A namespace's links in an order that makes each after the link it is on top of (else as declared). */
export function linkOrder(links: Link[]): Link[] {
  const out: Link[] = [];
  const pending = [...links];
  while (pending.length) {
    // the first link whose lower device is not one still to be made (the schema rejects cycles)
    const i = pending.findIndex((l) => !pending.some((m) => m !== l && m.name === lowerOf(l)));
    out.push(...pending.splice(i < 0 ? 0 : i, 1));
  }
  return out;
}

export function nexthopLine(n: Nexthop): string {
  if (n.group) return `nexthop add id ${n.id} group ${n.group.map((g) => (g.weight === undefined ? String(g.id) : `${g.id},${g.weight}`)).join('/')}`;
  if (n.blackhole) return `nexthop add id ${n.id} blackhole`;
  return `nexthop add id ${n.id}${n.via ? ` via ${n.via}` : ''}${n.dev ? ` dev ${n.dev}` : ''}`;
}

export function routeLine(r: Route): string {
  const v6 = routeFamily(r) === 6;
  let l = 'route add';
  if (r.vrf !== undefined) l += ` vrf ${r.vrf}`;
  if (r.type !== undefined) l += ` ${r.type}`;
  l += ` ${r.dst === 'default' && v6 ? '::/0' : r.dst}`;
  if (r.via) l += ` via ${r.via}`;
  if (r.dev) l += ` dev ${r.dev}`;
  if (r.table !== undefined) l += ` table ${r.table}`;
  if (r.metric !== undefined) l += ` metric ${r.metric}`;
  if (r.src !== undefined) l += ` src ${r.src}`;
  if (r.nhid !== undefined) l += ` nhid ${r.nhid}`;
  return l;
}

/** ip rule add ... (an IPv6 rule's line goes to a batch run with ip -6) */
export function ruleLine(r: Rule): string {
  const parts = ['rule', 'add'];
  const opt = (word: string, v: string | number | undefined): void => {
    if (v !== undefined) parts.push(word, String(v));
  };
  opt('pref', r.pref);
  opt('from', r.from);
  opt('to', r.to);
  opt('iif', r.iif);
  opt('oif', r.oif);
  opt('fwmark', r.fwmark);
  opt('ipproto', r.ipproto);
  opt('sport', r.sport);
  opt('dport', r.dport);
  opt('table', r.table);
  if (r.l3mdev) parts.push('l3mdev');
  if (r.action) parts.push(r.action);
  return parts.join(' ');
}

export function neighbourLine(n: Neighbour): string {
  return `neigh add ${n.address}${n.lladdr ? ` lladdr ${n.lladdr}` : ''} dev ${n.dev} nud ${n.state}`;
}

/** bridge vlan add ... (a line for bridge -batch) */
export function bridgeVlanLine(v: BridgeVlan): string {
  return `vlan add dev ${v.dev} vid ${v.vid}${v.pvid ? ' pvid' : ''}${v.untagged ? ' untagged' : ''}${v.self ? ' self' : ''}`;
}

/** bridge fdb add ... (a line for bridge -batch) */
export function bridgeFdbLine(f: BridgeFdb): string {
  return `fdb add ${f.mac} dev ${f.dev} master ${f.state}${f.vlan !== undefined ? ` vlan ${f.vlan}` : ''}`;
}

export interface RenderedCase {
  /** path inside the initramfs -> content */
  files: Record<string, string>;
  /** the sysctls in force, in order (signals' needs, case, then overrides), per namespace */
  sysctls: SysctlOverride[];
}

export function renderCase(c: CaseDef, opts: RenderOptions = {}): RenderedCase {
  const files: Record<string, string> = {};
  const needs = caseNeeds(c);
  const steps: string[] = ['# generated by kernel-repro from case ' + shq(c.name) + ' -- do not edit', 'exec < /dev/null'];
  if (needs.logWatch) steps.push(`KR_WATCH=${shq(needs.logWatch)}`);
  const allNs = [HOST_NS, ...c.namespaces];

  for (const [p, content] of Object.entries(opts.sourceFiles ?? {})) files[`/src/${p}`] = content;

  // 1. namespaces and links: the first lines of the initial namespace's iproute2 batch (below; a
  //    veth peer is created straight into its own namespace). One ip process instead of two: under
  //    TCG every start of the dynamically linked ip costs ~30 ms.
  const first: string[] = c.namespaces.map((ns) => `netns add ${ns}`);
  for (const l of c.links) {
    if (l.type === 'veth') {
      const inNs = l.ns === HOST_NS ? '' : ` netns ${l.ns}`;
      first.push(`link add ${l.name}${inNs} type veth peer name ${l.peer.name}${l.peer.ns !== HOST_NS ? ` netns ${l.peer.ns}` : ''}`);
    } else if (l.type === 'dummy') first.push(`link add ${l.name}${l.ns === HOST_NS ? '' : ` netns ${l.ns}`} type dummy`);
  }

  // 2. per namespace, one shell inside it: its own links, interfaces, nexthops, routes, rules and
  //    neighbours (ip batch; IPv6 rules in an ip -6 batch), bridge VLANs (bridge batch), sysctls, tc
  //    (tc batch), nftables
  // "*" applies an override (or a signal's sysctl) in every namespace of the case
  const expand = (list: SysctlOverride[]): SysctlOverride[] => list.flatMap((o) => (o.ns === '*' ? allNs.map((ns) => ({ ...o, ns })) : [o]));
  const overrides = expand(opts.sysctlOverrides ?? []);
  for (const o of overrides)
    if (!allNs.includes(o.ns))
      throw new HarnessError('bad-input', `sysctl ${o.key} names namespace "${o.ns}", which case ${c.name} does not have (it has: ${allNs.join(', ')})`, { field: '--sysctl' });
  const ifaces = byNs(c.interfaces);
  const routes = byNs(c.routes);
  const nexthops = byNs(c.nexthops);
  const rules = byNs(c.rules);
  const neighbours = byNs(c.neighbours);
  const bridgeVlans = byNs(c.bridgeVlans);
  const bridgeFdb = byNs(c.bridgeFdb);
  const lateRouting = c.nexthops.length > 0;
  const routingSteps: string[] = [];
  const sysctls: SysctlOverride[] = [...expand(needs.sysctls), ...c.sysctls.map((s) => ({ ns: s.ns, key: s.key, value: s.value })), ...overrides];
  const sysByNs = byNs(sysctls);
  const qd = byNs(c.qdiscs);
  const fl = byNs(c.filters);
  const nft = byNs(c.nftables);
  for (const ns of allNs) {
    // the initial namespace's script is sourced by the agent's own shell; another namespace's runs in
    // a shell started inside it (and loads the agent's shared functions itself)
    const setup: string[] = ns === HOST_NS ? [] : ['. /kr/lib.sh'];
    const lines: string[] = ns === HOST_NS ? [...first] : [];
    const list = ifaces.get(ns) ?? [];
    const made = linkOrder(c.links.filter((l) => l.ns === ns && madeInOwnNamespace(l)));
    for (const l of made) lines.push(linkLine(l));
    if (!list.some((i) => i.dev === 'lo')) lines.push('link set dev lo up');
    for (const i of list) {
      if (i.mac) lines.push(`link set dev ${i.dev} address ${i.mac}`);
      if (i.mtu) lines.push(`link set dev ${i.dev} mtu ${i.mtu}`);
      // enslaved before its addresses (a vrf moves the routes it has) and before it is up (a bond takes only a down one)
      if (i.master !== undefined) lines.push(`link set dev ${i.dev} master ${i.master}`);
      for (const a of i.addresses) lines.push(addressLine(a, i.dev, i.dad));
      lines.push(`link set dev ${i.dev} ${i.up ? 'up' : 'down'}`);
    }
    // nexthops before the routes that use them, a group after its members
    const nh = (nexthops.get(ns) ?? []).filter((n) => !n.group).concat((nexthops.get(ns) ?? []).filter((n) => n.group));
    const nsRules = rules.get(ns) ?? [];
    const rules4 = nsRules.filter((x) => ruleFamily(x) === 4);
    const neigh = neighbours.get(ns) ?? [];
    // with nexthops in the case, this part waits for every namespace's interfaces (below): the kernel
    // takes a nexthop only on a device with carrier, which a veth has once its peer, perhaps in a
    // namespace set up later, is up
    const later: string[] = lateRouting ? [] : lines;
    // IPv6 blackholes: ip -6 (a batch line cannot say -6, and a blackhole without it is IPv4), before the others
    const nh6 = nh.filter((n) => n.blackhole && n.family === 6);
    if (nh6.length) {
      files[`/case/nexthops6-${ns}.ip`] = nh6.map(nexthopLine).join('\n') + '\n';
      routingSteps.push(cmd('kr_run', `nexthops6:${ns}`, ...(ns === HOST_NS ? [] : ['kr_in', ns]), IP, '-6', '-batch', `/case/nexthops6-${ns}.ip`));
    }
    for (const n of nh.filter((x) => !nh6.includes(x))) later.push(nexthopLine(n));
    for (const r of routes.get(ns) ?? []) later.push(routeLine(r));
    for (const r of rules4) later.push(ruleLine(r));
    for (const n of neigh) later.push(neighbourLine(n));
    files[`/case/addr-${ns}.ip`] = lines.join('\n') + '\n';
    const routing = [nh.length ? 'nexthops' : '', routes.has(ns) ? 'routes' : '', rules4.length ? 'rules' : '', neigh.length ? 'neighbours' : ''].filter(Boolean);
    if (lateRouting && later.length) {
      files[`/case/routing-${ns}.ip`] = later.join('\n') + '\n';
      routingSteps.push(cmd('kr_run', `${routing.join('+')}:${ns}`, ...(ns === HOST_NS ? [] : ['kr_in', ns]), IP, '-batch', `/case/routing-${ns}.ip`));
    }
    // the step's label names what its batch makes (a batch of the older elements only keeps its older label)
    const links = made.length || (ns === HOST_NS && first.length) ? ['links'] : [];
    const label =
      made.length || nh.length || rules4.length || neigh.length || lateRouting
        ? [...links, 'interfaces', ...(lateRouting ? [] : routing)].join('+') + `:${ns}`
        : `${[...links, 'interfaces'].join('+')}:${ns}`;
    setup.push(cmd('kr_run', label, IP, '-batch', `/case/addr-${ns}.ip`));
    // IPv6 rules: ip -6 (a batch line cannot say -6, and ip rule add without an address is IPv4)
    const rules6 = nsRules.filter((x) => ruleFamily(x) === 6);
    if (rules6.length) {
      files[`/case/rules6-${ns}.ip`] = rules6.map(ruleLine).join('\n') + '\n';
      setup.push(cmd('kr_run', `rules6:${ns}`, IP, '-6', '-batch', `/case/rules6-${ns}.ip`));
    }
    // bridge VLANs, then FDB entries (an entry's VLAN is one of the port's): iproute2's bridge (a
    // guest package), after the ports are enslaved
    const bv = bridgeVlans.get(ns) ?? [];
    const bf = bridgeFdb.get(ns) ?? [];
    if (bv.length || bf.length) {
      files[`/case/bridge-${ns}.bridge`] = [...bv.map(bridgeVlanLine), ...bf.map(bridgeFdbLine)].join('\n') + '\n';
      const what = [...(bv.length ? ['vlans'] : []), ...(bf.length ? ['fdb'] : [])].join('+');
      setup.push(cmd('kr_run', `bridge-${what}:${ns}`, 'bridge', '-batch', `/case/bridge-${ns}.bridge`));
    }

    const sys = ['set -e'];
    for (const x of sysByNs.get(ns) ?? []) sys.push(`echo ${shq(x.value)} > ${shq(sysctlPath(x.key))}`);
    files[`/case/sysctl-${ns}.sh`] = sys.join('\n') + '\n';
    setup.push(cmd('kr_run', `sysctls:${ns}`, '/bin/sh', `/case/sysctl-${ns}.sh`));

    const tc: string[] = [];
    for (const q of qd.get(ns) ?? []) {
      if (q.kind === 'ingress' || q.kind === 'clsact') tc.push(`qdisc add dev ${q.dev} ${q.kind}`);
      else tc.push(`qdisc add dev ${q.dev} root${q.handle ? ` handle ${q.handle}` : ''} ${q.kind}`);
    }
    for (const f of fl.get(ns) ?? []) tc.push(filterLine(f));
    if (tc.length) {
      files[`/case/tc-${ns}.tc`] = tc.join('\n') + '\n';
      setup.push(cmd('kr_run', `tc:${ns}`, TC, '-batch', `/case/tc-${ns}.tc`));
    }
    for (const n of nft.get(ns) ?? []) {
      files[`/case/nft-${ns}.nft`] = n.ruleset.endsWith('\n') ? n.ruleset : n.ruleset + '\n';
      setup.push(cmd('kr_run', `nftables:${ns}`, 'nft', '-f', `/case/nft-${ns}.nft`));
    }
    setup.push(cmd('kr_counters_here', 'before', ns, needs.snmp6 ? '1' : '0', ...needs.counters));
    files[`/case/setup-${ns}.sh`] = setup.join('\n') + '\n';
    steps.push(inNs(ns, `/case/setup-${ns}.sh`));
  }
  steps.push(...routingSteps);

  // 3. the case's own commands, in order (a token their output must hold, or must not, set just before)
  // tracepoints a signal wants `during` the steps too are armed before them, the trace marked at each phase
  const traced = opts.tracePath;
  steps.push('kr_phase steps');
  if (needs.traceSteps) {
    if (traced) steps.push('kr_trace_instance');
    steps.push(cmd('kr_trace_on', ...needs.tracepoints.map((t) => t.replace(':', '/'))), 'kr_trace_mark steps');
  }
  for (const s of c.steps) {
    if (s.expect !== undefined) steps.push(`KR_EXPECT=${shq(s.expect)}`);
    if (s.absent !== undefined) steps.push(`KR_ABSENT=${shq(s.absent)}`);
    if (s.cwd !== undefined) steps.push(`KR_CWD=${shq(s.cwd)}`);
    steps.push(cmd('kr_step', `exec:${s.name}`, s.ns, String(s.timeoutMs), String(s.expectRc), ...s.exec));
  }

  // 4. servers, captures, tracing, probes
  for (const s of c.servers) {
    // a bound or IPv6-only server: its address and flag as two more arguments (older cases render as before)
    const more = s.bind !== undefined || s.v6only ? [s.bind ?? '-', s.v6only ? 'v6only' : 'any'] : [];
    if (s.tcpListen !== undefined) steps.push(cmd('kr_server', s.name, s.ns, 'tcp', String(s.tcpListen), s.reply, ...more));
    else steps.push(cmd('kr_server', s.name, s.ns, 'udp', String(s.udpListen), s.reply, ...more));
  }
  for (const s of c.servers) steps.push(cmd('kr_wait_listen', s.ns, s.tcpListen !== undefined ? 'tcp' : 'udp', String(s.tcpListen ?? s.udpListen)));
  const captureName = (i: number): string => c.captures[i]!.name ?? `${c.captures[i]!.ns}-${c.captures[i]!.dev}`;
  c.captures.forEach((cap, i) => steps.push(cmd('kr_capture_start', captureName(i), cap.ns, cap.dev, String(cap.snaplen), String(cap.count))));

  // a traced run: the case's tracepoints in an ftrace instance of their own, the top-level buffer
  // records the function graph around the signature probe only
  for (const f of traced?.returns ?? []) if (!SYMBOL_RE.test(f)) throw new HarnessError('internal', `"${f}" is not a kernel symbol to probe`);
  if (needs.traceSteps) steps.push('kr_trace_mark probes');
  else {
    if (traced) steps.push('kr_trace_instance');
    steps.push(cmd('kr_trace_on', ...needs.tracepoints.map((t) => t.replace(':', '/'))));
  }
  // everything above is the case's setup: a case snapshot holds it, every repeat starts here (with
  // the evidence's readers, an awk and a tc per namespace, already started, each waiting on a FIFO)
  const tcStats = (ns: string): Array<{ dev: string; parent: string }> =>
    (qd.get(ns) ?? []).map((q) => ({ dev: q.dev, parent: q.kind === 'ingress' || q.kind === 'clsact' ? 'ffff:' : (q.handle ?? 'root') }));
  // a counter signal that counts the steps or the probes only: the counters just before the probes
  // (before the checkpoint: a restored repeat gets them with the setup's records)
  if (needs.countersAtProbes) for (const ns of allNs) steps.push(cmd('kr_counters_in', 'probes', ns, needs.snmp6 ? '1' : '0', ...needs.counters));
  if (opts.checkpoint) {
    for (const ns of allNs) {
      steps.push(cmd('kr_counters_ready', ns, needs.snmp6 ? '1' : '0', ...needs.counters));
      if (tcStats(ns).length) steps.push(cmd('kr_tcstats_ready', ns));
    }
    steps.push('kr_checkpoint');
  }
  const signatureProbe = c.signature.probe?.split('/')[0];
  steps.push('kr_phase probes');
  for (const p of c.probes) {
    const { token, rc } = probeExpectation(p);
    // a UDP reply ends the probe at once (socat would wait out its timeout after sending)
    const stopAtToken = 'udp' in p ? '1' : '0';
    const traceThis = traced && p.name === signatureProbe;
    if ('exec' in p && p.exec.absent !== undefined) steps.push(`KR_ABSENT=${shq(p.exec.absent)}`);
    if ('exec' in p && p.exec.cwd !== undefined) steps.push(`KR_CWD=${shq(p.exec.cwd)}`);
    if (traceThis) steps.push(cmd('kr_graph_on', ...traced.returns));
    steps.push(cmd('kr_probe', p.name, p.ns, String(p.timeoutMs), p.stopOnSignal ? '1' : '0', String(rc), token, stopAtToken, ...probeCommand(p)));
    if (traceThis) steps.push('kr_graph_off');
  }
  steps.push('kr_phase after', 'kr_trace_dump');
  if (needs.symbolize.length) steps.push(cmd('kr_symbols', ...needs.symbolize));
  if (traced) steps.push(cmd('kr_graph_dump', String(PATH_MAX_LINES)));
  c.captures.forEach((_, i) => steps.push(cmd('kr_capture_stop', captureName(i))));
  // after the probes, per namespace: its counters (one awk inside it) and which tc filters matched
  // (one tc inside it), started from the agent's own shell: no shell per namespace
  for (const ns of allNs) {
    steps.push(cmd('kr_counters_in', 'after', ns, needs.snmp6 ? '1' : '0', ...needs.counters));
    const stats = tcStats(ns);
    if (stats.length) {
      files[`/case/tcstats-${ns}.tc`] = stats.map((x) => `filter show dev ${x.dev} parent ${x.parent}`).join('\n') + '\n';
      steps.push(cmd('kr_tcstats_in', ns, `/case/tcstats-${ns}.tc`));
    }
  }
  files['/case/steps.sh'] = steps.join('\n') + '\n';
  return { files, sysctls };
}

/**
 * The case as the guest agent receives it on the console's input: a shell script that writes each
 * file under "$KR_ROOT" (empty in the guest). Text goes through the shell's printf builtin (no
 * process per file; the guest runs under TCG, where every process start costs); binary files
 * (kernel modules) are base64 in a here-document. Sourced (`.`): a failed write returns early, so
 * KR_CASE_OK=1 (the last line) is set only when every file was written.
 */
export function bundleScript(files: Record<string, string | Buffer>): string {
  const out: string[] = ['# kernel-repro case bundle'];
  const dirs = new Set<string>();
  for (const p of Object.keys(files).sort()) {
    if (!p.startsWith('/') || p.split('/').includes('..')) throw new HarnessError('internal', `bundle path ${p} is not absolute and clean`);
    const d = p.slice(0, p.lastIndexOf('/'));
    if (d && !dirs.has(d)) {
      dirs.add(d);
      out.push(`mkdir -p "$KR_ROOT"${shq(d)} || return 1`);
    }
    const content = files[p]!;
    const text = typeof content === 'string' ? content : null;
    if (text !== null && !text.includes('\0')) out.push(`printf '%s' ${shq(text) || "''"} > "$KR_ROOT"${shq(p)} || return 1`);
    else {
      const b64 = Buffer.from(content).toString('base64').replace(/.{1,76}/g, '$&\n');
      out.push(`base64 -d > "$KR_ROOT"${shq(p)} <<'KR_B64_END' || return 1`, b64 + 'KR_B64_END');
    }
    if (text?.startsWith('#!')) out.push(`chmod 755 "$KR_ROOT"${shq(p)} || return 1`);
  }
  out.push('KR_CASE_OK=1');
  return out.join('\n') + '\n';
}
