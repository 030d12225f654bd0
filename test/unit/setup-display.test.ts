// The setup shown as the commands a person would type (harness/cases/display.ts): derived from the
// rendered case, in the guest's order, per step; the failing command of a failed batch quoted in
// the reason; the setup in report.txt's details, the HTML report and summary.json.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCase } from '../../harness/cases/load.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { caseSchema, type CaseInput } from '../../harness/cases/schema.ts';
import { failedCommand, setupFailure, setupLines, setupSteps, shellWords } from '../../harness/cases/display.ts';
import { renderRunDetails, renderRunsTable } from '../../harness/report/table.ts';
import { buildSummary } from '../../harness/report/summary.ts';
import { renderHtmlReport } from '../../harness/report/html.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { runRecord } from './records.ts';

const topology = loadCase(path.join(repoRoot, 'test/fixtures/cases/topology.yaml'));
const base: CaseInput = {
  name: 'x',
  description: 'x',
  namespaces: ['ns2'],
  links: [{ type: 'veth', name: 'veth0', peer: { name: 'veth1', ns: 'ns2' } }],
  probes: [{ name: 'p', ping: '192.0.2.2' }],
  signature: { probe: 'p' },
};
const parse = (c: Partial<CaseInput>): ReturnType<typeof caseSchema.parse> => caseSchema.parse({ ...base, ...c });

describe('setup as typed', () => {
  it('shell words as shq writes them', () => {
    expect(shellWords(`kr_run sysctls:ns2 /bin/sh /case/sysctl-ns2.sh`)).toEqual(['kr_run', 'sysctls:ns2', '/bin/sh', '/case/sysctl-ns2.sh']);
    expect(shellWords(`echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range`)).toEqual(['echo', '0 2147483647', '>', '/proc/sys/net/ipv4/ping_group_range']);
    expect(shellWords(`a 'it'\\''s' ''`)).toEqual(['a', "it's", '']);
  });

  it('every batch line with its program, namespace and family, in the order the guest runs them', () => {
    const steps = setupSteps(renderCase(topology.def).files);
    expect(steps.map((s) => s.label)).toEqual([
      'links+interfaces:host',
      'sysctls:host',
      'links+interfaces:ns2',
      'rules6:ns2',
      'bridge-vlans:ns2',
      'sysctls:ns2',
      'links+interfaces:ns3',
      'sysctls:ns3',
      'nexthops6:ns2',
      'nexthops+routes+rules+neighbours:ns2',
    ]);
    const all = steps.flatMap((s) => s.commands.map((c) => c.text));
    for (const line of [
      'ip netns add ns2',
      'ip link add v1 netns ns2 type veth peer name v2 netns ns3',
      'ip -n ns2 link add red type vrf table 10',
      'ip -n ns2 link add br0 type bridge vlan_filtering 1',
      'ip -n ns2 link add link v1 name v1.10 type vlan id 10',
      'ip -n ns2 link set dev d1 master red',
      'ip -n ns2 address add 198.51.100.1/24 broadcast 198.51.100.255 dev v1',
      'ip -n ns2 -6 rule add pref 200 l3mdev',
      'bridge -n ns2 vlan add dev p1 vid 10 pvid untagged',
      'ip -n ns2 -6 nexthop add id 4 blackhole',
      'ip -n ns2 nexthop add id 10 group 1/3,3',
      'ip -n ns2 route add vrf red 203.0.115.0/24 dev d1',
      'ip -n ns2 route add 203.0.113.0/24 via 192.0.2.2 table 100 metric 20 src 192.0.2.1',
      'ip -n ns2 rule add pref 100 from 192.0.2.0/24 to 203.0.113.0/24 iif v1 oif d1 fwmark 0x1/0xff ipproto udp sport 1000 dport 2000-2010 table 100',
      'ip -n ns2 neigh add 192.0.2.9 lladdr 52:54:00:00:00:09 dev v1 nud permanent',
      'ip -n ns3 link set dev d0 master bond0',
    ])
      expect(all).toContain(line);
    // the vxlan is declared before the vlan it is on, and made after it
    expect(all.indexOf('ip -n ns2 link add link v1 name v1.10 type vlan id 10')).toBeLessThan(all.findIndex((l) => l.includes('type vxlan')));
    // nothing that is not a command: no agent calls, no empty lines
    expect(all.filter((l) => /kr_|\/usr\/lib\/kr|^\s*$/.test(l))).toEqual([]);
    // each command knows its batch line
    const routing = steps.find((s) => s.label === 'nexthops+routes+rules+neighbours:ns2')!;
    expect(routing.ns).toBe('ns2');
    expect(routing.commands[0]).toEqual({ text: 'ip -n ns2 nexthop add id 1 via 192.0.2.2 dev v1', file: '/case/routing-ns2.ip', line: 1 });
  });

  it('sysctls as sysctl -w (quoted when the value has blanks), tc and nft with their namespace', () => {
    const c = parse({
      sysctls: [{ ns: 'ns2', key: 'net.ipv4.ip_forward', value: 1 }, { key: 'net.ipv4.ping_group_range', value: '0 2147483647' }],
      qdiscs: [{ ns: 'ns2', dev: 'veth1', kind: 'ingress' }],
      filters: [{ ns: 'ns2', dev: 'veth1', parent: 'ingress', protocol: 'ip', match: 'basic', action: 'drop' }],
      nftables: [{ ns: 'ns2', ruleset: 'table inet t {\n}\n' }],
    });
    const lines = setupLines(setupSteps(renderCase(c, { sysctlOverrides: [{ ns: 'host', key: 'net.ipv4.conf.all.rp_filter', value: '2' }] }).files));
    expect(lines).toEqual([
      '# links+interfaces:host',
      'ip netns add ns2',
      'ip link add veth0 type veth peer name veth1 netns ns2',
      'ip link set dev lo up',
      '# sysctls:host',
      "sysctl -w 'net.ipv4.ping_group_range=0 2147483647'",
      'sysctl -w net.ipv4.conf.all.rp_filter=2',
      '# interfaces:ns2',
      'ip -n ns2 link set dev lo up',
      '# sysctls:ns2',
      'ip netns exec ns2 sysctl -w net.ipv4.ip_forward=1',
      '# tc:ns2',
      'tc -n ns2 qdisc add dev veth1 ingress',
      'tc -n ns2 filter add dev veth1 parent ffff: protocol ip basic action drop',
      '# nftables:ns2',
      'ip netns exec ns2 nft -f /case/nft-ns2.nft',
    ]);
  });

  it('a failed batch: the reason quotes the failing line as typed, with ip\'s message', () => {
    const steps = setupSteps(renderCase(topology.def).files);
    const label = 'nexthops+routes+rules+neighbours:ns2';
    const out = 'Error: Nexthop device is not up.\nCommand failed /case/routing-ns2.ip:3\n';
    expect(setupFailure(steps, label, out)).toBe(`setup step ${label} failed at: ip -n ns2 nexthop add id 3 via 192.0.2.3 dev v1 (Error: Nexthop device is not up.)`);
    // the line of another file, or of no file, is not guessed
    expect(setupFailure(steps, label, 'Error: x\nCommand failed /case/addr-ns2.ip:3\n')).toBeNull();
    expect(setupFailure(steps, label, 'Segmentation fault\n')).toBeNull();
    expect(setupFailure(steps, 'no-such-step:ns2', out)).toBeNull();
    // a sysctl script: busybox sh names its file and line
    const c = parse({ sysctls: [{ ns: 'ns2', key: 'net.ipv4.ip_forward', value: 1 }, { ns: 'ns2', key: 'net.ipv4.conf.nosuch.rp_filter', value: 1 }] });
    const s2 = setupSteps(renderCase(c).files);
    const f = failedCommand(s2.find((s) => s.label === 'sysctls:ns2')!, '/case/sysctl-ns2.sh: line 3: can\'t create /proc/sys/net/ipv4/conf/nosuch/rp_filter: nonexistent directory\n');
    expect(f).toEqual({
      command: { text: 'ip netns exec ns2 sysctl -w net.ipv4.conf.nosuch.rp_filter=1', file: '/case/sysctl-ns2.sh', line: 3 },
      message: "can't create /proc/sys/net/ipv4/conf/nosuch/rp_filter: nonexistent directory",
    });
  });
});

describe('the setup in the reports', () => {
  const setup = [
    { label: 'links+interfaces:host', ns: 'host', commands: ['ip netns add ns2', 'ip link add veth0 type veth peer name veth1 netns ns2'] },
    { label: 'links+interfaces:ns2', ns: 'ns2', commands: ['ip -n ns2 link add red type vrf table 10', 'ip -n ns2 rule add pref 100 from 192.0.2.0/24 table 10'] },
  ];
  const run = { ...runRecord('k1', 'c1', 'reproduced'), setup, files: { console: '/r/console.log', results: '/r/results.txt', case: '/r/case' } };

  it('report.txt details list the commands per step; the table does not', () => {
    const d = renderRunDetails(run);
    expect(d).toContain('  setup (4 commands, in the order the guest runs them; the batch files in /r/case):\n    # links+interfaces:host\n    ip netns add ns2\n');
    expect(d).toContain('    # links+interfaces:ns2\n    ip -n ns2 link add red type vrf table 10\n    ip -n ns2 rule add pref 100 from 192.0.2.0/24 table 10\n');
    expect(renderRunsTable([run])).not.toContain('ip netns add');
    // a step with nothing to run is left out
    expect(renderRunDetails({ ...run, setup: [...setup, { label: 'sysctls:ns2', ns: 'ns2', commands: [] }] })).not.toContain('# sysctls:ns2');
    // a record from before the setup was kept: no section
    expect(renderRunDetails(runRecord('k1', 'c1', 'reproduced'))).not.toContain('setup (');
  });

  it('summary.json: a setup array of strings per run ([] for an older record)', () => {
    const s = buildSummary({ runId: 'r', startedAt: 't', accel: 'tcg' }, [run, runRecord('k2', 'c1', 'not-reproduced')]);
    expect(s.runs[0]!.setup).toEqual(setup.flatMap((x) => x.commands));
    expect(s.runs[1]!.setup).toEqual([]);
    expect(s.schemaVersion).toBe(2);
  });

  it('the HTML report: the setup of each cell, escaped', () => {
    const html = renderHtmlReport(
      [{ run: { ...run, setup: [{ label: 'x:host', ns: 'host', commands: ['ip link add <b>'] }] }, evidence: { console: '', trace: '' } }],
      { title: 't', runId: 'r', startedAt: 's', accel: 'tcg' },
    );
    expect(html).toContain('<details class="setup"><summary>setup (1 commands, in the order the guest runs them)</summary>');
    expect(html).toContain('# x:host\nip link add &lt;b&gt;');
  });
});
