// The observation part of the case language (issue 21): the `splat` signal kind, `signature.absent`,
// tracepoints `during` the steps, probe source ports and absence tokens on probes and steps.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { caseMessages, parseSplats, PHASE_MARK, SPLAT_MAX_LINES, splatWatch } from '../../harness/observe/splat.ts';
import { evaluateSignals, signalSchema, type SignalResult } from '../../harness/observe/signals/index.ts';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import { detectPanic } from '../../harness/observe/panic.ts';
import type { Observations } from '../../harness/observe/signals/types.ts';
import { parseTrace, tracePhases, unavailableTracepoints } from '../../harness/observe/trace.ts';
import { caseSchema, type CaseDef } from '../../harness/cases/schema.ts';
import { probeCommand, renderCase, shq } from '../../harness/cases/render.ts';
import { caseNeeds } from '../../harness/cases/needs.ts';
import { signalState } from '../../harness/report/outcome.ts';
import { repoRoot } from '../../harness/util/paths.ts';

const fixture = (name: string): string => fs.readFileSync(path.join(__dirname, '../fixtures/splats', name), 'utf8');

function obs(consoleText: string, extra: Partial<Observations> = {}): Observations {
  return { console: consoleText, trace: [], countersBefore: {}, countersAfter: {}, symbols: {}, namespaces: ['host'], ...extra };
}

describe('parseSplats', () => {
  const splats = parseSplats(fixture('x86-6.1.txt'));

  it('finds every splat of the case window, typed, with its function and phase', () => {
    expect(splats.map((s) => [s.type, s.kind ?? null, s.function, s.phase])).toEqual([
      ['refcount', 'underflow', 'fib6_info_release', 'steps'],
      ['warn', null, 'fib6_add_rt2node', 'probes'],
      ['kasan', 'slab-use-after-free', 'ip6_dst_ifdown', 'probes'],
      ['ubsan', 'shift-out-of-bounds', 'fib_table_lookup', 'probes'],
      ['bug', 'kernel BUG', 'skb_segment', 'after'],
    ]);
  });

  it('leaves out what the kernel printed before the case began (a boot-time WARN)', () => {
    expect(splats.some((s) => s.function === 'boot_time_warn')).toBe(false);
    // a console without markers (an older agent) counts whole
    const noMarks = fixture('x86-6.1.txt').split('\n').filter((l) => !l.includes('kernel-repro: phase')).join('\n');
    expect(parseSplats(noMarks)[0]!.function).toBe('boot_time_warn');
    expect(caseMessages(noMarks)[0]!.phase).toBeUndefined();
  });

  it('reads where: file, line and the symbol of the WARNING line; a BUG its RIP line', () => {
    const w = splats[1]!;
    expect([w.file, w.line, w.at]).toEqual(['net/ipv6/ip6_fib.c', 1234, 'fib6_add_rt2node+0x5e6/0x8c0']);
    const r = splats[0]!;
    expect([r.file, r.line, r.at]).toEqual(['lib/refcount.c', 28, 'refcount_warn_saturate+0xba/0x110']);
    const b = splats[4]!;
    expect([b.file, b.line, b.at]).toEqual(['net/core/skbuff.c', 4321, 'skb_segment+0xe2d/0xe70']);
    expect(splats[2]!.at).toBe('ip6_dst_ifdown+0x1a/0x120');
    expect(splats[3]!.file).toBe('net/ipv4/fib_trie.c');
  });

  it('keeps the header and the call trace as evidence, not the registers', () => {
    const r = splats[0]!;
    expect(r.excerpt[0]).toBe('refcount_t: underflow; use-after-free.');
    expect(r.excerpt).toContain(' ip6_route_del+0x2a1/0x3c0');
    expect(r.excerpt).toContain('Call Trace:');
    expect(r.excerpt.at(-1)).toMatch(/^---\[ end trace/);
    expect(r.excerpt.some((l) => /^(?:RSP|RAX|Code|Modules|Hardware)/.test(l))).toBe(false);
    const k = splats[2]!;
    expect(k.excerpt).toContain('Read of size 8 at addr ffff888003c4e8a0 by task kworker/0:1/12');
    expect(k.excerpt).toContain('Allocated by task 77:');
    expect(k.excerpt.some((l) => /Memory state|fb fb fb/.test(l))).toBe(false);
    expect(splats[3]!.excerpt[1]).toMatch(/^shift exponent 64/);
  });

  it('bounds each splat to SPLAT_MAX_LINES lines', () => {
    const frames = Array.from({ length: 500 }, (_, i) => ` f${i}+0x1/0x2`);
    const text = ['kernel-repro: phase probes', 'WARNING: CPU: 0 PID: 1 at a.c:1 g+0x1/0x2', 'Call Trace:', ...frames, '---[ end trace 0 ]---'].join('\n');
    const [s, ...rest] = parseSplats(text);
    expect(s!.excerpt.length).toBe(SPLAT_MAX_LINES);
    expect(rest).toEqual([]);
  });

  it('an Oops after "BUG: ..." is part of it; the faulting function is the RIP line\'s', () => {
    const s = parseSplats(fixture('null-deref.txt'));
    expect(s.map((x) => [x.type, x.function, x.kind])).toEqual([['bug', 'fib_nh_match', 'kernel NULL pointer dereference, address: 0000000000000018']]);
  });

  it('a refcount_t whose message follows its WARNING line (arm64), and one printed before "cut here"', () => {
    expect(parseSplats(fixture('arm64-refcount.txt')).map((x) => [x.type, x.kind, x.function])).toEqual([['refcount', 'underflow', 'in_dev_put']]);
    const before = ['refcount_t: saturated; leaking memory.', '------------[ cut here ]------------', 'WARNING: CPU: 3 PID: 7502 at lib/refcount.c:77 refcount_add_not_zero+0x65/0x70', 'Call Trace:', ' dst_hold+0x10/0x20', '---[ end trace 0 ]---'].join('\n');
    expect(parseSplats(before).map((x) => [x.type, x.kind, x.function, x.line])).toEqual([['refcount', 'saturated', 'dst_hold', 77]]);
  });

  it('a lockdep WARNING is a warn splat naming its first function outside the reporting code', () => {
    const t = ['WARNING: possible recursive locking detected', '6.1.0 #1 Not tainted', 'Call Trace:', ' <TASK>', ' dump_stack_lvl+0x45/0x5e', ' __lock_acquire+0x1/0x2', '---[ end trace 0 ]---'].join('\n');
    expect(parseSplats(t).map((x) => [x.type, x.function])).toEqual([['warn', '__lock_acquire']]);
  });

  it('the agent writes the marks the parser windows by', () => {
    const agent = fs.readFileSync(path.join(repoRoot, 'images/agent/agent.sh'), 'utf8');
    expect(agent).toContain(`echo "<5>${PHASE_MARK}$1" > /dev/kmsg`);
    expect(agent).toContain(`echo "${PHASE_MARK}$1" > "$KR_TRACEFS/trace_marker"`);
    expect(fs.readFileSync(path.join(repoRoot, 'images/agent/init'), 'utf8')).toMatch(/kr_recv_case .*\n(?:#.*\n)*kr_phase setup\n/);
  });

  it('BUG: KASAN is kasan, not bug; the watch patterns tell them apart too', () => {
    expect(parseSplats('BUG: KASAN: use-after-free in foo+0x1/0x2\n').map((x) => x.type)).toEqual(['kasan']);
    expect(parseSplats('BUG: KASAN: invalid-access\n').map((x) => [x.type, x.function])).toEqual([['kasan', null]]);
    const bug = new RegExp(splatWatch('bug'));
    expect(bug.test('BUG: KASAN: use-after-free in x')).toBe(false);
    expect(bug.test('BUG: kernel NULL pointer dereference')).toBe(true);
    expect(bug.test('kernel BUG at a.c:1!')).toBe(true);
    expect(new RegExp(splatWatch('warn')).test('WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2')).toBe(true);
  });
});

describe('signal kind splat', () => {
  const parse = (x: unknown) => signalSchema.parse(x);
  const run = (specs: unknown[], text: string, signature: string[] = [], absent: string[] = []): SignalResult[] =>
    evaluateSignals(specs.map(parse), signature, obs(text), absent);
  const text = fixture('x86-6.1.txt');

  it('type filters, `any` takes all', () => {
    const r = run([{ name: 'a', kind: 'splat' }, { name: 'w', kind: 'splat', type: 'warn' }, { name: 'k', kind: 'splat', type: 'kasan' }, { name: 'u', kind: 'splat', type: 'ubsan' }, { name: 'b', kind: 'splat', type: 'bug' }, { name: 'r', kind: 'splat', type: 'refcount' }], text);
    expect(r.map((x) => [x.name, x.count])).toEqual([['a', 5], ['w', 1], ['k', 1], ['u', 1], ['b', 1], ['r', 1]]);
  });

  it('function: an RE2 pattern on the whole C name', () => {
    const r = run([
      { name: 'fib6', kind: 'splat', function: 'fib6_.*' },
      { name: 'part', kind: 'splat', function: 'fib6' },
      { name: 'cold', kind: 'splat', type: 'ubsan', function: 'fib_table_lookup' },
    ], text);
    expect(r.map((x) => [x.name, x.fired, x.count])).toEqual([['fib6', true, 2], ['part', false, 0], ['cold', true, 1]]);
    expect(r[0]!.matches[0]!.fields).toMatchObject({ type: 'refcount', function: 'fib6_info_release', phase: 'steps', file: 'lib/refcount.c', line: 28 });
    expect(r[0]!.matches[0]!.excerpt?.length).toBeGreaterThan(5);
  });

  it('refuses a pattern RE2 refuses, naming the field', () => {
    const bad = signalSchema.safeParse({ name: 'x', kind: 'splat', function: '(?=a)' });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(bad.error.issues[0]!.path).toEqual(['function']);
    expect(signalSchema.safeParse({ name: 'x', kind: 'splat', type: 'oops' }).success).toBe(false);
  });

  it('min: fired only from that many', () => {
    expect(run([{ name: 'a', kind: 'splat', min: 6 }], text)[0]!.fired).toBe(false);
  });

  it('stops at the matching budget and says so', () => {
    const r = evaluateSignals([parse({ name: 'f', kind: 'splat', function: 'x.*' })], ['f'], obs(text, { matchDeadline: Date.now() - 1 }));
    expect(r[0]!.incomplete).toMatch(/ran out/);
  });
});

describe('verdict: splats and a crash', () => {
  const probes = [{ name: 'p', ns: 'host', rc: 1, passed: false, durationMs: 1, output: '', stoppedEarly: false, timedOut: false }];
  const sig = (name: string, kind: string, role: SignalResult['role'], fired: boolean, extra: Partial<SignalResult> = {}): SignalResult => ({ name, kind, role, description: name, fired, count: fired ? 1 : 0, matches: fired ? [{ text: `${name} evidence` }] : [], ...extra });
  const base = (over: Partial<VerdictInput>): VerdictInput => ({
    signature: { probe: 'p', when: 'fail' },
    controlProbes: [],
    report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes },
    signals: [],
    panic: null,
    vmTimedOut: false,
    deadlineMs: 1000,
    ...over,
  });
  const crash = detectPanic(fixture('null-deref.txt'));

  it('a kernel that dies on the splat the signature names: reproduced from the splat', () => {
    expect(crash?.kind).toBe('panic');
    const v = decideVerdict(base({ panic: crash, report: { hello: { kernel: 'x', uptimeMs: 1 }, done: false, probes: [] }, signals: [sig('oops', 'splat', 'signature', true)] }));
    expect(v.verdict).toBe('reproduced');
    expect(v.reason).toMatch(/oops ×1 .*Kernel panic/);
  });

  it('a crash the signature does not name stays a panic', () => {
    expect(decideVerdict(base({ panic: crash, signals: [sig('oops', 'splat', 'signature', false)] })).verdict).toBe('panic');
    expect(decideVerdict(base({ panic: crash, signals: [sig('m', 'martian', 'signature', true)] })).verdict).toBe('panic');
    // an absent splat that fired: the crash is what the fixed kernel would not do either
    expect(decideVerdict(base({ panic: crash, signals: [sig('oops', 'splat', 'signature', true), sig('w', 'splat', 'absent', true)] })).verdict).toBe('panic');
  });

  it('after a crash, an absent signal the agent never sent is unobservable: error', () => {
    const v = decideVerdict(base({ panic: crash, report: { hello: { kernel: 'x', uptimeMs: 1 }, done: false, probes: [] }, signals: [sig('oops', 'splat', 'signature', true), sig('t', 'tracepoint', 'absent', false)] }));
    expect(v.verdict).toBe('error');
  });

  it('a kernel that carried on after the splat: the usual rules, with the probe', () => {
    expect(decideVerdict(base({ panic: crash, signals: [sig('oops', 'splat', 'signature', true)] })).verdict).toBe('reproduced');
    const passed = [{ ...probes[0]!, rc: 0, passed: true }];
    expect(decideVerdict(base({ panic: crash, report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes: passed }, signals: [sig('oops', 'splat', 'signature', true)] })).verdict).toBe('error');
  });
});

describe('verdict: signature.absent', () => {
  const mk = (passed: boolean) => [{ name: 'p', ns: 'host', rc: passed ? 0 : 1, passed, durationMs: 1, output: '', stoppedEarly: false, timedOut: false }];
  const sig = (name: string, role: SignalResult['role'], fired: boolean, extra: Partial<SignalResult> = {}): SignalResult => ({ name, kind: 'tracepoint', role, description: `${name} events`, fired, count: fired ? 2 : 0, matches: fired ? [{ text: `${name} ev` }] : [], ...extra });
  const decide = (probePassed: boolean, signals: SignalResult[]) =>
    decideVerdict({ signature: { probe: 'p', when: 'fail' }, controlProbes: [], report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes: mk(probePassed) }, signals, panic: null, vmTimedOut: false, deadlineMs: 1000 });

  it('reproduced iff the probe behaves, every signal fired and no absent one', () => {
    const r = decide(false, [sig('s', 'signature', true), sig('a', 'absent', false)]);
    expect(r.verdict).toBe('reproduced');
    expect(r.reason).toMatch(/absent as expected: a/);
    expect(decide(false, [sig('s', 'signature', true), sig('a', 'absent', true)]).verdict).toBe('error');
  });

  it('the absent action is what the fixed kernel does: not reproduced, even when the probe alone agrees with the bug', () => {
    const r = decide(false, [sig('a', 'absent', true)]);
    expect(r.verdict).toBe('not-reproduced');
    expect(r.reason).toMatch(/the kernel showed a ×2 .*must be absent/);
    expect(decide(true, [sig('a', 'absent', true)]).verdict).toBe('not-reproduced');
    expect(decide(false, [sig('a', 'absent', false)]).verdict).toBe('reproduced');
  });

  it('an absent signal that could not be observed never gives reproduced', () => {
    const r = decide(false, [sig('a', 'absent', false, { incomplete: 'tracepoint neigh:neigh_update is not available on this kernel' })]);
    expect(r.verdict).toBe('error');
    expect(r.reason).toMatch(/could not be observed: tracepoint neigh:neigh_update/);
    // not reproduced needs no absent signal
    expect(decide(true, [sig('a', 'absent', false, { incomplete: 'x' })]).verdict).toBe('not-reproduced');
  });

  it('evaluateSignals gives the absent role', () => {
    const r = evaluateSignals([signalSchema.parse({ name: 'a', kind: 'splat' }), signalSchema.parse({ name: 'b', kind: 'splat' }), signalSchema.parse({ name: 'c', kind: 'splat' })], ['a'], obs(''), ['b']);
    expect(r.map((x) => x.role)).toEqual(['signature', 'absent', 'evidence']);
  });
});

describe('case file: the observation fields', () => {
  const base = {
    name: 'c',
    description: 'd',
    probes: [{ name: 'p', exec: { argv: ['true'] } }],
    signature: { probe: 'p' },
  };
  const parse = (x: object) => caseSchema.safeParse({ ...base, ...x });
  const issues = (x: object): string[] => {
    const r = parse(x);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('signature.absent names declared signals, never one of signature.signals', () => {
    const signals = [{ name: 'a', kind: 'splat' }, { name: 'b', kind: 'splat', type: 'warn' }];
    expect(issues({ signals, signature: { probe: 'p', signals: ['a'], absent: ['b'] } })).toEqual([]);
    expect(issues({ signals, signature: { probe: 'p', absent: ['zz'] } })).toEqual(['signature.absent.0: no signal named "zz" (signals: a, b)']);
    expect(issues({ signals, signature: { probe: 'p', signals: ['a'], absent: ['a'] } })[0]).toMatch(/^signature\.absent\.0: signal "a" is in signature.signals too/);
  });

  it('tokens: printable, spaces inside allowed, no control characters or outer blanks', () => {
    expect(issues({ steps: [{ name: 's', exec: ['ip', 'route'], expect: '203.0.113.0', absent: 'proto kernel' }] })).toEqual([]);
    expect(issues({ steps: [{ name: 's', exec: ['ip'], absent: 'a\nb' }] })[0]).toMatch(/^steps\.0\.absent: must be printable/);
    expect(issues({ steps: [{ name: 's', exec: ['ip'], expect: ' x' }] })[0]).toMatch(/^steps\.0\.expect:/);
    expect(issues({ probes: [{ name: 'p', exec: { argv: ['true'], absent: "it's $(x)" } }] })).toEqual([]);
  });

  it('sport: a port on udp and tcp probes', () => {
    expect(issues({ probes: [{ name: 'p', udp: { host: '192.0.2.2', port: 53, sport: 1000, expect: 'x' } }] })).toEqual([]);
    expect(issues({ probes: [{ name: 'p', tcp: { host: '192.0.2.2', port: 80, sport: 0, expect: 'x' } }] })[0]).toMatch(/^probes\.0\.tcp\.sport:/);
  });

  it('during: probes, steps or all', () => {
    expect(issues({ signals: [{ name: 't', kind: 'tracepoint', event: 'neigh:neigh_update', during: 'steps' }] })).toEqual([]);
    expect(issues({ signals: [{ name: 't', kind: 'tracepoint', event: 'neigh:neigh_update', during: 'setup' }] })[0]).toMatch(/^signals\.0\.during:/);
  });

  it('stopOnSignal works with a splat signature signal', () => {
    expect(issues({ probes: [{ name: 'p', exec: { argv: ['true'] }, stopOnSignal: true }], signals: [{ name: 'w', kind: 'splat' }], signature: { probe: 'p', signals: ['w'] } })).toEqual([]);
  });
});

describe('rendering the observation fields', () => {
  const def = (x: object): CaseDef =>
    caseSchema.parse({ name: 'c', description: 'd', namespaces: ['ns2'], probes: [{ name: 'p', exec: { argv: ['true'] } }], signature: { probe: 'p' }, ...x });
  const lines = (c: CaseDef): string[] => renderCase(c).files['/case/steps.sh']!.split('\n');

  it('probe source ports: socat sourceport= for udp and tcp; a tcp probe without one stays busybox nc', () => {
    const c = def({ probes: [
      { name: 'u', udp: { host: '192.0.2.2', port: 53, sport: 1000, expect: 'x' } },
      { name: 't', tcp: { host: '2001:db8::2', port: 80, sport: 2000, expect: 'x' } },
      { name: 'n', tcp: { host: '192.0.2.2', port: 80, expect: 'x' } },
    ], signature: { probe: 'u' } });
    expect(probeCommand(c.probes[0]!)).toEqual(['/kr/udp-probe', '192.0.2.2', '53', '5', '1000']);
    expect(probeCommand(c.probes[1]!)).toEqual(['socat', '-T', '5', '-t', '5', '-', 'TCP:[2001:db8::2]:80,sourceport=2000,reuseaddr']);
    expect(probeCommand(c.probes[2]!)).toEqual(['/bin/busybox', 'nc', '-w', '5', '192.0.2.2', '80']);
    expect(caseNeeds(c).packages).toEqual(['socat']);
    expect(caseNeeds(def({ probes: [{ name: 'n', tcp: { host: '192.0.2.2', port: 80, expect: 'x' } }], signature: { probe: 'n' } })).packages).toEqual([]);
  });

  it('output tokens travel as quoted variables on the line before the call', () => {
    const l = lines(def({ steps: [{ name: 's', exec: ['ip', 'route'], expect: '203.0.113.0', absent: "proto kernel's" }], probes: [{ name: 'p', exec: { argv: ['true'], absent: 'x y' } }] }));
    const step = l.findIndex((x) => x.startsWith('kr_step exec:s'));
    expect(l.slice(step - 2, step)).toEqual(['KR_EXPECT=203.0.113.0', "KR_ABSENT='proto kernel'\\''s'"]);
    const probe = l.findIndex((x) => x.startsWith('kr_probe p '));
    expect(l[probe - 1]).toBe("KR_ABSENT='x y'");
  });

  it('phases: marks in the kernel log; tracepoints armed before the steps only when a signal wants them', () => {
    const plain = lines(def({ steps: [{ name: 's', exec: ['true'] }], tracepoints: ['fib'] }));
    const at = (l: string[], re: RegExp): number => l.findIndex((x) => re.test(x));
    expect(at(plain, /^kr_phase steps$/)).toBeLessThan(at(plain, /^kr_step /));
    expect(at(plain, /^kr_trace_on fib$/)).toBeGreaterThan(at(plain, /^kr_step /));
    expect(at(plain, /^kr_phase probes$/)).toBeLessThan(at(plain, /^kr_probe /));
    expect(at(plain, /^kr_phase after$/)).toBeGreaterThan(at(plain, /^kr_probe /));
    expect(plain.some((x) => x.startsWith('kr_trace_mark'))).toBe(false);
    const early = lines(def({ steps: [{ name: 's', exec: ['true'] }], tracepoints: ['fib'], signals: [{ name: 't', kind: 'tracepoint', event: 'neigh:neigh_update', during: 'steps' }] }));
    expect(at(early, /^kr_trace_on fib neigh\/neigh_update$/)).toBeLessThan(at(early, /^kr_step /));
    expect(at(early, /^kr_trace_mark steps$/)).toBe(at(early, /^kr_trace_on /) + 1);
    expect(at(early, /^kr_trace_mark probes$/)).toBeGreaterThan(at(early, /^kr_step /));
    expect(at(early, /^kr_trace_mark probes$/)).toBeLessThan(at(early, /^kr_probe /));
    expect(early.filter((x) => x.startsWith('kr_trace_on')).length).toBe(1);
  });
});

describe('trace phases', () => {
  const ev = (ts: number, event: string, text: string): string => `            init-1       [000] .....     ${ts.toFixed(6)}: ${event}: ${text}`;
  it('events between the marks are the steps\'; a trace without marks is the probes\'', () => {
    const t = [ev(1, 'tracing_mark_write', 'kernel-repro: phase steps'), ev(2, 'neigh_update', 'a'), ev(3, 'tracing_mark_write', 'kernel-repro: phase probes'), ev(4, 'neigh_update', 'b')].join('\n');
    expect(tracePhases(parseTrace(t)).map((e) => [e.text, e.phase])).toEqual([['a', 'steps'], ['b', 'probes']]);
    expect(tracePhases(parseTrace(ev(4, 'neigh_update', 'b'))).map((e) => e.phase)).toEqual(['probes']);
  });

  it('a tracepoint signal counts the events of its phase', () => {
    const t = tracePhases(parseTrace([ev(1, 'tracing_mark_write', 'kernel-repro: phase steps'), ev(2, 'neigh_update', 'a'), ev(3, 'tracing_mark_write', 'kernel-repro: phase probes'), ev(4, 'neigh_update', 'b'), ev(5, 'neigh_update', 'c')].join('\n')));
    const specs = ['probes', 'steps', 'all'].map((d) => signalSchema.parse({ name: d, kind: 'tracepoint', event: 'neigh:neigh_update', during: d }));
    const r = evaluateSignals(specs, [], obs('', { trace: t.filter((e) => e.phase === 'probes'), traceAll: t }));
    expect(r.map((x) => [x.name, x.count])).toEqual([['probes', 2], ['steps', 1], ['all', 3]]);
  });

  it('a tracepoint the guest could not enable is not observable (never "absent as expected")', () => {
    expect(unavailableTracepoints(['tracepoint neigh/neigh_update not available', 'server x'])).toEqual(['neigh/neigh_update']);
    const r = evaluateSignals([signalSchema.parse({ name: 't', kind: 'tracepoint', event: 'neigh:neigh_update' })], [], obs('', { unavailable: ['neigh/neigh_update'] }), ['t']);
    expect(r[0]!.incomplete).toBe('tracepoint neigh:neigh_update is not available on this kernel');
    expect(signalState(r[0]!)).toBe('unobservable');
    expect(signalState({ role: 'absent', fired: false })).toBe('absent-as-expected');
    expect(signalState({ role: 'absent', fired: true })).toBe('fired-must-be-absent');
  });
});

describe('the agent\'s step and probe tokens, run by a real busybox sh', () => {
  const has = fs.existsSync('/bin/busybox');
  const run = (script: string): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-agent-'));
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    for (const a of ['awk', 'grep', 'usleep', 'cat', 'head', 'sh']) fs.symlinkSync('/bin/busybox', path.join(bin, a));
    // the agent's functions, its files in this test's folder; kr_finish only says why (it would reboot)
    const agent = fs.readFileSync(path.join(repoRoot, 'images/agent/agent.sh'), 'utf8').replace(/^\. \/kr\/lib\.sh$/m, '').replaceAll('/tmp/kr.', `${dir}/kr.`);
    fs.writeFileSync(path.join(dir, 'agent.sh'), agent);
    const lib = path.join(repoRoot, 'images/agent/lib.sh');
    const full = `exec 3>&1\n. ${shq(lib)}\n. ${shq(path.join(dir, 'agent.sh'))}\nkr_finish() { kr_rec "abort $1"; exit 0; }\n${script}`;
    try {
      return execFileSync('/bin/busybox', ['sh', '-c', full], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` } }).toString();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  it.runIf(has)('a step whose output holds its absent token stops the case, naming the step and the token', () => {
    const out = run(`KR_ABSENT='LOOP BACK'\nkr_step exec:show host 5000 0 /bin/busybox echo 'a LOOP BACK b'\necho not-reached`);
    expect(out).toMatch(/@@KR step exec:show rc=0 ok=0 /);
    expect(out).toContain('@@KR abort step exec:show ended with exit code 0, but its output holds "LOOP BACK", which must be absent');
    expect(out).not.toContain('not-reached');
  });

  it.runIf(has)('a step whose output lacks its expect token stops the case; the tokens hold for one step only', () => {
    expect(run(`KR_EXPECT=203.0.113.0\nkr_step exec:check host 5000 0 /bin/busybox echo 198.51.100.0`)).toContain('@@KR abort step exec:check ended with exit code 0, but its output lacks "203.0.113.0"');
    const ok = run(`KR_EXPECT=hi KR_ABSENT=bye\nkr_step exec:a host 5000 0 /bin/busybox echo hi\nkr_step exec:b host 5000 0 /bin/busybox echo bye\necho reached`);
    expect(ok).toMatch(/step exec:a rc=0 ok=1 .*\n[\s\S]*step exec:b rc=0 ok=1 /);
    expect(ok).toContain('reached');
  });

  it.runIf(has)('a bound or IPv6-only server runs under socat with its address and IPV6_V6ONLY; an unbound TCP one stays busybox nc', () => {
    // kr_bg stands in for the namespace launcher: it prints what would run
    const out = run(`kr_bg() { shift 2; echo "RUN $*"; }\nkr_server a host tcp 8080 hi '::' v6only\nkr_server b host tcp 8081 hi 127.0.0.1 any\nkr_server c host udp 53 hi 2001:db8::1 any\nkr_server d host tcp 8082 hi`);
    expect(out).toContain('RUN socat -T 2 TCP6-LISTEN:8080,fork,reuseaddr,bind=[::],ipv6only=1 EXEC:/bin/cat');
    expect(out).toContain('RUN socat -T 2 TCP4-LISTEN:8081,fork,reuseaddr,bind=127.0.0.1 EXEC:/bin/cat');
    expect(out).toContain('RUN socat -T 2 UDP6-LISTEN:53,fork,reuseaddr,bind=[2001:db8::1],ipv6only=0 EXEC:/bin/cat');
    expect(out).toContain('RUN /bin/busybox nc -ll -p 8082 -e /bin/busybox echo hi');
  });

  it.runIf(has)('a probe whose output holds its absent token fails; the token holds for that probe only', () => {
    const out = run(`KR_ABSENT=unreachable\nkr_probe show host 5000 0 0 '' 0 /bin/busybox echo 'unreachable 203.0.113.0/24'\nkr_probe again host 5000 0 0 '' 0 /bin/busybox echo 'unreachable 203.0.113.0/24'`);
    expect(out).toMatch(/@@KR probe show ns=host rc=0 pass=0 /);
    expect(out).toMatch(/@@KR probe again ns=host rc=0 pass=1 /);
  });
});
