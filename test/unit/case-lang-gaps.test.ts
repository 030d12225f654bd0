// Case-language gaps the bug library hit: a signature on kernel evidence alone (no probe), `during`
// on counter signals, the bridgeFdb topology element.
import { describe, expect, it } from 'vitest';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import { evaluateSignals, type Observations, type SignalResult } from '../../harness/observe/signals/index.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { applyElements, caseElements } from '../../harness/reduce/elements.ts';

const sig = (name: string, role: SignalResult['role'], fired: boolean, extra: Partial<SignalResult> = {}): SignalResult => ({
  name,
  kind: 'splat',
  role,
  description: `${name} splat`,
  fired,
  count: fired ? 1 : 0,
  matches: fired ? [{ text: `${name} evidence` }] : [],
  ...extra,
});
const probe = (name: string, passed: boolean) => ({ name, ns: 'host', rc: passed ? 0 : 1, passed, durationMs: 1, output: '', stoppedEarly: false, timedOut: false });

describe('verdict: a signature without a probe', () => {
  const decide = (signals: SignalResult[], over: Partial<VerdictInput> = {}) =>
    decideVerdict({
      signature: { when: 'fail' },
      controlProbes: ['ctl'],
      report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes: [probe('ctl', true)] },
      signals,
      panic: null,
      vmTimedOut: false,
      deadlineMs: 1000,
      ...over,
    });

  it('reproduced iff every signature signal fired and no absent one', () => {
    const r = decide([sig('warn', 'signature', true)]);
    expect(r.verdict).toBe('reproduced');
    expect(r.reason).toMatch(/^kernel: warn ×1 \(warn evidence\)/);
    expect(decide([sig('warn', 'signature', true), sig('other', 'signature', true), sig('a', 'absent', false)]).verdict).toBe('reproduced');
  });

  it('not reproduced iff none of them fired (whatever the probes did)', () => {
    const r = decide([sig('warn', 'signature', false)]);
    expect(r.verdict).toBe('not-reproduced');
    expect(r.reason).toMatch(/no "warn splat"/);
    // an absent signal that fired on the fixed kernel: not reproduced, named
    expect(decide([sig('warn', 'signature', false), sig('a', 'absent', true)]).reason).toMatch(/must be absent/);
    expect(decide([sig('warn', 'signature', false), sig('a', 'absent', true)]).verdict).toBe('not-reproduced');
  });

  it('partial evidence is an error', () => {
    const r = decide([sig('warn', 'signature', true), sig('other', 'signature', false)]);
    expect(r.verdict).toBe('error');
    expect(r.reason).toMatch(/only in part/);
    expect(decide([sig('warn', 'signature', true), sig('a', 'absent', true)]).verdict).toBe('error');
    expect(decide([sig('warn', 'signature', true), sig('a', 'absent', false, { incomplete: 'not available' })]).verdict).toBe('error');
  });

  it('controls still apply', () => {
    const r = decide([sig('warn', 'signature', true)], { report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes: [probe('ctl', false)] } });
    expect(r.verdict).toBe('error');
    expect(r.reason).toMatch(/control probe ctl failed/);
  });

  it('with a probe, the probe still decides as before (passed without the splat: error)', () => {
    const r = decide([sig('warn', 'signature', false)], { signature: { probe: 'ctl', when: 'pass' } });
    expect(r.verdict).toBe('error');
    expect(r.reason).toMatch(/without the signature's kernel evidence/);
  });
});

const baseCase = {
  name: 'c',
  description: 'd',
  probes: [{ name: 'p', exec: { argv: ['true'] }, control: true }],
  signals: [{ name: 'warn', kind: 'splat', type: 'warn' }],
};
const issues = (x: object): string[] => {
  const r = caseSchema.safeParse({ ...baseCase, ...x });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('case file: a signature without a probe', () => {
  it('is valid with signals, not without', () => {
    expect(issues({ signature: { signals: ['warn'] } })).toEqual([]);
    expect(issues({ signature: {} })).toEqual(['signature: needs a probe, or signals: a signature without a probe is the kernel evidence its signals name']);
    expect(issues({ signature: { absent: ['warn'] } })[0]).toMatch(/^signature: needs a probe, or signals/);
  });

  it('`when` needs a probe', () => {
    expect(issues({ signature: { signals: ['warn'], when: 'pass' } })).toEqual(['signature.when: says how the signature probe ends: the signature has no probe']);
    expect(issues({ signature: { probe: 'p', signals: ['warn'], when: 'pass' } })).toEqual([]);
  });

  it('renders, traced too; the reducer keeps the first probe (a case has one) and may remove the others', () => {
    const c = caseSchema.parse({ ...baseCase, probes: [...baseCase.probes, { name: 'q', exec: { argv: ['true'] } }], signature: { signals: ['warn'] } });
    expect(renderCase(c, { tracePath: { returns: [] } }).files['/case/steps.sh']).toMatch(/kr_probe p /);
    const ce = caseElements(c);
    expect(ce.elements.filter((e) => e.kind === 'probe').map((e) => e.label)).toEqual(['probe q']);
    const reduced = applyElements(c, ce, []);
    expect(reduced.probes.map((p) => p.name)).toEqual(['p']);
    expect(caseSchema.safeParse(reduced).success).toBe(true);
  });
});

describe('counter signals: during', () => {
  const counterCase = (during?: string) =>
    caseSchema.parse({
      ...baseCase,
      steps: [{ name: 'up', exec: ['ip', 'link', 'set', 'lo', 'up'] }],
      signals: [{ name: 'out', kind: 'counter', counter: 'IpExt.OutMcastPkts', ...(during ? { during } : {}) }],
      signature: { probe: 'p', absent: ['out'] },
    });
  // 2 packets during the steps, 1 during the probes
  const obs = (mid: boolean): Observations => ({
    console: '',
    trace: [],
    countersBefore: { host: { 'IpExt.OutMcastPkts': 10 } },
    ...(mid ? { countersAtProbes: { host: { 'IpExt.OutMcastPkts': 12 } } } : {}),
    countersAfter: { host: { 'IpExt.OutMcastPkts': 13 } },
    symbols: {},
    namespaces: ['host'],
  });
  const count = (during: string | undefined, mid = true) => evaluateSignals(counterCase(during).signals, [], obs(mid))[0]!;

  it('the default counts from the end of the setup to after the probes, as before (steps included)', () => {
    expect(count(undefined).count).toBe(3);
    expect(count(undefined, false).count).toBe(3);
    expect(count('all').count).toBe(3);
  });

  it('probes: from just before the probes; steps: the steps only', () => {
    expect(count('probes').count).toBe(1);
    expect(count('steps').count).toBe(2);
    expect(count('probes').matches[0]!.text).toBe('host:IpExt.OutMcastPkts +1');
  });

  it('a split window without the reading before the probes is incomplete, never 0', () => {
    expect(count('probes', false).incomplete).toMatch(/not read before the probes/);
  });

  it('the agent reads the counters before the probes only when a signal asks', () => {
    const script = (during?: string, checkpoint = true) => renderCase(counterCase(during), { checkpoint }).files['/case/steps.sh']!;
    expect(script(undefined)).not.toMatch(/kr_counters_in probes/);
    expect(script('all')).not.toMatch(/kr_counters_in probes/);
    const s = script('probes');
    expect(s).toMatch(/kr_counters_in probes host 0 IpExt\.OutMcastPkts/);
    // after the steps, before the checkpoint (a restored repeat keeps it) and the first probe
    expect(s.indexOf('kr_counters_in probes')).toBeGreaterThan(s.indexOf("kr_step exec:up"));
    expect(s.indexOf('kr_counters_in probes')).toBeLessThan(s.indexOf('kr_checkpoint'));
    expect(script('steps', false).indexOf('kr_counters_in probes')).toBeLessThan(script('steps', false).indexOf('kr_phase probes'));
  });

  it('describes its window', () => {
    expect(evaluateSignals(counterCase('probes').signals, [], obs(true))[0]!.description).toMatch(/during the probes$/);
  });
});

describe('bridgeFdb: bridge fdb add MAC dev PORT master static|dynamic [vlan N]', () => {
  const topo = {
    kconfig: ['CONFIG_BRIDGE', 'CONFIG_BRIDGE_VLAN_FILTERING'],
    links: [{ type: 'bridge', name: 'br0', vlanFiltering: true }, { type: 'dummy', name: 'dummy0' }],
    interfaces: [{ dev: 'dummy0', master: 'br0' }, { dev: 'br0' }],
    signature: { probe: 'p' },
  };
  const fdb = [
    { dev: 'dummy0', mac: '00:aa:bb:cc:dd:ee', state: 'static' },
    { dev: 'dummy0', mac: '00:11:22:33:44:55', state: 'dynamic', vlan: 10 },
  ];

  it('renders in the bridge batch, after the bridge VLANs, as the commands a person would type', () => {
    const c = caseSchema.parse({ ...baseCase, ...topo, bridgeVlans: [{ dev: 'dummy0', vid: 10 }], bridgeFdb: fdb });
    const r = renderCase(c);
    expect(r.files['/case/bridge-host.bridge']).toBe('vlan add dev dummy0 vid 10\nfdb add 00:aa:bb:cc:dd:ee dev dummy0 master static\nfdb add 00:11:22:33:44:55 dev dummy0 master dynamic vlan 10\n');
    expect(r.files['/case/setup-host.sh']).toMatch(/kr_run bridge-vlans\+fdb:host bridge -batch \/case\/bridge-host\.bridge/);
    // after the ports are enslaved (the links+interfaces batch)
    expect(r.files['/case/setup-host.sh']!.indexOf('bridge -batch')).toBeGreaterThan(r.files['/case/setup-host.sh']!.indexOf('addr-host.ip'));
    const only = renderCase(caseSchema.parse({ ...baseCase, ...topo, bridgeFdb: fdb.slice(0, 1) }));
    expect(only.files['/case/setup-host.sh']).toMatch(/kr_run bridge-fdb:host bridge -batch/);
  });

  it('brings the bridge tool (iproute2) into the guest', async () => {
    const { caseNeeds } = await import('../../harness/cases/needs.ts');
    expect(caseNeeds(caseSchema.parse({ ...baseCase, ...topo, bridgeFdb: fdb.slice(0, 1) })).packages).toEqual(['iproute2']);
  });

  it('checks its port, its address and its namespace, each at its field', () => {
    expect(issues({ ...topo, bridgeFdb: fdb.slice(0, 1) })).toEqual([]);
    expect(issues({ ...topo, bridgeFdb: [{ ...fdb[0], dev: 'br0' }] })).toEqual(['bridgeFdb.0.dev: br0 is the bridge itself: an FDB entry here points to a port']);
    expect(issues({ ...topo, links: [...topo.links, { type: 'dummy', name: 'd1' }], bridgeFdb: [{ ...fdb[0], dev: 'd1' }] })[0]).toMatch(/^bridgeFdb\.0\.dev: d1 is not a bridge port/);
    expect(issues({ ...topo, bridgeFdb: [{ ...fdb[0], mac: '00:AA:bb:cc:dd:ee; reboot' }] })[0]).toMatch(/^bridgeFdb\.0\.mac: must be a lower-case MAC/);
    expect(issues({ ...topo, bridgeFdb: [{ ...fdb[0], state: 'permanent' }] })[0]).toMatch(/^bridgeFdb\.0\.state:/);
    expect(issues({ ...topo, bridgeFdb: [{ ...fdb[0], ns: 'ghost' }] })).toContain('bridgeFdb.0.ns: namespace "ghost" is not declared in namespaces');
    expect(issues({ ...topo, bridgeFdb: [{ ...fdb[0], vlan: 0 }] })[0]).toMatch(/^bridgeFdb\.0\.vlan:/);
  });

  it('a VLAN needs CONFIG_BRIDGE_VLAN_FILTERING', async () => {
    const { topologyKconfig } = await import('../../harness/cases/schema.ts');
    const opts = (f: object[]) => topologyKconfig(caseSchema.parse({ ...baseCase, kconfig: topo.kconfig, links: [{ type: 'bridge', name: 'br0' }, { type: 'dummy', name: 'dummy0' }], interfaces: topo.interfaces, signature: { probe: 'p' }, bridgeFdb: f }));
    expect(opts([fdb[0]!]).map((o) => o.option)).toEqual(['CONFIG_BRIDGE']);
    expect(opts([fdb[1]!]).find((o) => o.option === 'CONFIG_BRIDGE_VLAN_FILTERING')?.path).toEqual(['bridgeFdb', 0, 'vlan']);
  });

  it('the reducer may remove an entry; it needs its port enslaved and its VLAN', () => {
    const c = caseSchema.parse({ ...baseCase, ...topo, bridgeVlans: [{ dev: 'dummy0', vid: 10 }], bridgeFdb: fdb });
    const e = caseElements(c).elements.filter((x) => x.kind === 'bridge-fdb');
    expect(e.map((x) => x.label)).toEqual(['bridge fdb 00:aa:bb:cc:dd:ee dev dummy0 static', 'bridge fdb 00:11:22:33:44:55 dev dummy0 dynamic vlan 10']);
    expect(e[1]!.parents).toContain('bridgeVlans[0]');
    expect(e[0]!.parents.some((p) => p.startsWith('interfaces['))).toBe(true);
  });
});
