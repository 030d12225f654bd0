// End to end: every topology element of the case language (issue 21) configured in two namespaces
// on the library's shipped 6.1 kernel, and read back by iproute2 in the guest
// (test/fixtures/cases/topology.yaml): one boot. The rendered setup steps are the ones a person
// would type, labelled by what they make.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

interface Run {
  verdict: string;
  reason: string;
  probes: Array<{ name: string; passed: boolean; output: string }>;
  setup: string[];
  files: { results: string };
}

describe('topology elements on a real kernel', () => {
  it('every element is configured as declared (29 read-back probes pass), its batches labelled by what they make', async () => {
    const results = fileTempDir('kr-topology-');
    const r = await cli(['repro', '--kernel', 'bugs/kernels/lib-6.1-shipped.yaml', '--case', 'test/fixtures/cases/topology.yaml', '--json', '--results', results]);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    const run = (JSON.parse(r.stdout) as { runs: Run[] }).runs[0]!;
    const failed = run.probes.filter((p) => !p.passed);
    expect(failed.map((p) => `${p.name}: ${p.output.slice(0, 400)}`)).toEqual([]);
    expect(run.probes).toHaveLength(29);
    expect(run.verdict).toBe('reproduced');
    const steps = fs.readFileSync(run.files.results, 'utf8').split('\n').filter((l) => l.startsWith('@@KR step '));
    const labels = steps.map((l) => l.split(' ')[2]);
    expect(labels).toEqual(expect.arrayContaining(['links+interfaces:ns2', 'rules6:ns2', 'bridge-vlans:ns2', 'links+interfaces:ns3', 'nexthops6:ns2', 'nexthops+routes+rules+neighbours:ns2']));
    const routing = fs.readFileSync(path.join(path.dirname(run.files.results), 'case', 'routing-ns2.ip'), 'utf8');
    expect(routing).toContain('nexthop add id 10 group 1/3,3\n');
    // the report shows the setup as the commands a person would type
    expect(run.setup).toEqual(expect.arrayContaining(['ip -n ns2 link add red type vrf table 10', 'bridge -n ns2 vlan add dev p1 vid 10 pvid untagged', 'ip -n ns2 -6 rule add pref 200 l3mdev', 'ip -n ns2 nexthop add id 10 group 1/3,3']));
    expect(fs.readFileSync(path.join(results, 'report.txt'), 'utf8')).toContain('    # nexthops+routes+rules+neighbours:ns2\n    ip -n ns2 nexthop add id 1 via 192.0.2.2 dev v1\n');
  });

  it('a failed setup batch: the reason quotes the failing line as typed, with ip\'s message', async () => {
    const results = fileTempDir('kr-setup-fails-');
    const r = await cli(['repro', '--kernel', 'bugs/kernels/lib-6.1-shipped.yaml', '--case', 'test/fixtures/cases/setup-fails.yaml', '--json', '--results', results]);
    const run = (JSON.parse(r.stdout) as { runs: Run[] }).runs[0]!;
    expect(run.verdict).toBe('error');
    expect(run.reason).toBe('setup step nexthops+routes:host failed at: ip nexthop add id 1 via 192.0.2.2 dev d0 (Error: Nexthop device is not up.)');
  });
});
