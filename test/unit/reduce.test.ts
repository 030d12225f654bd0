// `reduce` without kernels: ddmin against fake oracles (monotone, interacting, flaky, with
// dependencies), the trial's confirmation logic, a case's elements and their dependencies, apply()
// against the real case schema for every built-in case and random subsets, the reduced YAML's
// comments, nftables rules.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { builtinCases, loadCase } from '../../harness/cases/load.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { parseData } from '../../harness/util/load.ts';
import { hashOf } from '../../harness/util/cache.ts';
import { chunks, ddmin, type TestOutcome } from '../../harness/reduce/ddmin.ts';
import { applyElements, caseElements, closure, prefixContains, sysctlDevice } from '../../harness/reduce/elements.ts';
import { nftRules, withoutRules } from '../../harness/reduce/nft.ts';
import { reduceSearch } from '../../harness/reduce/search.ts';
import { judgeTrial, type Role, type RunOutcome } from '../../harness/reduce/trial.ts';
import { reducedYaml } from '../../harness/reduce/yaml.ts';
import { elementReports, renderReduceMarkdown } from '../../harness/reduce/report.ts';
import { repoRoot } from '../../harness/util/paths.ts';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `e${i}`);

/** A fake oracle: counts calls per candidate, answers with `pred`. */
function oracle(pred: (set: Set<string>) => boolean) {
  const calls = new Map<string, number>();
  let n = 0;
  const test = async (cands: string[][]): Promise<TestOutcome[]> =>
    cands.map((c) => {
      const k = JSON.stringify([...c].sort());
      calls.set(k, (calls.get(k) ?? 0) + 1);
      return { bug: pred(new Set(c)), trial: `t${n++}` };
    });
  return { test, calls, count: () => n };
}

/** Every element of `kept` is needed: without it (and what closure takes with it) the predicate fails. */
function isOneMinimal(kept: string[], pred: (s: Set<string>) => boolean, close: (ids: string[]) => string[] = (x) => x): boolean {
  return pred(new Set(kept)) && kept.every((e) => !pred(new Set(close(kept.filter((x) => x !== e)))));
}

describe('ddmin', () => {
  it('splits into near-equal chunks in order', () => {
    expect(chunks(ids(7), 3)).toEqual([['e0', 'e1'], ['e2', 'e3'], ['e4', 'e5', 'e6']]);
    expect(chunks(ids(2), 2)).toEqual([['e0'], ['e1']]);
    expect(chunks(ids(3), 3).flat()).toEqual(ids(3));
  });

  it('monotone oracle: finds exactly the needed elements, 1-minimal, each with its trial', async () => {
    const needed = new Set(['e3', 'e17', 'e18', 'e40']);
    const pred = (s: Set<string>): boolean => [...needed].every((x) => s.has(x));
    const o = oracle(pred);
    const r = await ddmin(ids(50), { test: o.test, parallel: 3 });
    expect(r.kept.sort()).toEqual([...needed].sort());
    expect(isOneMinimal(r.kept, pred)).toBe(true);
    // every removed element names a trial that showed the behaviour without it
    expect(r.removed.map((x) => x.id).sort()).toEqual(ids(50).filter((x) => !needed.has(x)).sort());
    for (const x of r.removed) expect(x.trial).toMatch(/^t\d+$/);
    expect(r.necessary.map((x) => x.id).sort()).toEqual([...needed].sort());
    // each distinct candidate tested once
    for (const n of o.calls.values()) expect(n).toBe(1);
    expect(r.tests).toBe(o.count());
  });

  it('interacting elements: either pair is enough; the result is one pair, 1-minimal', async () => {
    const pred = (s: Set<string>): boolean => (s.has('e2') && s.has('e9')) || (s.has('e5') && s.has('e14'));
    const r = await ddmin(ids(16), { test: oracle(pred).test });
    expect(r.kept.length).toBe(2);
    expect(isOneMinimal(r.kept, pred)).toBe(true);
  });

  it('property: any monotone or interacting oracle gives a 1-minimal result, the same for any parallelism', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 24 }), fc.array(fc.array(fc.nat(23), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 5 }), async (n, groups, par) => {
        const els = ids(n);
        const gs = groups.map((g) => g.map((i) => `e${i % n}`));
        // the behaviour: every element of some group is present
        const pred = (s: Set<string>): boolean => gs.some((g) => g.every((x) => s.has(x)));
        const a = await ddmin(els, { test: oracle(pred).test, parallel: 1 });
        const b = await ddmin(els, { test: oracle(pred).test, parallel: par });
        expect(isOneMinimal(a.kept, pred)).toBe(true);
        expect(b.kept).toEqual(a.kept);
      }),
      { numRuns: 150 },
    );
  });

  it('starting at full granularity sweeps single removals: still 1-minimal', async () => {
    const pred = (s: Set<string>): boolean => ['e1', 'e4', 'e6'].every((x) => s.has(x));
    const o = oracle(pred);
    const r = await ddmin(ids(8), { test: o.test, granularity: 8 });
    expect(r.kept).toEqual(['e1', 'e4', 'e6']);
    expect(isOneMinimal(r.kept, pred)).toBe(true);
  });

  it('tests the empty candidate when one element is left (nothing assumed)', async () => {
    const r = await ddmin(['a'], { test: oracle(() => true).test });
    expect(r.kept).toEqual([]);
    const r2 = await ddmin(['a'], { test: oracle((s) => s.has('a')).test });
    expect(r2.kept).toEqual(['a']);
    expect(r2.necessary[0]!.trial).toBe('t0');
  });

  it('with a closure (dependents go with their parent) the result is 1-minimal over closed candidates', async () => {
    // c1, c2 depend on p; the behaviour needs c1
    const parents: Record<string, string[]> = { c1: ['p'], c2: ['p'], d: [] };
    const close = (xs: readonly string[]): string[] => xs.filter((x) => (parents[x] ?? []).every((p) => xs.includes(p)));
    const pred = (s: Set<string>): boolean => s.has('c1');
    const o = oracle(pred);
    const r = await ddmin(['p', 'c1', 'c2', 'd'], { test: o.test, closure: close });
    expect(r.kept.sort()).toEqual(['c1', 'p']);
    // no candidate was ever tested with a child lacking its parent
    for (const k of o.calls.keys()) {
      const c = JSON.parse(k) as string[];
      if (c.includes('c1') || c.includes('c2')) expect(c).toContain('p');
    }
    expect(isOneMinimal(r.kept, pred, close)).toBe(true);
  });

  it('a flaky oracle behind judgeTrial never shrinks the case below what the behaviour needs', async () => {
    const needed = ['e1', 'e6', 'e11'];
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let trials = 0;
    const test = async (cands: string[][]): Promise<TestOutcome[]> =>
      Promise.all(
        cands.map(async (c) => {
          const truth = needed.every((x) => c.includes(x));
          // each run lies with probability 0.3, at most once per candidate
          let lies = 0;
          const run = async (role: Role): Promise<RunOutcome> => {
            const lie = role === 'buggy' && lies === 0 && rand() < 0.3;
            if (lie) lies++;
            const bug = lie ? !truth : truth;
            return { verdict: role === 'buggy' ? (bug ? 'reproduced' : 'not-reproduced') : 'not-reproduced', reason: '', repeatable: true };
          };
          const j = await judgeTrial(run, { against: true });
          return { bug: j.bug, trial: `t${trials++}` };
        }),
      );
    const r = await ddmin(ids(16), { test, parallel: 2 });
    for (const x of needed) expect(r.kept).toContain(x);
  });
});

describe('judgeTrial', () => {
  const fake = (verdicts: Partial<Record<`${Role}${1 | 2}`, RunOutcome['verdict']>>, repeatable = true) => {
    const calls: string[] = [];
    const run = async (role: Role, attempt: 1 | 2): Promise<RunOutcome> => {
      calls.push(`${role}${attempt}`);
      return { verdict: verdicts[`${role}${attempt}`] ?? 'error', reason: 'r', repeatable };
    };
    return { run, calls };
  };
  it('still the bug: reproduced on buggy, not on fixed, twice', async () => {
    const f = fake({ buggy1: 'reproduced', fixed1: 'not-reproduced', buggy2: 'reproduced', fixed2: 'not-reproduced' });
    const j = await judgeTrial(f.run, { against: true });
    expect(j).toMatchObject({ bug: true, flaky: false, confirmed: true });
    expect(f.calls).toEqual(['buggy1', 'fixed1', 'buggy2', 'fixed2']);
  });
  it('reproduced on both kernels is no reduction', async () => {
    const j = await judgeTrial(fake({ buggy1: 'reproduced', fixed1: 'reproduced', buggy2: 'reproduced', fixed2: 'reproduced' }).run, { against: true });
    expect(j.bug).toBe(false);
    expect(j.why).toContain('no longer the difference');
  });
  it('an error is not the bug; the fixed kernel is not even run', async () => {
    const f = fake({ buggy1: 'error', buggy2: 'error' });
    const j = await judgeTrial(f.run, { against: true });
    expect(j.bug).toBe(false);
    expect(f.calls).toEqual(['buggy1', 'buggy2']);
  });
  it('attempts that disagree: flaky, counted as not the bug', async () => {
    const j = await judgeTrial(fake({ buggy1: 'reproduced', fixed1: 'not-reproduced', buggy2: 'not-reproduced' }).run, { against: true });
    expect(j).toMatchObject({ bug: false, flaky: true });
  });
  it('a setup that failed before its checkpoint is not repeated', async () => {
    const f = fake({ buggy1: 'error' }, false);
    const j = await judgeTrial(f.run, { against: true });
    expect(j).toMatchObject({ bug: false, confirmed: false });
    expect(f.calls).toEqual(['buggy1']);
  });
  it('without a fixed kernel: reproduced is enough', async () => {
    const f = fake({ buggy1: 'reproduced', buggy2: 'reproduced' });
    expect((await judgeTrial(f.run, { against: false })).bug).toBe(true);
    expect(f.calls).toEqual(['buggy1', 'buggy2']);
  });
});

describe('case elements', () => {
  const selftest = loadCase('rp-filter-selftest');
  const mesos = loadCase('rp-filter-mesos');

  it('names elements by their place in the case, and never offers what the signature needs', () => {
    const ce = caseElements(selftest.def);
    const all = ce.elements.map((e) => e.id);
    expect(all).toContain('sysctls[1]');
    expect(all).toContain('filters[7]');
    expect(all).toContain('interfaces[2].addresses[0]');
    expect(all).toContain('interfaces[0].mac');
    expect(all).toContain('probes[1]'); // the control probe
    expect(all).not.toContain('probes[0]'); // the signature probe
    // ns2 holds the signature probe
    expect(all).not.toContain('namespaces[0]');
    expect(ce.required.map((r) => r.id)).toEqual(['namespaces[0]']);
    // the mesos signature probe talks to the container's server
    const cm = caseElements(mesos.def);
    expect(cm.required.map((r) => r.id).sort()).toEqual(['namespaces[1]', 'servers[0]']);
  });

  it('dependencies: an address with its interface, a filter with its qdisc and the links it names, a route with its gateway address', () => {
    const ce = caseElements(selftest.def);
    const p = (id: string): string[] => ce.byId.get(id)!.parents;
    expect(p('interfaces[2].addresses[0]')).toEqual(['interfaces[2]']);
    expect(p('interfaces[2]')).toEqual(['links[1]']);
    // filters[2]: veth1 ingress -> lo: the ingress qdisc on veth1 (qdiscs[1]) and veth1's link
    expect(p('filters[2]').sort()).toEqual(['links[1]', 'qdiscs[1]']);
    // filters[4]: lo parent 1: -> veth1: the fq_codel 1: on host lo (qdiscs[2]), not ns2's
    expect(p('filters[4]').sort()).toEqual(['links[1]', 'qdiscs[2]']);
    const cm = caseElements(mesos.def);
    expect(cm.byId.get('routes[0]')!.parents.sort()).toEqual(['interfaces[0]', 'interfaces[0].addresses[0]']);
    expect(cm.byId.get('probes[1]')!.parents).toEqual(['namespaces[1]', 'servers[0]']);
  });

  it('closure: removing a link removes its interfaces, addresses, qdiscs and filters', () => {
    const ce = caseElements(selftest.def);
    const kept = closure(ce, ce.elements.map((e) => e.id).filter((id) => id !== 'links[1]'));
    for (const gone of ['interfaces[2]', 'interfaces[2].addresses[0]', 'interfaces[4]', 'qdiscs[1]', 'qdiscs[3]', 'filters[0]', 'filters[2]', 'filters[4]', 'filters[7]']) expect(kept).not.toContain(gone);
    expect(kept).toContain('interfaces[1]'); // dummy0
    const c = applyElements(selftest.def, ce, kept);
    expect(c.links.map((l) => l.name)).toEqual(['dummy0']);
    expect(c.filters).toEqual([]);
    expect(caseSchema.safeParse(c).success).toBe(true);
  });

  it('simplification: an `all` sysctl narrowed to one interface of its namespace, lo first', () => {
    const ce = caseElements(selftest.def);
    const v = ce.variants.get('sysctls[1]')!;
    expect(v.map((x) => x.sysctlKey)).toEqual(['net.ipv4.conf.lo.rp_filter', 'net.ipv4.conf.dummy0.rp_filter', 'net.ipv4.conf.veth1.rp_filter']);
    const c = applyElements(selftest.def, ce, [...ce.elements.map((e) => e.id).filter((id) => id !== 'sysctls[1]'), 'sysctls[1]~lo']);
    expect(c.sysctls[1]).toMatchObject({ ns: 'host', key: 'net.ipv4.conf.lo.rp_filter', value: '1' });
    // ns2's all.rp_filter narrows to ns2's interfaces
    expect(ce.variants.get('sysctls[4]')!.map((x) => x.sysctlKey)).toEqual(['net.ipv4.conf.lo.rp_filter', 'net.ipv4.conf.veth2.rp_filter']);
    expect(sysctlDevice('net.ipv4.conf.eth0.accept_local')).toEqual({ family: 'ipv4', table: 'conf', dev: 'eth0', param: 'accept_local' });
    expect(sysctlDevice('net.ipv4.ip_forward')).toBeNull();
  });

  it('prefixes', () => {
    expect(prefixContains('10.53.180.130/24', '10.53.180.1')).toBe(true);
    expect(prefixContains('10.53.180.130/24', '10.53.181.1')).toBe(false);
    expect(prefixContains('2001:db8:1::1/64', '2001:db8:1::ff')).toBe(true);
    expect(prefixContains('2001:db8:1::1/64', '2001:db8:2::1')).toBe(false);
  });

  const allCases = [
    ...builtinCases().map((n) => loadCase(n)),
    loadCase(path.join(repoRoot, 'test/fixtures/cases/rp-filter-selftest-padded.yaml')),
    // every topology element of issue 21 (links on links, masters, bridge VLANs, nexthops, rules, neighbours)
    loadCase(path.join(repoRoot, 'test/fixtures/cases/topology.yaml')),
    // the bug library's cases, written in the topology elements
    ...fs
      .readdirSync(path.join(repoRoot, 'bugs/cases'))
      .filter((f) => f.endsWith('.yaml'))
      .sort()
      .map((f) => loadCase(path.join(repoRoot, 'bugs/cases', f))),
  ];

  it('property: apply() of any subset of any built-in case is a valid case, and the reduced YAML is that case', () => {
    for (const lc of allCases) {
      const ce = caseElements(lc.def);
      const text = fs.readFileSync(lc.file, 'utf8');
      const variantIds = [...ce.variants.values()].flat().map((v) => v.id);
      fc.assert(
        fc.property(fc.subarray(ce.elements.map((e) => e.id)), fc.subarray(variantIds, { maxLength: Math.min(3, variantIds.length) }), (kept, vs) => {
          const c = applyElements(lc.def, ce, [...kept, ...vs]);
          const parsed = caseSchema.safeParse(c);
          expect(parsed.success, `${lc.def.name}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(true);
          const fromYaml = parseData(reducedYaml(text, lc.def, ce, [...kept, ...vs]), 'reduced.yaml', caseSchema);
          expect(hashOf(fromYaml)).toBe(hashOf(parsed.data));
        }),
        { numRuns: 25 },
      );
    }
  }, 120_000);

  it('the full set is the original case, and its YAML reads back as the original', () => {
    for (const lc of allCases) {
      const ce = caseElements(lc.def);
      const all = ce.elements.map((e) => e.id);
      expect(hashOf(caseSchema.parse(applyElements(lc.def, ce, all)))).toBe(hashOf(lc.def));
      expect(hashOf(parseData(reducedYaml(fs.readFileSync(lc.file, 'utf8'), lc.def, ce, all), 'x', caseSchema))).toBe(hashOf(lc.def));
    }
  }, 30_000);
});

describe('topology elements (issue 21)', () => {
  const topo = loadCase(path.join(repoRoot, 'test/fixtures/cases/topology.yaml'));
  const ce = caseElements(topo.def);
  const p = (id: string): string[] => [...ce.byId.get(id)!.parents].sort();
  const idOf = (arr: 'links' | 'interfaces' | 'nexthops' | 'routes' | 'bridgeVlans', pred: (x: Record<string, unknown>) => boolean): string => {
    const i = (topo.def[arr] as unknown as Array<Record<string, unknown>>).findIndex(pred);
    expect(i, `${arr}: no such element`).toBeGreaterThanOrEqual(0);
    return `${arr}[${i}]`;
  };
  const link = (name: string): string => idOf('links', (l) => l.name === name || (l.peer as { name?: string } | undefined)?.name === name);
  const iface = (dev: string): string => idOf('interfaces', (x) => x.dev === dev);
  const nh = (id: number): string => idOf('nexthops', (x) => x.id === id);
  const route = (dst: string): string => idOf('routes', (x) => x.dst === dst);
  const ns2 = 'namespaces[0]';

  it('every new array is made of elements', () => {
    const kinds = new Set(ce.elements.map((e) => e.kind));
    for (const k of ['nexthop', 'rule', 'neighbour', 'bridge-vlan', 'master'] as const) expect(kinds).toContain(k);
    expect(ce.elements.filter((e) => e.kind === 'rule').map((e) => e.label)).toContain('rule pref 300 from 198.51.100.0/24 prohibit (ns2)');
    expect(ce.byId.get(link('red'))!.label).toBe('vrf red (ns2)');
    expect(ce.byId.get(link('mv0'))!.label).toBe('macvlan mv0 on v1 (ns2)');
  });

  it('dependencies: lower links, masters, nexthops and groups, vrf and nhid routes, bridge VLANs, neighbours', () => {
    // a vlan / macvlan on its link, a vxlan / tunnel on its dev
    expect(p(link('v1.10'))).toEqual([link('v1'), ns2].sort());
    expect(p(link('mv0'))).toEqual([link('v1'), ns2].sort());
    expect(p(link('vx0'))).toEqual([link('v1.10'), ns2].sort());
    expect(p(link('t6'))).toEqual([link('v1'), ns2].sort());
    // an interface's master on its entry and the master link
    expect(p(`${iface('d1')}.master`)).toEqual([iface('d1'), link('red')].sort());
    expect(p(`${iface('d0')}.master`)).toEqual([iface('d0'), link('bond0')].sort());
    // a nexthop on its device (brought up by its entry) and the address that makes its gateway reachable; a group on its members
    expect(p(nh(1))).toEqual([iface('v1'), `${iface('v1')}.addresses[0]`, ns2].sort());
    expect(p(nh(2))).toEqual([ns2]);
    expect(p(nh(10))).toEqual([nh(1), nh(3), ns2].sort());
    // a route on its nexthop, on its vrf, on its preferred source
    expect(p(route('203.0.117.0/24'))).toEqual([nh(10), ns2].sort());
    expect(p(route('2001:db8:9::/64'))).toEqual([nh(4), ns2].sort());
    expect(p(route('203.0.115.0/24'))).toEqual([iface('d1'), link('red'), ns2].sort());
    expect(p(route('203.0.113.0/24'))).toContain(`${iface('v1')}.addresses[0]`);
    // a port's bridge VLAN on the port's enslavement (so on the bridge); the bridge's own on the bridge
    expect(p(idOf('bridgeVlans', (v) => v.dev === 'p1'))).toEqual([`${iface('p1')}.master`, link('p1'), ns2].sort());
    expect(p(idOf('bridgeVlans', (v) => v.dev === 'br0'))).toEqual([link('br0'), ns2].sort());
    // a neighbour on its device; a rule only on its namespace
    expect(p('neighbours[0]')).toEqual([link('v1'), ns2].sort());
    expect(p('rules[0]')).toEqual([ns2]);
  });

  it("a route's preferred source: the address of its own domain (the vrf's, or outside any), when the same address is on both", () => {
    const lc = loadCase(path.join(repoRoot, 'bugs/cases/ipv4-del-addr-vrf.yaml'));
    const cv = caseElements(lc.def);
    const ifaceOf = (dev: string): string => `interfaces[${lc.def.interfaces.findIndex((x) => x.dev === dev)}]`;
    const addrOf = (dev: string, a: string): string => `${ifaceOf(dev)}.addresses[${lc.def.interfaces.find((x) => x.dev === dev)!.addresses.indexOf(a)}]`;
    const routeOf = (vrf: boolean): string => `routes[${lc.def.routes.findIndex((r) => r.src === '172.16.104.12' && (r.vrf !== undefined) === vrf)}]`;
    // main table: dummy1's address (not dummy2's, in vrf red)
    expect(cv.byId.get(routeOf(false))!.parents).toEqual([addrOf('dummy1', '172.16.104.12/24')]);
    // vrf red: dummy2's address and dummy2's enslavement to red
    expect([...cv.byId.get(routeOf(true))!.parents].sort()).toEqual([addrOf('dummy2', '172.16.104.12/24'), `${ifaceOf('dummy2')}.master`, `links[${lc.def.links.findIndex((l) => l.name === 'red')}]`].sort());
  });

  it('closure and apply: removing a nexthop takes its group and the routes over them; removing a bridge takes the port VLAN and the enslavement, not the port', () => {
    const all = ce.elements.map((e) => e.id);
    const kept = closure(ce, all.filter((id) => id !== nh(1)));
    for (const gone of [nh(10), route('203.0.117.0/24')]) expect(kept).not.toContain(gone);
    for (const stays of [nh(3), route('203.0.119.0/24')]) expect(kept).toContain(stays);
    const c = applyElements(topo.def, ce, kept);
    expect(c.nexthops.map((n) => n.id).sort()).toEqual([2, 3, 4]);
    expect(c.routes.some((r) => r.nhid === 10)).toBe(false);
    expect(caseSchema.safeParse(c).success).toBe(true);

    const noBridge = closure(ce, all.filter((id) => id !== link('br0')));
    const c2 = applyElements(topo.def, ce, noBridge);
    expect(c2.bridgeVlans).toEqual([]);
    expect(c2.interfaces.find((x) => x.dev === 'p1')).toMatchObject({ dev: 'p1' });
    expect(c2.interfaces.find((x) => x.dev === 'p1')!.master).toBeUndefined();
    expect(caseSchema.safeParse(c2).success).toBe(true);
    // removing v1 takes every link on it (vlan, vxlan on the vlan, macvlan, ip6tnl) and what was on them
    const c3 = applyElements(topo.def, ce, closure(ce, all.filter((id) => id !== link('v1'))));
    expect(c3.links.map((l) => l.name).filter((n) => ['v1.10', 'vx0', 'mv0', 't6'].includes(n))).toEqual([]);
    expect(c3.neighbours).toEqual([]);
    expect(caseSchema.safeParse(c3).success).toBe(true);
  });

  it('a fake oracle: the bug needs the route over nexthop group 10; ddmin keeps it, its group, the members and what they stand on', async () => {
    const all = ce.elements.map((e) => e.id);
    const pred = (s: Set<string>): boolean => {
      const c = applyElements(topo.def, ce, [...s]);
      return c.routes.some((r) => r.nhid === 10) && caseSchema.safeParse(c).success;
    };
    const r = await ddmin(all, { test: oracle(pred).test, closure: (xs) => closure(ce, xs), parallel: 4 });
    expect(r.kept.sort()).toEqual(
      // v1's veth has its peer in ns3: ns3 stays
      [route('203.0.117.0/24'), nh(10), nh(1), nh(3), iface('v1'), `${iface('v1')}.addresses[0]`, link('v1'), 'namespaces[1]'].sort(),
    );
    expect(isOneMinimal(r.kept, pred, (xs) => closure(ce, xs))).toBe(true);
    // the reduced file reads back as the reduced case
    const text = fs.readFileSync(topo.file, 'utf8');
    const fromYaml = parseData(reducedYaml(text, topo.def, ce, r.kept), 'reduced.yaml', caseSchema);
    expect(hashOf(fromYaml)).toBe(hashOf(caseSchema.parse(applyElements(topo.def, ce, r.kept))));
    expect(fromYaml.nexthops.map((n) => n.id).sort((a, b) => a - b)).toEqual([1, 3, 10]);
    expect(fromYaml.rules).toEqual([]);
  });
});

describe('reduced YAML', () => {
  const mesos = loadCase('rp-filter-mesos');
  const selftest = loadCase('rp-filter-selftest');
  const text = fs.readFileSync(mesos.file, 'utf8');
  const ce = caseElements(mesos.def);
  const allBut = (drop: string[]): string[] => ce.elements.map((e) => e.id).filter((id) => !drop.includes(id));

  it('keeps the comments of surviving elements; a group comment goes with its group', () => {
    // the whole first group of filters (leaving the container) goes: its comment too
    const out = reducedYaml(text, mesos.def, ce, allBut(['filters[0]', 'filters[1]', 'filters[2]', 'filters[3]', 'filters[4]']));
    expect(out).not.toContain('host, traffic leaving the container');
    expect(out).toContain('# host, traffic into the container');
    expect(out).toContain('# container: its own ports stay local');
    expect(out).toContain('# A Mesos port-mapping host');
    expect(out).toContain('# The kernel\'s own evidence.');
    // only the group's first item goes: the comment stays for the rest of the group
    const out2 = reducedYaml(text, mesos.def, ce, allBut(['filters[0]', 'filters[5]']));
    expect(out2).toContain('# host, traffic leaving the container (mesos1 ingress)');
    expect(out2).toMatch(/# host, traffic into the container\n\s+- \{ dev: lo, parent: ingress/);
    // a deleted run that crosses groups: the survivor gets the comment of its own group
    const out3 = reducedYaml(text, mesos.def, ce, allBut(['sysctls[0]', 'sysctls[1]', 'sysctls[2]', 'sysctls[3]', 'sysctls[4]', 'sysctls[5]']));
    expect(out3).not.toContain('host, as Mesos sets it');
    expect(out3).toMatch(/sysctls:\n\s+# container\n\s+- \{ ns: container, key: net.ipv4.conf.lo.accept_local/);
    const padded = loadCase(path.join(repoRoot, 'test/fixtures/cases/rp-filter-selftest-padded.yaml'));
    const cp = caseElements(padded.def);
    const keepFrom32 = cp.elements.map((e) => e.id).filter((id) => !/^sysctls\[([0-9]|[12][0-9]|3[01])\]$/.test(id));
    const out4 = reducedYaml(fs.readFileSync(padded.file, 'utf8'), padded.def, cp, keepFrom32);
    expect(out4).not.toContain('padding: a host');
    expect(out4).toMatch(/sysctls:\n\s+# the selftest's own\n\s+- \{ key: net.ipv4.conf.all.accept_local/);
    // a comment on an item's line goes with the item
    expect(reducedYaml(text, mesos.def, ce, allBut(['interfaces[2]']))).not.toContain('Mesos sets the host-side veth MAC');
    expect(reducedYaml(text, mesos.def, ce, allBut(['interfaces[2].mac']))).toContain('- { dev: mesos1 } # Mesos sets the host-side veth MAC');
    const st = fs.readFileSync(selftest.file, 'utf8');
    const cs = caseElements(selftest.def);
    const o3 = reducedYaml(st, selftest.def, cs, cs.elements.map((e) => e.id).filter((id) => id !== 'qdiscs[1]'));
    expect(o3).toContain('# 1. ns2 lo egress -> veth2 egress');
    expect(o3).not.toContain('# 2. veth1 ingress -> lo ingress');
    // the folded description is written as it was
    expect(o3).toContain('  Self-addressed packets that reach lo after crossing a veth pair through tc mirred redirects are\n  dropped as martians');
  });

  it('an emptied section goes, a simplified sysctl is changed in place, the header and name are set', () => {
    const out = reducedYaml(text, mesos.def, ce, [...allBut(['routes[0]', 'routes[1]', 'sysctls[4]']), 'sysctls[4]~lo'], { name: 'x-reduced', header: ['reduced from x'] });
    const doc = YAML.parse(out) as Record<string, unknown>;
    expect(doc.routes).toBeUndefined();
    expect(out).toContain('- { key: net.ipv4.conf.lo.rp_filter, value: 1 }');
    expect(out.startsWith('# reduced from x\n')).toBe(true);
    expect(doc.name).toBe('x-reduced');
  });
});

describe('nftables rules', () => {
  const ruleset = [
    'table inet t {',
    '  set s { type ipv4_addr; elements = { 1.2.3.4 } }',
    '  chain c {',
    '    type filter hook input priority 0; policy accept;',
    '    ip saddr { 1.1.1.1, 2.2.2.2 } counter drop # comment',
    '    tcp dport 22 accept; udp dport 53 accept',
    '    meta mark 0x1 comment "a ; b" accept',
    '  }',
    '}',
    'add rule inet t c ip daddr 9.9.9.9 drop',
    '',
  ].join('\n');
  it('finds the rules of chains and add rule commands, not the chain properties or sets', () => {
    expect(nftRules(ruleset).map((r) => r.text)).toEqual([
      'ip saddr { 1.1.1.1, 2.2.2.2 } counter drop',
      'tcp dport 22 accept',
      'udp dport 53 accept',
      'meta mark 0x1 comment "a ; b" accept',
      'add rule inet t c ip daddr 9.9.9.9 drop',
    ]);
  });
  it('removes rules one by one, a rule alone on its line with its line', () => {
    const out = withoutRules(ruleset, new Set([0, 2, 4]));
    expect(nftRules(out).map((r) => r.text)).toEqual(['tcp dport 22 accept', 'meta mark 0x1 comment "a ; b" accept']);
    expect(out).not.toContain('# comment');
    expect(out).toContain('type filter hook input priority 0; policy accept;');
  });
  it('the built-in nftables case: one rule, its removal leaves the chain', () => {
    const lc = loadCase('rp-filter-mesos-nft');
    const ce = caseElements(lc.def);
    expect(ce.elements.filter((e) => e.kind === 'nft-rule').map((e) => e.label)).toEqual(['nft rule: fib saddr . iif oif missing counter drop']);
    const c = applyElements(lc.def, ce, ce.elements.map((e) => e.id).filter((id) => id !== 'nftables[0].rules[0]'));
    expect(c.nftables[0]!.ruleset).toContain('chain prerouting');
    expect(c.nftables[0]!.ruleset).not.toContain('fib saddr');
  });
});

describe('reduceSearch', () => {
  it('adopts a per-interface sysctl when it keeps the behaviour, and ends 1-minimal over the simplified case', async () => {
    const lc = loadCase('rp-filter-selftest');
    const ce = caseElements(lc.def);
    const key = (xs: readonly string[]): string => hashOf(applyElements(lc.def, ce, xs));
    // the fake kernel: the bug needs rp_filter on lo (all or lo), both veth links and filters[3]
    const pred = (c: ReturnType<typeof applyElements>): boolean =>
      c.sysctls.some((s) => s.ns === 'host' && /conf\.(all|lo)\.rp_filter$/.test(s.key)) && c.links.length === 2 && c.filters.some((f) => f.dev === 'veth1' && f.protocol === 'ip');
    let n = 0;
    const test = async (cands: string[][]): Promise<TestOutcome[]> => cands.map((x) => ({ bug: pred(applyElements(lc.def, ce, x)), trial: `t${++n}` }));
    const r = await reduceSearch(ce, { test, key, parallel: 2, original: { bug: true, trial: 't0' } });
    expect(r.kept).toContain('sysctls[1]~lo');
    expect(r.kept).not.toContain('sysctls[1]');
    expect(r.kept.sort()).toEqual(['filters[3]', 'links[0]', 'links[1]', 'qdiscs[1]', 'sysctls[1]~lo'].sort());
    for (const id of r.kept) expect(pred(applyElements(lc.def, ce, r.kept.filter((x) => x !== id)))).toBe(false);
    const reports = elementReports(ce, r, new Map());
    expect(reports.find((e) => e.id === 'sysctls[1]')!.status).toBe('simplified');
    expect(reports.find((e) => e.id === 'sysctls[1]~lo')!.status).toBe('necessary');
    expect(reports.find((e) => e.id === 'namespaces[0]')!.status).toBe('required');
    expect(reports.filter((e) => e.status === 'unnecessary').length).toBe(ce.elements.length - 5);
    const md = renderReduceMarkdown({
      schemaVersion: 1,
      case: { name: lc.def.name, file: lc.file },
      mode: 'difference',
      kernels: { buggy: { name: 'b', source: 's', sourceVersion: null, pinned: null, release: 'r', configHash: 'c', patches: [], key: 'k' }, fixed: null },
      original: { elements: [], required: ce.required },
      reduced: { name: 'x', file: 'x.yaml', elements: [] },
      elements: reports,
      simplifications: r.simplifications,
      oneMinimal: true,
      trialCount: r.tests,
      runCount: 0,
      flakyTrials: 0,
      invalidTrials: 0,
      wallMs: 1000,
      secondsPerTrial: 1,
      originalRunMs: null,
      meanRunMs: { firstAttempt: null, repeat: null },
      trials: [],
    });
    expect(md).toContain('`sysctls[1]~lo` | net.ipv4.conf.lo.rp_filter=1');
  });
});
