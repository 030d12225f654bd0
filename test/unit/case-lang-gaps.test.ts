// Case-language gaps the bug library hit: a signature on kernel evidence alone (no probe), `during`
// on counter signals, the bridgeFdb topology element.
import { describe, expect, it } from 'vitest';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import { evaluateSignals, type Observations, type SignalResult } from '../../harness/observe/signals/index.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { caseElements } from '../../harness/reduce/elements.ts';

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

  it('renders, traced too, and every probe stays removable for the reducer', () => {
    const c = caseSchema.parse({ ...baseCase, probes: [...baseCase.probes, { name: 'q', exec: { argv: ['true'] } }], signature: { signals: ['warn'] } });
    expect(renderCase(c, { tracePath: { returns: [] } }).files['/case/steps.sh']).toMatch(/kr_probe p /);
    expect(caseElements(c).elements.filter((e) => e.kind === 'probe').map((e) => e.label)).toEqual(['control probe p', 'probe q']);
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
