// The topology part of the case language (issue 21): vrf, bridge, vlan, vxlan, tunnel, macvlan and
// bond links in any namespace, masters, addresses with a broadcast, bridge VLANs, route types and
// fields, nexthops, rules, neighbours. Parsing with each cross-reference checked at the field at
// fault, rendering to the iproute2/bridge lines a person would type, in an order that works, and
// the built-in cases rendering exactly as before.
import { describe, expect, it } from 'vitest';
import { parseCase, refusedAt } from './case-helpers.ts';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { caseNeeds } from '../../harness/cases/needs.ts';
import { builtinCases, loadCase } from '../../harness/cases/load.ts';
import { linkOrder, renderCase } from '../../harness/cases/render.ts';
import { caseSchema, type CaseDef } from '../../harness/cases/schema.ts';
import { repoRoot } from '../../harness/util/paths.ts';

const parse = parseCase;
const bad = refusedAt;

const KCONFIG = `kconfig: [CONFIG_NET_VRF, CONFIG_BRIDGE, CONFIG_BRIDGE_VLAN_FILTERING, CONFIG_VLAN_8021Q, CONFIG_VXLAN, CONFIG_NET_IPGRE, CONFIG_NET_IPIP, CONFIG_IPV6_GRE, CONFIG_IPV6_TUNNEL, CONFIG_IPV6_SIT, CONFIG_MACVLAN, CONFIG_BONDING, CONFIG_IP_MULTIPLE_TABLES, CONFIG_IPV6_MULTIPLE_TABLES, CONFIG_NET_L3_MASTER_DEV]`;

const BASE = `
name: t
description: test
${KCONFIG}
namespaces: [ns2]
probes:
  - { name: p, ping: 127.0.0.1 }
signature: { probe: p }
`;

/** Every topology element, in the initial namespace and ns2. */
const FULL = `
name: topo
description: every topology element
${KCONFIG}
namespaces: [ns2]
links:
  - { type: veth, name: veth1, peer: { name: veth2, ns: ns2 } }
  - { type: veth, name: p1, peer: { name: p2 } }
  - { type: dummy, name: d0, ns: ns2 }
  - { type: macvlan, name: mv0, link: veth1.10, mode: bridge }
  - { type: vlan, name: veth1.10, link: veth1, id: 10 }
  - { type: vrf, name: red, table: 10 }
  - { type: bridge, name: br0, vlanFiltering: true }
  - { type: bond, name: bond0, mode: active-backup, ns: ns2 }
  - { type: vxlan, name: vx0, id: 42, local: 192.0.2.1, remote: 192.0.2.2, dstport: 4789, dev: veth1, learning: false }
  - { type: gre, name: gre1, local: 192.0.2.1, remote: 192.0.2.2, ttl: 64, key: 7 }
  - { type: ip6tnl, name: t6, local: "2001:db8::1", remote: "2001:db8::2", dev: veth2, ns: ns2 }
interfaces:
  - { dev: veth1, master: red, addresses: [192.0.2.1/24, { address: 198.51.100.1/24, broadcast: 198.51.100.255 }] }
  - { dev: p1, master: br0 }
  - { dev: br0 }
  - { dev: red }
  - { ns: ns2, dev: d0, master: bond0 }
bridgeVlans:
  - { dev: p1, vid: 10, pvid: true, untagged: true }
  - { dev: br0, vid: 10, self: true }
nexthops:
  - { id: 10, group: [{ id: 1 }, { id: 2, weight: 3 }] }
  - { id: 1, via: 192.0.2.2, dev: veth1 }
  - { id: 2, blackhole: true }
  - { id: 4, blackhole: true, family: 6 }
routes:
  - { dst: 203.0.113.0/24, via: 192.0.2.2, table: 10, metric: 20, src: 192.0.2.1 }
  - { dst: 203.0.114.0/24, type: unreachable }
  - { dst: 203.0.115.0/24, dev: veth1, vrf: red }
  - { dst: 203.0.116.0/24, table: 0, dev: veth1 }
  - { dst: 203.0.117.0/24, nhid: 10 }
  - { dst: "2001:db8:9::/64", nhid: 4 }
rules:
  - { pref: 100, from: 192.0.2.0/24, to: 203.0.113.0/24, iif: veth1, oif: d0, fwmark: "0x1/0xff", ipproto: udp, sport: 1000, dport: "2000-2010", table: 10 }
  - { family: 6, pref: 200, l3mdev: true }
  - { ns: ns2, pref: 300, action: unreachable }
neighbours:
  - { dev: veth1, address: 192.0.2.2, lladdr: "52:54:00:00:00:02", state: permanent }
  - { ns: ns2, dev: veth2, address: "2001:db8::9", lladdr: "52:54:00:00:00:09", state: stale }
probes:
  - { name: p, ping: 127.0.0.1 }
signature: { probe: p }
`;

describe('topology: rendering', () => {
  const c = parse(FULL);
  const r = renderCase(c);
  // with nexthops, each namespace's routing (nexthops, routes, rules, neighbours) is a batch of its own, run after every namespace's interfaces
  const host = [...r.files['/case/addr-host.ip']!.split('\n'), ...r.files['/case/routing-host.ip']!.split('\n')];
  const ns2 = [...r.files['/case/addr-ns2.ip']!.split('\n'), ...r.files['/case/routing-ns2.ip']!.split('\n')];
  const steps = r.files['/case/steps.sh']!;
  const setupHost = r.files['/case/setup-host.sh']!;
  const at = (lines: string[], l: string): number => {
    const i = lines.indexOf(l);
    expect(i, `no line "${l}" in\n${lines.join('\n')}`).toBeGreaterThanOrEqual(0);
    return i;
  };

  it('each element is the ip line a person would type', () => {
    for (const l of [
      'link add red type vrf table 10',
      'link add br0 type bridge vlan_filtering 1',
      'link add link veth1 name veth1.10 type vlan id 10',
      'link add link veth1.10 name mv0 type macvlan mode bridge',
      'link add vx0 type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dstport 4789 dev veth1 nolearning',
      'link add gre1 type gre local 192.0.2.1 remote 192.0.2.2 ttl 64 key 7',
      'link set dev veth1 master red',
      'address add 192.0.2.1/24 dev veth1',
      'address add 198.51.100.1/24 broadcast 198.51.100.255 dev veth1',
      'nexthop add id 1 via 192.0.2.2 dev veth1',
      'nexthop add id 2 blackhole',
      'nexthop add id 10 group 1/2,3',
      'route add 203.0.113.0/24 via 192.0.2.2 table 10 metric 20 src 192.0.2.1',
      'route add unreachable 203.0.114.0/24',
      'route add vrf red 203.0.115.0/24 dev veth1',
      'route add 203.0.116.0/24 dev veth1 table 0',
      'route add 203.0.117.0/24 nhid 10',
      'rule add pref 100 from 192.0.2.0/24 to 203.0.113.0/24 iif veth1 oif d0 fwmark 0x1/0xff ipproto udp sport 1000 dport 2000-2010 table 10',
      'neigh add 192.0.2.2 lladdr 52:54:00:00:00:02 dev veth1 nud permanent',
    ])
      at(host, l);
    for (const l of ['link add bond0 type bond mode active-backup', 'link add t6 type ip6tnl local 2001:db8::1 remote 2001:db8::2 dev veth2', 'link set dev d0 master bond0', 'rule add pref 300 unreachable', 'neigh add 2001:db8::9 lladdr 52:54:00:00:00:09 dev veth2 nud stale'])
      at(ns2, l);
    // a dummy in another namespace is still made by the initial namespace's batch, into it; every
    // other link once, in its own namespace's batch
    at(host, 'link add d0 netns ns2 type dummy');
    const made = [...host, ...ns2].filter((l) => l.startsWith('link add'));
    expect(made).toHaveLength(c.links.length);
    expect(made.filter((l) => l.includes(' type dummy'))).toEqual(['link add d0 netns ns2 type dummy']);
    expect(r.files['/case/bridge-host.bridge']).toBe('vlan add dev p1 vid 10 pvid untagged\nvlan add dev br0 vid 10 self\n');
    expect(r.files['/case/rules6-host.ip']).toBe('rule add pref 200 l3mdev\n');
    // an IPv6 blackhole: ip -6, before the routing batch that uses it
    expect(r.files['/case/nexthops6-host.ip']).toBe('nexthop add id 4 blackhole\n');
    expect(host).not.toContain('nexthop add id 4 blackhole');
    at(host, 'route add 2001:db8:9::/64 nhid 4');
    expect(steps.indexOf('kr_run nexthops6:host /usr/lib/kr/ip -6 -batch /case/nexthops6-host.ip')).toBeGreaterThan(steps.indexOf('/case/setup-ns2.sh'));
    expect(steps.indexOf('kr_run nexthops6:host')).toBeLessThan(steps.indexOf('/case/routing-host.ip'));
  });

  it('in an order that works: lower links first, masters before addresses and up, nexthops (groups last) before routes, then rules and neighbours', () => {
    expect(at(host, 'link add link veth1 name veth1.10 type vlan id 10')).toBeLessThan(at(host, 'link add link veth1.10 name mv0 type macvlan mode bridge'));
    expect(at(host, 'link add link veth1 name veth1.10 type vlan id 10')).toBeGreaterThan(at(host, 'link add veth1 type veth peer name veth2 netns ns2'));
    expect(at(host, 'link add red type vrf table 10')).toBeLessThan(at(host, 'link set dev veth1 master red'));
    expect(at(host, 'link set dev veth1 master red')).toBeLessThan(at(host, 'address add 192.0.2.1/24 dev veth1'));
    expect(at(host, 'address add 198.51.100.1/24 broadcast 198.51.100.255 dev veth1')).toBeLessThan(at(host, 'link set dev veth1 up'));
    expect(at(host, 'link set dev br0 up')).toBeLessThan(at(host, 'nexthop add id 1 via 192.0.2.2 dev veth1'));
    expect(at(host, 'nexthop add id 2 blackhole')).toBeLessThan(at(host, 'nexthop add id 10 group 1/2,3'));
    expect(at(host, 'nexthop add id 10 group 1/2,3')).toBeLessThan(at(host, 'route add 203.0.113.0/24 via 192.0.2.2 table 10 metric 20 src 192.0.2.1'));
    expect(at(host, 'route add 203.0.117.0/24 nhid 10')).toBeLessThan(at(host, 'rule add pref 100 from 192.0.2.0/24 to 203.0.113.0/24 iif veth1 oif d0 fwmark 0x1/0xff ipproto udp sport 1000 dport 2000-2010 table 10'));
    expect(host.findIndex((l) => l.startsWith('rule add'))).toBeLessThan(host.findIndex((l) => l.startsWith('neigh add')));
    // the batches: ip, then ip -6 for IPv6 rules, then bridge for VLANs (after the ports are enslaved)
    const ip = setupHost.indexOf('/usr/lib/kr/ip -batch /case/addr-host.ip');
    const ip6 = setupHost.indexOf('kr_run rules6:host /usr/lib/kr/ip -6 -batch /case/rules6-host.ip');
    const br = setupHost.indexOf('kr_run bridge-vlans:host bridge -batch /case/bridge-host.bridge');
    expect(ip).toBeGreaterThanOrEqual(0);
    expect(ip6).toBeGreaterThan(ip);
    expect(br).toBeGreaterThan(ip6);
  });

  it('a setup step is labelled with what its batch makes', () => {
    expect(setupHost).toContain('kr_run links+interfaces:host /usr/lib/kr/ip -batch /case/addr-host.ip');
    expect(steps).toContain('kr_run nexthops+routes+rules+neighbours:host /usr/lib/kr/ip -batch /case/routing-host.ip');
    expect(steps).toContain('kr_run rules+neighbours:ns2 kr_in ns2 /usr/lib/kr/ip -batch /case/routing-ns2.ip');
    const plain = renderCase(parse(`${BASE}links:\n  - { type: vrf, name: red, table: 1, ns: ns2 }\nroutes:\n  - { ns: ns2, dst: 192.0.2.0/24, dev: lo }\nrules:\n  - { ns: ns2, table: 1 }`)).files;
    expect(plain['/case/setup-ns2.sh']).toContain('kr_run links+interfaces+routes+rules:ns2 /usr/lib/kr/ip -batch /case/addr-ns2.ip');
  });

  it("with nexthops, routing waits for every namespace's interfaces (a nexthop needs its device's carrier: a veth's peer may be in a later namespace); without, it stays in the interfaces' batch", () => {
    const last = Math.max(...['host', 'ns2'].map((ns) => steps.indexOf(`/case/setup-${ns}.sh`)));
    expect(steps.indexOf('/case/routing-host.ip')).toBeGreaterThan(last);
    expect(steps.indexOf('/case/routing-ns2.ip')).toBeGreaterThan(last);
    expect(steps.indexOf('/case/routing-host.ip')).toBeLessThan(steps.indexOf('kr_probe'));
    expect(r.files['/case/addr-host.ip']).not.toContain('route add');
    const plain = renderCase(parse(`${BASE}routes:\n  - { ns: ns2, dst: 192.0.2.0/24, dev: lo }\nneighbours:\n  - { ns: ns2, dev: lo, address: 192.0.2.9, lladdr: "52:54:00:00:00:09" }`)).files;
    expect(plain['/case/addr-ns2.ip']).toContain('route add 192.0.2.0/24 dev lo\nneigh add 192.0.2.9 lladdr 52:54:00:00:00:09 dev lo nud permanent\n');
    expect(Object.keys(plain).filter((f) => f.includes('routing'))).toEqual([]);
  });

  it('bridge VLANs bring iproute2 (bridge) into the guest; IPv6 rules and neighbours count as IPv6', () => {
    expect(caseNeeds(c).packages).toContain('iproute2');
    expect(caseNeeds(parse(BASE)).packages).not.toContain('iproute2');
    expect(caseNeeds(parse(`${BASE}rules:\n  - { family: 6, l3mdev: true }`)).snmp6).toBe(true);
    expect(caseNeeds(parse(`${BASE}rules:\n  - { l3mdev: true }`)).snmp6).toBe(false);
  });

  it('links on top of links are made after them, whatever the declaration order', () => {
    const l = parse(`${BASE}links:\n  - { type: macvlan, name: c, link: b }\n  - { type: vlan, name: b, link: a, id: 2 }\n  - { type: vlan, name: x, link: a, id: 3 }\n  - { type: bridge, name: a }`).links;
    expect(linkOrder(l).map((x) => x.name)).toEqual(['a', 'b', 'c', 'x']);
  });
});

describe('topology: hostile and malformed input, each field named', () => {
  const cases: Array<[string, string, string, RegExp?]> = [
    ['a link name with a shell character', `${BASE}links:\n  - { type: vrf, name: "r;reboot", table: 1 }`, 'links[0].name'],
    ['a vlan id out of range', `${BASE}links:\n  - { type: dummy, name: a }\n  - { type: vlan, name: v, link: a, id: 4095 }`, 'links[1].id'],
    ['a vlan on an undeclared link', `${BASE}links:\n  - { type: vlan, name: v, link: eth9, id: 1 }`, 'links[0].link', /no link "eth9"/],
    ['a vlan on a link of another namespace', `${BASE}links:\n  - { type: dummy, name: a, ns: ns2 }\n  - { type: vlan, name: v, link: a, id: 1 }`, 'links[1].link'],
    ['links on top of each other', `${BASE}links:\n  - { type: vlan, name: a, link: b, id: 1 }\n  - { type: vlan, name: b, link: a, id: 1 }`, 'links[0].link', /itself/],
    ['two links with one name in a namespace', `${BASE}links:\n  - { type: dummy, name: a }\n  - { type: bridge, name: a }`, 'links[1].name', /twice/],
    ['a vxlan with remote and group', `${BASE}links:\n  - { type: vxlan, name: v, id: 1, remote: 192.0.2.2, group: 239.1.1.1 }`, 'links[0].group'],
    ['a vxlan group that is not multicast', `${BASE}links:\n  - { type: vxlan, name: v, id: 1, group: 192.0.2.1 }`, 'links[0].group', /multicast/],
    ['a vxlan of mixed families', `${BASE}links:\n  - { type: vxlan, name: v, id: 1, local: 192.0.2.1, remote: "2001:db8::1" }`, 'links[0].remote'],
    ['a vxlan id over 24 bits', `${BASE}links:\n  - { type: vxlan, name: v, id: 16777216 }`, 'links[0].id'],
    ['an ipip tunnel with IPv6 endpoints', `${BASE}links:\n  - { type: ipip, name: t, remote: "2001:db8::1" }`, 'links[0].remote', /IPv4/],
    ['an ip6gre tunnel with IPv4 endpoints', `${BASE}links:\n  - { type: ip6gre, name: t, local: 192.0.2.1 }`, 'links[0].local', /IPv6/],
    ['a key on a sit tunnel', `${BASE}links:\n  - { type: sit, name: t, key: 1 }`, 'links[0].key'],
    ['a macvlan mode that does not exist', `${BASE}links:\n  - { type: dummy, name: a }\n  - { type: macvlan, name: m, link: a, mode: "bridge;x" }`, 'links[1].mode'],
    ['a bond mode that does not exist', `${BASE}links:\n  - { type: bond, name: b, mode: roundabout }`, 'links[0].mode'],
    ['a vrf without the kconfig option', `name: t\ndescription: d\nlinks:\n  - { type: vrf, name: r, table: 1 }\nprobes:\n  - { name: p, ping: 127.0.0.1 }\nsignature: { probe: p }`, 'links[0].type', /CONFIG_NET_VRF/],
    ['an IPv6 rule without the kconfig option', `name: t\ndescription: d\nkconfig: [CONFIG_IP_MULTIPLE_TABLES]\nrules:\n  - { family: 6, table: 5 }\nprobes:\n  - { name: p, ping: 127.0.0.1 }\nsignature: { probe: p }`, 'rules[0]', /CONFIG_IPV6_MULTIPLE_TABLES/],
    ['a master that does not exist', `${BASE}interfaces:\n  - { dev: lo, master: br9 }`, 'interfaces[0].master', /no vrf, bridge or bond/],
    ['a master that is not a vrf, bridge or bond', `${BASE}links:\n  - { type: dummy, name: a }\n  - { type: dummy, name: b }\ninterfaces:\n  - { dev: a, master: b }`, 'interfaces[0].master'],
    ['a master in another namespace', `${BASE}links:\n  - { type: dummy, name: a }\n  - { type: bridge, name: br, ns: ns2 }\ninterfaces:\n  - { dev: a, master: br }`, 'interfaces[0].master'],
    ['an IPv6 broadcast', `${BASE}interfaces:\n  - { dev: lo, addresses: [{ address: "2001:db8::1/64", broadcast: "2001:db8::ff" }] }`, 'interfaces[0].addresses[0].broadcast'],
    ['an address object with a shell character', `${BASE}interfaces:\n  - { dev: lo, addresses: [{ address: "1.2.3.4/8;x" }] }`, 'interfaces[0].addresses[0].address'],
    ['a veth peer named like a link of its namespace', `${BASE}links:\n  - { type: dummy, name: a, ns: ns2 }\n  - { type: veth, name: b, peer: { name: a, ns: ns2 } }`, 'links[1].peer.name', /twice/],
    ['a bridge VLAN on a port of no bridge', `${BASE}links:\n  - { type: dummy, name: a }\nbridgeVlans:\n  - { dev: a, vid: 1 }`, 'bridgeVlans[0].dev', /not a bridge port/],
    ['a bridge VLAN on the bridge without self', `${BASE}links:\n  - { type: bridge, name: br }\nbridgeVlans:\n  - { dev: br, vid: 1 }`, 'bridgeVlans[0].dev', /self: true/],
    ['a bridge VLAN id 0', `${BASE}links:\n  - { type: bridge, name: br }\nbridgeVlans:\n  - { dev: br, vid: 0, self: true }`, 'bridgeVlans[0].vid'],
    ['a bridge VLAN in an undeclared namespace', `${BASE}bridgeVlans:\n  - { ns: ghost, dev: br, vid: 1, self: true }`, 'bridgeVlans[0].ns'],
    ['a route in a vrf that does not exist', `${BASE}routes:\n  - { dst: 192.0.2.0/24, dev: lo, vrf: blue }`, 'routes[0].vrf', /no vrf link "blue"/],
    ['a route in a vrf of another namespace', `${BASE}links:\n  - { type: vrf, name: red, table: 1, ns: ns2 }\nroutes:\n  - { dst: 192.0.2.0/24, dev: lo, vrf: red }`, 'routes[0].vrf'],
    ['a route with vrf and table', `${BASE}links:\n  - { type: vrf, name: red, table: 1 }\nroutes:\n  - { dst: 192.0.2.0/24, dev: lo, vrf: red, table: 2 }`, 'routes[0].table'],
    ['a route with an nhid that no nexthop has', `${BASE}routes:\n  - { dst: 192.0.2.0/24, nhid: 5 }`, 'routes[0].nhid', /no nexthop id 5/],
    ['a route with an nhid of another namespace', `${BASE}nexthops:\n  - { ns: ns2, id: 5, blackhole: true }\nroutes:\n  - { dst: 192.0.2.0/24, nhid: 5 }`, 'routes[0].nhid'],
    ['a route with nhid and via', `${BASE}nexthops:\n  - { id: 5, blackhole: true }\nroutes:\n  - { dst: 192.0.2.0/24, nhid: 5, via: 192.0.2.1 }`, 'routes[0].nhid'],
    ['an unreachable route with a device', `${BASE}routes:\n  - { dst: 192.0.2.0/24, type: unreachable, dev: lo }`, 'routes[0].type'],
    ['a route type that does not exist', `${BASE}routes:\n  - { dst: 192.0.2.0/24, type: nat }`, 'routes[0].type'],
    ['a route source of the other family', `${BASE}routes:\n  - { dst: 192.0.2.0/24, dev: lo, src: "2001:db8::1" }`, 'routes[0].src'],
    ['a negative table', `${BASE}routes:\n  - { dst: 192.0.2.0/24, dev: lo, table: -1 }`, 'routes[0].table'],
    ['two nexthops with one id', `${BASE}nexthops:\n  - { id: 1, blackhole: true }\n  - { id: 1, dev: lo }`, 'nexthops[1].id'],
    ['a nexthop that is a blackhole and a gateway', `${BASE}nexthops:\n  - { id: 1, blackhole: true, via: 192.0.2.1 }`, 'nexthops[0]', /exactly one/],
    ['an IPv6 route with an IPv4 blackhole nexthop', `${BASE}nexthops:\n  - { id: 1, blackhole: true }\nroutes:\n  - { dst: "2001:db8::/64", nhid: 1 }`, 'routes[0].nhid', /family: 6/],
    ['an IPv6 route with a group holding an IPv4 nexthop', `${BASE}nexthops:\n  - { id: 1, via: "2001:db8::1" }\n  - { id: 2, via: 192.0.2.1 }\n  - { id: 3, group: [{ id: 1 }, { id: 2 }] }\nroutes:\n  - { dst: "2001:db8::/64", nhid: 3 }`, 'routes[0].nhid', /IPv4 nexthop 2/],
    ['a family on a group', `${BASE}nexthops:\n  - { id: 1, via: "2001:db8::1" }\n  - { id: 3, family: 6, group: [{ id: 1 }] }`, 'nexthops[1].family'],
    ['a family that is not the gateway\'s', `${BASE}nexthops:\n  - { id: 1, via: 192.0.2.1, family: 6 }`, 'nexthops[0].family'],
    ['a nexthop that is nothing', `${BASE}nexthops:\n  - { id: 1 }`, 'nexthops[0]'],
    ['a group of a nexthop that does not exist', `${BASE}nexthops:\n  - { id: 1, group: [{ id: 2 }] }`, 'nexthops[0].group[0].id'],
    ['a group of a group', `${BASE}nexthops:\n  - { id: 1, blackhole: true }\n  - { id: 2, group: [{ id: 1 }] }\n  - { id: 3, group: [{ id: 2 }] }`, 'nexthops[2].group[0].id', /group itself/],
    ['a group weight over 256', `${BASE}nexthops:\n  - { id: 1, blackhole: true }\n  - { id: 2, group: [{ id: 1, weight: 257 }] }`, 'nexthops[1].group[0].weight'],
    ['a rule table by an unknown name', `${BASE}rules:\n  - { table: "default;x" }`, 'rules[0].table'],
    ['a rule table 0', `${BASE}rules:\n  - { table: 0 }`, 'rules[0].table'],
    ['a rule with table and l3mdev', `${BASE}rules:\n  - { table: 5, l3mdev: true }`, 'rules[0].l3mdev', /one of/],
    ['a rule with l3mdev and action', `${BASE}rules:\n  - { l3mdev: true, action: prohibit }`, 'rules[0].action'],
    ['a rule action that does not exist', `${BASE}rules:\n  - { action: nat }`, 'rules[0].action'],
    ['an IPv6 rule from an IPv4 prefix', `${BASE}rules:\n  - { family: 6, from: 192.0.2.0/24, table: 5 }`, 'rules[0].from', /IPv6/],
    ['a port range with a shell character', `${BASE}rules:\n  - { ipproto: udp, dport: "1-2;x", table: 5 }`, 'rules[0].dport'],
    ['a port range the wrong way round', `${BASE}rules:\n  - { ipproto: udp, sport: "20-10", table: 5 }`, 'rules[0].sport'],
    ['a port over 65535', `${BASE}rules:\n  - { ipproto: udp, sport: 65536, table: 5 }`, 'rules[0].sport'],
    ['an fwmark with a shell character', `${BASE}rules:\n  - { fwmark: "0x1/$(reboot)", table: 5 }`, 'rules[0].fwmark'],
    ['an ipproto by an unknown name', `${BASE}rules:\n  - { ipproto: "udp x", table: 5 }`, 'rules[0].ipproto'],
    ['a rule iif with a space', `${BASE}rules:\n  - { iif: "a b", table: 5 }`, 'rules[0].iif'],
    ['a rule in an undeclared namespace', `${BASE}rules:\n  - { ns: ghost, table: 5 }`, 'rules[0].ns'],
    ['a neighbour with an upper-case MAC', `${BASE}neighbours:\n  - { dev: lo, address: 192.0.2.2, lladdr: "52:54:00:AA:00:02" }`, 'neighbours[0].lladdr'],
    ['a neighbour state that does not exist', `${BASE}neighbours:\n  - { dev: lo, address: 192.0.2.2, state: "permanent;x" }`, 'neighbours[0].state'],
    ['a neighbour in an undeclared namespace', `${BASE}neighbours:\n  - { ns: ghost, dev: lo, address: 192.0.2.2 }`, 'neighbours[0].ns'],
  ];
  for (const [what, yaml, field, msg] of cases) it(what, () => bad(yaml, field, msg));

  it('the full example parses', () => {
    expect(() => parse(FULL)).not.toThrow();
  });
});

describe("docs/case-language.md's example", () => {
  it('its topology parses and renders (the other sections are tested with theirs)', () => {
    const md = fs.readFileSync(path.join(repoRoot, 'docs/case-language.md'), 'utf8');
    const block = md.split('The parts of a case')[1]!.split('```yaml\n')[1]!.split('```')[0]!;
    const doc = parseYaml(block) as Record<string, unknown>;
    const keys = ['kconfig', 'namespaces', 'links', 'interfaces', 'bridgeVlans', 'bridgeFdb', 'routes', 'nexthops', 'rules', 'neighbours'];
    const topo = Object.fromEntries(keys.map((k) => [k, doc[k]]));
    expect(topo.nexthops, 'the example has no nexthops any more').toBeTruthy();
    const c = caseSchema.parse({ name: 'doc', description: 'd', ...topo, probes: [{ name: 'p', ping: '127.0.0.1' }], signature: { probe: 'p' } });
    expect(renderCase(c).files['/case/routing-host.ip']).toContain('nexthop add id 10 group 1/2,3\n');
    expect(renderCase(c).files['/case/bridge-host.bridge']).toContain('fdb add 00:aa:bb:cc:dd:ee dev vx0 master static vlan 10\n');
  });
});

describe('the built-in cases set up exactly as before issue 21', () => {
  // rendered by main's renderer before the topology additions (test/fixtures/rendered/builtin-cases.json):
  // every file of the setup, and steps.sh up to its last setup line (what follows, the probes and
  // evidence, is other features' to change)
  const before = JSON.parse(fs.readFileSync(path.join(repoRoot, 'test/fixtures/rendered/builtin-cases.json'), 'utf8')) as Record<string, { plain: Record<string, string>; checkpoint: Record<string, string> }>;
  const setupOf = (files: Record<string, string>): Record<string, string> => {
    const steps = files['/case/steps.sh']!.split('\n');
    const last = steps.map((l, i) => (/\/case\/(?:setup|routing|nexthops6)-/.test(l) ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
    expect(last, 'steps.sh runs no setup script').toBeGreaterThan(0);
    return { ...files, '/case/steps.sh': steps.slice(0, last + 1).join('\n') };
  };
  it('the snapshot has every built-in case', () => {
    expect(Object.keys(before).sort()).toEqual(builtinCases().sort());
  });
  for (const name of builtinCases())
    it(name, () => {
      const c = loadCase(name).def;
      expect(setupOf(renderCase(c).files)).toEqual(setupOf(before[name]!.plain));
      expect(setupOf(renderCase(c, { checkpoint: true }).files)).toEqual(setupOf(before[name]!.checkpoint));
    });
});
