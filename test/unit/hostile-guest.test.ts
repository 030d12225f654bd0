// A hostile case or guest (issue 20, trust boundary): case regexes cannot hang the host
// (harness/trust/regex.ts), and the guest's result channel is capped (harness/trust/channel.ts).
// The two defect tests run the code under test out of process / against a fake QEMU with a hard
// limit, so that on the old code they fail (within seconds) rather than hang.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parseAgentOutput } from '../../harness/agent/protocol.ts';
import { builtinCases, loadCase } from '../../harness/cases/load.ts';
import { parseTestLine } from '../../harness/observe/kselftest.ts';
import { evaluateSignals, type Observations, type SignalSpec } from '../../harness/observe/signals/index.ts';
import { parseTrace } from '../../harness/observe/trace.ts';
import { decideVerdict } from '../../harness/observe/verdict.ts';
import { boundedLines, type ChannelState, floodReason, LineSplitter, MAX_CHANNEL_LINE_CHARS, readChannel, resultChannelCap, RESULT_CHANNEL_MAX_BYTES, watchChannel } from '../../harness/trust/channel.ts';
import { casePattern, compileCasePattern, MAX_LINE_CHARS, patternProblem } from '../../harness/trust/regex.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const OBS: Observations = { console: '', trace: [], countersBefore: {}, countersAfter: {}, symbols: {}, namespaces: ['host'] };
const ev = (specs: SignalSpec[], o: Partial<Observations>) => evaluateSignals(specs, specs.map((s) => s.name), { ...OBS, ...o });

function caseError(yaml: string): HarnessError {
  const dir = testTempDir('kr-hostile-');
  const file = path.join(dir, 'hostile.yaml');
  fs.writeFileSync(file, yaml);
  try {
    loadCase(file);
  } catch (e) {
    if (e instanceof HarnessError) return e;
    throw new Error(`an untyped error: ${String(e)}`);
  }
  throw new Error('the case loaded');
}

const CASE = (signal: string): string => `
name: hostile
description: a case with a hostile pattern
probes:
  - { name: p, ping: 127.0.0.1 }
signals:
  - { name: s0, kind: log, pattern: "fine" }
  - { name: s1, kind: martian }
  - { name: s2, kind: counter, counter: TcpExt.IPReversePathFilter }
  - ${signal}
signature: { probe: p }
`;

describe('defect 4: a case regex cannot hang the host', () => {
  it('log signal ^(a+)+$ over a guest line of 60 a\'s: evaluated in well under a second (out of process, 8 s limit)', () => {
    // the old code (a JavaScript RegExp) backtracks for ever here (30 a's: 44 s) and SIGINT does nothing
    const dir = testTempDir('kr-hostile-');
    const script = path.join(dir, 'evaluate.ts');
    fs.writeFileSync(
      script,
      `import { evaluateSignals } from ${JSON.stringify(path.join(repoRoot, 'harness/observe/signals/index.ts'))};
const t = Date.now();
const lines = ['[    1.000000] ' + 'a'.repeat(60), '[    1.100000] ' + 'a'.repeat(59) + 'b', '[    1.200000] ' + 'a'.repeat(4096)];
const [r] = evaluateSignals([{ name: 'a', kind: 'log', pattern: '^(a+)+$', min: 1 }], ['a'], { console: lines.join('\\n') + '\\n', trace: [], countersBefore: {}, countersAfter: {}, symbols: {}, namespaces: ['host'] });
console.log(JSON.stringify({ fired: r.fired, count: r.count, ms: Date.now() - t }));
`,
    );
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, timeout: 8000, encoding: 'utf8' });
    const wall = Date.now() - t0;
    expect(r.signal, `killed after ${wall} ms: the pattern hung the evaluation`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { fired: boolean; count: number; ms: number };
    // 60 a's and 4096 a's match, "aaa...b" does not
    expect([out.fired, out.count]).toEqual([true, 2]);
    expect(out.ms).toBeLessThan(1000);
  });

  it('the same in process, and a tracepoint match of nested quantifiers over a long trace line', () => {
    const t = Date.now();
    const [log] = ev([{ name: 'l', kind: 'log', pattern: '^(a+)+$', min: 1 }], { console: `[    1.000000] ${'a'.repeat(60)}\n` });
    const trace = parseTrace(`  ping-1 [000] ..s1. 2.000000: fib_table_lookup: ${'x'.repeat(100_000)}\n`);
    const [tp] = ev([{ name: 't', kind: 'tracepoint', event: 'fib:fib_table_lookup', match: '(x+x+)+y', min: 1 }], { trace });
    expect([log!.fired, tp!.fired]).toEqual([true, false]);
    expect(Date.now() - t).toBeLessThan(2000);
  });

  it('patterns RE2 refuses are bad input at load time, naming the file and the field', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['a lookahead', '{ name: s3, kind: tracepoint, event: "fib:fib_table_lookup", match: "dev (?!lo )" }', /RE2.*\(\?!/],
      ['a lookbehind', '{ name: s3, kind: tracepoint, event: "fib:fib_table_lookup", match: "(?<=a)b" }', /RE2/],
      ['a backreference', '{ name: s3, kind: tracepoint, event: "fib:fib_table_lookup", match: "(a)\\\\1" }', /RE2.*\\1/],
      ['bad syntax', '{ name: s3, kind: tracepoint, event: "fib:fib_table_lookup", match: "(a" }', /RE2.*missing closing/],
      ['an unknown POSIX class', '{ name: s3, kind: log, pattern: "[[:foo:]]" }', /RE2/],
      ['a repeat count above 1000', '{ name: s3, kind: log, pattern: "a{1001}" }', /RE2.*repeat/],
      ['too big a program', '{ name: s3, kind: log, pattern: "[a-z]{999}[a-z]{999}[a-z]{999}" }', /instructions/],
      ['too long', `{ name: s3, kind: tracepoint, event: "fib:fib_table_lookup", match: "${'a'.repeat(301)}" }`, /301 characters/],
      ['a log pattern with \\d (grep -E would not know it)', '{ name: s3, kind: log, pattern: "x\\\\d+" }', /POSIX/],
    ];
    for (const [what, signal, msg] of cases) {
      const e = caseError(CASE(signal));
      const field = signal.includes('kind: log') ? 'signals[3].pattern' : 'signals[3].match';
      expect([what, e.kind, e.exitCode, e.field, path.basename(e.file ?? '')]).toEqual([what, 'bad-input', 2, field, 'hostile.yaml']);
      expect(e.message, what).toMatch(msg);
    }
  });

  it('every built-in and fixture case pattern compiles as RE2 and matches representative lines as the JavaScript pattern did', () => {
    // the JavaScript patterns of the base commit (cb21cbe) where the case now spells them for RE2
    const before: Record<string, string> = {
      'oif 0 iif 1 proto 0 \\S+/0 -> \\S+/0 .*==> dev (?:$|[^l]|l$|l[^o]|lo$|lo[^ ])': 'oif 0 iif 1 proto 0 \\S+/0 -> \\S+/0 .*==> dev (?!lo )',
    };
    // the old harness-side conversion of a log signal's ERE to JavaScript
    const oldToJs = (ere: string): RegExp => {
      const classes: Record<string, string> = { space: '\\s', digit: '0-9', alpha: 'A-Za-z', alnum: 'A-Za-z0-9', upper: 'A-Z', lower: 'a-z', xdigit: '0-9A-Fa-f', punct: '!-/:-@[-`{-~' };
      return new RegExp(ere.replace(/\[:(\w+):\]/g, (m, c: string) => classes[c] ?? m));
    };
    const fib = (iif: string, proto: string, src: string, dev: string, tail = ' gw 0.0.0.0/:: err 0'): string =>
      `table 255 oif 0 iif ${iif} proto ${proto} ${src}/0 -> ${src}/0 tos 0 scope 0 flags 0 ==> dev ${dev}${tail}`;
    const lines = [
      ...['lo', 'eth0', 'veth1', '-', 'l', 'lol', 'lo0', 'mesos1', ''].flatMap((d) => [fib('1', '0', '192.0.2.1', d), fib('1', '0', '10.53.180.130', d, ''), fib('3', '0', '192.0.2.1', d), fib('1', '6', '192.0.2.1', d)]),
      fib('1', '0', '192.0.2.1', 'lo', ' '),
      fib('1', '0', '192.0.2.1', 'l', ' '),
      fib('1', '58', '2001:db8:1::1', 'lo', ' gw :: err 0').replace('table 255', 'table 254'),
      'table 255 oif 0 iif 1 proto 58 2001:db8:1::1/0 -> 2001:db8:1::1/0 tos 0 scope 0 flags 0 ==> dev lo gw :: err 0',
      'oif 0 iif 1 proto 58 2001:db8:1::1/0 -> 2001:db8:1::1/0',
      'IPv4: martian source 192.0.2.1 from 192.0.2.1, on dev lo',
      'martian source 10.53.180.130 from 10.53.180.130, on dev lo',
      'WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 x',
      'll header: 00000000: 00 00 00 00 00 00 00 00 00 00 00 00 08 00',
      '',
    ];
    const refs = [...builtinCases().map((n) => path.join(repoRoot, 'cases', `${n}.yaml`)), ...fs.readdirSync(path.join(repoRoot, 'test/fixtures/cases')).map((f) => path.join(repoRoot, 'test/fixtures/cases', f))];
    let patterns = 0;
    for (const file of refs) {
      for (const s of loadCase(file).def.signals) {
        const p = s.kind === 'log' ? s.pattern : s.kind === 'tracepoint' ? s.match : undefined;
        if (p === undefined) continue;
        patterns++;
        const re2 = compileCasePattern(p);
        const js = s.kind === 'log' ? oldToJs(before[p] ?? p) : new RegExp(before[p] ?? p);
        const hits = lines.filter((l) => re2.test(l));
        expect(hits.length, `${path.basename(file)} ${s.name}: /${p}/ matches none of the representative lines`).toBeGreaterThan(0);
        for (const l of lines) expect([file, s.name, l, re2.test(l)]).toEqual([file, s.name, l, js.test(l)]);
        // and on generated fib lines around the "dev lo" boundary
        fc.assert(
          fc.property(fc.constantFrom('1', '2'), fc.stringMatching(/^[lo0 a-]{0,5}$/), fc.constantFrom('', ' ', ' gw 0.0.0.0/:: err 0'), (iif, dev, tail) => {
            const l = fib(iif, '0', '192.0.2.1', dev, tail);
            return re2.test(l) === js.test(l);
          }),
          { numRuns: 300, seed: 20 },
        );
      }
    }
    expect(patterns).toBeGreaterThanOrEqual(5);
  });

  it('ERE bracket classes mean on the harness side what they meant before', () => {
    for (const [p, yes, no] of [
      ['WARNING: CPU:[[:space:]][0-9]+', 'WARNING: CPU: 0 PID', 'WARNING: CPU:x0'],
      ['^[[:alpha:]]+[[:digit:]]{2}$', 'eth01', 'eth1'],
      ['[[:upper:]][[:lower:]]+ [[:xdigit:]]+', 'Code 0f3a', 'code zz'],
      ['refused|dropped', 'packet dropped', 'packet passed'],
    ] as const) {
      expect(patternProblem(p)).toBeNull();
      const re = compileCasePattern(p);
      expect([p, re.test(yes), re.test(no)]).toEqual([p, true, false]);
    }
  });

  it('lines are matched on their first 4096 characters; a pathological pattern stops at the run budget with an incomplete, error verdict', () => {
    const long = `x${'a'.repeat(MAX_LINE_CHARS)}END`;
    expect(compileCasePattern('END').test(long)).toBe(false);
    expect(compileCasePattern('^xa+$').test(long)).toBe(true);
    // [ab]*a[ab]{900}$ (906 instructions) over random a/b lines: more DFA states than re2js caches,
    // 0.2-0.6 s per 4 KiB line: linear, but slow; the run's budget stops it
    let seed = 1;
    const ab = (): string => Array.from({ length: MAX_LINE_CHARS }, () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 1024 ? 'a' : 'b')).join('');
    const con = Array.from({ length: 100 }, (_, i) => `[ ${i}.000000] ${ab()}`).join('\n');
    const t = Date.now();
    const [s] = evaluateSignals([{ name: 'slow', kind: 'log', pattern: '[ab]*a[ab]{900}$', min: 1 }], ['slow'], { ...OBS, console: con, matchDeadline: Date.now() + 300 });
    expect(Date.now() - t).toBeLessThan(3000);
    expect(s!.incomplete).toMatch(/ran out of the 1000 ms .* after \d+ of 100 lines/);
    const v = decideVerdict({
      signature: { probe: 'p', when: 'fail' },
      controlProbes: [],
      report: { hello: { kernel: 'k', uptimeMs: 1 }, done: true, probes: [{ name: 'p', ns: 'host', rc: 1, passed: false, durationMs: 1, stoppedEarly: false, output: '' }] },
      signals: [{ name: 'slow', kind: 'log', role: 'signature', description: '', fired: false, count: 0, matches: [], incomplete: s!.incomplete! }],
      panic: null,
      vmTimedOut: false,
      deadlineMs: 60_000,
    });
    expect(v.verdict).toBe('error');
    expect(v.reason).toMatch(/signal slow was not read to the end/);
  });

  it('any string either is refused with a message or compiles and matches any line quickly (never an exception)', () => {
    const schema = casePattern(300);
    fc.assert(
      fc.property(fc.string({ maxLength: 40, unit: fc.constantFrom('a', 'b', '(', ')', '*', '+', '?', '{', '}', '1', ',', '[', ']', ':', '^', '$', '\\', '|', '.', '-', 'alpha', '?!', '?<', 'P<n>') }), fc.string({ maxLength: 200 }), (p, line) => {
        const r = schema.safeParse(p);
        if (!r.success) return typeof r.error.issues[0]?.message === 'string';
        const t = Date.now();
        compileCasePattern(p).test(line);
        return Date.now() - t < 500;
      }),
      { numRuns: 500, seed: 4 },
    );
  });

  it('kselftest TEST lines are parsed as the old regex did, in linear time', () => {
    const OLD = /^\s*TEST:\s+(.*?)\s*\[\s*(OK|FAIL|SKIP|XFAIL)\s*\]\s*$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 24, unit: fc.constantFrom(' ', '\t', '\r', 'TEST:', 'TEST', ':', '[', ']', 'OK', 'FAIL', 'SKIP', 'XFAIL', 'x', '[ OK ]') }), (l) => {
        const m = OLD.exec(l);
        const n = parseTestLine(l);
        return m ? n !== null && n.what === m[1]!.trim() && n.status === m[2] : n === null;
      }),
      { numRuns: 3000, seed: 7 },
    );
    const t = Date.now();
    expect(parseTestLine(`TEST: ${' '.repeat(1_000_000)}x`)).toBeNull(); // the old regex: 28 s on 4096 spaces
    expect(parseTestLine(`  TEST: rp_filter passes local packets ${' '.repeat(100_000)}[ OK ]`)).toEqual({ what: 'rp_filter passes local packets', status: 'OK' });
    expect(Date.now() - t).toBeLessThan(500);
  });
});

/** A stand-in for qemu-system-x86_64: answers QMP, reports hello/ready on the result channel, then floods it. */
const FAKE_QEMU = `#!/usr/bin/env node
import fs from 'node:fs';
import net from 'node:net';
const args = process.argv.slice(2);
let results = null, qmp = null;
for (let i = 0; i < args.length; i++) {
  const m = /^file,id=res,path=(.*)$/.exec(args[i]);
  if (m) results = m[1];
  if (args[i] === '-qmp') qmp = /^unix:([^,]+)/.exec(args[i + 1])[1];
}
process.stdin.on('data', () => {});
setTimeout(() => process.exit(0), 20000).unref(); // never outlives a killed test
process.stdin.on('error', () => {});
console.log('[    0.000000] Linux version 6.1.0-fake');
const mode = process.env.FAKE_GUEST || 'lines';
let running = false, started = false;
function start() {
  if (started) return;
  started = true;
  const fd = fs.openSync(results, 'a');
  fs.writeSync(fd, '@@KR hello kernel=fake uptime_ms=1\\n@@KR ready uptime_ms=2\\n');
  // ~25 MiB/s, and never more than 64 MiB (the old code reads until its deadline)
  const chunk = Buffer.from(mode === 'lines' ? ('@@KR warn ' + 'x'.repeat(1000) + '\\n').repeat(256) : 'y'.repeat(256 * 1024));
  let total = 0;
  const t = setInterval(() => {
    if (total >= 64 * 1024 * 1024) return clearInterval(t);
    fs.writeSync(fd, chunk);
    total += chunk.length;
  }, 10);
}
if (qmp) {
  net.createServer((s) => {
    s.write(JSON.stringify({ QMP: { version: {}, capabilities: [] } }) + '\\n');
    let buf = '';
    s.on('error', () => {});
    s.on('data', (c) => {
      buf += c;
      let nl;
      while ((nl = buf.indexOf('\\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg;
        try { msg = JSON.parse(line); } catch { continue; }
        if (msg.execute === 'cont') { running = true; start(); }
        s.write(JSON.stringify({ return: msg.execute === 'query-status' ? { status: running ? 'running' : 'paused' } : {} }) + '\\n');
      }
    });
  }).listen(qmp);
} else start();
`;

describe('defect 8: the guest result channel is capped', () => {
  for (const mode of ['lines', 'endless'] as const)
    it(`a guest flooding its result channel (${mode === 'lines' ? 'record lines' : 'one endless line'}) is stopped within seconds of the cap, with a typed outcome naming the channel and the cap (out of process, 25 s limit)`, () => {
      // the old code let the guest write until its deadline, read the whole file into memory, and
      // (writer faster than its reader) could keep the event loop busy so that the deadline never fired
      const dir = testTempDir('kr-flood-');
      const qemu = path.join(dir, 'qemu-system-x86_64');
      fs.writeFileSync(qemu, FAKE_QEMU, { mode: 0o755 });
      const script = path.join(dir, 'session.mts');
      fs.writeFileSync(
        script,
        `import fs from 'node:fs';
const { runSession } = await import(${JSON.stringify(path.join(repoRoot, 'harness/vm/session.ts'))});
const dir = ${JSON.stringify(dir)};
const t0 = Date.now();
const r = await runSession({
  spec: { accel: 'tcg', machine: 'microvm', kernel: dir + '/vmlinux', initrd: dir + '/initrd' },
  bundle: Buffer.from('true\\n'),
  deadlineMs: 8000,
  consoleFile: dir + '/console.log',
  resultsFile: dir + '/results.txt',
  snapshots: null,
});
fs.writeFileSync(dir + '/out.json', JSON.stringify({ wall: Date.now() - t0, timedOut: r.timedOut, channel: r.resultsChannel ?? null, results: r.results, fileBytes: fs.statSync(dir + '/results.txt').size, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
process.exit(0);
`,
      );
      const env = { ...process.env, KERNEL_REPRO_QEMU: qemu, FAKE_GUEST: mode, KERNEL_REPRO_RESULTS_MAX_BYTES: String(1024 * 1024) };
      const t0 = Date.now();
      const c = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, env, timeout: 25_000, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const wall = Date.now() - t0;
      expect(c.signal, `killed after ${wall} ms: the flood hung the session`).toBeNull();
      expect(c.status, c.stderr).toBe(0);
      const r = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')) as { wall: number; timedOut: boolean; channel: ChannelState | null; results: string; fileBytes: number; maxRssMb: number };
      console.log(`flood (${mode}): stopped after ${r.wall} ms, seen at ${r.channel?.floodedAtMs} ms, file ${r.fileBytes} bytes, read ${r.results.length}, peak RSS ${r.maxRssMb} MB`);
      expect(r.timedOut, `the guest ran to its 8 s deadline (${r.wall} ms)`).toBe(false);
      expect(r.channel).toMatchObject({ flooded: true, truncated: true, capBytes: 1024 * 1024 });
      expect(r.wall).toBeLessThan(4000);
      expect(r.channel!.floodedAtMs!).toBeLessThan(3000);
      expect(Buffer.byteLength(r.results)).toBeLessThanOrEqual(1024 * 1024);
      // the file stopped growing soon after the cap: ~25 MiB/s for at most the 0.1 s poll and the kill
      expect(r.fileBytes).toBeLessThan(12 * 1024 * 1024);
      const report = parseAgentOutput(r.results);
      expect(report.hello?.kernel).toBe('fake');
      const why = floodReason('result channel (ttyS1)', r.channel!);
      expect(why).toMatch(/^guest flooded the result channel \(ttyS1\) past 1 MiB: stopped after \d+\.\d s/);
      const v = decideVerdict({ signature: { probe: 'p', when: 'fail' }, controlProbes: [], report, signals: [], panic: null, vmTimedOut: r.timedOut, deadlineMs: 8000, flood: why });
      expect(v).toEqual({ verdict: 'error', reason: why });
    }, 40_000);

  it('the watcher sees a file written by another process pass the cap within a fraction of a second', async () => {
    const dir = testTempDir('kr-flood-');
    const file = path.join(dir, 'channel');
    fs.writeFileSync(file, '');
    // a writer at ~20 MiB/s, stopped by the watcher
    const child = spawn('sh', ['-c', `while :; do yes y | head -c 262144; sleep 0.01; done >> ${file}`], { detached: true, stdio: 'ignore' });
    const t0 = Date.now();
    const seen = await new Promise<number>((resolve) => {
      const w = watchChannel(file, 2 * 1024 * 1024, (bytes) => {
        process.kill(-child.pid!, 'SIGKILL');
        resolve(bytes);
        w.stop();
      });
    });
    expect(seen).toBeGreaterThan(2 * 1024 * 1024);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('the bounded reader reads at most the cap, cut at a whole line, and says so', () => {
    const dir = testTempDir('kr-flood-');
    const file = path.join(dir, 'results.txt');
    fs.writeFileSync(file, '@@KR hello kernel=k uptime_ms=1\n' + `@@KR warn ${'z'.repeat(100)}\n`.repeat(20_000));
    const r = readChannel(file, 64 * 1024);
    expect(r.state).toMatchObject({ truncated: true, flooded: false, capBytes: 64 * 1024, bytes: fs.statSync(file).size });
    expect(r.text.length).toBeLessThanOrEqual(64 * 1024);
    expect(r.text.endsWith('\n')).toBe(true);
    expect(readChannel(path.join(dir, 'none')).state.bytes).toBe(0);
    const small = readChannel(file, 10 * 1024 * 1024);
    expect(small.state.truncated).toBe(false);
    expect(resultChannelCap({})).toBe(RESULT_CHANNEL_MAX_BYTES);
    expect(resultChannelCap({ KERNEL_REPRO_RESULTS_MAX_BYTES: '1048576' })).toBe(1024 * 1024);
    expect(resultChannelCap({ KERNEL_REPRO_RESULTS_MAX_BYTES: '12' })).toBe(RESULT_CHANNEL_MAX_BYTES); // below the floor
  });

  it('lines are bounded: the splitter never holds more than the line cap, the parser cuts and counts long lines', () => {
    const s = new LineSplitter();
    let out: string[] = [];
    for (let i = 0; i < 200; i++) out = out.concat(s.push('q'.repeat(64 * 1024)));
    expect(out).toEqual([]);
    expect(s.push('\n@@KR done uptime_ms=5\n')).toEqual(['q'.repeat(MAX_CHANNEL_LINE_CHARS), '@@KR done uptime_ms=5']);
    expect(s.longLines).toBe(1);
    const report = parseAgentOutput(`@@KR hello kernel=${'k'.repeat(10_000)} uptime_ms=1\n@@KR begin trace\n${'t'.repeat(10_000)}\n@@KR end trace\n@@KR done uptime_ms=2\n`);
    expect(report.longLines).toBe(2);
    expect(report.sections.trace!.length).toBe(MAX_CHANNEL_LINE_CHARS);
    expect(report.done).toBe(true);
    expect(boundedLines('a\nbb\n', 1)).toEqual({ lines: ['a', 'b', ''], longLines: 1 });
  });
});

describe('the agent parser keeps what the guest can multiply bounded', () => {
  it('at most 100 warnings (then one line counting the rest) and 1000 records of a kind', () => {
    const r = parseAgentOutput('@@KR warn w\n'.repeat(5000) + '@@KR probe p rc=0 pass=1 ms=1\n'.repeat(3000));
    expect(r.warnings.length).toBe(101);
    expect(r.warnings[100]).toBe('... and 4900 more warning(s) from the guest (the first 100 are kept)');
    expect(r.probes.length).toBe(1000);
  });
});

describe('a console line without an end (the guest controls ttyS0)', () => {
  it('is handed to onLine in pieces of at most 4096 characters, none lost', async () => {
    const { run } = await import('../../harness/util/proc.ts');
    const lines: string[] = [];
    const r = await run('sh', ['-c', "head -c 100000 /dev/zero | tr '\\0' a; printf '\\nend\\n'"], { timeoutMs: 20_000, onLine: (l) => lines.push(l) });
    expect(r.exitCode).toBe(0);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(4096);
    expect(lines.filter((l) => l !== 'end').join('')).toBe('a'.repeat(100000));
    expect(lines.at(-1)).toBe('end');
  });
});
