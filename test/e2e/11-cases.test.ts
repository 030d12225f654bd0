// End to end: every built-in case of the open case language on both 6.1 kernels (matrices/cases.yaml),
// asserting on what the kernels really did: UDP with packet captures, the drop reason and the
// function that dropped the packet, IPv6 lookups, nftables in a kernel variant with the case's
// kconfig merged in, and the kernel's own kselftest from its tree, read result by result.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const out = fileTempDir('kr-cases-');
interface Signal { name: string; role: string; fired: boolean; count: number; matches: Array<{ text: string; fields?: Record<string, string | number> }> }
interface Run {
  verdict: string;
  reason: string;
  probes: Array<{ name: string; passed: boolean; output: string; parent?: string }>;
  signals: Signal[];
  captures: Array<{ name: string; packets: number; file: string; summary: string[] }>;
  kernelInfo: { caseConfig?: string[]; configHash: string };
  files: { results: string };
}
let cells: Array<{ kernel: string; case: string; verdict: string; expected: string | null; unexpected: boolean; run: Run }>;
let stdout = '';

beforeAll(async () => {
  const r = await cli(['matrix', '--matrix', 'matrices/cases.yaml', '--results', out, '-j', '2']);
  stdout = r.stdout;
  if (r.exitCode !== 0) console.error(r.stdout.slice(-3000), r.stderr.slice(-4000));
  expect(r.exitCode).toBe(0);
  cells = (JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as { cells: typeof cells }).cells;
}, 60 * 60_000);

afterAll(() => {
  if (process.env.KERNEL_REPRO_KEEP_TMP) console.log(`results kept in ${out}`);
});

const cell = (kernel: string, kcase: string): Run => {
  const c = cells.find((x) => x.kernel === kernel && x.case === kcase);
  if (!c) throw new Error(`no cell ${kernel} x ${kcase}`);
  return c.run;
};
const signal = (r: Run, name: string): Signal => r.signals.find((s) => s.name === name)!;
const probe = (r: Run, name: string) => r.probes.find((p) => p.name === name)!;

describe('the built-in cases on both kernels (matrices/cases.yaml)', () => {
  it('every cell gives the verdict measured and written in its case file', () => {
    expect(cells).toHaveLength(14);
    for (const c of cells) expect(`${c.kernel} ${c.case} ${c.verdict}`).toBe(`${c.kernel} ${c.case} ${c.expected}`);
    expect(stdout).toMatch(/unexpected verdicts: 0/);
  });

  it('UDP: the vanilla kernel drops the reply as a martian; the captures show the request and the reply on the wire', () => {
    const v = cell('6.1-vanilla', 'rp-filter-mesos-udp');
    const f = cell('6.1-fixed', 'rp-filter-mesos-udp');
    expect(signal(v, 'martian').matches[0]?.fields).toMatchObject({ src: '10.53.180.130', dst: '10.53.180.130', dev: 'lo' });
    expect(signal(v, 'rp-drop').fired).toBe(true);
    expect(signal(f, 'martian').fired).toBe(false);
    for (const r of [v, f]) {
      const wire = r.captures.find((c) => c.name === 'mesos1')!;
      expect(wire.packets).toBeGreaterThan(0);
      expect(fs.statSync(wire.file).size).toBeGreaterThan(24); // more than a pcap header
      expect(wire.summary.join('\n')).toMatch(/IP 10\.53\.180\.130\.\d+ > 10\.53\.180\.130\.31745: UDP/); // the request
      expect(wire.summary.join('\n')).toMatch(/IP 10\.53\.180\.130\.31745 > 10\.53\.180\.130\.\d+: UDP/); // the server's reply
    }
    expect(probe(v, 'host-to-container').passed).toBe(false);
    expect(probe(f, 'host-to-container').output).toContain('kernel-repro-ok');
    // the decoded packets are in report.txt and in the HTML evidence too
    expect(fs.readFileSync(path.join(out, 'report.txt'), 'utf8')).toMatch(/capture mesos1 \(host:mesos1, \d+ packets[^\n]*\n\s+\d+\.\d+ IP/);
    expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/<h4>Capture mesos1 \(host:mesos1, \d+ packets\)<\/h4>/);
  });

  it('drop reason: IP_RPFILTER in ip_rcv_finish_core on vanilla only, with no martian line (log_martians=0)', () => {
    const v = cell('6.1-vanilla', 'rp-filter-dropreason');
    const f = cell('6.1-fixed', 'rp-filter-dropreason');
    expect(signal(v, 'rpfilter-drop').matches[0]?.text).toMatch(/^IP_RPFILTER at ip_rcv_finish_core[.+]/);
    expect(signal(v, 'martian-line').fired).toBe(false);
    expect(signal(v, 'rp-drop').fired).toBe(true);
    expect(signal(f, 'rpfilter-drop').fired).toBe(false);
  });

  it('IPv6: both kernels answer; the echo is looked up on lo by its destination only', () => {
    for (const k of ['6.1-vanilla', '6.1-fixed']) {
      const r = cell(k, 'rp-filter-selftest-ipv6');
      expect(probe(r, 'ping6-local').passed).toBe(true);
      expect(signal(r, 'v6-addr-errors').fired).toBe(false);
      expect(signal(r, 'fib6-on-lo').matches[0]?.text).toMatch(/oif 0 iif 1 proto 58 2001:db8:1::1\/0 -> 2001:db8:1::1\/0/);
    }
  });

  it('nftables: a kernel variant with the case\'s options merged in; the fib rule drops nothing on either kernel', () => {
    const plain = cell('6.1-vanilla', 'rp-filter-mesos');
    for (const k of ['6.1-vanilla', '6.1-fixed']) {
      const r = cell(k, 'rp-filter-mesos-nft');
      expect(r.kernelInfo.caseConfig).toEqual(expect.arrayContaining(['CONFIG_NF_TABLES', 'CONFIG_NFT_FIB_INET']));
      expect(r.kernelInfo.configHash).not.toBe(plain.kernelInfo.configHash);
      expect(probe(r, 'host-to-container').passed).toBe(true);
      expect(probe(r, 'nft-ruleset').output).toMatch(/fib saddr \. iif oif missing counter packets 0 bytes 0 drop/);
      expect(signal(r, 'nf-drop').fired).toBe(false);
      // the case's own command ran before the probes and ended as expected
      expect(fs.readFileSync(r.files.results, 'utf8')).toMatch(/@@KR step exec:ruleset-loaded rc=0 ok=1 /);
    }
  });

  it('the kernel\'s own fib_tests.sh -t rp_filter, from its tree: its TEST lines are results of their own', () => {
    const v = cell('6.1-vanilla', 'kselftest-fib-rp-filter');
    const f = cell('6.1-fixed', 'kselftest-fib-rp-filter');
    expect(probe(v, 'fib_tests').output).toMatch(/TEST: rp_filter passes local packets\s+\[FAIL\]/);
    expect(probe(v, 'fib_tests/rp_filter-passes-local-packets')).toMatchObject({ passed: false, parent: 'fib_tests' });
    expect(probe(v, 'fib_tests/rp_filter-passes-loopback-packets').passed).toBe(true);
    expect(probe(f, 'fib_tests/rp_filter-passes-local-packets').passed).toBe(true);
    expect(signal(v, 'rpfilter-drop').matches[0]?.text).toMatch(/^IP_RPFILTER at ip_rcv_finish_core/);
  });
});

describe('guest packages behave as installed', () => {
  it("iptables is the nf_tables alternative (its postinst's update-alternatives read), and /etc/protocols and /etc/services are there", async () => {
    const results = path.join(out, 'installed-packages');
    const r = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'test/fixtures/cases/installed-packages.yaml', '--json', '--results', results]);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    const run = (JSON.parse(r.stdout) as { runs: Run[] }).runs[0]!;
    expect(run.probes.map((p) => `${p.name}:${p.passed}`)).toEqual(['iptables-is-nft:true', 'protocols:true', 'services:true']);
    expect(run.verdict).toBe('reproduced');
  });
});

describe('servers bound to an address, and IPv6-only', () => {
  it('a v6-only server on [::] answers ::1, not 127.0.0.1; a UDP server bound to 127.0.0.2 answers there only', async () => {
    const results = path.join(out, 'server-bind');
    const r = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'test/fixtures/cases/server-bind.yaml', '--json', '--results', results]);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    const run = (JSON.parse(r.stdout) as { runs: Run[] }).runs[0]!;
    expect(run.probes.map((p) => `${p.name}:${p.passed}`)).toEqual(['v6:true', 'v4:false', 'lo2:true', 'lo1:false']);
  });
});
