// Case-language gaps the bug library hit: a signature on kernel evidence alone (no probe), `during`
// on counter signals, the bridgeFdb topology element.
import { describe, expect, it } from 'vitest';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import type { SignalResult } from '../../harness/observe/signals/index.ts';
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
