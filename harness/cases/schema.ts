// Case files: declarative reproduction scenarios. Every value that reaches the guest shell is
// constrained here by a strict pattern, and the renderer quotes it again (defence in depth).
// Free text that goes into files the guest reads (an nftables ruleset) never reaches a shell.
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { signalSchema } from '../observe/signals/index.ts';
import { TRACEPOINT_RE } from '../observe/signals/tracepoint.ts';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NS_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
const DEV_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;
const IPV4 = '(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const SYSCTL_KEY_RE = /^net\.(?:ipv4|ipv6|core|netfilter|unix)\.[A-Za-z0-9_.-]+$/;
const SYSCTL_VAL_RE = /^-?[0-9]{1,10}(?:[ \t]-?[0-9]{1,10}){0,3}$/;
const KCONFIG_RE = /^CONFIG_[A-Z0-9_]+$/;
const HANDLE_RE = /^[0-9a-f]{1,4}:[0-9a-f]{0,4}$/;
const TOKEN_RE = /^[A-Za-z0-9_.:/-]{1,64}$/;
/** a string a command's output must hold, or must not: printable, no leading or trailing blank (quoted by the renderer, matched as a plain string) */
const TEXT_TOKEN_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;
/** a Debian package name (policy 5.6.1) */
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]{1,62}$/;
/** an argument of an exec step or probe: printable, no control characters (quoted again by the renderer) */
const ARG_RE = /^[\x20-\x7e]{0,256}$/;
/** a path inside the kernel source tree */
const SOURCE_PATH_RE = /^(?:[A-Za-z0-9_][A-Za-z0-9_.+-]*\/)*[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
/** a guest directory an exec step or probe runs in: absolute, no `.` or `..` component, no blank */
const CWD_RE = /^(?:\/[A-Za-z0-9_][A-Za-z0-9_.+-]*)+\/?$|^\/$/;

const nsName = z.string().regex(NS_RE, 'must be a namespace name: a letter, then letters, digits, _ or - (at most 32)');
const devName = z.string().regex(DEV_RE, 'must be an interface name: a letter, then letters, digits, _ . or - (at most 15)');
const name = z.string().regex(NAME_RE, 'must be a name: letters, digits, _ . or - (at most 64)');

/** IPv4 or IPv6 address (no zone id); IPv6 in any spelling node's parser accepts, restricted to hex, digits, ':' and '.'. */
export function isAddress(s: string): boolean {
  return isIPv4(s) || (isIPv6(s) && /^[0-9A-Fa-f:.]+$/.test(s));
}
export function familyOf(addr: string): 4 | 6 {
  return addr.includes(':') ? 6 : 4;
}
const address = z.string().refine(isAddress, 'must be an IPv4 or IPv6 address like 192.0.2.1 or 2001:db8::1');
const cidr = z.string().refine((s) => {
  const [a, len, ...rest] = s.split('/');
  if (rest.length || a === undefined || len === undefined || !/^\d{1,3}$/.test(len) || !isAddress(a)) return false;
  return Number(len) <= (familyOf(a) === 6 ? 128 : 32);
}, 'must be an IPv4 or IPv6 prefix like 192.0.2.1/24 or 2001:db8::1/64');

const addressOrPrefix = z.string().refine((s) => isAddress(s) || cidr.safeParse(s).success, 'must be an IPv4 or IPv6 address or prefix like 2001:db8::2 or 192.0.2.2/24');

/** The namespace every case has: the VM's initial network namespace. */
export const HOST_NS = 'host';

// ---- topology: links, interfaces, routes, nexthops, rules, neighbours, bridge VLANs ----------------
const u32 = z.number().int().min(0).max(4294967295);
const linkBase = { name: devName, ns: nsName.default(HOST_NS) };
export const TUNNEL_TYPES = ['gre', 'gretap', 'ipip', 'ip6gre', 'ip6gretap', 'ip6tnl', 'sit'] as const;
/** tunnel types whose endpoints are IPv6 addresses (the others: IPv4) */
export const TUNNEL6_TYPES: readonly string[] = ['ip6gre', 'ip6gretap', 'ip6tnl'];
/** tunnel types that take a GRE key */
export const GRE_TYPES: readonly string[] = ['gre', 'gretap', 'ip6gre', 'ip6gretap'];
/** link types another interface can be enslaved to (`master:`) */
export const MASTER_TYPES: readonly string[] = ['vrf', 'bridge', 'bond'];

const linkSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('veth'),
    name: devName,
    ns: nsName.default(HOST_NS),
    peer: z.strictObject({ name: devName, ns: nsName.default(HOST_NS) }),
  }),
  z.strictObject({ type: z.literal('dummy'), name: devName, ns: nsName.default(HOST_NS) }),
  /** ip link add NAME type vrf table N */
  z.strictObject({ type: z.literal('vrf'), ...linkBase, table: z.number().int().min(1).max(4294967295) }),
  /** ip link add NAME type bridge [vlan_filtering 0|1] */
  z.strictObject({ type: z.literal('bridge'), ...linkBase, vlanFiltering: z.boolean().optional() }),
  /** ip link add link LINK name NAME type vlan id N */
  z.strictObject({ type: z.literal('vlan'), ...linkBase, link: devName, id: z.number().int().min(1).max(4094) }),
  /** ip link add NAME type vxlan id N [local A] [remote A | group A] [dstport P] [dev D] [[no]learning] */
  z.strictObject({
    type: z.literal('vxlan'),
    ...linkBase,
    id: z.number().int().min(0).max(16777215),
    local: address.optional(),
    remote: address.optional(),
    group: address.optional(),
    dstport: z.number().int().min(0).max(65535).optional(),
    dev: devName.optional(),
    learning: z.boolean().optional(),
  }),
  /** ip link add NAME type gre|gretap|ipip|ip6gre|ip6gretap|ip6tnl|sit [local A] [remote A] [ttl N] [key N] [dev D] */
  z.strictObject({
    type: z.enum(TUNNEL_TYPES),
    ...linkBase,
    local: address.optional(),
    remote: address.optional(),
    ttl: z.number().int().min(0).max(255).optional(),
    key: u32.optional(),
    dev: devName.optional(),
  }),
  /** ip link add link LINK name NAME type macvlan [mode M] */
  z.strictObject({ type: z.literal('macvlan'), ...linkBase, link: devName, mode: z.enum(['private', 'vepa', 'bridge', 'passthru', 'source']).optional() }),
  /** ip link add NAME type bond [mode M] */
  z.strictObject({
    type: z.literal('bond'),
    ...linkBase,
    mode: z.enum(['balance-rr', 'active-backup', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb']).optional(),
  }),
]);

/** An interface address: a prefix, or { address: prefix, broadcast: IPv4 address, peer: the other end
 *  of a point-to-point address (an address or a prefix of the same family) } */
const addressSchema = z.union([cidr, z.strictObject({ address: cidr, broadcast: address.optional(), peer: addressOrPrefix.optional() })]);

const interfaceSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  mac: z.string().regex(MAC_RE, 'must be a lower-case MAC address like 52:54:00:6a:c7:5e').optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  /** a vrf, bridge or bond link of the same namespace: ip link set dev DEV master M (before its addresses) */
  master: devName.optional(),
  addresses: z.array(addressSchema).max(64).default([]),
  /** IPv6 duplicate address detection on this interface's addresses (off by default: addresses are usable at once) */
  dad: z.boolean().default(false),
  up: z.boolean().default(true),
});

/** route types that take no gateway, device or nexthop */
export const REJECT_ROUTE_TYPES: readonly string[] = ['unreachable', 'blackhole', 'prohibit', 'throw'];

const routeSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  /** a prefix, or `default` (IPv6 when `via` is an IPv6 address or `family: 6`) */
  dst: z.union([z.literal('default'), cidr]),
  /** ip route add TYPE DST (unicast when absent) */
  type: z.enum(['unicast', 'local', 'broadcast', 'unreachable', 'blackhole', 'prohibit', 'throw']).optional(),
  via: address.optional(),
  dev: devName.optional(),
  family: z.union([z.literal(4), z.literal(6)]).optional(),
  /** 0: the kernel picks (main) */
  table: z.union([z.literal('main'), z.literal('local'), u32]).optional(),
  /** a vrf link of the same namespace: ip route add vrf NAME ... (instead of table) */
  vrf: devName.optional(),
  metric: u32.optional(),
  /** preferred source address */
  src: address.optional(),
  /** a nexthop object of the same namespace (instead of via/dev) */
  nhid: z.number().int().min(1).max(4294967295).optional(),
});

/** ip nexthop add id N (via A [dev D] | dev D | blackhole | group ID[,WEIGHT]/...) */
const nexthopSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  id: z.number().int().min(1).max(4294967295),
  via: address.optional(),
  dev: devName.optional(),
  blackhole: z.boolean().optional(),
  /** 6: an IPv6 blackhole (ip -6 nexthop add id N blackhole), for IPv6 routes; a gateway's family is its address's */
  family: z.union([z.literal(4), z.literal(6)]).optional(),
  group: z
    .array(z.strictObject({ id: z.number().int().min(1).max(4294967295), weight: z.number().int().min(1).max(256).optional() }))
    .min(1)
    .max(32)
    .optional(),
});

const PORT_RANGE_RE = /^(?:\d{1,5}|\d{1,5}-\d{1,5})$/;
const portOrRange = z
  .union([z.number().int().min(0).max(65535), z.string().regex(PORT_RANGE_RE, 'must be a port like 1000 or a range like "2000-2010"')])
  .transform(String)
  .refine((s) => s.split('-').every((p) => Number(p) <= 65535) && (!s.includes('-') || Number(s.split('-')[0]) <= Number(s.split('-')[1])), 'must be a port (0-65535) or a range low-high');
const FWMARK_RE = /^(?:0x[0-9a-fA-F]{1,8}|\d{1,10})(?:\/(?:0x[0-9a-fA-F]{1,8}|\d{1,10}))?$/;

/** ip rule add [pref N] [from P] [to P] [iif D] [oif D] [fwmark M[/MASK]] [ipproto P] [sport R] [dport R] (table T | l3mdev | ACTION) */
const ruleSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  /** 6: an IPv6 rule (ip -6 rule add); default: the family of from/to, else 4 */
  family: z.union([z.literal(4), z.literal(6)]).optional(),
  pref: u32.optional(),
  from: cidr.optional(),
  to: cidr.optional(),
  iif: devName.optional(),
  oif: devName.optional(),
  fwmark: z.union([u32, z.string().regex(FWMARK_RE, 'must be a mark like 0x1 or a mark/mask like "0x1/0xff"')]).transform(String).optional(),
  ipproto: z.union([z.enum(['tcp', 'udp', 'icmp', 'ipv6-icmp', 'sctp', 'gre']), z.number().int().min(0).max(255)]).transform(String).optional(),
  sport: portOrRange.optional(),
  dport: portOrRange.optional(),
  table: z.union([z.literal('main'), z.literal('local'), z.number().int().min(1).max(4294967295)]).optional(),
  l3mdev: z.boolean().optional(),
  action: z.enum(['unreachable', 'blackhole', 'prohibit']).optional(),
});

/** ip neigh add ADDRESS [lladdr MAC] dev DEV nud STATE */
const neighbourSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  address,
  lladdr: z.string().regex(MAC_RE, 'must be a lower-case MAC address like 52:54:00:00:00:02').optional(),
  state: z.enum(['permanent', 'noarp', 'reachable', 'stale', 'delay', 'probe', 'failed', 'incomplete', 'none']).default('permanent'),
});

/** bridge vlan add dev DEV vid N [pvid] [untagged] [self] */
const bridgeVlanSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  vid: z.number().int().min(1).max(4094),
  pvid: z.boolean().default(false),
  untagged: z.boolean().default(false),
  /** the bridge device itself (its own VLANs, `self`) rather than a port */
  self: z.boolean().default(false),
});
/** bridge fdb add MAC dev PORT master static|dynamic [vlan N]: an FDB entry of a bridge port */
const bridgeFdbSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  /** the bridge port the entry points to */
  dev: devName,
  mac: z.string().regex(MAC_RE, 'must be a lower-case MAC address like 00:aa:bb:cc:dd:ee'),
  /** static: kept until deleted (never aged out); dynamic: as if learned, aged out and flushed */
  state: z.enum(['static', 'dynamic']),
  /** the entry's VLAN (a VLAN of the port: bridgeVlans, or its default pvid 1) */
  vlan: z.number().int().min(1).max(4094).optional(),
});
export type Link = z.output<typeof linkSchema>;
export type Interface = z.output<typeof interfaceSchema>;
export type Route = z.output<typeof routeSchema>;
export type Nexthop = z.output<typeof nexthopSchema>;
export type Rule = z.output<typeof ruleSchema>;
export type Neighbour = z.output<typeof neighbourSchema>;
export type BridgeVlan = z.output<typeof bridgeVlanSchema>;
export type BridgeFdb = z.output<typeof bridgeFdbSchema>;
/** The topology part of a case (what checkTopology and the renderer's topology read). */
export interface Topology {
  kconfig: string[];
  links: Link[];
  interfaces: Interface[];
  routes: Route[];
  nexthops: Nexthop[];
  rules: Rule[];
  neighbours: Neighbour[];
  bridgeVlans: BridgeVlan[];
  bridgeFdb: BridgeFdb[];
}

/** An interface address's prefix (an address entry is a prefix or { address, broadcast }). */
export function addressPrefix(a: Interface['addresses'][number]): string {
  return typeof a === 'string' ? a : a.address;
}
/** The address family of a route. */
export function routeFamily(r: Route): 4 | 6 {
  return r.dst === 'default' ? (r.family ?? (r.via ? familyOf(r.via) : 4)) : familyOf(r.dst.split('/')[0]!);
}
/** The address family of a rule: its own, else its from/to's, else IPv4 (as ip rule's). */
export function ruleFamily(r: Rule): 4 | 6 {
  const a = r.from ?? r.to;
  return r.family ?? (a ? familyOf(a.split('/')[0]!) : 4);
}
export type TunnelLink = Extract<Link, { type: (typeof TUNNEL_TYPES)[number] }>;
export function isTunnel(l: Link): l is TunnelLink {
  return (TUNNEL_TYPES as readonly string[]).includes(l.type);
}
/** The address family of a plain nexthop: its gateway's, else its own (`family`), else IPv4 (as ip's). */
export function nexthopFamily(n: Nexthop): 4 | 6 {
  return n.via ? familyOf(n.via) : (n.family ?? 4);
}
/** The devices a link is created on top of (created before it, in its namespace). */
export function lowerOf(l: Link): string | undefined {
  return 'link' in l ? l.link : 'dev' in l ? l.dev : undefined;
}
/** The interface names a link gives each namespace. */
export function linkDevs(l: Link): Array<{ ns: string; name: string }> {
  return l.type === 'veth' ? [{ ns: l.ns, name: l.name }, { ns: l.peer.ns, name: l.peer.name }] : [{ ns: l.ns, name: l.name }];
}

type Ctx = z.core.$RefinementCtx;
type Path = (string | number)[];

/** Cross-references of the topology, each error at the field at fault. */
function checkTopology(c: Topology, ctx: Ctx, checkNs: (ns: string, path: Path) => void): void {
  const issue = (path: Path, message: string): void => ctx.addIssue({ code: 'custom', path, message });
  // every interface name a link makes, per namespace, and the link that makes it
  const devs = new Map<string, Link>();
  const key = (ns: string, dev: string): string => `${ns}\u0000${dev}`;
  c.links.forEach((l, i) => {
    linkDevs(l).forEach((d, j) => {
      if (devs.has(key(d.ns, d.name))) issue(['links', i, ...(j === 0 ? ['name'] : ['peer', 'name'])], `interface "${d.name}" is made twice in namespace "${d.ns}"`);
      else devs.set(key(d.ns, d.name), l);
    });
  });
  const namesIn = (ns: string): string => [...devs.keys()].filter((k) => k.startsWith(ns + '\u0000')).map((k) => k.split('\u0000')[1]).join(', ') || 'none';
  c.links.forEach((l, i) => {
    const lower = lowerOf(l);
    const field = 'link' in l ? 'link' : 'dev';
    if (lower !== undefined && lower !== 'lo' && !devs.has(key(l.ns, lower)))
      issue(['links', i, field], `no link "${lower}" in namespace "${l.ns}" to put ${l.name} on (links there: ${namesIn(l.ns)})`);
    if (lower === l.name) issue(['links', i, field], `${l.name} cannot be on top of itself`);
    if (l.type === 'vxlan') {
      if (l.remote && l.group) issue(['links', i, 'group'], 'a vxlan link takes remote (unicast) or group (multicast), not both');
      if (l.group && !/^(?:2(?:2[4-9]|3\d)\.|ff)/i.test(l.group)) issue(['links', i, 'group'], `${l.group} is not a multicast address`);
      const first = l.local ?? l.remote ?? l.group;
      for (const f of ['remote', 'group'] as const)
        if (first && l[f] && familyOf(l[f]) !== familyOf(first)) issue(['links', i, f], 'local, remote and group must be of one address family');
    }
    if (isTunnel(l)) {
      const want = TUNNEL6_TYPES.includes(l.type) ? 6 : 4;
      for (const f of ['local', 'remote'] as const)
        if (l[f] && familyOf(l[f]) !== want) issue(['links', i, f], `a ${l.type} tunnel's endpoints are IPv${want} addresses`);
      if (l.key !== undefined && !GRE_TYPES.includes(l.type)) issue(['links', i, 'key'], `a ${l.type} tunnel takes no key (only ${GRE_TYPES.join(', ')})`);
    }
  });
  // links on top of links: no cycle
  c.links.forEach((l, i) => {
    const seen = new Set<Link>([l]);
    for (let cur: Link | undefined = l; cur; ) {
      const lower = lowerOf(cur);
      cur = lower === undefined ? undefined : devs.get(key(cur.ns, lower));
      if (cur === l) {
        issue(['links', i, 'link' in l ? 'link' : 'dev'], `${l.name} is (through other links) on top of itself`);
        break;
      }
      if (!cur || seen.has(cur)) break;
      seen.add(cur);
    }
  });
  const linkIn = (ns: string, name: string): Link | undefined => devs.get(key(ns, name));
  const masterOf = new Map<string, Link>();
  c.interfaces.forEach((it, i) => {
    if (it.master === undefined) return;
    const m = linkIn(it.ns, it.master);
    if (!m || !MASTER_TYPES.includes(m.type)) issue(['interfaces', i, 'master'], `no vrf, bridge or bond link "${it.master}" in namespace "${it.ns}"`);
    else if (it.master === it.dev) issue(['interfaces', i, 'master'], `${it.dev} cannot be its own master`);
    else masterOf.set(key(it.ns, it.dev), m);
    if (c.interfaces.findIndex((x) => x.ns === it.ns && x.dev === it.dev && x.master !== undefined) !== i)
      issue(['interfaces', i, 'master'], `${it.dev} has a master already`);
  });
  c.interfaces.forEach((it, i) =>
    it.addresses.forEach((a, j) => {
      if (typeof a === 'string') return;
      if (a.broadcast !== undefined && (familyOf(a.broadcast) !== 4 || familyOf(a.address.split('/')[0]!) !== 4))
        issue(['interfaces', i, 'addresses', j, 'broadcast'], 'a broadcast address is IPv4, for an IPv4 address');
      if (a.peer !== undefined && familyOf(a.peer) !== familyOf(a.address))
        issue(['interfaces', i, 'addresses', j, 'peer'], `the peer ${a.peer} is not of the family of ${a.address}`);
    }),
  );
  c.bridgeVlans.forEach((v, i) => {
    checkNs(v.ns, ['bridgeVlans', i, 'ns']);
    const self = linkIn(v.ns, v.dev);
    if (v.self) {
      if (self?.type !== 'bridge') issue(['bridgeVlans', i, 'dev'], `self: no bridge link "${v.dev}" in namespace "${v.ns}"`);
    } else if (masterOf.get(key(v.ns, v.dev))?.type !== 'bridge')
      issue(['bridgeVlans', i, 'dev'], self?.type === 'bridge' ? `${v.dev} is the bridge itself: say self: true` : `${v.dev} is not a bridge port in namespace "${v.ns}" (give it master: <bridge> under interfaces)`);
  });
  c.bridgeFdb.forEach((f, i) => {
    checkNs(f.ns, ['bridgeFdb', i, 'ns']);
    if (masterOf.get(key(f.ns, f.dev))?.type !== 'bridge')
      issue(['bridgeFdb', i, 'dev'], linkIn(f.ns, f.dev)?.type === 'bridge' ? `${f.dev} is the bridge itself: an FDB entry here points to a port` : `${f.dev} is not a bridge port in namespace "${f.ns}" (give it master: <bridge> under interfaces)`);
  });
  // nexthops: unique ids per namespace; exactly one of gateway/device, blackhole, group; groups of plain nexthops
  const nhs = new Map<string, Nexthop>();
  c.nexthops.forEach((n, i) => {
    checkNs(n.ns, ['nexthops', i, 'ns']);
    if (nhs.has(key(n.ns, String(n.id)))) issue(['nexthops', i, 'id'], `nexthop id ${n.id} is used twice in namespace "${n.ns}"`);
    else nhs.set(key(n.ns, String(n.id)), n);
    const kinds = [n.via !== undefined || n.dev !== undefined, n.blackhole === true, n.group !== undefined].filter(Boolean).length;
    if (kinds !== 1) issue(['nexthops', i], 'needs exactly one of: via and/or dev, blackhole: true, group');
    if (n.family !== undefined && (n.group || (n.via && familyOf(n.via) !== n.family)))
      issue(['nexthops', i, 'family'], n.group ? "a group's family is its members'" : `gateway ${n.via} is not IPv${n.family}`);
  });
  c.nexthops.forEach((n, i) =>
    n.group?.forEach((g, j) => {
      const m = nhs.get(key(n.ns, String(g.id)));
      if (!m) issue(['nexthops', i, 'group', j, 'id'], `no nexthop id ${g.id} in namespace "${n.ns}"`);
      else if (m.group) issue(['nexthops', i, 'group', j, 'id'], `nexthop ${g.id} is a group itself: groups hold plain nexthops`);
      if (n.group!.findIndex((x) => x.id === g.id) !== j) issue(['nexthops', i, 'group', j, 'id'], `nexthop ${g.id} is in the group twice`);
    }),
  );
  c.routes.forEach((r, i) => {
    const fam = routeFamily(r);
    if (r.via && familyOf(r.via) !== fam) issue(['routes', i, 'via'], `gateway ${r.via} is not of the route's address family (IPv${fam})`);
    if (r.src && familyOf(r.src) !== fam) issue(['routes', i, 'src'], `source ${r.src} is not of the route's address family (IPv${fam})`);
    if (r.vrf !== undefined) {
      if (linkIn(r.ns, r.vrf)?.type !== 'vrf') issue(['routes', i, 'vrf'], `no vrf link "${r.vrf}" in namespace "${r.ns}"`);
      if (r.table !== undefined) issue(['routes', i, 'table'], 'a route takes vrf or table, not both');
    }
    if (r.nhid !== undefined) {
      if (!nhs.has(key(r.ns, String(r.nhid)))) issue(['routes', i, 'nhid'], `no nexthop id ${r.nhid} in namespace "${r.ns}" (declare it under nexthops)`);
      if (r.via !== undefined || r.dev !== undefined) issue(['routes', i, 'nhid'], 'a route takes nhid or via/dev, not both');
      // the kernel refuses an IPv4 nexthop (or a group holding one) for an IPv6 route
      const nh = nhs.get(key(r.ns, String(r.nhid)));
      const members = nh?.group ? nh.group.map((g) => nhs.get(key(r.ns, String(g.id)))).filter((m): m is Nexthop => !!m) : nh ? [nh] : [];
      const v4 = members.find((m) => nexthopFamily(m) === 4);
      if (fam === 6 && v4) issue(['routes', i, 'nhid'], `an IPv6 route cannot use IPv4 nexthop ${v4.id}${v4.blackhole ? ' (a blackhole is IPv4 unless family: 6)' : ''}`);
    }
    if (r.type && REJECT_ROUTE_TYPES.includes(r.type) && (r.via !== undefined || r.dev !== undefined || r.nhid !== undefined))
      issue(['routes', i, 'type'], `a ${r.type} route takes no via, dev or nhid`);
  });
  c.rules.forEach((r, i) => {
    checkNs(r.ns, ['rules', i, 'ns']);
    const fam = ruleFamily(r);
    for (const f of ['from', 'to'] as const)
      if (r[f] && familyOf(r[f]!.split('/')[0]!) !== fam) issue(['rules', i, f], `${r[f]} is not of the rule's address family (IPv${fam})`);
    const targets = (['table', 'l3mdev', 'action'] as const).filter((f) => r[f] !== undefined && r[f] !== false);
    if (targets.length > 1) issue(['rules', i, targets[1]!], `a rule takes one of table, l3mdev and action (has ${targets.join(' and ')})`);
  });
  c.neighbours.forEach((n, i) => checkNs(n.ns, ['neighbours', i, 'ns']));
  for (const need of topologyKconfig(c))
    if (!c.kconfig.includes(need.option)) issue(need.path, `${need.what} needs ${need.option}: add it to kconfig`);
}
// ---- end of topology -----------------------------------------------------------------------------

const sysctlSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  key: z.string().regex(SYSCTL_KEY_RE, 'must be a net.* sysctl key like net.ipv4.conf.all.rp_filter or net.ipv6.conf.all.forwarding'),
  value: z.union([z.number().int(), z.string().regex(SYSCTL_VAL_RE, 'must be an integer, or up to 4 integers separated by spaces')]).transform(String),
});

const qdiscSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  kind: z.enum(['ingress', 'clsact', 'fq_codel', 'pfifo_fast', 'prio']),
  parent: z.literal('root').optional(),
  handle: z.string().regex(HANDLE_RE, 'must be a tc handle like 1:').optional(),
});

const U32_MATCH_RE = new RegExp(
  [
    `^ip (?:src|dst) ${IPV4}(?:/(?:3[0-2]|[12]?\\d))?$`,
    '^ip (?:sport|dport) \\d{1,5} 0x[0-9a-f]{1,4}$',
    '^ip protocol \\d{1,3} 0x[0-9a-f]{1,2}$',
    '^ether (?:src|dst) [0-9a-f]{2}(?::[0-9a-f]{2}){5}$',
  ].join('|'),
);

const filterSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  /** `ingress` (ingress qdisc) or a qdisc handle like `1:` */
  parent: z.union([z.literal('ingress'), z.string().regex(HANDLE_RE, 'must be ingress or a tc handle like 1:')]),
  protocol: z.enum(['ip', 'ipv6', 'arp', 'all']),
  prio: z.number().int().min(1).max(65535).optional(),
  match: z.union([
    z.literal('basic'),
    z.strictObject({
      u32: z
        .array(z.string().regex(U32_MATCH_RE, 'must be a u32 match like "ip dst 10.0.0.1/32" or "ip sport 31744 0xfc00"'))
        .min(1),
    }),
  ]),
  action: z.union([
    z.literal('pass'),
    z.literal('drop'),
    z.strictObject({
      mirred: z.strictObject({
        direction: z.enum(['egress', 'ingress']),
        mode: z.enum(['redirect', 'mirror']),
        dev: devName,
      }),
    }),
  ]),
});

/** An nftables ruleset for one namespace, loaded with `nft -f` (never through a shell). */
const nftablesSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  ruleset: z
    .string()
    .min(1)
    .max(16_384)
    .refine((s) => !/[\x00-\x08\x0b-\x1f\x7f]/.test(s), 'must be plain text (no control characters)'),
});

const textToken = z.string().regex(TEXT_TOKEN_RE, 'must be printable text of at most 128 characters, without leading or trailing blanks');
const port = z.number().int().min(1).max(65535);

const argv = z.array(z.string().regex(ARG_RE, 'must be printable text without control characters (at most 256)')).min(1).max(64);
/** the directory a command runs in (as kselftest runs a selftest from its own folder) */
const cwd = z.string().max(256).regex(CWD_RE, 'must be an absolute guest directory like /src/tools/testing/selftests/net (no . or .. component)');

const sourcePath = z.string().regex(SOURCE_PATH_RE, 'must be a relative path inside the kernel tree like tools/testing/selftests/net/fib_tests.sh');
/** A file of the kernel's source tree: a path (the tree must have it), or { path, optional: true }
 *  (a tree without it runs the case without it: a file one kernel series has and another lacks) */
const sourceFileSchema = z
  .union([sourcePath, z.strictObject({ path: sourcePath, optional: z.boolean().default(false) })])
  .transform((f) => (typeof f === 'string' ? { path: f, optional: false } : f));

/** A command run after the topology is set up, before servers and probes. */
const stepSchema = z.strictObject({
  name,
  ns: nsName.default(HOST_NS),
  /** program and arguments; a bare program name is looked up in PATH (a real file before a busybox applet) */
  exec: argv,
  /** the directory it runs in (default: the agent's, /) */
  cwd: cwd.optional(),
  expectRc: z.number().int().min(0).max(255).default(0),
  /** its output must hold this (else the case stops, as on a wrong exit code) */
  expect: textToken.optional(),
  /** its output must not hold this (else the case stops, as on a wrong exit code) */
  absent: textToken.optional(),
  timeoutMs: z.number().int().min(100).max(300_000).default(30_000),
});

const serverSchema = z
  .strictObject({
    name,
    ns: nsName.default(HOST_NS),
    /** TCP port to listen on; every connection gets `reply` and is closed */
    tcpListen: z.number().int().min(1).max(65535).optional(),
    /** UDP port to listen on; every datagram is answered with `reply` (socat in the guest) */
    udpListen: z.number().int().min(1).max(65535).optional(),
    /** the local address to listen on (default: every address); the server then runs under socat */
    bind: address.optional(),
    /** an IPv6 socket with IPV6_V6ONLY (no IPv4-mapped peers); the server then runs under socat */
    v6only: z.boolean().default(false),
    reply: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -').default('kernel-repro-ok'),
  })
  .refine((s) => (s.tcpListen === undefined) !== (s.udpListen === undefined), { message: 'needs exactly one of tcpListen and udpListen', path: ['tcpListen'] })
  .refine((s) => !(s.v6only && s.bind !== undefined && isIPv4(s.bind)), { message: 'an IPv6-only server cannot bind an IPv4 address', path: ['v6only'] });

/** A packet capture on an interface, from before the probes until after them. */
const captureSchema = z.strictObject({
  name: name.optional(),
  ns: nsName.default(HOST_NS),
  dev: devName,
  /** bytes kept per packet */
  snaplen: z.number().int().min(64).max(65535).default(256),
  /** stop after this many packets */
  count: z.number().int().min(1).max(10_000).default(200),
});

const probeBase = {
  name,
  ns: nsName.default(HOST_NS),
  /** probe deadline inside the guest */
  timeoutMs: z.number().int().min(100).max(300_000).default(5000),
  /** stop the probe as soon as the kernel logs the signature's signal (a martian or log signal), not waiting out timeouts */
  stopOnSignal: z.boolean().default(false),
  /** a control probe must pass on every kernel; if it fails the scenario itself is broken */
  control: z.boolean().default(false),
};

const probeSchema = z.union([
  z.strictObject({ ...probeBase, ping: address, count: z.number().int().min(1).max(10).default(1) }),
  z.strictObject({
    ...probeBase,
    tcp: z.strictObject({
      host: address,
      port: z.number().int().min(1).max(65535),
      /** the probe passes when the server's reply contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -'),
      /** connect from this local port (the probe is then socat's, with sourceport= and reuseaddr) */
      sport: port.optional(),
    }),
  }),
  z.strictObject({
    ...probeBase,
    udp: z.strictObject({
      host: address,
      port: z.number().int().min(1).max(65535),
      /** the probe sends one datagram and passes when the reply contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -'),
      /** send from this source port (socat sourceport=) */
      sport: port.optional(),
    }),
  }),
  z.strictObject({
    ...probeBase,
    exec: z.strictObject({
      argv,
      /** the directory it runs in (default: the agent's, /) */
      cwd: cwd.optional(),
      /** the probe passes when the command exits with this code... */
      expectRc: z.number().int().min(0).max(255).default(0),
      /** ...and its output contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -').optional(),
      /** ...and its output does not contain this */
      absent: textToken.optional(),
      /** read the output's kselftest "TEST: <what> [ OK ]" / "[FAIL]" / "[SKIP]" lines as results <probe>/<what> */
      results: z.literal('kselftest').optional(),
    }),
  }),
]);

export const caseSchema = z
  .strictObject({
    name,
    description: z.string().min(1).max(4000),
    references: z.array(z.string().max(500)).max(50).default([]),
    /** kconfig options the case needs: merged into kernels built from source, checked in prebuilt ones */
    kconfig: z.array(z.string().regex(KCONFIG_RE, 'must be a kconfig symbol like CONFIG_VETH')).max(200).default([]),
    /** Debian packages the guest needs (with their libraries), e.g. [bash, iputils-ping] */
    packages: z.array(z.string().regex(PACKAGE_RE, 'must be a Debian package name like iputils-ping')).max(32).default([]),
    /** files from the source tree of the kernel under test, put in the guest at /src/<path> */
    sourceFiles: z.array(sourceFileSchema).max(32).default([]),
    /** network namespaces created besides `host` */
    namespaces: z.array(nsName).max(32).default([]),
    links: z.array(linkSchema).max(128).default([]),
    interfaces: z.array(interfaceSchema).max(128).default([]),
    routes: z.array(routeSchema).max(256).default([]),
    nexthops: z.array(nexthopSchema).max(256).default([]),
    rules: z.array(ruleSchema).max(256).default([]),
    neighbours: z.array(neighbourSchema).max(256).default([]),
    bridgeVlans: z.array(bridgeVlanSchema).max(256).default([]),
    bridgeFdb: z.array(bridgeFdbSchema).max(256).default([]),
    sysctls: z.array(sysctlSchema).max(256).default([]),
    qdiscs: z.array(qdiscSchema).max(128).default([]),
    filters: z.array(filterSchema).max(256).default([]),
    nftables: z.array(nftablesSchema).max(32).default([]),
    steps: z.array(stepSchema).max(64).default([]),
    servers: z.array(serverSchema).max(32).default([]),
    captures: z.array(captureSchema).max(16).default([]),
    probes: z.array(probeSchema).min(1).max(64),
    /** tracepoints to enable during the probes, as evidence: a group (fib, fib6, skb, net) or group:event */
    tracepoints: z.array(z.string().regex(TRACEPOINT_RE, 'must be a tracepoint group like fib, or group:event like skb:kfree_skb')).max(32).default([]),
    /** counters (from /proc/net/netstat, snmp and snmp6) shown in the report, even at zero */
    counters: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)?$/)).max(64).default([]),
    /** the kernel's own evidence the case reads: its signature, and other evidence */
    signals: z.array(signalSchema).max(32).default([]),
    /** what "the behaviour is present" means */
    signature: z.strictObject({
      /** this probe (or kselftest result <probe>/<what>) behaves this way when it is present; without
       *  it the signature is the kernel's evidence alone: its `signals` fire, its `absent` ones do not */
      probe: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?:\/[A-Za-z0-9_.-]{1,128})?$/, 'must be a probe name, or <probe>/<result> for a kselftest result').optional(),
      /** only with `probe` (default: fail) */
      when: z.enum(['fail', 'pass']).optional(),
      /** and the kernel shows every one of these signals (names from `signals`) */
      signals: z.array(name).max(16).default([]),
      /** and none of these (names from `signals`): the bug is an action the kernel fails to take, which the fixed kernel takes */
      absent: z.array(name).max(16).default([]),
      /** results that must pass on every kernel, besides the probes marked control (e.g. kselftest results <probe>/<what>) */
      controls: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?:\/[A-Za-z0-9_.-]{1,128})?$/)).max(16).default([]),
    })
      .superRefine((s, ctx) => {
        if (s.probe === undefined && s.when !== undefined)
          ctx.addIssue({ code: 'custom', path: ['when'], message: 'says how the signature probe ends: the signature has no probe' });
      })
      // with a probe, `when` is fail unless said (without one it means nothing, and stays out)
      .transform((s) => (s.probe !== undefined && s.when === undefined ? { ...s, when: 'fail' as const } : s)),
    /** hard deadline for the whole guest (boot + case), TCG; scaled down under KVM */
    deadlineMs: z.number().int().min(1000).max(1_800_000).default(60_000),
    /** how repeated runs (verify/bisect/repro --repeat) are made: each restores the case, set up once
     *  (a case snapshot), then independent: the guest's CRNG reseeded, its clock set, a random delay
     *  of up to jitterMs before the probes; replay: the snapshot's own state, bit for bit */
    repeats: z
      .strictObject({
        mode: z.enum(['independent', 'replay']).default('independent'),
        jitterMs: z.number().int().min(0).max(10_000).default(5),
        /** false: every repeat sets the case up again (it still gets its own seed, clock and jitter) */
        snapshot: z.boolean().default(true),
      })
      .default({ mode: 'independent', jitterMs: 5, snapshot: true }),
  })
  .superRefine((c, ctx) => {
    const namespaces = new Set([HOST_NS, ...c.namespaces]);
    const checkNs = (ns: string, path: (string | number)[]): void => {
      if (!namespaces.has(ns))
        ctx.addIssue({ code: 'custom', path, message: `namespace "${ns}" is not declared in namespaces` });
    };
    if (c.namespaces.includes(HOST_NS))
      ctx.addIssue({ code: 'custom', path: ['namespaces'], message: `"${HOST_NS}" is implicit; do not declare it` });
    c.links.forEach((l, i) => {
      checkNs(l.ns, ['links', i, 'ns']);
      if (l.type === 'veth') checkNs(l.peer.ns, ['links', i, 'peer', 'ns']);
    });
    for (const key of ['interfaces', 'routes', 'sysctls', 'qdiscs', 'filters', 'nftables', 'steps', 'servers', 'captures', 'probes'] as const)
      c[key].forEach((item, i) => checkNs(item.ns, [key, i, 'ns']));
    c.signals.forEach((s, i) => {
      if ('ns' in s && typeof s.ns === 'string') checkNs(s.ns, ['signals', i, 'ns']);
    });
    const unique = (key: string, names: string[]): void => {
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) ctx.addIssue({ code: 'custom', path: [key], message: `name "${dup}" is used twice` });
    };
    const probeNames = c.probes.map((p) => p.name);
    unique('probes', probeNames);
    unique('signals', c.signals.map((s) => s.name));
    unique('steps', c.steps.map((s) => s.name));
    unique('servers', c.servers.map((s) => s.name));
    c.sourceFiles.forEach((f, i) => {
      if (c.sourceFiles.findIndex((g) => g.path === f.path) !== i) ctx.addIssue({ code: 'custom', path: ['sourceFiles', i], message: `${f.path} is listed twice` });
    });
    c.nftables.forEach((n, i) => {
      if (c.nftables.findIndex((m) => m.ns === n.ns) !== i) ctx.addIssue({ code: 'custom', path: ['nftables', i, 'ns'], message: `namespace "${n.ns}" has a ruleset already: one ruleset per namespace` });
    });
    // a probe name, or <exec probe with kselftest results>/<result>
    const refersToProbe = (ref: string): boolean => {
      const [probe, sub] = ref.split('/');
      const p = c.probes.find((x) => x.name === probe);
      return !!p && (sub === undefined || ('exec' in p && p.exec.results === 'kselftest'));
    };
    if (c.signature.probe === undefined) {
      if (c.signature.signals.length === 0)
        ctx.addIssue({ code: 'custom', path: ['signature'], message: 'needs a probe, or signals: a signature without a probe is the kernel evidence its signals name' });
    } else if (!refersToProbe(c.signature.probe))
      ctx.addIssue({
        code: 'custom',
        path: ['signature', 'probe'],
        message: `no probe named "${c.signature.probe}" (probes: ${probeNames.join(', ')}; a kselftest result is <exec probe with results: kselftest>/<result>)`,
      });
    c.signature.controls.forEach((ref, i) => {
      if (!refersToProbe(ref)) ctx.addIssue({ code: 'custom', path: ['signature', 'controls', i], message: `no probe or kselftest result "${ref}"` });
    });
    const signalNames = c.signals.map((s) => s.name);
    c.signature.signals.forEach((s, i) => {
      if (!signalNames.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'signals', i], message: `no signal named "${s}" (signals: ${signalNames.join(', ') || 'none declared'})` });
    });
    c.signature.absent.forEach((s, i) => {
      if (!signalNames.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'absent', i], message: `no signal named "${s}" (signals: ${signalNames.join(', ') || 'none declared'})` });
      else if (c.signature.signals.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'absent', i], message: `signal "${s}" is in signature.signals too: it cannot both fire and be absent` });
    });
    c.probes.forEach((p, i) => {
      if (p.stopOnSignal && !c.signals.some((s) => c.signature.signals.includes(s.name) && (s.kind === 'martian' || s.kind === 'log' || s.kind === 'splat')))
        ctx.addIssue({ code: 'custom', path: ['probes', i, 'stopOnSignal'], message: 'needs a martian, log or splat signal in the signature: the agent watches the kernel log for it' });
    });
    checkTopology(c, ctx, checkNs);
  });

export type CaseInput = z.input<typeof caseSchema>;
export type CaseDef = z.output<typeof caseSchema>;
export type Probe = CaseDef['probes'][number];
export type Filter = CaseDef['filters'][number];
export type Sysctl = CaseDef['sysctls'][number];
export type Server = CaseDef['servers'][number];
export type Step = CaseDef['steps'][number];
export type Capture = CaseDef['captures'][number];
export type SourceFile = CaseDef['sourceFiles'][number];

/** The kconfig options the case's topology elements need, each with the element that needs it (its
 *  path in the case, for the error when the case's `kconfig` lacks it). Only the topology elements
 *  added by issue 21 (the older veth/dummy links, routes and tables are the case's own to list). */
export function topologyKconfig(c: Topology): Array<{ option: string; path: (string | number)[]; what: string }> {
  const out: Array<{ option: string; path: (string | number)[]; what: string }> = [];
  const LINK: Record<string, string> = {
    vrf: 'CONFIG_NET_VRF',
    bridge: 'CONFIG_BRIDGE',
    vlan: 'CONFIG_VLAN_8021Q',
    vxlan: 'CONFIG_VXLAN',
    gre: 'CONFIG_NET_IPGRE',
    gretap: 'CONFIG_NET_IPGRE',
    ipip: 'CONFIG_NET_IPIP',
    ip6gre: 'CONFIG_IPV6_GRE',
    ip6gretap: 'CONFIG_IPV6_GRE',
    ip6tnl: 'CONFIG_IPV6_TUNNEL',
    sit: 'CONFIG_IPV6_SIT',
    macvlan: 'CONFIG_MACVLAN',
    bond: 'CONFIG_BONDING',
  };
  c.links.forEach((l, i) => {
    const o = LINK[l.type];
    if (o) out.push({ option: o, path: ['links', i, 'type'], what: `a ${l.type} link` });
    if (l.type === 'bridge' && l.vlanFiltering) out.push({ option: 'CONFIG_BRIDGE_VLAN_FILTERING', path: ['links', i, 'vlanFiltering'], what: 'a VLAN-filtering bridge' });
  });
  c.bridgeVlans.forEach((_, i) => out.push({ option: 'CONFIG_BRIDGE_VLAN_FILTERING', path: ['bridgeVlans', i], what: 'a bridge VLAN' }));
  c.bridgeFdb.forEach((f, i) => {
    if (f.vlan !== undefined) out.push({ option: 'CONFIG_BRIDGE_VLAN_FILTERING', path: ['bridgeFdb', i, 'vlan'], what: 'a bridge FDB entry with a VLAN' });
  });
  c.rules.forEach((r, i) => {
    out.push(ruleFamily(r) === 6 ? { option: 'CONFIG_IPV6_MULTIPLE_TABLES', path: ['rules', i], what: 'an IPv6 rule' } : { option: 'CONFIG_IP_MULTIPLE_TABLES', path: ['rules', i], what: 'an IPv4 rule' });
    if (r.l3mdev) out.push({ option: 'CONFIG_NET_L3_MASTER_DEV', path: ['rules', i, 'l3mdev'], what: 'an l3mdev rule' });
  });
  // the first element needing an option is the one named
  return out.filter((x, i) => out.findIndex((y) => y.option === x.option) === i);
}
