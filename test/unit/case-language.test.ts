// The open case language (issue 12): signals, IPv6, UDP, exec steps and probes, nftables, captures,
// guest packages, files from the kernel's tree. Parsing, rendering and quoting, hostile input for
// every new field, each signal kind, and the agent's own shell functions run by a real busybox sh.
import { describe, expect, it } from 'vitest';
import { parseCase, refusedAt } from './case-helpers.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAgentOutput, SECTION } from '../../harness/agent/protocol.ts';
import { caseNeeds } from '../../harness/cases/needs.ts';
import { probeCommand, renderCase, shq } from '../../harness/cases/render.ts';
import { caseSchema, type CaseDef } from '../../harness/cases/schema.ts';
import { packageClosure, parseDepends } from '../../harness/images/packages.ts';
import { parseNetstat } from '../../harness/observe/counters.ts';
import { kselftestResults, resultSlug } from '../../harness/observe/kselftest.ts';
import { probeStatus } from '../../harness/observe/types.ts';
import { decideVerdict } from '../../harness/observe/verdict.ts';
import { evaluateSignals, type Observations, type SignalSpec } from '../../harness/observe/signals/index.ts';
import { dropOf } from '../../harness/observe/signals/dropReason.ts';
import { functionOf, parseSymbols, parseTrace } from '../../harness/observe/trace.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const parse = parseCase;
const bad = refusedAt;

const BASE = `
name: t
description: test
namespaces: [ns2]
probes:
  - { name: p, ping: 127.0.0.1 }
signature: { probe: p }
`;

describe('case language: hostile and malformed input, each new field named', () => {
  const cases: Array<[string, string, string, RegExp?]> = [
    ['a package name with a shell character', `${BASE}packages: ["nftables;reboot"]`, 'packages[0]'],
    ['a package name with spaces', `${BASE}packages: ["tcp dump"]`, 'packages[0]'],
    ['a source file outside the tree', `${BASE}sourceFiles: ["../../etc/passwd"]`, 'sourceFiles[0]'],
    ['an absolute source file', `${BASE}sourceFiles: ["/etc/passwd"]`, 'sourceFiles[0]'],
    ['an exec argument with a newline', `${BASE}steps:\n  - { name: s, exec: ["sh", "-c\\nreboot"] }`, 'steps[0].exec[1]'],
    ['an exec argument with an escape character', `${BASE}steps:\n  - { name: s, exec: ["echo", "\\u001b[2J"] }`, 'steps[0].exec[1]'],
    ['an empty argv', `${BASE}steps:\n  - { name: s, exec: [] }`, 'steps[0].exec'],
    ['an exec probe expecting a token with a space', `name: t\ndescription: d\nprobes:\n  - { name: p, exec: { argv: [true], expect: "a b" } }\nsignature: { probe: p }`, 'probes[0]'],
    ['a ruleset with control characters', `${BASE}nftables:\n  - { ruleset: "table inet x {}\\u0007" }`, 'nftables[0].ruleset'],
    ['a ruleset over 16 KB', `${BASE}nftables:\n  - { ruleset: "${'x'.repeat(17000)}" }`, 'nftables[0].ruleset'],
    ['two rulesets for one namespace', `${BASE}nftables:\n  - { ruleset: a }\n  - { ruleset: b }`, 'nftables[1].ns'],
    ['a ruleset for an undeclared namespace', `${BASE}nftables:\n  - { ns: ghost, ruleset: a }`, 'nftables[0].ns'],
    ['a capture on a bad interface name', `${BASE}captures:\n  - { dev: "eth0;x" }`, 'captures[0].dev'],
    ['a capture with a huge snaplen', `${BASE}captures:\n  - { dev: eth0, snaplen: 1000000 }`, 'captures[0].snaplen'],
    ['a server with both tcp and udp', `${BASE}servers:\n  - { name: s, tcpListen: 1, udpListen: 2 }`, 'servers[0].tcpListen'],
    ['an IPv6 address with a zone id', `name: t\ndescription: d\nprobes:\n  - { name: p, ping: "fe80::1%eth0" }\nsignature: { probe: p }`, 'probes[0].ping'],
    ['an IPv6 prefix longer than 128', `${BASE}interfaces:\n  - { dev: lo, addresses: ["2001:db8::1/129"] }`, 'interfaces[0].addresses[0]'],
    ['an IPv4 gateway for an IPv6 route', `${BASE}routes:\n  - { dst: "2001:db8::/64", via: 192.0.2.1 }`, 'routes[0].via', /IPv6/],
    ['a signal of an unknown kind', `${BASE}signals:\n  - { name: s, kind: telepathy }`, 'signals[0].kind'],
    ['a drop reason in lower case', `${BASE}signals:\n  - { name: s, kind: drop-reason, reason: ip_rpfilter }`, 'signals[0].reason'],
    ['a log pattern with \\d (not POSIX ERE)', `${BASE}signals:\n  - { name: s, kind: log, pattern: "x\\\\d+" }`, 'signals[0].pattern', /POSIX/],
    ['a log pattern with a lookahead', `${BASE}signals:\n  - { name: s, kind: log, pattern: "a(?!b)" }`, 'signals[0].pattern'],
    ['a tracepoint regex that does not compile', `${BASE}signals:\n  - { name: s, kind: tracepoint, event: "fib:fib_table_lookup", match: "(" }`, 'signals[0].match'],
    ['a tracepoint without its group', `${BASE}signals:\n  - { name: s, kind: tracepoint, event: fib_table_lookup }`, 'signals[0].event'],
    ['a counter signal for an undeclared namespace', `${BASE}signals:\n  - { name: s, kind: counter, counter: Ip6.InNoRoutes, ns: ghost }`, 'signals[0].ns'],
    ['a signature naming an undeclared signal', `name: t\ndescription: d\nprobes:\n  - { name: p, ping: 127.0.0.1 }\nsignature: { probe: p, signals: [nope] }`, 'signature.signals[0]'],
    ['two signals with one name', `${BASE}signals:\n  - { name: s, kind: log, pattern: a }\n  - { name: s, kind: log, pattern: b }`, 'signals'],
    ['stopOnSignal with no log-watchable signature signal', `name: t\ndescription: d\nprobes:\n  - { name: p, ping: 127.0.0.1, stopOnSignal: true }\nsignals:\n  - { name: d, kind: drop-reason, reason: X }\nsignature: { probe: p, signals: [d] }`, 'probes[0].stopOnSignal'],
    ['a kselftest result of a probe that has no kselftest results', `name: t\ndescription: d\nprobes:\n  - { name: p, ping: 127.0.0.1 }\nsignature: { probe: p/x }`, 'signature.probe'],
    ['a tracepoint group with a slash', `${BASE}tracepoints: ["fib/x"]`, 'tracepoints[0]'],
  ];
  for (const [what, yaml, field, msg] of cases) it(what, () => bad(yaml, field, msg));
});

const FULL = `
name: full
description: every feature of the case language
packages: [bash]
sourceFiles: [tools/testing/selftests/net/fib_tests.sh]
namespaces: [ns2]
links:
  - { type: veth, name: v1, peer: { name: v2, ns: ns2 } }
interfaces:
  - { dev: v1, addresses: ["2001:db8::1/64", 192.0.2.1/24] }
  - { ns: ns2, dev: v2, addresses: ["2001:db8::2/64"], dad: true }
routes:
  - { dst: default, via: "2001:db8::2" }
  - { ns: ns2, dst: default, family: 6, dev: v2 }
sysctls:
  - { key: net.ipv6.conf.all.forwarding, value: 1 }
nftables:
  - ns: ns2
    ruleset: |
      table inet t { chain c { type filter hook input priority 0; tcp dport 1 drop; } } # $(reboot) \`id\`
steps:
  - { name: odd.name, ns: ns2, exec: [ip, "-6", route, show, "it's $(reboot)"], expectRc: 0 }
servers:
  - { name: u, ns: ns2, udpListen: 5353, reply: pong }
  - { name: t, tcpListen: 80 }
captures:
  - { ns: ns2, dev: v2 }
probes:
  - { name: ping6, ping: "2001:db8::2" }
  - { name: udp6, udp: { host: "2001:db8::2", port: 5353, expect: pong } }
  - { name: tcp6, ns: ns2, tcp: { host: "2001:db8::1", port: 80, expect: kernel-repro-ok } }
  - { name: self, exec: { argv: [bash, /src/tools/testing/selftests/net/fib_tests.sh, -t, rp_filter], results: kselftest, expectRc: 1 } }
signals:
  - { name: drop, kind: drop-reason, reason: IP_RPFILTER }
  - { name: warn, kind: log, pattern: "WARNING: CPU: [0-9]+" }
  - { name: fib6, kind: tracepoint, event: "fib6:fib6_table_lookup", match: "iif 1 " }
  - { name: nd, kind: counter, counter: Icmp6InNeighborSolicits, ns: ns2 }
signature: { probe: self/rp_filter-passes-local-packets, signals: [drop, warn], controls: [self/rp_filter-passes-loopback-packets] }
`;

describe('rendering the new features', () => {
  const c = parse(FULL);
  const r = renderCase(c, { sourceFiles: { 'tools/testing/selftests/net/fib_tests.sh': '#!/bin/bash\necho hi\n' } });
  const steps = r.files['/case/steps.sh']!;

  it('IPv6 addresses skip DAD unless asked; an IPv6 default route is ::/0', () => {
    expect(r.files['/case/addr-host.ip']).toContain('address add 2001:db8::1/64 dev v1 nodad');
    expect(r.files['/case/addr-host.ip']).toContain('address add 192.0.2.1/24 dev v1\n');
    expect(r.files['/case/addr-ns2.ip']).toContain('address add 2001:db8::2/64 dev v2\n');
    expect(r.files['/case/addr-host.ip']).toContain('route add ::/0 via 2001:db8::2');
    expect(r.files['/case/addr-ns2.ip']).toContain('route add ::/0 dev v2');
    expect(probeCommand(c.probes[0]!)).toEqual(['/bin/busybox', 'ping', '-6', '-c', '1', '-W', '5', '2001:db8::2']);
  });

  it('a server with bind or v6only passes both to the agent and needs socat; v6only with an IPv4 bind is refused', () => {
    const base = { name: 'srv', description: 'd', probes: [{ name: 'p', ping: '127.0.0.1' }], signature: { probe: 'p' } };
    const c = caseSchema.parse({ ...base, servers: [{ name: 'w', tcpListen: 8080, bind: '::', v6only: true }, { name: 'x', tcpListen: 8081 }] });
    const steps = renderCase(c).files['/case/steps.sh']!;
    expect(steps).toContain("kr_server w host tcp 8080 kernel-repro-ok :: v6only\n");
    expect(steps).toContain('kr_server x host tcp 8081 kernel-repro-ok\n');
    expect(caseNeeds(c).packages).toContain('socat');
    const bad = caseSchema.safeParse({ ...base, servers: [{ name: 'w', tcpListen: 8080, bind: '127.0.0.1', v6only: true }] });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues.map((i) => i.path))).toContain('v6only');
  });

  it('UDP probes and servers: socat in the guest (a package the case did not have to name); the reply ends the probe', () => {
    expect(steps).toContain('kr_server u ns2 udp 5353 pong');
    expect(steps).toContain('kr_wait_listen ns2 udp 5353');
    expect(steps).toContain("kr_probe udp6 host 5000 0 0 pong 1 /kr/udp-probe 2001:db8::2 5353 5");
    expect(caseNeeds(c).packages).toEqual(['bash', 'nftables', 'socat', 'tcpdump']);
  });

  it('an nftables ruleset is a file for nft -f, never shell text', () => {
    expect(r.files['/case/nft-ns2.nft']).toContain('# $(reboot) `id`');
    expect(r.files['/case/setup-ns2.sh']).toContain('kr_run nftables:ns2 nft -f /case/nft-ns2.nft');
    expect(steps).not.toContain('# $(reboot)');
  });

  it('exec steps and probes pass argv through the quoting; hostile words stay words in a real shell', () => {
    const line = steps.split('\n').find((l) => l.startsWith('kr_step'))!;
    const printed = execFileSync('sh', ['-c', `kr_step() { printf '%s\\n' "$@"; }\n${line}`]).toString().split('\n');
    expect(printed.slice(0, 9)).toEqual(['exec:odd.name', 'ns2', '30000', '0', 'ip', '-6', 'route', 'show', "it's $(reboot)"]);
    expect(steps).toContain('kr_probe self host 5000 0 1 \'\' 0 bash /src/tools/testing/selftests/net/fib_tests.sh -t rp_filter');
  });

  it('captures start before the probes and stop after them; the tracepoints the signals need are on; addresses are symbolised', () => {
    const order = ['kr_capture_start ns2-v2 ns2 v2 256 200', 'kr_trace_on skb/kfree_skb fib6/fib6_table_lookup', 'kr_probe ping6', 'kr_trace_dump', 'kr_symbols location', 'kr_capture_stop ns2-v2'];
    const at = order.map((x) => steps.indexOf(x));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    // the counter a signal reads is reported even at zero
    expect(r.files['/case/setup-ns2.sh']).toContain('kr_counters_here before ns2 1 Icmp6InNeighborSolicits');
    // a log signal in the signature: its ERE is what a stopOnSignal probe would watch for
    expect(steps).toContain("KR_WATCH='(WARNING: CPU: [0-9]+)'");
  });

  it('snmp6 is read only by cases that use IPv6 or name an IPv6 counter (it costs guest time)', () => {
    expect(caseNeeds(c).snmp6).toBe(true);
    const v4 = parse(`${BASE}counters: [IPReversePathFilter]`);
    expect(caseNeeds(v4).snmp6).toBe(false);
    expect(renderCase(v4).files['/case/setup-host.sh']).toContain('kr_counters_here before host 0 IPReversePathFilter');
    expect(caseNeeds(parse(`${BASE}counters: [Ip6InNoRoutes]`)).snmp6).toBe(true);
  });

  it('files from the kernel tree travel with the case at /src/<path>', () => {
    expect(r.files['/src/tools/testing/selftests/net/fib_tests.sh']).toBe('#!/bin/bash\necho hi\n');
  });
});

const T = (event: string, text: string, task = 'ping-62', cpu = 0): string => `            ${task}      [00${cpu}] ..s1.     2.345678: ${event}: ${text}`;

describe('signals', () => {
  const obs = (o: Partial<Observations> = {}): Observations => ({
    console: '',
    trace: [],
    countersBefore: {},
    countersAfter: {},
    symbols: {},
    namespaces: ['host', 'ns2'],
    ...o,
  });
  const ev = (specs: SignalSpec[], o: Partial<Observations>) => evaluateSignals(specs, [], obs(o));

  it('parses any ftrace event line, with or without the flags column, and skips comments', () => {
    const t = parseTrace(
      [
        '# tracer: nop',
        T('kfree_skb', 'skbaddr=000000001234abcd protocol=2048 location=ffffffff81a1b2c3 reason: IP_RPFILTER'),
        '          <idle>-0       [001]     2.400001: netif_receive_skb: dev=lo skbaddr=00000000aa len=84',
        '   kworker/u2:1-30     [000] d..2.     3.000000: fib6_table_lookup: table 255 oif 0 iif 1 proto 58 ::1/0 -> ::1/0 ==> dev lo gw :: err 0',
      ].join('\n'),
    );
    expect(t.map((e) => [e.task, e.pid, e.cpu, e.event])).toEqual([
      ['ping', 62, 0, 'kfree_skb'],
      ['<idle>', 0, 1, 'netif_receive_skb'],
      ['kworker/u2:1', 30, 0, 'fib6_table_lookup'],
    ]);
  });

  it('drop-reason: the reason, and the function from the guest kallsyms (or the symbol the kernel printed)', () => {
    // the agent reads the trace a second time with raw pointers and names the address of each event's location
    const symbols = parseSymbols('0 location ffffffff81a1b2c3 ip_rcv_finish_core.constprop.0+0x1a3\n2 location ffffffff81ffff00 tcp_v4_rcv+0x10\n');
    expect(dropOf({ text: 'skbaddr=(____ptrval____) protocol=2048 location=(____ptrval____) reason: IP_RPFILTER', line: 0 }, symbols)).toEqual({ reason: 'IP_RPFILTER', location: '(____ptrval____)', at: 'ip_rcv_finish_core.constprop.0+0x1a3' });
    expect(dropOf({ text: 'skbaddr=x location=ip_rcv_finish_core+0x1a3/0x3c0 reason: IP_RPFILTER', line: 5 }, {})?.at).toBe('ip_rcv_finish_core+0x1a3/0x3c0');
    expect(dropOf({ text: 'skbaddr=x location=ffff reason: ', line: 0 }, symbols)).toBeNull(); // no reason printed
    expect(functionOf('ip_rcv_finish_core.constprop.0+0x1a3/0x3c0')).toBe('ip_rcv_finish_core');
    expect(functionOf('tcp_v4_rcv.cold+0x1')).toBe('tcp_v4_rcv');
    const trace = parseTrace(
      [
        T('kfree_skb', 'skbaddr=(____ptrval____) protocol=2048 location=(____ptrval____) reason: IP_RPFILTER'),
        T('kfree_skb', 'skbaddr=(____ptrval____) protocol=2048 location=(____ptrval____) reason: NOT_SPECIFIED', 'kworker', 1),
        T('kfree_skb', 'skbaddr=(____ptrval____) protocol=2048 location=(____ptrval____) reason: IP_RPFILTER'),
      ].join('\n'),
    );
    const [any, inFn, elsewhere] = ev(
      [
        { name: 'a', kind: 'drop-reason', reason: 'IP_RPFILTER' },
        { name: 'b', kind: 'drop-reason', reason: 'IP_RPFILTER', function: 'ip_rcv_finish_core' },
        { name: 'c', kind: 'drop-reason', reason: 'IP_RPFILTER', function: 'tcp_v4_rcv' },
      ],
      { trace, symbols },
    );
    expect([any!.count, inFn!.count, elsewhere!.count]).toEqual([2, 1, 1]);
    expect(inFn!.matches[0]!.text).toBe('IP_RPFILTER at ip_rcv_finish_core.constprop.0+0x1a3 (ping-62)');
  });

  it('counter: the change over the probes in one namespace or all, from netstat, snmp and snmp6 alike', () => {
    const before = { host: parseNetstat('TcpExt: IPReversePathFilter\nTcpExt: 1\n'), ns2: parseNetstat('Icmp6: InNeighborSolicits\nIcmp6: 0\n') };
    const after = { host: parseNetstat('TcpExt: IPReversePathFilter\nTcpExt: 4\n'), ns2: parseNetstat('Icmp6: InNeighborSolicits\nIcmp6: 2\n') };
    const [rp, nd, nd2, none] = ev(
      [
        { name: 'rp', kind: 'counter', counter: 'IPReversePathFilter', min: 1 },
        { name: 'nd', kind: 'counter', counter: 'Icmp6InNeighborSolicits', ns: 'ns2', min: 1 },
        { name: 'nd2', kind: 'counter', counter: 'Icmp6.InNeighborSolicits', min: 3 },
        { name: 'none', kind: 'counter', counter: 'Ip6.InNoRoutes', min: 1 },
      ],
      { countersBefore: before, countersAfter: after },
    );
    expect([rp!.fired, rp!.count, rp!.matches[0]!.text]).toEqual([true, 3, 'host:TcpExt.IPReversePathFilter +3']);
    expect([nd!.fired, nd!.count]).toEqual([true, 2]);
    expect([nd2!.fired, nd2!.count]).toEqual([false, 2]); // below its min
    expect(none!.fired).toBe(false);
  });

  it('log: POSIX classes work on the harness side too; tracepoint: event name and regex, distinct evidence lines', () => {
    const con = '[    1.000000] WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 x\n[    1.100000] ok\n';
    const [w] = ev([{ name: 'w', kind: 'log', pattern: 'WARNING: CPU:[[:space:]][0-9]+', min: 1 }], { console: con });
    expect([w!.fired, w!.matches[0]!.text]).toEqual([true, 'WARNING: CPU: 0 PID: 1 at net/core/dev.c:1 x']);
    const trace = parseTrace([T('fib_table_lookup', 'table 254 oif 0 iif 1 proto 0 a/0 -> a/0 ==> dev eth0'), T('fib_table_lookup', 'table 254 oif 0 iif 1 proto 0 a/0 -> a/0 ==> dev eth0'), T('fib_table_lookup', 'table 254 oif 0 iif 1 proto 0 a/0 -> a/0 ==> dev lo ')].join('\n'));
    const [m] = ev([{ name: 'm', kind: 'tracepoint', event: 'fib:fib_table_lookup', match: '==> dev (?:$|[^l]|l$|l[^o]|lo$|lo[^ ])', min: 1 }], { trace });
    expect([m!.count, m!.matches.length]).toEqual([2, 1]);
  });
});

describe('kselftest results', () => {
  it('TEST lines become probes <parent>/<slug>, with OK, FAIL and SKIP', () => {
    const parent = { name: 'fib_tests', ns: 'host', rc: 1, passed: false, durationMs: 3000, stoppedEarly: false, output: '\nIPv4 rp_filter tests\n    TEST: rp_filter passes local packets                                [FAIL]\n    TEST: rp_filter passes loopback packets                             [ OK ]\n    TEST: needs a tool                                                  [SKIP]\n    TEST: rp_filter passes local packets                                [ OK ]\n' };
    expect(kselftestResults(parent).map((p) => [p.name, p.passed, p.skipped ?? false])).toEqual([
      ['fib_tests/rp_filter-passes-local-packets', false, false],
      ['fib_tests/rp_filter-passes-loopback-packets', true, false],
      ['fib_tests/needs-a-tool', false, true],
      ['fib_tests/rp_filter-passes-local-packets-2', true, false],
    ]);
    expect(resultSlug('  IPv6 route: add (metric 1024) ')).toBe('ipv6-route-add-metric-1024');
  });

  const ks = (lines: string[]) => {
    const parent = { name: 'fib_tests', ns: 'host', rc: 1, passed: false, durationMs: 3000, stoppedEarly: false, output: lines.map((l) => `    TEST: ${l}`).join('\n') };
    return [parent, ...kselftestResults(parent)];
  };
  const judge = (probes: ReturnType<typeof ks>, probe: string, controls: string[] = []) =>
    decideVerdict({ signature: { probe, when: 'fail' }, controlProbes: controls, report: { hello: { kernel: 'x', uptimeMs: 1 }, done: true, probes }, signals: [], panic: null, vmTimedOut: false, deadlineMs: 1000 });

  it('SKIP and XFAIL are outcomes of their own: never "failed"; shown as SKIP / XFAIL', () => {
    const ps = ks(['a check   [SKIP]', 'b check   [XFAIL]', 'c check   [FAIL]']);
    expect(ps.slice(1).map((p) => probeStatus(p))).toEqual(['SKIP', 'XFAIL', 'FAIL']);
  });

  it('a signature on a skipped result is inconclusive and says so, never reproduced; a skipped control too', () => {
    const ps = ks(['a check   [SKIP]', 'b check   [ OK ]']);
    const v = judge(ps, 'fib_tests/a-check');
    expect(v.verdict).toBe('error');
    expect(v.reason).toMatch(/^inconclusive: the signature fib_tests\/a-check was skipped by its test \(\[SKIP\]/);
    const c = judge(ps, 'fib_tests/b-check', ['fib_tests/a-check']);
    expect(c.verdict).toBe('error');
    expect(c.reason).toMatch(/^inconclusive: control fib_tests\/a-check was skipped/);
  });

  it('a signature result that did not run (misspelt, or a test that stopped early): the error lists the results that did', () => {
    const ps = ks(['rp_filter passes local packets   [FAIL]', 'rp_filter passes loopback packets   [ OK ]', 'rp_filter passes local packets   [ OK ]']);
    const v = judge(ps, 'fib_tests/rp_filter-passes-lokal-packets');
    expect(v.verdict).toBe('error');
    expect(v.reason).toBe(
      'signature probe fib_tests/rp_filter-passes-lokal-packets did not run (the results of fib_tests that ran: fib_tests/rp_filter-passes-local-packets, fib_tests/rp_filter-passes-loopback-packets, fib_tests/rp_filter-passes-local-packets-2)',
    );
    expect(judge([ps[0]!], 'fib_tests/x').reason).toMatch(/\(fib_tests reported no kselftest results\)$/);
    // a repeated name is <slug>-2, -3: the second run of the same TEST line
    expect(judge(ps, 'fib_tests/rp_filter-passes-local-packets-2').verdict).toBe('not-reproduced');
  });
});

describe('agent protocol', () => {
  it('reads captures, exec steps with their expected code, and sections by name', () => {
    const r = parseAgentOutput(
      ['@@KR hello kernel=x uptime_ms=1', '@@KR step exec:s rc=3 ok=1 ms=5 timedout=0', '@@KR step tc:host rc=2 ok=0 ms=5', `@@KR begin ${SECTION.captureSummary('c')}`, '1.0 IP6 a > b', `@@KR end ${SECTION.captureSummary('c')}`, '@@KR capture c ns=ns2 dev=v2 packets=1 pcap_bytes=120', '@@KR done uptime_ms=9'].join('\n'),
    );
    expect(r.steps.map((s) => [s.label, s.rc, s.ok])).toEqual([
      ['exec:s', 3, true],
      ['tc:host', 2, false],
    ]);
    expect(r.captures).toEqual([{ name: 'c', ns: 'ns2', dev: 'v2', packets: 1, pcapBytes: 120 }]);
    expect(r.sections['capture-summary:c']).toBe('1.0 IP6 a > b');
  });
});

describe('guest packages', () => {
  it('reads apt-cache depends: the first of alternatives, no virtual packages', () => {
    expect(parseDepends('bash\n  PreDepends: libc6\n  PreDepends: libtinfo6\n  Depends: base-files\n |Depends: mawk\n  Depends: original-awk\n  Depends: <awk>\n')).toEqual(['libc6', 'libtinfo6', 'base-files', 'mawk']);
  });
  it('the closure holds the named packages and the library packages they need, transitively, never libc', async () => {
    const deps: Record<string, string[]> = { socat: ['libc6', 'libssl3', 'libwrap0', 'adduser'], libssl3: ['libc6'], libwrap0: ['libc6', 'libnsl2'], libnsl2: ['libtirpc3'], libtirpc3: [] };
    expect(await packageClosure(['socat'], async (p) => deps[p] ?? [])).toEqual(['libnsl2', 'libssl3', 'libtirpc3', 'libwrap0', 'socat']);
  });
});

describe('the agent, run by a real busybox sh and awk', () => {
  it.runIf(fs.existsSync('/bin/busybox'))('counters.awk keeps non-zero and named counters, and turns snmp6 into the same format', () => {
    const dir = testTempDir('kr-counters-');
    fs.writeFileSync(path.join(dir, 'netstat'), 'TcpExt: SyncookiesSent IPReversePathFilter ListenDrops\nTcpExt: 0 0 3\n');
    fs.writeFileSync(path.join(dir, 'snmp6'), 'Ip6InReceives                   \t5\nIp6InNoRoutes                   \t0\nIcmp6InMsgs                     \t0\nUdpLite6InErrors 0\n');
    const out = execFileSync('/bin/busybox', ['awk', '-v', 'keep= IPReversePathFilter Ip6InNoRoutes ', '-f', path.join(repoRoot, 'images/agent/counters.awk'), path.join(dir, 'netstat'), path.join(dir, 'snmp6')]).toString();
    expect(parseNetstat(out)).toEqual({ 'TcpExt.IPReversePathFilter': 0, 'TcpExt.ListenDrops': 3, 'Ip6.InReceives': 5, 'Ip6.InNoRoutes': 0 });
  });

  const lib = path.join(repoRoot, 'images/agent/lib.sh');
  const sh = (script: string, env: Record<string, string> = {}): string =>
    execFileSync('/bin/busybox', ['sh', '-c', `. ${shq(lib)}\n${script}`], { env: { PATH: process.env.PATH ?? '', ...env } }).toString();

  it.runIf(fs.existsSync('/bin/busybox'))('kr_path prefers a real program in PATH over the busybox applet of that name', () => {
    const dir = testTempDir('kr-path-');
    fs.writeFileSync(path.join(dir, 'ping'), '#!/bin/sh\necho real\n', { mode: 0o755 });
    fs.mkdirSync(path.join(dir, 'sub'));
    expect(sh('kr_path ping', { PATH: `${dir}:/bin` }).trim()).toBe(path.join(dir, 'ping'));
    expect(sh('kr_path /abs/x').trim()).toBe('/abs/x');
    expect(sh('kr_path sub', { PATH: `${dir}:/bin` }).trim()).toBe('sub'); // a directory is not a program
  });

  it.runIf(fs.existsSync('/bin/busybox') && fs.existsSync('/proc/kallsyms'))('the agent\'s symbols.awk turns trace addresses into kallsyms symbols with their offset (this host\'s kallsyms, busybox awk)', () => {
    const line = fs
      .readFileSync('/proc/kallsyms', 'utf8')
      .split('\n')
      .find((l) => / [Tt] ip_rcv$/.test(l));
    if (!line || /^0+ /.test(line)) return; // addresses hidden from this user
    const addr = line.split(' ')[0]!;
    const plus = (BigInt(`0x${addr}`) + 0x2an).toString(16).padStart(16, '0');
    const dir = testTempDir('kr-syms-');
    fs.writeFileSync(path.join(dir, 'trace'), ['other line', T('kfree_skb', `skbaddr=1 protocol=2048 location=${plus} reason: X`)].join('\n') + '\n');
    const out = execFileSync('/bin/busybox', ['awk', '-v', 'fields= location ', '-f', path.join(repoRoot, 'images/agent/symbols.awk'), path.join(dir, 'trace'), '/proc/kallsyms']).toString();
    expect(parseSymbols(out)['1:location']).toBe(`ip_rcv+0x2a`);
  });
});
