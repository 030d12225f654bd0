// The observation part of the case language (issue 21): the `splat` signal kind, `signature.absent`,
// tracepoints `during` the steps, probe source ports and absence tokens on probes and steps.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { caseMessages, parseSplats, SPLAT_MAX_LINES, splatWatch } from '../../harness/observe/splat.ts';
import { evaluateSignals, signalSchema, type SignalResult } from '../../harness/observe/signals/index.ts';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import { detectPanic } from '../../harness/observe/panic.ts';
import type { Observations } from '../../harness/observe/signals/types.ts';

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
