// Path tracing (--trace-path): parsing what the agent recorded and aligning two kernels' paths.
// The fixtures in test/fixtures/paths are `path` sections recorded on the real 6.1 kernels (tracing
// variants, TCG): the first pass (function graph only) and the second (with return probes), for
// the selftest and Mesos cases on 6.1-vanilla and 6.1-fixed, and two runs of 6.1-fixed (against a
// comment-only patch) that differ only by a neighbour entry created in one run.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';
import { graphCmdline, isNoise, ownCalls, parsePath, parseRet, PATH_ENTRIES, SYMBOL_RE } from '../../harness/observe/path.ts';
import { comparePaths, confirmDivergence, describeRet, lcsPairs, retJson, retsDiffer, retValue, returnProbes } from '../../harness/observe/divergence.ts';
import { divergenceMarkdown, renderDivergences } from '../../harness/report/divergence.ts';
import { kernelCmdline } from '../../harness/vm/qemu.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { loadCase } from '../../harness/cases/load.ts';
import { renderDivergenceSection } from '../../harness/report/html.ts';
import { expandMatrix, selectCells } from '../../harness/matrix/logic.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadDataFile } from '../../harness/util/load.ts';
import { renderMarkdown, type VerifyReport } from '../../harness/verify/logic.ts';
import { buildSummary } from '../../harness/report/summary.ts';

const fixture = (name: string): string => fs.readFileSync(path.join(repoRoot, 'test/fixtures/paths', `${name}.txt`), 'utf8');
const side = (kernel: string, text: string) => ({ kernel, trace: parsePath(text) });

/** A path section from lines; `@` switches context. */
const lines = (...ls: string[]): string => ls.join('\n') + '\n';

describe('parsePath', () => {
  it('reads calls, events, return values and packet units from a real recording', () => {
    const t = parsePath(fixture('selftest-vanilla-pass2'));
    expect(t.stats.lost).toBe(0);
    expect(t.stats.truncated).toBe(0);
    expect(t.stats.calls).toBeGreaterThan(100);
    expect(t.stats.returns).toBeGreaterThan(5);
    expect(t.units.map((u) => u.key)).toContain('__netif_receive_skb lo len=84');
    const calls = t.units.flatMap((u) => ownCalls(u.root));
    const fvs = calls.find((c) => c.fn === '__fib_validate_source')!;
    expect(fvs.ret).toBe('0xffffffee');
    expect(fvs.parent?.fn).toBe('fib_validate_source');
    // the route lookup fired inside it (through the tracepoint's iterator)
    const events = JSON.stringify(fvs.children.flatMap((c) => (c.kind === 'call' ? c.children : [c])).map((n) => (n.kind === 'event' ? n.name : n.fn)));
    expect(events).toContain('fib_table_lookup');
    // a route lookup before the packet reached an entry point (the socket's) is kept, outside every unit
    expect(t.orphans.some((e) => e.name === 'fib_table_lookup')).toBe(true);
  });

  it('keeps contexts apart: a call on another CPU or task does not nest into this one', () => {
    const t = parsePath(lines('@ 0 ping-60', '0 ip_local_out', '1 ip_output', '@ 1 kworker-33', '0 __dev_queue_xmit', '1 # net_dev_queue: dev=eth0 skbaddr=x len=60', '@ 0 ping-60', '2 ip_finish_output2;', '0 }'));
    expect(t.roots.map((r) => `${r.ctx}:${r.fn}`)).toEqual(['ping-60:ip_local_out', 'kworker-33:__dev_queue_xmit']);
    const out = t.roots[0]!.children[0];
    expect(out?.kind === 'call' && out.children.map((c) => (c.kind === 'call' ? c.fn : c.name))).toEqual(['ip_finish_output2']);
    // the idle task is one per CPU
    const idle = parsePath(lines('@ 0 <idle>-0', '0 __netif_receive_skb', '@ 1 <idle>-0', '1 ip_rcv;'));
    expect(idle.roots.map((r) => r.ctx)).toEqual(['<idle>-0@0', '<idle>-0@1']);
  });

  it('gives a return value to the innermost call of its function still waiting for one, in its context', () => {
    const t = parsePath(
      lines('@ 0 t-1', '0 __netif_receive_skb', '1 f', '2 f', '3 g;', '2 # kr1: (f+0x1/0x2 <- f) ret=0x2', '1 # kr1: (x+0x1/0x2 <- f) ret=0x1', '1 h;', '0 }'),
    );
    const outer = t.roots[0]!.children[0];
    if (outer?.kind !== 'call') throw new Error('no call');
    const inner = outer.children[0];
    expect(outer.ret).toBe('0x1');
    expect(inner?.kind === 'call' && inner.ret).toBe('0x2');
    expect(parseRet('kr3: (ip_route_input_slow+0x23d/0x6cc <- fib_validate_source) ret=0xffffffee')).toEqual({ fn: 'fib_validate_source', value: '0xffffffee' });
  });

  it('counts what the buffer lost and what the agent cut, and starts a tree whose callers were not recorded', () => {
    const t = parsePath(lines('! CPU:0 [LOST 12 EVENTS]', '@ 0 t-1', '2 ip_rcv;', '! truncated 40'));
    expect(t.stats.lost).toBe(12);
    expect(t.stats.truncated).toBe(40);
    expect(t.roots[0]!.fn).toBe('?');
  });

  it('an event at level 0 belongs to the open top-level call, else to no call', () => {
    const t = parsePath(lines('@ 0 t-1', '0 # fib_table_lookup: before', '0 __dev_queue_xmit', '0 # net_dev_queue: dev=lo skbaddr=x len=98', '0 }', '0 # fib_table_lookup: after'));
    expect(t.orphans.map((e) => e.text)).toEqual(['before', 'after']);
    expect(t.units[0]!.key).toBe('__dev_queue_xmit lo len=98');
  });
});

describe('return values', () => {
  it('reads kretprobe values as the C function returned them', () => {
    expect(retValue('0xffffffee')).toEqual({ raw: '0xffffffee', kind: 'int', value: -18, low: 0xee });
    expect(retValue('0xffffffffffffffea').value).toBe(-22); // a long, or ERR_PTR(-EINVAL)
    expect(retValue('0x1').value).toBe(1);
    expect(retValue('0xffff8880006e1700').kind).toBe('pointer');
    expect(describeRet('0xffffffee')).toBe('-18 (-EXDEV)');
    expect(describeRet('0x0')).toBe('0');
    expect(describeRet(undefined)).toBeNull();
    expect(retJson('0xffffffee')).toBe(-18);
    expect(retJson('0xffff8880006e1700')).toBe('0xffff8880006e1700');
    // pointers differ from kernel to kernel: only pointer against not-a-pointer counts
    expect(retsDiffer('0xffff8880006e1700', '0xffff8880006d8240')).toBe(false);
    expect(retsDiffer('0xffff8880006e1710', '0x0')).toBe(true);
    expect(retsDiffer('0xffffffee', '0x1')).toBe(true);
    expect(retsDiffer('0xffffffee', undefined)).toBeNull();
    // a bool sets %al only: the rest of %rax is whatever was there (fib_lookup_good_nhc returned true here)
    expect(retValue('0xffff8880006d0201')).toMatchObject({ kind: 'bool', value: 1 });
    expect(describeRet('0xffff8880006d0201')).toBe('1 (true, 0xffff8880006d0201)');
    expect(retsDiffer('0xffff8880006d0201', '0x1')).toBe(false);
    expect(retsDiffer('0xffff8880006d0201', '0xffff8880006d0200')).toBe(true); // true against false
    expect(retsDiffer('0xffff8880006d0201', '0x0')).toBe(true);
    // NULL against a pointer, unless the pointer could be a false bool
    expect(retsDiffer('0xffff8880006e1708', '0x0')).toBe(true);
    expect(retsDiffer('0xffff8880006e1700', '0x0')).toBeNull();
    expect(retsDiffer('0xffff8880006e1700', '0xfffffff4')).toBe(true); // a pointer against -ENOMEM
  });
});

describe('comparePaths on the 6.1 recordings', () => {
  for (const c of ['selftest', 'mesos'] as const)
    it(`${c}: 6.1-vanilla splits from 6.1-fixed at __fib_validate_source, -EXDEV against 1, then drops with IP_RPFILTER`, () => {
      const r = comparePaths(side('6.1-vanilla', fixture(`${c}-vanilla-pass2`)), side('6.1-fixed', fixture(`${c}-fixed-pass2`)));
      const d = r.divergence!;
      expect(d.function).toBe('__fib_validate_source');
      expect(d.how).toBe('return');
      expect(d.via.slice(0, 2)).toEqual(['fib_validate_source', 'ip_route_input_slow']);
      expect(d.packet).toMatch(/^__netif_receive_skb lo len=\d+$/);
      expect(d.before).toMatchObject({ kernel: '6.1-vanilla', ret: -18, retText: '-18 (-EXDEV)', next: 'ip_handle_martian_source', nextIn: 'ip_route_input_slow' });
      expect(d.after).toMatchObject({ kernel: '6.1-fixed', ret: 1, next: 'rt_cache_valid', nextIn: 'ip_route_input_slow' });
      expect(d.after.then).toContain('ip_local_deliver');
      expect(d.drop).toEqual({ reason: 'IP_RPFILTER', at: 'ip_rcv_finish_core.constprop.0', kernel: '6.1-vanilla' });
      expect(d.before.drop).toEqual({ reason: 'IP_RPFILTER', at: 'ip_rcv_finish_core.constprop.0' });
      // the reverse lookup both kernels made inside it, with the same result: the return value is what differs
      expect(d.before.events[0]).toMatch(/^fib_table_lookup: table \d+ oif 0 iif 1 /);
      expect(d.after.events[0]).toBe(d.before.events[0]);
    });

  it('the first pass (no return values) names the caller that branched, and the functions worth a return probe', () => {
    const r = comparePaths(side('6.1-vanilla', fixture('selftest-vanilla-pass1')), side('6.1-fixed', fixture('selftest-fixed-pass1')));
    expect(r.divergence).toMatchObject({ function: 'ip_route_input_slow', how: 'call' });
    expect(r.divergence!.before.next).toBe('ip_handle_martian_source');
    const probes = returnProbes(r.split!);
    for (const list of [probes.before, probes.after]) {
      expect(list).toContain('fib_validate_source');
      expect(list).toContain('__fib_validate_source');
      expect(list).toContain('ip_route_input_slow');
      expect(list.length).toBeLessThanOrEqual(40);
      for (const f of list) expect(f).toMatch(SYMBOL_RE);
    }
    expect(probes.before).toContain('ip_handle_martian_source'); // what came next, on the kernel that did it
    expect(probes.after).not.toContain('ip_handle_martian_source');
  });

  it('6.1-fixed against itself with a comment-only patch: no divergence (a neighbour entry created in one run only rejoins)', () => {
    const r = comparePaths(side('6.1-fixed', fixture('selftest-fixed-again')), side('6.1-fixed+comment-only', fixture('selftest-fixed-comment-only')));
    expect(r.divergence).toBeNull();
    expect(r.note).toMatch(/the same path on both kernels: \d+ packet/);
    expect(r.note).toMatch(/1 difference\(s\) that rejoined/);
    for (const name of ['selftest-vanilla-pass2', 'mesos-fixed-pass2']) expect(comparePaths(side('a', fixture(name)), side('b', fixture(name))).divergence).toBeNull();
  });
});

describe('two passes: a split counts when both show it, and a kernel does not show it against itself', () => {
  const two = (b1: string, a1: string, b2: string, a2: string) =>
    confirmDivergence({ before: side('x', fixture(b1)), after: side('y', fixture(a1)) }, { before: side('x', fixture(b2)), after: side('y', fixture(a2)) });

  it("6.1-vanilla against 6.1-fixed: __fib_validate_source, with the second pass's return values", () => {
    const r = two('selftest-vanilla-pass1', 'selftest-fixed-pass1', 'selftest-vanilla-pass2', 'selftest-fixed-pass2');
    expect(r.divergence).toMatchObject({ function: '__fib_validate_source', how: 'return', before: { ret: -18 }, after: { ret: 1 } });
  });

  it('6.1-fixed against a comment-only patch (Mesos): a TCP segment that met its socket in another state in the first pass only is not a divergence', () => {
    // the first pass alone splits: an ACK on lo met an established socket on one kernel, a closing one on the other
    const first = comparePaths(side('x', fixture('mesos-fixed-tcp-pass1')), side('y', fixture('mesos-fixed-comment-only-tcp-pass1')));
    expect(first.divergence).toMatchObject({ function: 'tcp_v4_do_rcv', how: 'call' });
    const r = two('mesos-fixed-tcp-pass1', 'mesos-fixed-comment-only-tcp-pass1', 'mesos-fixed-tcp-pass2', 'mesos-fixed-comment-only-tcp-pass2');
    expect(r.divergence).toBeNull();
    const self = two('selftest-fixed-again', 'selftest-fixed-comment-only', 'selftest-fixed-again-pass2', 'selftest-fixed-comment-only-pass2');
    expect(self.divergence).toBeNull();
  });

  it('a split both passes show, but that a kernel also shows between its own two runs, is run-to-run variation', () => {
    const unit = (...body: string[]): string => lines('@ 0 t-1', '0 __netif_receive_skb', '1 # netif_receive_skb: dev=lo skbaddr=x len=52', '1 ip_rcv', '2 a;', '2 b;', '2 c;', '2 d;', ...body, '0 }');
    const est = unit('2 established;');
    const other = unit('2 state_process;');
    // x: established, then state_process; y: state_process twice
    const r = confirmDivergence({ before: side('x', est), after: side('y', other) }, { before: side('x', other), after: side('y', other) });
    expect(r.divergence).toBeNull();
    const varies = confirmDivergence({ before: side('x', est), after: side('y', other) }, { before: side('x', est), after: side('y', est) });
    expect(varies.divergence).toBeNull(); // y does both
    const stable = confirmDivergence({ before: side('x', est), after: side('y', other) }, { before: side('x', est), after: side('y', other) });
    expect(stable.divergence).toMatchObject({ function: 'ip_rcv', before: { next: 'established' }, after: { next: 'state_process' } });
  });
});

describe('comparePaths with noise', () => {
  const vanilla = fixture('selftest-vanilla-pass2');
  const fixed = fixture('selftest-fixed-pass2');
  const expectTheSplit = (a: string, b: string): string => {
    const r = comparePaths(side('6.1-vanilla', a), side('6.1-fixed', b));
    expect(r.divergence?.function).toBe('__fib_validate_source');
    expect(r.divergence?.before.ret).toBe(-18);
    expect(r.divergence?.after.ret).toBe(1);
    expect(r.divergence?.drop?.reason).toBe('IP_RPFILTER');
    return r.note;
  };
  /** another packet on another CPU, interleaved every few lines of the recording */
  const otherCpu = (text: string, every: number): string => {
    const other = ['@ 1 kworker/1:1-33', '0 __dev_queue_xmit', '1 # net_dev_queue: dev=eth9 skbaddr=x len=1500', '1 netdev_core_pick_tx;', '1 dev_hard_start_xmit', '2 dummy_xmit;', '0 }'];
    const out: string[] = [];
    let ctx = '';
    text.split('\n').forEach((l, i) => {
      if (l.startsWith('@ ')) ctx = l;
      out.push(l);
      if (i % every === every - 1 && l && !l.startsWith('@')) out.push(...other, ctx);
    });
    return out.join('\n');
  };

  it('other packets on other CPUs, interleaved with the packet that splits', () => {
    const note = expectTheSplit(otherCpu(vanilla, 7), otherCpu(fixed, 11));
    expect(note).toMatch(/repeated/);
  });

  it('retransmits: the dropped packet seen again on the kernel that drops it', () => {
    const lo = vanilla.split('\n');
    const start = lo.findIndex((l) => /# netif_receive_skb: dev=lo /.test(l)) - 4; // its __netif_receive_skb line, a few lines up
    const unitStart = lo.slice(0, start + 4).map((l, i) => ({ l, i })).filter(({ l }) => / __netif_receive_skb$/.test(l)).pop()!.i;
    const depth = Number(lo[unitStart]!.split(' ')[0]);
    let end = unitStart + 1;
    while (end < lo.length && !(/^\d+ /.test(lo[end]!) && Number(lo[end]!.split(' ')[0]) <= depth && !lo[end]!.includes('#'))) end++;
    const again = lo.slice(unitStart, end).map((l) => (/^\d+ /.test(l) ? `${Number(l.split(' ')[0]) - depth} ${l.slice(l.indexOf(' ') + 1)}` : l));
    const withRetransmits = [...lo, '@ 0 <idle>-0', ...again, '0 }', ...again, '0 }'].join('\n');
    expect(parsePath(withRetransmits).units.length).toBe(parsePath(vanilla).units.length + 2);
    const note = expectTheSplit(withRetransmits, fixed);
    expect(note).toMatch(/\d+ repeated/);
  });

  it('other packets seen by one kernel only (before the one that splits)', () => {
    const extra = lines('@ 0 swapper-1', '0 __netif_receive_skb', '1 # netif_receive_skb: dev=veth1 skbaddr=x len=76', '1 ipv6_rcv;', '0 }', '0 ip6_local_out', '1 ip6_output;', '0 }');
    const note = expectTheSplit(extra + vanilla, fixed);
    // one of them has the key of a packet the other kernel saw (IPv6 on veth1, 76 bytes): unlike it from the start
    expect(note).toMatch(/1 only on 6\.1-vanilla/);
    expect(note).toMatch(/1 matched by key but unlike from the start/);
  });

  it('a difference that does not rejoin is a split; an extra call tree that rejoins is not', () => {
    const unit = (...body: string[]): string => lines('@ 0 t-1', '0 __netif_receive_skb', '1 # netif_receive_skb: dev=lo skbaddr=x len=84', ...body, '0 }');
    const common = ['1 ip_rcv', '2 a;', '2 b;', '2 c;', '2 d;', '2 e;', '2 f;', '2 g;', '2 h;', '2 i;'];
    // one kernel creates state on the way (an extra call tree), then both go on the same way
    const extra = comparePaths(side('x', unit('1 ip_rcv', '2 neigh', '3 neigh_inner;', ...common.slice(1))), side('y', unit(...common)));
    expect(extra.divergence).toBeNull();
    expect(extra.note).toMatch(/1 difference\(s\) that rejoined/);
    // different calls: a split at the caller, "what each did next" on both sides
    const other = comparePaths(side('x', unit('1 ip_rcv', '2 a;', '2 drop_it', '3 kfree_skb_reason', '4 # kfree_skb: skbaddr=x protocol=2048 location=x reason: NETFILTER_DROP')), side('y', unit(...common)));
    expect(other.divergence).toMatchObject({ function: 'ip_rcv', how: 'call', before: { next: 'drop_it', nextIn: 'ip_rcv' }, after: { next: 'b', nextIn: 'ip_rcv' } });
    expect(other.divergence?.drop).toEqual({ reason: 'NETFILTER_DROP', at: 'drop_it', kernel: 'x' });
    // a return value that differs is followed down to the deepest callee whose value differs too
    const rets = (v: string): string =>
      unit('1 ip_rcv', '2 route', '3 validate', '4 lookup;', `4 # kr1: (validate+0x1 <- lookup) ret=0x0`, `3 # kr2: (route+0x1 <- validate) ret=${v}`, `2 # kr3: (ip_rcv+0x1 <- route) ret=${v}`, v === '0x0' ? '2 deliver;' : '2 drop_it;');
    const r = comparePaths(side('x', rets('0xffffffea')), side('y', rets('0x0')));
    expect(r.divergence).toMatchObject({ function: 'validate', via: ['route', 'ip_rcv', '__netif_receive_skb'], how: 'return', before: { ret: -22, next: 'drop_it' }, after: { ret: 0, next: 'deliver' } });
    expect(comparePaths(side('x', ''), side('y', rets('0x0'))).note).toBe('no packet path was recorded on x');
  });
});

describe('the agent\'s graph.awk, run by a real busybox awk', () => {
  // raw-graph-vanilla-selftest.txt: the top-level `trace` of a traced run on 6.1-vanilla, as the
  // kernel printed it (function_graph, funcgraph-proc); the agent's compaction of it is checked
  // against what parsePath reads
  const raw = path.join(repoRoot, 'test/fixtures/paths/raw-graph-vanilla-selftest.txt');
  const awk = (max: number): string => execFileSync('/bin/busybox', ['awk', '-v', `max=${max}`, '-f', path.join(repoRoot, 'images/agent/graph.awk'), raw]).toString();
  it.runIf(fs.existsSync('/bin/busybox'))('compacts the graph: depths, leaves, events, contexts; cuts at the limit and says so', () => {
    const out = awk(40_000);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^@ 0 busybox-\d+$/);
    expect(lines[1]).toMatch(/^0 # fib_table_lookup: table 254 oif 0 iif 1 proto 1 /);
    expect(lines).toContain('0 ip_local_out');
    expect(lines).toContain('2 ip_send_check;');
    expect(lines.filter((l) => l.endsWith('}')).every((l) => l === '0 }')).toBe(true);
    const t = parsePath(out);
    expect(t.stats.calls).toBeGreaterThan(100);
    const fvs = t.units.flatMap((u) => ownCalls(u.root)).find((c) => c.fn === '__fib_validate_source');
    expect(fvs?.parent?.fn).toBe('fib_validate_source');
    expect(t.units.some((u) => u.key === '__netif_receive_skb lo len=84')).toBe(true);
    const cut = awk(20).trim().split('\n');
    expect(cut[cut.length - 1]).toMatch(/^! truncated \d+$/);
    expect(parsePath(awk(20)).stats.truncated).toBe(Number(/(\d+)$/.exec(cut[cut.length - 1]!)![1]));
  });
});

describe('the rest of path tracing', () => {
  it('lcsPairs matches in order', () => {
    expect(lcsPairs(['a', 'b', 'c', 'd'], ['b', 'x', 'd'])).toEqual([
      [1, 0],
      [3, 2],
    ]);
  });

  it('noise and the kernel command line of a tracing kernel', () => {
    expect(isNoise('kmem_cache_alloc_node')).toBe(true);
    expect(isNoise('kretprobe_rethook_handler')).toBe(true);
    expect(isNoise('__traceiter_fib_table_lookup')).toBe(true);
    expect(isNoise('ip_rcv_finish_core.constprop.0')).toBe(false);
    const words = graphCmdline();
    expect(words[0]).toBe(`kr.graph=${PATH_ENTRIES.join(',')}`);
    for (const w of words) expect(w).not.toMatch(/\s/);
    expect(kernelCmdline({ append: words }).length).toBeLessThan(2048); // x86 COMMAND_LINE_SIZE
  });

  it('renders the divergence for report.txt and verify.md', () => {
    const r = comparePaths(side('6.1-vanilla', fixture('selftest-vanilla-pass2')), side('6.1-fixed', fixture('selftest-fixed-pass2')));
    const entry = { ...r, case: 'rp-filter-selftest', variant: '', passes: 2, probed: 13 };
    const text = renderDivergences([entry]);
    expect(text).toContain('== divergence: rp-filter-selftest: 6.1-vanilla vs 6.1-fixed ==');
    expect(text).toContain('function: __fib_validate_source (called from fib_validate_source <- ip_route_input_slow');
    expect(text).toMatch(/6\.1-vanilla: __fib_validate_source returned -18 \(-EXDEV\); next: ip_handle_martian_source \(in ip_route_input_slow\)/);
    expect(text).toMatch(/6\.1-fixed: {3}__fib_validate_source returned 1; next: rt_cache_valid/);
    expect(text).toContain('drop: IP_RPFILTER in ip_rcv_finish_core.constprop.0 on 6.1-vanilla');
    expect(text).toContain('13 return probes');
    expect(divergenceMarkdown(entry)).toMatch(/^#### Divergence: `__fib_validate_source` \(6\.1-vanilla vs 6\.1-fixed\)/);
    const none = renderDivergences([{ ...entry, divergence: null, note: 'the same path on both kernels' }]);
    expect(none).toContain('no divergence: the packet paths are the same');
  });

  it('renders a traced run: tracepoints in their own instance, the graph around the signature probe only, return probes quoted', () => {
    const c = loadCase('rp-filter-selftest').def;
    const steps = (o?: Parameters<typeof renderCase>[1]): string[] => renderCase(c, o).files['/case/steps.sh']!.split('\n');
    const plain = steps();
    expect(plain.join("\n")).not.toMatch(/kr_graph|kr_trace_instance/);
    const traced = steps({ tracePath: { returns: ['fib_validate_source', 'ip_rcv_finish_core.constprop.0'] } });
    const at = (re: RegExp): number => traced.findIndex((l) => re.test(l));
    expect(at(/^kr_trace_instance$/)).toBeLessThan(at(/^kr_trace_on /));
    expect(at(/^kr_graph_on fib_validate_source ip_rcv_finish_core\.constprop\.0$/)).toBe(at(/^kr_probe ping-local /) - 1);
    expect(at(/^kr_graph_off$/)).toBe(at(/^kr_probe ping-local /) + 1);
    expect(at(/^kr_graph_dump \d+$/)).toBeGreaterThan(at(/^kr_trace_dump$/));
    expect(() => steps({ tracePath: { returns: ['x; reboot'] } })).toThrow(/not a kernel symbol/);
  });
});

describe('where the divergence is reported', () => {
  const r = comparePaths(side('6.1-vanilla', fixture('mesos-vanilla-pass2')), side('6.1-fixed', fixture('mesos-fixed-pass2')));
  const entry = { ...r, case: 'rp-filter-mesos', variant: 'all.rp_filter=1', passes: 2, probed: 13 };

  it('matrix --cell picks cells by id, "*" for any part', () => {
    const cells = expandMatrix(loadDataFile(path.join(repoRoot, 'matrices/default.yaml'), matrixSchema));
    expect(selectCells(cells, ['*|rp-filter-mesos|all.rp_filter=1']).map((c) => c.id)).toEqual(['6.1-vanilla|rp-filter-mesos|all.rp_filter=1', '6.1-fixed|rp-filter-mesos|all.rp_filter=1']);
    expect(selectCells(cells, ['6.1-fixed|*|*'])).toHaveLength(7);
    expect(selectCells(cells, ['6.1-fixed|rp-filter-mesos'])).toEqual([]);
  });

  it('report.html: a section with the function and the lines of report.txt, escaped', () => {
    const html = renderDivergenceSection([entry, { ...entry, case: '<x>', divergence: null, note: 'the same path on both kernels' }]);
    expect(html).toMatch(/^<section id="divergence">/);
    expect(html).toContain('rp-filter-mesos [all.rp_filter=1]: 6.1-vanilla vs 6.1-fixed: <code>__fib_validate_source</code>');
    expect(html).toContain('__fib_validate_source returned -18 (-EXDEV)');
    expect(html).toContain('&lt;x&gt;');
    expect(html).toContain('no divergence: the packet paths are the same');
    expect(renderDivergenceSection(undefined)).toBe('');
  });

  it('verify.md: a Divergence sub-section per case', () => {
    const side0 = { reproduced: 1, runs: 1, failed: 0, signals: [] };
    const report: VerifyReport = {
      patch: { subject: 's', author: null, date: null, files: [], file: 'p', diffstat: '' },
      base: { name: 'b', source: 'src', sourceVersion: null, pinned: null, release: 'r', configHash: 'c', patches: [], key: 'k' },
      patched: null,
      repeat: 1,
      cases: [{ case: 'rp-filter-mesos', before: side0, after: { ...side0, reproduced: 0 }, conclusion: 'fixed', path: entry }],
    };
    const md = renderMarkdown(report);
    expect(md).toContain('#### Divergence: `__fib_validate_source` (6.1-vanilla vs 6.1-fixed)');
    expect(md).toMatch(/drop: IP_RPFILTER in ip_rcv_finish_core\.constprop\.0 on 6\.1-vanilla/);
  });

  it('summary.json: divergences[] only with --trace-path', () => {
    const meta = { runId: 'r', startedAt: 't', accel: 'tcg' };
    expect(buildSummary(meta, [])).not.toHaveProperty('divergences');
    const s = buildSummary(meta, [], [entry]);
    expect(s.divergences?.[0]).toMatchObject({ case: 'rp-filter-mesos', before: '6.1-vanilla', divergence: { function: '__fib_validate_source', before: { ret: -18 }, after: { ret: 1 }, drop: { reason: 'IP_RPFILTER' } } });
  });
});
