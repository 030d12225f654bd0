// End to end: build both 6.1 kernels from Debian's linux-source-6.1 (through the shared cache),
// boot each under QEMU, run both rp_filter cases, and assert on what the kernels really printed.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { cli } from './helpers.ts';

interface SummaryRun {
  kernel: string;
  case: string;
  verdict: string;
  signals: Array<{ name: string; role: string; fired: boolean; count: number; matches: Array<{ text: string; fields?: Record<string, string | number> }> }>;
  counters: Record<string, number>;
  durationMs: number;
  probes: Array<{ name: string; passed: boolean; stoppedEarly: boolean }>;
  kernelInfo: { release: string; configHash: string };
  files: { console: string };
}

function run(runs: SummaryRun[], kernel: string, kcase: string): SummaryRun {
  const r = runs.find((x) => x.kernel === kernel && x.case === kcase);
  if (!r) throw new Error(`no run ${kernel} x ${kcase}`);
  return r;
}

describe('npm run repro (default job)', () => {
  let first: { exitCode: number; stdout: string; stderr: string };

  it('reproduces the bug on 6.1-vanilla and not on 6.1-fixed, with kernel evidence', async () => {
    first = await cli(['repro', '--json']);
    if (first.exitCode !== 0) console.error(first.stderr.slice(-4000));
    expect(first.exitCode).toBe(0);
    const summary = JSON.parse(first.stdout) as { runs: SummaryRun[] };
    expect(summary.runs).toHaveLength(4);

    const vs = run(summary.runs, '6.1-vanilla', 'rp-filter-selftest');
    const vm = run(summary.runs, '6.1-vanilla', 'rp-filter-mesos');
    const fs1 = run(summary.runs, '6.1-fixed', 'rp-filter-selftest');
    const fm = run(summary.runs, '6.1-fixed', 'rp-filter-mesos');
    expect([vs.verdict, vm.verdict, fs1.verdict, fm.verdict]).toEqual(['reproduced', 'reproduced', 'not-reproduced', 'not-reproduced']);

    // the write-up's exact line, parsed from the vanilla kernel's log
    const signal = (r: SummaryRun, name: string): SummaryRun['signals'][number] => r.signals.find((x) => x.name === name)!;
    const martians = (r: SummaryRun): unknown[] => signal(r, 'martian').matches.map((m) => ({ src: m.fields?.src, dst: m.fields?.dst, dev: m.fields?.dev }));
    expect(martians(vm)).toContainEqual({ src: '10.53.180.130', dst: '10.53.180.130', dev: 'lo' });
    expect(martians(vs)).toContainEqual({ src: '192.0.2.1', dst: '192.0.2.1', dev: 'lo' });
    expect(martians(fs1)).toEqual([]);
    expect(martians(fm)).toEqual([]);
    expect([vm, vs, fs1, fm].map((r) => signal(r, 'martian').role)).toEqual(['signature', 'signature', 'signature', 'signature']);
    expect([vm, vs, fs1, fm].map((r) => signal(r, 'rp-drop').fired)).toEqual([true, true, false, false]);
    // the drop is counted where it happened
    const rpf = (r: SummaryRun): number =>
      Object.entries(r.counters)
        .filter(([k]) => k.startsWith('delta:') && k.endsWith('.IPReversePathFilter'))
        .reduce((s, [, v]) => s + v, 0);
    expect(rpf(vm)).toBeGreaterThan(0);
    expect(rpf(vs)).toBeGreaterThan(0);
    expect(rpf(fm)).toBe(0);
    // the signature probe failed on vanilla and passed on fixed; controls passed everywhere
    expect(vm.probes.find((p) => p.name === 'host-to-container')?.passed).toBe(false);
    expect(fm.probes.find((p) => p.name === 'host-to-container')?.passed).toBe(true);
    for (const r of [vs, fs1]) expect(r.probes.find((p) => p.name === 'ping-loopback')?.passed).toBe(true);
    // the fib trace shows the reverse lookup on lo resolving to the veth/eth0 nexthop
    expect(signal(vs, 'fib-lo-mismatch').matches.map((m) => m.text).join('\n')).toMatch(/iif 1 proto 0 192\.0\.2\.1\/0 -> 192\.0\.2\.1\/0 .*==> dev veth1/);
    // the raw console is kept and holds the kernel's own line
    expect(fs.readFileSync(vm.files.console, 'utf8')).toContain('martian source 10.53.180.130 from 10.53.180.130, on dev lo');
    expect(vs.kernelInfo.configHash).toBe(fs1.kernelInfo.configHash); // same config, only the patch differs
    // human output: the table and the diff
    expect(first.stderr).toMatch(/reproduced/);
    expect(first.stderr).toMatch(/martian source 10\.53\.180\.130 from 10\.53\.180\.130, on dev lo/);
  });

  it('a second run with a warm cache rebuilds nothing', async () => {
    const second = await cli(['repro', '--json']);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).not.toMatch(/building 6\.1-/);
    expect(second.stderr).toMatch(/kernel 6\.1-vanilla: .*\(cached\)/);
    expect(second.stderr).toMatch(/kernel 6\.1-fixed: .*\(cached\)/);
    const summary = JSON.parse(second.stdout) as { runs: SummaryRun[] };
    expect(summary.runs.map((r) => r.verdict)).toEqual(['reproduced', 'reproduced', 'not-reproduced', 'not-reproduced']);
  });
});
