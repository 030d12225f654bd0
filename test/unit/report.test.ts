import { describe, it, expect } from 'vitest';
import type { RunRecord } from '../../harness/observe/types.ts';
import { diffRuns, distinctLines, variantOf } from '../../harness/report/diff.ts';
import type { SignalResult } from '../../harness/observe/signals/index.ts';
import {
  renderRunsTable,
  renderDiff,
  renderRunDetails,
  signalsCell,
  stripAnsi,
} from '../../harness/report/table.ts';
import { buildSummary, allCompleted } from '../../harness/report/summary.ts';

const MARTIAN_TEXT = 'martian source 10.53.180.130 from 10.53.180.130, on dev lo';
const FIB = [
  'table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0',
  'table 254 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0',
  'table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.1 ==> dev eth0',
  'table 254 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.1 ==> dev eth0',
];

function signals(martians: number, drops: number, fib: string[]): SignalResult[] {
  return [
    {
      name: 'martian',
      kind: 'martian',
      role: 'signature',
      description: 'martian source 10.53.180.130 from 10.53.180.130, on dev lo',
      fired: martians > 0,
      count: martians,
      matches: Array.from({ length: martians }, (_, i) => ({ text: MARTIAN_TEXT, fields: { src: '10.53.180.130', dst: '10.53.180.130', dev: 'lo', time: 1.5 + i } })),
    },
    {
      name: 'rp-drop',
      kind: 'counter',
      role: 'evidence',
      description: 'TcpExt.IPReversePathFilter +1 or more',
      fired: drops > 0,
      count: drops,
      matches: drops ? [{ text: `host:TcpExt.IPReversePathFilter +${drops}`, fields: { ns: 'host', counter: 'TcpExt.IPReversePathFilter', delta: drops } }] : [],
    },
    { name: 'fib-lo', kind: 'tracepoint', role: 'evidence', description: 'fib:fib_table_lookup events', fired: fib.length > 0, count: fib.length, matches: fib.map((text) => ({ text })) },
  ];
}

function vanilla(): RunRecord {
  return {
    kernel: '6.1-vanilla',
    case: 'rp-filter-mesos',
    sysctls: {},
    verdict: 'reproduced',
    reason: 'martian source logged for 10.53.180.130 and host-to-container dropped',
    counters: { 'host:TcpExt.IPReversePathFilter': 3 },
    counterDeltas: { 'host:TcpExt.IPReversePathFilter': 3, 'host:Ip.InReceives': 12 },
    probes: [
      {
        name: 'host-to-container',
        ns: 'host',
        rc: null,
        passed: false,
        durationMs: 1200,
        stoppedEarly: true,
        output: '',
      },
      {
        name: 'container-to-host',
        ns: 'c1',
        rc: 0,
        passed: true,
        durationMs: 40,
        stoppedEarly: false,
        output: 'ok',
      },
    ],
    signals: signals(3, 3, FIB),
    traceEvents: 17,
    captures: [],
    warnings: [],
    kernelInfo: {
      release: '6.1.0',
      configHash: '0123456789abcdef0123',
      key: '6.1-vanilla-0123456789ab',
      source: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.tar.xz',
      patches: [],
    },
    vm: { accel: 'kvm', machine: 'q35', bootMs: 850, exitCode: 0, timedOut: false },
    durationMs: 4321,
    files: { console: 'out/r1/6.1-vanilla/console.log', results: 'out/r1/6.1-vanilla/results.txt' },
  };
}

function fixed(): RunRecord {
  return {
    kernel: '6.1-fixed',
    case: 'rp-filter-mesos',
    sysctls: {},
    verdict: 'not-reproduced',
    reason: 'all probes passed, no martian logged',
    counters: { 'host:TcpExt.IPReversePathFilter': 0 },
    counterDeltas: { 'host:Ip.InReceives': 12 },
    probes: [
      {
        name: 'host-to-container',
        ns: 'host',
        rc: 0,
        passed: true,
        durationMs: 30,
        stoppedEarly: false,
        output: 'ok',
      },
      {
        name: 'container-to-host',
        ns: 'c1',
        rc: 0,
        passed: true,
        durationMs: 35,
        stoppedEarly: false,
        output: 'ok',
      },
    ],
    signals: signals(0, 0, []),
    traceEvents: 9,
    captures: [],
    warnings: [],
    kernelInfo: {
      release: '6.1.0',
      configHash: 'fedcba9876543210fedc',
      key: '6.1-fixed-fedcba987654',
      source: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.tar.xz',
      patches: ['patches/0001-ipv4-fix-rp-filter-loopback.patch'],
    },
    vm: { accel: 'kvm', machine: 'q35', bootMs: 800, exitCode: 0, timedOut: false },
    durationMs: 2050,
    files: {
      console: 'out/r1/6.1-fixed/console.log',
      results: 'out/r1/6.1-fixed/results.txt',
      record: 'out/r1/6.1-fixed/record.json',
    },
  };
}

const MARTIAN_LINE = `${MARTIAN_TEXT} (x3)`;

describe('diffRuns', () => {
  it('groups by case + variant and flags a verdict flip', () => {
    const diffs = diffRuns([vanilla(), fixed()]);
    expect(diffs).toHaveLength(1);
    const d = diffs[0]!;
    expect(d.case).toBe('rp-filter-mesos');
    expect(d.variant).toBe('');
    expect(d.kernels).toEqual(['6.1-vanilla', '6.1-fixed']);
    expect(d.verdicts).toEqual({ '6.1-vanilla': 'reproduced', '6.1-fixed': 'not-reproduced' });
    expect(d.flips).toBe(true);
  });

  it('compares each signal: counts, fired, distinct evidence lines with a count suffix', () => {
    const d = diffRuns([vanilla(), fixed()])[0]!;
    expect(d.signals.map((x) => [x.name, x.role, x.counts, x.differs])).toEqual([
      ['martian', 'signature', { '6.1-vanilla': 3, '6.1-fixed': 0 }, true],
      ['rp-drop', 'evidence', { '6.1-vanilla': 3, '6.1-fixed': 0 }, true],
      ['fib-lo', 'evidence', { '6.1-vanilla': 4, '6.1-fixed': 0 }, true],
    ]);
    expect(d.signals[0]!.evidence).toEqual({ '6.1-vanilla': [MARTIAN_LINE], '6.1-fixed': [] });
    expect(distinctLines(['a', 'b', 'a'])).toEqual(['a (x2)', 'b']);
  });

  it('compares probes and counters', () => {
    const d = diffRuns([vanilla(), fixed()])[0]!;
    expect(d.probes).toEqual([
      {
        probe: 'host-to-container',
        results: { '6.1-vanilla': 'fail', '6.1-fixed': 'pass' },
        differs: true,
      },
      {
        probe: 'container-to-host',
        results: { '6.1-vanilla': 'pass', '6.1-fixed': 'pass' },
        differs: false,
      },
    ]);
    expect(d.counters).toEqual([
      {
        name: 'host:TcpExt.IPReversePathFilter',
        values: { '6.1-vanilla': 3, '6.1-fixed': 0 },
        differs: true,
        named: true,
      },
      {
        name: 'Δ host:TcpExt.IPReversePathFilter',
        values: { '6.1-vanilla': 3, '6.1-fixed': 0 },
        differs: true,
        named: true,
      },
      { name: 'Δ host:Ip.InReceives', values: { '6.1-vanilla': 12, '6.1-fixed': 12 }, differs: false, named: false },
    ]);
    expect(d.signals[2]!.evidence['6.1-vanilla']).toHaveLength(4);
  });

  it('separates sysctl variants and keeps first-seen order; equal verdicts do not flip', () => {
    const v2 = { ...vanilla(), sysctls: { 'host:net.ipv4.conf.lo.rp_filter': '0', 'host:a': '1' } };
    const f2 = { ...fixed(), sysctls: { 'host:a': '1', 'host:net.ipv4.conf.lo.rp_filter': '0' } };
    f2.verdict = 'reproduced';
    const diffs = diffRuns([v2, vanilla(), f2, fixed()]);
    expect(diffs.map((d) => [d.case, d.variant, d.kernels, d.flips])).toEqual([
      ['rp-filter-mesos', 'host:a=1,host:net.ipv4.conf.lo.rp_filter=0', ['6.1-vanilla', '6.1-fixed'], false],
      ['rp-filter-mesos', '', ['6.1-vanilla', '6.1-fixed'], true],
    ]);
    expect(variantOf({ b: '2', a: '1' })).toBe('a=1,b=2');
  });

  it('does not drop a repeated run of the same kernel', () => {
    const d = diffRuns([vanilla(), vanilla()])[0]!;
    expect(d.kernels).toEqual(['6.1-vanilla', '6.1-vanilla#2']);
    expect(d.flips).toBe(false);
  });
});

describe('renderRunsTable', () => {
  it('shows one aligned row per run', () => {
    const t = renderRunsTable([vanilla(), fixed()]);
    expect(t).toBe(
      [
        'KERNEL       CASE             VERDICT         PROBES                                                SIGNALS                       TIME',
        '-----------  ---------------  --------------  ----------------------------------------------------  ----------------------------  ----',
        '6.1-vanilla  rp-filter-mesos  reproduced      host-to-container:FAIL(early) container-to-host:pass  martian:3 rp-drop:3 fib-lo:4  4.3s',
        '6.1-fixed    rp-filter-mesos  not-reproduced  host-to-container:pass container-to-host:pass         martian:0 rp-drop:0 fib-lo:0  2.1s',
      ].join('\n'),
    );
  });

  it('colours verdicts without breaking alignment', () => {
    const plain = renderRunsTable([vanilla(), fixed()]);
    const colored = renderRunsTable([vanilla(), fixed()], { color: true });
    expect(colored).toContain('\x1b[31mreproduced\x1b[0m');
    expect(colored).toContain('\x1b[32mnot-reproduced\x1b[0m');
    expect(stripAnsi(colored)).toBe(plain);
  });

  it('adds the variant to the case; a run without signals shows "-"', () => {
    const r = { ...vanilla(), sysctls: { 'host:net.ipv4.conf.all.rp_filter': '2' } };
    expect(renderRunsTable([r])).toContain('rp-filter-mesos [host:net.ipv4.conf.all.rp_filter=2]');
    expect(signalsCell({ ...fixed(), signals: [] })).toBe('-');
  });
});

describe('renderDiff', () => {
  it('shows the flip, differing rows only, then the evidence of each signal per kernel', () => {
    const out = renderDiff(diffRuns([vanilla(), fixed()]));
    expect(out).toBe(
      [
        '== rp-filter-mesos ==',
        'verdicts: 6.1-vanilla=reproduced  6.1-fixed=not-reproduced  <- differs',
        'probes (differing):',
        '  host-to-container: 6.1-vanilla=fail  6.1-fixed=pass',
        'signals (differing):',
        '  martian: 6.1-vanilla=3  6.1-fixed=0',
        '  rp-drop: 6.1-vanilla=3  6.1-fixed=0',
        '  fib-lo: 6.1-vanilla=4  6.1-fixed=0',
        'counters (differing):',
        '  host:TcpExt.IPReversePathFilter: 6.1-vanilla=3  6.1-fixed=0',
        '  Δ host:TcpExt.IPReversePathFilter: 6.1-vanilla=3  6.1-fixed=0',
        `martian (signature: ${MARTIAN_TEXT}):`,
        `  6.1-vanilla: ${MARTIAN_LINE}`,
        '  6.1-fixed: (none)',
        'rp-drop (evidence: TcpExt.IPReversePathFilter +1 or more):',
        '  6.1-vanilla: host:TcpExt.IPReversePathFilter +3',
        '  6.1-fixed: (none)',
        'fib-lo (evidence: fib:fib_table_lookup events):',
        '  6.1-vanilla:',
        '    table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0',
        '    table 254 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 ==> dev eth0',
        '    table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.1 ==> dev eth0',
        '    ... (1 more)',
        '  6.1-fixed: (none)',
      ].join('\n'),
    );
    expect(out).toContain('differs');
    expect(out).not.toContain('container-to-host');
    expect(out).not.toContain('InReceives');
  });

  it('says so when a group has only one kernel', () => {
    const r = { ...fixed(), sysctls: { 'host:net.ipv4.conf.all.rp_filter': '1' } };
    expect(renderDiff(diffRuns([r]))).toBe(
      '== rp-filter-mesos [host:net.ipv4.conf.all.rp_filter=1] ==\n' +
        'only one kernel (6.1-fixed: not-reproduced), nothing to compare',
    );
  });
});

describe('renderRunDetails', () => {
  it('includes reason, kernel identity, probes, signals, counters and files', () => {
    const out = renderRunDetails(vanilla());
    expect(out).toContain('  reason: martian source logged for 10.53.180.130 and host-to-container dropped');
    expect(out).toContain('  kernel: 6.1.0 config 0123456789ab (');
    expect(out).not.toContain('0123456789abc');
    expect(out).toContain('    host-to-container [host]: FAIL rc=- 1.2s (stopped early)');
    expect(out).toContain(`    martian [signature, martian]: FIRED x3 (${MARTIAN_TEXT})`);
    expect(out).toContain(`      ${MARTIAN_TEXT}`);
    expect(out).toContain('    host:TcpExt.IPReversePathFilter +3');
    expect(out).toContain('  trace events: 17');
    expect(out).toContain('    console: out/r1/6.1-vanilla/console.log');
    expect(out).not.toContain('panic');
  });

  it('caps the evidence of a signal at 5 lines and panic text at 15 lines', () => {
    const base = vanilla();
    const r: RunRecord = {
      ...base,
      verdict: 'panic',
      signals: signals(7, 0, []),
      panic: {
        kind: 'panic',
        title: 'Kernel panic - not syncing: Fatal exception in interrupt',
        text: Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('\n'),
      },
    };
    const out = renderRunDetails(r);
    expect(out.split(`      ${MARTIAN_TEXT}`).length - 1).toBe(5);
    expect(out).toContain('    ... (2 more)');
    expect(out).toContain('  panic: Kernel panic - not syncing: Fatal exception in interrupt');
    expect(out).toContain('    line 15\n    ... (5 more)');
    expect(out).not.toContain('line 16');
  });
});

describe('buildSummary', () => {
  const meta = { runId: 'r1', startedAt: '2025-01-02T03:04:05.000Z', accel: 'kvm', qemu: '8.2.2' };

  it('has the exact fields for each run', () => {
    const s = buildSummary(meta, [vanilla(), fixed()]);
    expect(s.tool).toBe('kernel-repro');
    expect(s.version).toBe(2);
    expect(s.kernels.map((k) => k.name)).toEqual(['6.1-vanilla', '6.1-fixed']);
    expect(s.runId).toBe('r1');
    expect(s.startedAt).toBe('2025-01-02T03:04:05.000Z');
    expect(s.host).toEqual({ accel: 'kvm', qemu: '8.2.2' });
    expect(s.runs).toHaveLength(2);
    const [a, b] = s.runs;
    expect(a).toEqual({
      kernel: '6.1-vanilla',
      case: 'rp-filter-mesos',
      sysctls: {},
      verdict: 'reproduced',
      reason: 'martian source logged for 10.53.180.130 and host-to-container dropped',
      counters: {
        'host:TcpExt.IPReversePathFilter': 3,
        'delta:host:TcpExt.IPReversePathFilter': 3,
        'delta:host:Ip.InReceives': 12,
      },
      durationMs: 4321,
      probes: [
        {
          name: 'host-to-container',
          ns: 'host',
          passed: false,
          rc: null,
          durationMs: 1200,
          stoppedEarly: true,
          timedOut: false,
        },
        {
          name: 'container-to-host',
          ns: 'c1',
          passed: true,
          rc: 0,
          durationMs: 40,
          stoppedEarly: false,
          timedOut: false,
        },
      ],
      signals: vanilla().signals.map((x) => ({ ...x, state: x.fired ? 'fired' : 'not-fired' })),
      traceEvents: 17,
      captures: [],
      warnings: [],
      panic: null,
      kernelInfo: vanilla().kernelInfo,
      vm: { accel: 'kvm', machine: 'q35', bootMs: 850, guestMs: null, caseMs: null, wallMs: null, exitCode: 0, timedOut: false, stoppedAfterDone: false, snapshot: 'cold' },
      setup: [],
      files: { console: 'out/r1/6.1-vanilla/console.log', results: 'out/r1/6.1-vanilla/results.txt' },
    });
    expect(b?.verdict).toBe('not-reproduced');
    expect(b?.signals.map((x) => x.fired)).toEqual([false, false, false]);
    expect(b?.counters).toEqual({ 'host:TcpExt.IPReversePathFilter': 0, 'delta:host:Ip.InReceives': 12 });
    expect(b?.files.record).toBe('out/r1/6.1-fixed/record.json');
  });

  it('is JSON-serialisable without loss', () => {
    const r = { ...vanilla(), panic: { kind: 'oops' as const, title: 'BUG: kernel NULL pointer', text: 'x\ny' } };
    const s = buildSummary({ runId: 'r2', startedAt: 't', accel: 'tcg' }, [r, fixed()]);
    const json = JSON.stringify(s);
    expect(JSON.parse(json)).toStrictEqual(s);
    expect(s.host).toStrictEqual({ accel: 'tcg' });
    expect(s.runs[0]?.panic).toEqual({ kind: 'oops', title: 'BUG: kernel NULL pointer', text: 'x\ny' });
    expect(json).not.toContain('"output"');
    expect(json).not.toContain('"raw"');
  });

  it('does not share references with the records', () => {
    const r = vanilla();
    const s = buildSummary(meta, [r]);
    r.kernelInfo.patches.push('p');
    r.signals[2]!.matches.push({ text: 'x' });
    expect(s.runs[0]?.kernelInfo.patches).toEqual([]);
    expect(s.runs[0]?.signals[2]?.matches).toHaveLength(4);
  });
});

describe('allCompleted', () => {
  it('is true only when every run reached reproduced or not-reproduced', () => {
    expect(allCompleted([vanilla(), fixed()])).toBe(true);
    expect(allCompleted([vanilla(), { ...fixed(), verdict: 'timeout' }])).toBe(false);
    expect(allCompleted([{ ...vanilla(), verdict: 'error' }])).toBe(false);
    expect(allCompleted([{ ...vanilla(), verdict: 'panic' }])).toBe(false);
  });
});
