// A case as a list of removable elements, for `reduce`. Pure: a parsed case in, elements with
// stable ids and their dependencies out, and apply(case, kept ids) -> the case with only those
// elements (and nothing that depends on a removed one).
//
// Ids follow the case file: `sysctls[3]`, `filters[5]`, `links[1]`, `namespaces[0]`,
// `interfaces[2]` (the interface's entry: bringing it up), `interfaces[2].mac`, `interfaces[2].mtu`,
// `interfaces[2].master` (enslaving it), `interfaces[2].addresses[0]`, `routes[0]`, `nexthops[0]`,
// `rules[0]`, `neighbours[0]`, `bridgeVlans[0]`, `qdiscs[1]`, `nftables[0]` (the ruleset),
// `nftables[0].rules[2]`, `steps[0]`, `servers[0]`, `captures[0]`, `probes[1]`.
// A simplification is an alternative element: `sysctls[3]~lo` is sysctls[3] with its
// `net.ipv4.conf.all.X` key narrowed to `net.ipv4.conf.lo.X`.
//
// Never removed: the signature probe, the signals, and what they need (their namespace, the server a
// signature TCP/UDP probe talks to); the case's metadata (name, kconfig, packages, tracepoints...).
import type { CaseDef } from '../cases/schema.ts';
import { addressPrefix, HOST_NS, lowerOf, type Link } from '../cases/schema.ts';
import { ruleLine } from '../cases/render.ts';
import { nftRules, withoutRules } from './nft.ts';

export type ElementKind =
  | 'namespace'
  | 'link'
  | 'interface'
  | 'mac'
  | 'mtu'
  | 'master'
  | 'address'
  | 'route'
  | 'nexthop'
  | 'rule'
  | 'neighbour'
  | 'bridge-vlan'
  | 'sysctl'
  | 'qdisc'
  | 'filter'
  | 'nftables'
  | 'nft-rule'
  | 'step'
  | 'server'
  | 'capture'
  | 'probe';

export interface Element {
  id: string;
  kind: ElementKind;
  /** what it is, in a few words (for reports) */
  label: string;
  /** ids this element cannot exist without: it goes when one of them goes */
  parents: string[];
  /** a simplification: the id of the element it replaces */
  variantOf?: string;
  /** a sysctl simplification: the key it writes instead */
  sysctlKey?: string;
}

export interface CaseElements {
  /** the removable elements, in case order */
  elements: Element[];
  /** elements kept whatever happens, each with why (the signature needs it) */
  required: Array<{ id: string; label: string; why: string }>;
  /** simplifications: for an element id, its alternatives (tried once the element is known to be needed) */
  variants: Map<string, Element[]>;
  /** every element and variant by id */
  byId: Map<string, Element>;
}

const devKey = (ns: string, dev: string): string => `${ns}/${dev}`;

/** `net.ipv4.conf.<dev>.<param>` (and ipv6, neigh): the device a per-interface sysctl names, or null. */
export function sysctlDevice(key: string): { family: string; table: string; dev: string; param: string } | null {
  const m = /^net\.(ipv4|ipv6)\.(conf|neigh)\.([^.]+)\.(.+)$/.exec(key);
  return m ? { family: m[1]!, table: m[2]!, dev: m[3]!, param: m[4]! } : null;
}

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** Does IPv4 prefix `cidr` (a.b.c.d/len) contain address `addr`? IPv6: exact /64 prefix match on the text's first four groups. */
export function prefixContains(cidr: string, addr: string): boolean {
  const [a, lenText] = cidr.split('/');
  const len = Number(lenText);
  if (!a) return false;
  if (a.includes('.') && addr.includes('.')) {
    if (len === 0) return true;
    const mask = len >= 32 ? 0xffffffff : (~((1 << (32 - len)) - 1) >>> 0) >>> 0;
    return ((ipv4ToInt(a) & mask) >>> 0) === ((ipv4ToInt(addr) & mask) >>> 0);
  }
  if (a.includes(':') && addr.includes(':')) return expand6(a).slice(0, Math.floor(len / 16)).join(':') === expand6(addr).slice(0, Math.floor(len / 16)).join(':');
  return false;
}

function expand6(a: string): string[] {
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const fill = tail !== undefined ? Array(Math.max(0, 8 - h.length - t.length)).fill('0') : [];
  return [...h, ...fill, ...t].map((g) => g.replace(/^0+(?=.)/, '').toLowerCase());
}

function normHandle(h: string): string {
  const [maj, min] = h.split(':');
  return `${(maj ?? '').replace(/^0+(?=.)/, '')}:${(min ?? '').replace(/^0+/, '')}`;
}

/** The elements of a case, their dependencies, what is never removed, and the simplifications to try. */
export function caseElements(c: CaseDef): CaseElements {
  const elements: Element[] = [];
  const add = (e: Element): void => void elements.push(e);
  const nsElem = new Map<string, string>();
  c.namespaces.forEach((ns, i) => nsElem.set(ns, `namespaces[${i}]`));
  const inNs = (ns: string): string[] => (ns === HOST_NS ? [] : nsElem.has(ns) ? [nsElem.get(ns)!] : []);
  // which link makes each device
  const linkOf = new Map<string, string>();
  c.links.forEach((l, i) => {
    linkOf.set(devKey(l.ns, l.name), `links[${i}]`);
    if (l.type === 'veth') linkOf.set(devKey(l.peer.ns, l.peer.name), `links[${i}]`);
  });
  const link = (ns: string, dev: string): string[] => (linkOf.has(devKey(ns, dev)) ? [linkOf.get(devKey(ns, dev))!] : []);
  const ifaceOf = new Map<string, string>();
  c.interfaces.forEach((it, i) => {
    if (!ifaceOf.has(devKey(it.ns, it.dev))) ifaceOf.set(devKey(it.ns, it.dev), `interfaces[${i}]`);
  });
  // an interface that is configured is brought up by its entry; one that is not stays as created
  const upDev = (ns: string, dev: string): string[] => (ifaceOf.has(devKey(ns, dev)) ? [ifaceOf.get(devKey(ns, dev))!] : link(ns, dev));
  const addressIds: Array<{ id: string; ns: string; dev: string; cidr: string }> = [];

  c.namespaces.forEach((ns, i) => add({ id: `namespaces[${i}]`, kind: 'namespace', label: `namespace ${ns}`, parents: [] }));
  c.links.forEach((l, i) => {
    // a link on top of another (vlan, macvlan: link; vxlan, a tunnel: dev) goes with the one it is on
    const lower = lowerOf(l);
    add({
      id: `links[${i}]`,
      kind: 'link',
      label: linkLabel(l),
      parents: uniq([...inNs(l.ns), ...(l.type === 'veth' ? inNs(l.peer.ns) : []), ...(lower !== undefined ? link(l.ns, lower) : [])]),
    });
  });
  // the element enslaving each device (interfaces[i].master), for bridge VLANs on a port
  const masterElem = new Map<string, string>();
  c.interfaces.forEach((it, i) => {
    const id = `interfaces[${i}]`;
    add({ id, kind: 'interface', label: `interface ${it.dev}${at(it.ns)} ${it.up ? 'up' : 'down'}`, parents: uniq([...inNs(it.ns), ...link(it.ns, it.dev)]) });
    if (it.mac) add({ id: `${id}.mac`, kind: 'mac', label: `${it.dev}${at(it.ns)} mac ${it.mac}`, parents: [id] });
    if (it.mtu !== undefined) add({ id: `${id}.mtu`, kind: 'mtu', label: `${it.dev}${at(it.ns)} mtu ${it.mtu}`, parents: [id] });
    if (it.master !== undefined) {
      add({ id: `${id}.master`, kind: 'master', label: `${it.dev}${at(it.ns)} master ${it.master}`, parents: uniq([id, ...link(it.ns, it.master)]) });
      if (!masterElem.has(devKey(it.ns, it.dev))) masterElem.set(devKey(it.ns, it.dev), `${id}.master`);
    }
    it.addresses.forEach((a, j) => {
      const aid = `${id}.addresses[${j}]`;
      add({ id: aid, kind: 'address', label: `address ${addressPrefix(a)} on ${it.dev}${at(it.ns)}`, parents: [id] });
      addressIds.push({ id: aid, ns: it.ns, dev: it.dev, cidr: addressPrefix(a) });
    });
  });
  // the gateway must be on a connected prefix: the address(es) that make it one
  const gateway = (ns: string, via: string, dev: string | undefined): string[] =>
    addressIds.filter((a) => a.ns === ns && (!dev || a.dev === dev) && prefixContains(a.cidr, via)).map((a) => a.id);
  // a preferred source must be a local address of the route's domain: of a device in the route's vrf
  // (`vrf:`, or a table that is a vrf's), else of a device in none (the same address may be on both)
  const vrfTable = new Map(c.links.flatMap((l) => (l.type === 'vrf' ? [[devKey(l.ns, String(l.table)), l.name] as const] : [])));
  const vrfOfDev = (ns: string, dev: string): string | undefined => {
    const m = c.interfaces.find((it) => it.ns === ns && it.dev === dev && it.master !== undefined)?.master;
    return m !== undefined && c.links.some((l) => l.type === 'vrf' && l.ns === ns && l.name === m) ? m : undefined;
  };
  const local = (r: CaseDef['routes'][number], addr: string): string[] => {
    const vrf = r.vrf ?? (r.table !== undefined ? vrfTable.get(devKey(r.ns, String(r.table))) : undefined);
    // (in a vrf: and the device's enslavement to it)
    return addressIds
      .filter((a) => a.ns === r.ns && a.cidr.split('/')[0] === addr && vrfOfDev(a.ns, a.dev) === vrf)
      .flatMap((a) => [a.id, ...(vrf !== undefined && masterElem.has(devKey(a.ns, a.dev)) ? [masterElem.get(devKey(a.ns, a.dev))!] : [])]);
  };
  const nexthopElem = new Map<string, string>();
  c.nexthops.forEach((n, i) => {
    if (!nexthopElem.has(devKey(n.ns, String(n.id)))) nexthopElem.set(devKey(n.ns, String(n.id)), `nexthops[${i}]`);
  });
  const nexthop = (ns: string, id: number): string[] => (nexthopElem.has(devKey(ns, String(id))) ? [nexthopElem.get(devKey(ns, String(id)))!] : []);
  c.nexthops.forEach((n, i) => {
    // the kernel takes a nexthop only on a device that is up; a group only with its members
    const parents = [...inNs(n.ns), ...(n.dev ? upDev(n.ns, n.dev) : []), ...(n.via ? gateway(n.ns, n.via, n.dev) : []), ...(n.group ?? []).flatMap((g) => nexthop(n.ns, g.id))];
    const what = n.group ? `group ${n.group.map((g) => (g.weight === undefined ? g.id : `${g.id},${g.weight}`)).join('/')}` : n.blackhole ? 'blackhole' : `${n.via ? `via ${n.via}` : ''}${n.via && n.dev ? ' ' : ''}${n.dev ? `dev ${n.dev}` : ''}`;
    add({ id: `nexthops[${i}]`, kind: 'nexthop', label: `nexthop ${n.id} ${what}${at(n.ns)}`, parents: uniq(parents) });
  });
  c.routes.forEach((r, i) => {
    const parents = [...inNs(r.ns)];
    if (r.dev) parents.push(...upDev(r.ns, r.dev));
    if (r.via) parents.push(...gateway(r.ns, r.via, r.dev));
    if (r.vrf !== undefined) parents.push(...link(r.ns, r.vrf));
    if (r.nhid !== undefined) parents.push(...nexthop(r.ns, r.nhid));
    if (r.src !== undefined) parents.push(...local(r, r.src));
    const label = `route ${r.type ? `${r.type} ` : ''}${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.nhid !== undefined ? ` nhid ${r.nhid}` : ''}${r.vrf !== undefined ? ` vrf ${r.vrf}` : ''}${r.table !== undefined ? ` table ${r.table}` : ''}${r.src !== undefined ? ` src ${r.src}` : ''}${at(r.ns)}`;
    add({ id: `routes[${i}]`, kind: 'route', label, parents: uniq(parents) });
  });
  // a rule names its devices (iif, oif) and table by name or number only: the kernel takes one for a device not there
  c.rules.forEach((r, i) => add({ id: `rules[${i}]`, kind: 'rule', label: `rule ${ruleLine(r).replace(/^rule add /, '')}${at(r.ns)}`, parents: inNs(r.ns) }));
  c.neighbours.forEach((n, i) =>
    add({ id: `neighbours[${i}]`, kind: 'neighbour', label: `neighbour ${n.address}${n.lladdr ? ` lladdr ${n.lladdr}` : ''} dev ${n.dev} ${n.state}${at(n.ns)}`, parents: uniq([...inNs(n.ns), ...link(n.ns, n.dev)]) }),
  );
  c.bridgeVlans.forEach((v, i) => {
    // a port's VLAN: the port enslaved to its bridge (and so the bridge); the bridge's own (self): the bridge
    const parents = [...inNs(v.ns), ...(v.self ? link(v.ns, v.dev) : [...link(v.ns, v.dev), ...(masterElem.has(devKey(v.ns, v.dev)) ? [masterElem.get(devKey(v.ns, v.dev))!] : [])])];
    add({ id: `bridgeVlans[${i}]`, kind: 'bridge-vlan', label: `bridge vlan ${v.vid} on ${v.dev}${v.pvid ? ' pvid' : ''}${v.untagged ? ' untagged' : ''}${v.self ? ' self' : ''}${at(v.ns)}`, parents: uniq(parents) });
  });
  const variants = new Map<string, Element[]>();
  c.sysctls.forEach((s, i) => {
    const id = `sysctls[${i}]`;
    const d = sysctlDevice(s.key);
    const parents = [...inNs(s.ns), ...(d && d.dev !== 'all' && d.dev !== 'default' ? link(s.ns, d.dev) : [])];
    add({ id, kind: 'sysctl', label: `${s.key}=${s.value}${at(s.ns)}`, parents: uniq(parents) });
    if (d && d.dev === 'all' && d.table === 'conf') {
      // the per-interface key, for each interface of the namespace: lo first, then the case's links in order
      const devs = uniq(['lo', ...c.links.flatMap((l) => [...(l.ns === s.ns ? [l.name] : []), ...(l.type === 'veth' && l.peer.ns === s.ns ? [l.peer.name] : [])])]);
      variants.set(
        id,
        devs.map((dev) => ({
          id: `${id}~${dev}`,
          kind: 'sysctl' as const,
          label: `net.${d.family}.conf.${dev}.${d.param}=${s.value}${at(s.ns)}`,
          sysctlKey: `net.${d.family}.conf.${dev}.${d.param}`,
          parents: uniq([...inNs(s.ns), ...link(s.ns, dev)]),
          variantOf: id,
        })),
      );
    }
  });
  const qdiscIds = c.qdiscs.map((q, i) => ({ i, q }));
  c.qdiscs.forEach((q, i) =>
    add({ id: `qdiscs[${i}]`, kind: 'qdisc', label: `qdisc ${q.kind} on ${q.dev}${at(q.ns)}${q.handle ? ` handle ${q.handle}` : ''}`, parents: uniq([...inNs(q.ns), ...link(q.ns, q.dev)]) }),
  );
  c.filters.forEach((f, i) => {
    const parents = [...inNs(f.ns), ...link(f.ns, f.dev)];
    // the qdisc the filter hangs on
    for (const { i: qi, q } of qdiscIds)
      if (q.ns === f.ns && q.dev === f.dev && (f.parent === 'ingress' ? q.kind === 'ingress' || q.kind === 'clsact' : q.handle !== undefined && normHandle(q.handle) === normHandle(f.parent)))
        parents.push(`qdiscs[${qi}]`);
    if (typeof f.action === 'object') parents.push(...link(f.ns, f.action.mirred.dev));
    const act = typeof f.action === 'object' ? `mirred ${f.action.mirred.direction} ${f.action.mirred.mode} to ${f.action.mirred.dev}` : f.action;
    const match = f.match === 'basic' ? 'basic' : `u32 ${f.match.u32.join(', ')}`;
    add({ id: `filters[${i}]`, kind: 'filter', label: `filter ${f.dev}${at(f.ns)} ${f.parent} ${f.protocol}${f.prio !== undefined ? ` prio ${f.prio}` : ''} ${match}: ${act}`, parents: uniq(parents) });
  });
  c.nftables.forEach((n, i) => {
    const id = `nftables[${i}]`;
    add({ id, kind: 'nftables', label: `nftables ruleset${at(n.ns)}`, parents: inNs(n.ns) });
    nftRules(n.ruleset).forEach((r, j) => add({ id: `${id}.rules[${j}]`, kind: 'nft-rule', label: `nft rule${at(n.ns)}: ${r.text}`, parents: [id] }));
  });
  c.steps.forEach((s, i) => add({ id: `steps[${i}]`, kind: 'step', label: `step ${s.name}${at(s.ns)}: ${s.exec.join(' ')}`, parents: inNs(s.ns) }));
  c.servers.forEach((s, i) => {
    const parents = [...inNs(s.ns)];
    if (s.bind) parents.push(...addressIds.filter((a) => a.ns === s.ns && a.cidr.split('/')[0] === s.bind).map((a) => a.id));
    add({ id: `servers[${i}]`, kind: 'server', label: `server ${s.name}${at(s.ns)} ${s.tcpListen !== undefined ? `tcp ${s.tcpListen}` : `udp ${s.udpListen}`}`, parents: uniq(parents) });
  });
  c.captures.forEach((cap, i) => add({ id: `captures[${i}]`, kind: 'capture', label: `capture on ${cap.dev}${at(cap.ns)}`, parents: uniq([...inNs(cap.ns), ...link(cap.ns, cap.dev)]) }));
  const serverFor = (proto: 'tcp' | 'udp', port: number): string[] =>
    c.servers.flatMap((s, i) => ((proto === 'tcp' ? s.tcpListen : s.udpListen) === port ? [`servers[${i}]`] : []));
  const signatureProbe = c.signature.probe.split('/')[0]!;
  const probeParents = (p: CaseDef['probes'][number]): string[] =>
    uniq([...inNs(p.ns), ...('tcp' in p ? serverFor('tcp', p.tcp.port) : []), ...('udp' in p ? serverFor('udp', p.udp.port) : [])]);
  c.probes.forEach((p, i) => {
    if (p.name === signatureProbe) return;
    add({ id: `probes[${i}]`, kind: 'probe', label: `${p.control ? 'control ' : ''}probe ${p.name}${at(p.ns)}`, parents: probeParents(p) });
  });

  // what the signature needs is never removed: its probe's parents, the signals' namespaces, and their ancestors
  const byId = new Map(elements.map((e) => [e.id, e]));
  const requiredWhy = new Map<string, string>();
  const pin = (id: string, why: string): void => {
    if (requiredWhy.has(id)) return;
    requiredWhy.set(id, why);
    for (const p of byId.get(id)?.parents ?? []) pin(p, why);
  };
  const sig = c.probes.find((p) => p.name === signatureProbe);
  if (sig) for (const p of probeParents(sig)) pin(p, `the signature probe ${sig.name} needs it`);
  for (const s of c.signals) if ('ns' in s && typeof s.ns === 'string' && s.ns !== HOST_NS && nsElem.has(s.ns)) pin(nsElem.get(s.ns)!, `signal ${s.name} reads it`);
  const required = [...requiredWhy].map(([id, why]) => ({ id, label: byId.get(id)!.label, why }));
  const removable = elements.filter((e) => !requiredWhy.has(e.id));
  for (const vs of variants.values()) for (const v of vs) byId.set(v.id, v);
  // a variant needing a required... is fine; a variant of a required element is never tried
  for (const id of requiredWhy.keys()) variants.delete(id);
  return { elements: removable, required, variants, byId };
}

function at(ns: string): string {
  return ns === HOST_NS ? '' : ` (${ns})`;
}

function linkLabel(l: Link): string {
  if (l.type === 'veth') return `veth ${l.name}${at(l.ns)} <-> ${l.peer.name}${at(l.peer.ns)}`;
  const lower = lowerOf(l);
  return `${l.type} ${l.name}${lower !== undefined ? ` on ${lower}` : ''}${at(l.ns)}`;
}

function uniq<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/**
 * The kept ids that can stay: an element goes when one of its parents is neither kept nor
 * required (to a fixed point). A variant stands in for its element. Order: as given.
 */
export function closure(ce: CaseElements, kept: readonly string[]): string[] {
  const required = new Set(ce.required.map((r) => r.id));
  let set = new Set(kept.filter((id) => ce.byId.has(id)));
  // a variant replaces its element
  for (const id of set) {
    const v = ce.byId.get(id)!;
    if (v.variantOf) set.delete(v.variantOf);
  }
  for (;;) {
    const next = new Set([...set].filter((id) => ce.byId.get(id)!.parents.every((p) => set.has(p) || required.has(p) || hasVariant(set, ce, p))));
    if (next.size === set.size) break;
    set = next;
  }
  return kept.filter((id, i) => set.has(id) && kept.indexOf(id) === i);
}

function hasVariant(set: Set<string>, ce: CaseElements, id: string): boolean {
  return (ce.variants.get(id) ?? []).some((v) => set.has(v.id));
}

/** The case with only the kept elements (and the required ones); everything else of the case as it was. */
export function applyElements(c: CaseDef, ce: CaseElements, kept: readonly string[]): CaseDef {
  const keep = new Set([...closure(ce, kept), ...ce.required.map((r) => r.id)]);
  const has = (id: string): boolean => keep.has(id);
  const variantKey = (i: number): string | null => {
    for (const v of ce.variants.get(`sysctls[${i}]`) ?? []) if (keep.has(v.id) && v.sysctlKey) return v.sysctlKey;
    return null;
  };
  const signatureProbe = c.signature.probe.split('/')[0]!;
  const probes = c.probes.filter((p, i) => p.name === signatureProbe || has(`probes[${i}]`));
  const probeNames = new Set(probes.map((p) => p.name));
  return {
    ...c,
    namespaces: c.namespaces.filter((_, i) => has(`namespaces[${i}]`)),
    links: c.links.filter((_, i) => has(`links[${i}]`)),
    interfaces: c.interfaces.flatMap((it, i) => {
      const id = `interfaces[${i}]`;
      if (!has(id)) return [];
      const { mac, mtu, master, ...rest } = it;
      return [
        {
          ...rest,
          ...(mac !== undefined && has(`${id}.mac`) ? { mac } : {}),
          ...(mtu !== undefined && has(`${id}.mtu`) ? { mtu } : {}),
          ...(master !== undefined && has(`${id}.master`) ? { master } : {}),
          addresses: it.addresses.filter((_, j) => has(`${id}.addresses[${j}]`)),
        },
      ];
    }),
    routes: c.routes.filter((_, i) => has(`routes[${i}]`)),
    nexthops: c.nexthops.filter((_, i) => has(`nexthops[${i}]`)),
    rules: c.rules.filter((_, i) => has(`rules[${i}]`)),
    neighbours: c.neighbours.filter((_, i) => has(`neighbours[${i}]`)),
    bridgeVlans: c.bridgeVlans.filter((_, i) => has(`bridgeVlans[${i}]`)),
    sysctls: c.sysctls.flatMap((s, i) => {
      const v = variantKey(i);
      if (v !== null) return [{ ...s, key: v }];
      return has(`sysctls[${i}]`) ? [s] : [];
    }),
    qdiscs: c.qdiscs.filter((_, i) => has(`qdiscs[${i}]`)),
    filters: c.filters.filter((_, i) => has(`filters[${i}]`)),
    nftables: c.nftables.flatMap((n, i) => {
      const id = `nftables[${i}]`;
      if (!has(id)) return [];
      const rules = nftRules(n.ruleset);
      const drop = new Set(rules.map((_, j) => j).filter((j) => !has(`${id}.rules[${j}]`)));
      return [{ ...n, ruleset: drop.size ? withoutRules(n.ruleset, drop) : n.ruleset }];
    }),
    steps: c.steps.filter((_, i) => has(`steps[${i}]`)),
    servers: c.servers.filter((_, i) => has(`servers[${i}]`)),
    captures: c.captures.filter((_, i) => has(`captures[${i}]`)),
    probes,
    signature: { ...c.signature, controls: c.signature.controls.filter((ref) => probeNames.has(ref.split('/')[0]!)) },
  };
}
