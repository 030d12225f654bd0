import { describe, it, expect } from 'vitest';
import {
  parseMartians,
  parseMartianDestinations,
  matchesMartian,
  parseKernelLine,
} from '../../harness/observe/martian.ts';
import { parseFibTrace, reverseLookupsOn, summarizeFib } from '../../harness/observe/fib.ts';
import { parseNetstat, diffCounters, pickCounters } from '../../harness/observe/counters.ts';
import { detectPanic, crashFingerprint } from '../../harness/observe/panic.ts';

const crlf = (lines: string[]): string => lines.map((l) => `${l}\r\n`).join('');

describe('parseKernelLine', () => {
  it('strips timestamp, loglevel, caller id and \\r', () => {
    expect(parseKernelLine('<4>[    1.234567] IPv4: hello\r')).toEqual({
      msg: 'IPv4: hello',
      time: 1.234567,
      level: 4,
    });
    expect(parseKernelLine('[   12.000001][    T1] Run /init as init process')).toEqual({
      msg: 'Run /init as init process',
      time: 12.000001,
    });
    expect(parseKernelLine('4,812,2101234,-;IPv4: martian source')).toEqual({
      msg: 'IPv4: martian source',
      time: 2.101234,
      level: 4,
    });
    expect(parseKernelLine('[   12.347800]  dump_stack_lvl+0x44/0x5c').msg).toBe(' dump_stack_lvl+0x44/0x5c');
    expect(parseKernelLine('no prefix here')).toEqual({ msg: 'no prefix here' });
  });
});

describe('parseMartians', () => {
  it('parses the martian source line and its ll header (blog form, no timestamps)', () => {
    const log = [
      'IPv4: martian source 10.53.180.130 from 10.53.180.130, on dev eth0',
      'll header: 00000000: 98 03 9b 7f ff d0 98 03 9b 7f ff d1 08 00',
    ].join('\n');
    expect(parseMartians(log)).toStrictEqual([
      {
        src: '10.53.180.130',
        dst: '10.53.180.130',
        dev: 'eth0',
        llHeader: '98 03 9b 7f ff d0 98 03 9b 7f ff d1 08 00',
        raw: 'IPv4: martian source 10.53.180.130 from 10.53.180.130, on dev eth0',
      },
    ]);
  });

  it('maps dst to the "martian source" address and src to the "from" address', () => {
    const [ev] = parseMartians('[    3.000000] IPv4: martian source 192.0.2.1 from 198.51.100.7, on dev veth1\n');
    expect(ev?.dst).toBe('192.0.2.1');
    expect(ev?.src).toBe('198.51.100.7');
    expect(ev?.time).toBe(3);
    expect(ev?.llHeader).toBeUndefined();
  });

  it('handles a serial console log with \\r\\n, timestamps, loglevels and interleaved lines', () => {
    const log = crlf([
      '[    0.000000] Linux version 6.1.192 (build@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC',
      '[    1.912345] Run /init as init process',
      '/ # [    2.101234] IPv4: martian source 192.0.2.1 from 192.0.2.1, on dev veth1',
      '[    2.101236] veth0: some unrelated message from another CPU',
      '[    2.101240] ll header: 00000000: 02 00 00 00 00 01 02 00 00 00 00 02 08 00',
      '<4>[    2.205000] IPv4: martian source 10.0.0.2 from 127.0.0.1, on dev eth0',
      '<4>[    2.205001] ll header: 00000000: 52 54 00 12 34 56 52 54 00 65 43 21 08 00',
      '[    2.300000] IPv4: martian source 10.0.0.3 from 0.0.0.0, on dev tun0',
      '[    2.400000] random: crng init done',
    ]);
    const evs = parseMartians(log);
    expect(evs).toHaveLength(3);
    expect(evs[0]).toStrictEqual({
      src: '192.0.2.1',
      dst: '192.0.2.1',
      dev: 'veth1',
      time: 2.101234,
      llHeader: '02 00 00 00 00 01 02 00 00 00 00 02 08 00',
      raw: '/ # [    2.101234] IPv4: martian source 192.0.2.1 from 192.0.2.1, on dev veth1',
    });
    expect(evs[1]).toMatchObject({ src: '127.0.0.1', dst: '10.0.0.2', dev: 'eth0', time: 2.205 });
    expect(evs[1]?.llHeader).toBe('52 54 00 12 34 56 52 54 00 65 43 21 08 00');
    // tun0 has no link-layer header: nothing printed, nothing attached
    expect(evs[2]).toStrictEqual({
      src: '0.0.0.0',
      dst: '10.0.0.3',
      dev: 'tun0',
      time: 2.3,
      raw: '[    2.300000] IPv4: martian source 10.0.0.3 from 0.0.0.0, on dev tun0',
    });
    for (const ev of evs) expect(ev.raw).not.toContain('\r');
  });

  it('does not steal the ll header of the next martian message', () => {
    const log = [
      '[    5.000000] IPv4: martian source 192.0.2.1 from 10.1.1.1, on dev veth1',
      '[    5.000100] IPv4: martian source 192.0.2.1 from 10.2.2.2, on dev veth1',
      '[    5.000101] ll header: 00000000: aa bb cc dd ee ff 11 22 33 44 55 66 08 00',
    ].join('\n');
    const evs = parseMartians(log);
    expect(evs.map((e) => e.llHeader)).toStrictEqual([undefined, 'aa bb cc dd ee ff 11 22 33 44 55 66 08 00']);
  });

  it('joins a multi-line hex dump and accepts the old colon format', () => {
    const log = [
      'IPv4: martian source 192.0.2.9 from 127.0.0.1, on dev gre1',
      'll header: 00000000: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f',
      'll header: 00000010: 10 11 12 13',
      'martian source 192.168.1.1 from 127.0.0.1, on dev eth1',
      '        ll header: 52:54:00:98:99:d0:52:54:00:de:d8:10:08:00',
    ].join('\n');
    const evs = parseMartians(log);
    expect(evs.map((e) => e.llHeader)).toStrictEqual([
      '00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13',
      '52:54:00:98:99:d0:52:54:00:de:d8:10:08:00',
    ]);
    expect(evs[1]).toMatchObject({ src: '127.0.0.1', dst: '192.168.1.1', dev: 'eth1' });
  });

  it('returns [] for a log without martians and ignores martian destinations', () => {
    expect(parseMartians('[    1.000000] Freeing unused kernel image memory: 2048K\n')).toStrictEqual([]);
    expect(
      parseMartians('[    9.000000] IPv4: martian destination 0.0.0.0 from 192.0.2.5, dev veth0'),
    ).toStrictEqual([]);
  });
});

describe('parseMartianDestinations', () => {
  it('parses "martian destination <daddr> from <saddr>, dev <dev>"', () => {
    const log = crlf([
      '[    9.000000] IPv4: martian source 192.0.2.1 from 192.0.2.2, on dev veth1',
      '[    9.100000] IPv4: martian destination 127.0.0.1 from 192.0.2.5, dev veth0',
    ]);
    expect(parseMartianDestinations(log)).toStrictEqual([
      {
        src: '192.0.2.5',
        dst: '127.0.0.1',
        dev: 'veth0',
        time: 9.1,
        raw: '[    9.100000] IPv4: martian destination 127.0.0.1 from 192.0.2.5, dev veth0',
      },
    ]);
  });
});

describe('matchesMartian', () => {
  const ev = { src: '198.51.100.7', dst: '192.0.2.1', dev: 'veth1', raw: '' };
  it('matches on every given field', () => {
    expect(matchesMartian(ev, {})).toBe(true);
    expect(matchesMartian(ev, { src: '198.51.100.7' })).toBe(true);
    expect(matchesMartian(ev, { src: '198.51.100.7', dst: '192.0.2.1', dev: 'veth1' })).toBe(true);
    expect(matchesMartian(ev, { src: '192.0.2.1' })).toBe(false); // src/dst not swapped
    expect(matchesMartian(ev, { dst: '192.0.2.1', dev: 'veth0' })).toBe(false);
  });
  it('accepts IPv4 CIDR patterns', () => {
    expect(matchesMartian(ev, { src: '198.51.100.0/24' })).toBe(true);
    expect(matchesMartian(ev, { src: '198.51.101.0/24' })).toBe(false);
    expect(matchesMartian(ev, { dst: '0.0.0.0/0' })).toBe(true);
    expect(matchesMartian(ev, { dst: '192.0.2.1/32' })).toBe(true);
    expect(matchesMartian(ev, { dst: '192.0.2.0/33' })).toBe(false);
  });
});

const TRACE_V418 = [
  '# tracer: nop',
  '#',
  '# entries-in-buffer/entries-written: 5/5   #P:2',
  '#',
  '#                                _-----=> irqs-off/BH-disabled',
  '#                               / _----=> need-resched',
  '#                              | / _---=> hardirq/softirq',
  '#                              || / _--=> preempt-depth',
  '#                              ||| / _-=> migrate-disable',
  '#                              |||| /     delay',
  '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
  '#              | |         |   |||||     |         |',
  '            ping-62      [000] ..s1.     2.345678: fib_table_lookup: table 255 oif 0 iif 1 proto 1 192.0.2.1/0 -> 192.0.2.1/0 tos 0 scope 0 flags 0 ==> dev veth1 gw 0.0.0.0/:: err 0',
  '            ping-62      [000] b.s1.     2.345690: fib6_table_lookup: table 255 oif 0 iif 1 proto 58 ::1/0 -> ::1/0 flowlabel 0 tos 0 scope 0 flags 0 ==> dev lo gw :: err 0',
  '          <idle>-0       [001] ..s2.     2.400001: fib_table_lookup: table 254 oif 0 iif 3 proto 6 198.51.100.7/43012 -> 192.0.2.1/80 tos 0 scope 0 flags 1 ==> dev - gw 0.0.0.0/:: err -101',
  '    <...>-311708 [040] ..s1  7951180.957825: fib_table_lookup: table 254 oif 4 iif 1 proto 17 10.53.180.130/5353 -> 10.53.180.1/53 tos 0 scope 0 flags 0 ==> dev eth0 gw 10.53.180.1/\x01\x02zz err 0',
  '            ping-62      [000] ..s1.     2.500000: fib_table_lookup: table 255 oif 0 iif 3 proto 1 10.9.9.9/0 -> 10.9.9.1/0 tos 0 scope 0 flags 0 ==> dev  gw 0.0.0.0/:: err -113',
  '            ping-62      [000] ..s1.     2.600000: net_dev_xmit: dev=veth1 skbaddr=000000001234abcd len=98 rc=0',
].join('\n');

describe('parseFibTrace (v4.18+ format)', () => {
  const evs = parseFibTrace(TRACE_V418);

  it('parses fib_table_lookup lines only, ignoring comments and fib6_table_lookup', () => {
    expect(evs).toHaveLength(4);
    expect(evs.map((e) => e.table)).toStrictEqual([255, 254, 254, 255]);
    expect(evs.every((e) => e.format === 'v4.18+')).toBe(true);
  });

  it('extracts every field of the 6.1 format', () => {
    expect(evs[0]).toStrictEqual({
      format: 'v4.18+',
      table: 255,
      oif: 0,
      iif: 1,
      proto: 1,
      src: '192.0.2.1',
      sport: 0,
      dst: '192.0.2.1',
      dport: 0,
      tos: 0,
      scope: 0,
      flags: 0,
      nhDev: 'veth1',
      gw: '0.0.0.0',
      err: 0,
      raw: '            ping-62      [000] ..s1.     2.345678: fib_table_lookup: table 255 oif 0 iif 1 proto 1 192.0.2.1/0 -> 192.0.2.1/0 tos 0 scope 0 flags 0 ==> dev veth1 gw 0.0.0.0/:: err 0',
    });
    expect(evs[1]).toMatchObject({ iif: 3, proto: 6, sport: 43012, dport: 80, flags: 1, nhDev: '-', err: -101 });
  });

  it('keeps only the IPv4 gateway when the IPv6 half is garbage, and "" for an empty dev', () => {
    expect(evs[2]).toMatchObject({ oif: 4, gw: '10.53.180.1', nhDev: 'eth0', sport: 5353, dport: 53 });
    expect(evs[3]).toMatchObject({ nhDev: '', gw: '0.0.0.0', err: -113 });
  });

  it('matches the event name exactly (fib6_table_lookup never parsed as fib_table_lookup)', () => {
    const body = 'table 255 oif 0 iif 1 proto 1 192.0.2.1/0 -> 192.0.2.1/0 tos 0 scope 0 flags 0 ==> dev veth1 gw 0.0.0.0/:: err 0';
    expect(parseFibTrace(`  ping-62 [000] ..s1. 2.000000: fib6_table_lookup: ${body}`)).toStrictEqual([]);
    expect(parseFibTrace(`  ping-62 [000] ..s1. 2.000000: xfib_table_lookup: ${body}`)).toStrictEqual([]);
    expect(parseFibTrace(`  ping-62 [000] ..s1. 2.000000: fib_table_lookup: ${body}`)).toHaveLength(1);
  });

  it('accepts the 4.18-5.1 "gw %pI4 src %pI4" variant and hex flags', () => {
    const [ev] = parseFibTrace(
      ' ping-1 [000] ..s1 10.000000: fib_table_lookup: table 254 oif 0 iif 1 proto 0 0.0.0.0/0 -> 10.0.0.1/0 tos 0 scope 0 flags 1c ==> dev eth0 gw 10.0.0.254 src 10.0.0.2 err 0',
    );
    expect(ev).toMatchObject({ format: 'v4.18+', flags: 0x1c, nhDev: 'eth0', gw: '10.0.0.254', err: 0 });
  });

  it('reverseLookupsOn filters by iif', () => {
    expect(reverseLookupsOn(evs, 3).map((e) => e.err)).toStrictEqual([-101, -113]);
    expect(reverseLookupsOn(evs, 1).map((e) => e.table)).toStrictEqual([255, 254]);
    expect(reverseLookupsOn(evs, 42)).toStrictEqual([]);
  });

  it('summarizeFib gives one line per event', () => {
    expect(summarizeFib(evs[0]!)).toBe('table 255 iif 1 192.0.2.1 -> 192.0.2.1 ==> dev veth1 err 0');
    expect(summarizeFib(evs[1]!)).toBe('table 254 iif 3 198.51.100.7:43012 -> 192.0.2.1:80 ==> dev - err -101');
    expect(summarizeFib(evs[2]!)).toBe(
      'table 254 oif 4 iif 1 10.53.180.130:5353 -> 10.53.180.1:53 ==> dev eth0 gw 10.53.180.1 err 0',
    );
    expect(summarizeFib(evs[3]!)).toBe('table 255 iif 3 10.9.9.9 -> 10.9.9.1 ==> dev "" err -113');
  });
});

describe('parseFibTrace (pre-4.18 format)', () => {
  const LOOKUP =
    '<...>-311708 [040] ..s1 7951180.957825: fib_table_lookup: table 254 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 tos 0 scope 0 flags 0';
  const NH =
    '<...>-311708 [040] ..s1 7951180.957826: fib_table_lookup_nh: nexthop dev eth0 oif 4 src 10.53.180.130';

  it('combines a lookup with the following _nh line', () => {
    expect(parseFibTrace(`${LOOKUP}\n${NH}\n`)).toStrictEqual([
      {
        format: 'pre-4.18',
        table: 254,
        oif: 0,
        iif: 1,
        src: '10.53.180.130',
        dst: '10.53.180.130',
        tos: 0,
        scope: 0,
        flags: 0,
        nhDev: 'eth0',
        nhOif: 4,
        raw: `${LOOKUP}\n${NH}`,
      },
    ]);
  });

  it('keeps lookups without a nexthop and pairs by task despite other CPUs interleaving', () => {
    const trace = crlf([
      '# tracer: nop',
      '<...>-311708 [040] ..s1 7951180.957820: fib_table_lookup: table 255 oif 0 iif 1 src 10.53.180.130 dst 10.53.180.130 tos 0 scope 0 flags 0',
      LOOKUP,
      '  sshd-1234   [012] ..s1 7951180.957825: fib_table_lookup: table 254 oif 0 iif 2 src 10.0.0.5 dst 10.0.0.9 tos 16 scope 0 flags 0',
      NH,
      '  sshd-1234   [012] ..s1 7951180.957827: fib_table_lookup_nh: nexthop dev not set oif 0 src 0.0.0.0',
    ]);
    const evs = parseFibTrace(trace);
    expect(evs.map((e) => [e.table, e.iif, e.nhDev, e.nhOif])).toStrictEqual([
      [255, 1, undefined, undefined],
      [254, 1, 'eth0', 4],
      [254, 2, 'not set', 0],
    ]);
    expect(evs[2]?.tos).toBe(16);
    expect(evs.every((e) => !e.raw.includes('\r'))).toBe(true);
    expect(summarizeFib(evs[0]!)).toBe('table 255 iif 1 10.53.180.130 -> 10.53.180.130 ==> no nexthop');
    expect(summarizeFib(evs[1]!)).toBe('table 254 iif 1 10.53.180.130 -> 10.53.180.130 ==> dev eth0');
  });

  it('drops an _nh line with no lookup before it', () => {
    expect(parseFibTrace(NH)).toStrictEqual([]);
  });
});

// /proc/net/netstat of a 6.1 kernel (TcpExt header shortened after IPReversePathFilter).
const TCPEXT_NAMES = [
  'SyncookiesSent', 'SyncookiesRecv', 'SyncookiesFailed', 'EmbryonicRsts', 'PruneCalled', 'RcvPruned',
  'OfoPruned', 'OutOfWindowIcmps', 'LockDroppedIcmps', 'ArpFilter', 'TW', 'TWRecycled', 'TWKilled',
  'PAWSActive', 'PAWSEstab', 'DelayedACKs', 'DelayedACKLocked', 'DelayedACKLost', 'ListenOverflows',
  'ListenDrops', 'TCPHPHits', 'TCPPureAcks', 'TCPHPAcks', 'TCPRenoRecovery', 'TCPSackRecovery',
  'TCPSACKReneging', 'TCPSACKReorder', 'TCPRenoReorder', 'TCPTSReorder', 'TCPFullUndo', 'TCPPartialUndo',
  'TCPDSACKUndo', 'TCPLossUndo', 'TCPLostRetransmit', 'TCPRenoFailures', 'TCPSackFailures',
  'TCPLossFailures', 'TCPFastRetrans', 'TCPSlowStartRetrans', 'TCPTimeouts', 'TCPLossProbes',
  'TCPLossProbeRecovery', 'TCPRenoRecoveryFail', 'TCPSackRecoveryFail', 'TCPRcvCollapsed',
  'TCPDSACKOldSent', 'TCPDSACKOfoSent', 'TCPDSACKRecv', 'TCPDSACKOfoRecv', 'TCPAbortOnData',
  'TCPAbortOnClose', 'TCPAbortOnMemory', 'TCPAbortOnTimeout', 'TCPAbortOnLinger', 'TCPAbortFailed',
  'TCPMemoryPressures', 'TCPMemoryPressuresChrono', 'TCPSACKDiscard', 'TCPDSACKIgnoredOld',
  'TCPDSACKIgnoredNoUndo', 'TCPSpuriousRTOs', 'TCPMD5NotFound', 'TCPMD5Unexpected', 'TCPMD5Failure',
  'TCPSackShifted', 'TCPSackMerged', 'TCPSackShiftFallback', 'TCPBacklogDrop', 'PFMemallocDrop',
  'TCPMinTTLDrop', 'TCPDeferAcceptDrop', 'IPReversePathFilter', 'TCPTimeWaitOverflow',
];
const IPEXT_NAMES = [
  'InNoRoutes', 'InTruncatedPkts', 'InMcastPkts', 'OutMcastPkts', 'InBcastPkts', 'OutBcastPkts',
  'InOctets', 'OutOctets', 'InMcastOctets', 'OutMcastOctets', 'InBcastOctets', 'OutBcastOctets',
  'InCsumErrors', 'InNoECTPkts', 'InECT1Pkts', 'InECT0Pkts', 'InCEPkts', 'ReasmOverlaps',
];

function netstat(rpfilter: number, inOctets: number): string {
  const tcp = TCPEXT_NAMES.map((n) => (n === 'IPReversePathFilter' ? rpfilter : n === 'TW' ? 2 : 0));
  const ip = IPEXT_NAMES.map((n) => (n === 'InOctets' ? inOctets : n === 'InNoECTPkts' ? 12 : 0));
  return crlf([
    `TcpExt: ${TCPEXT_NAMES.join(' ')}`,
    `TcpExt: ${tcp.join(' ')}`,
    `IpExt: ${IPEXT_NAMES.join(' ')}`,
    `IpExt: ${ip.join(' ')}`,
    'MPTcpExt: MPCapableSYNRX MPCapableSYNTX',
    'MPTcpExt: 0 0',
  ]);
}

const SNMP = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates
Ip: 1 64 15 0 3 0 0 0 12 12 0 1 0 0 0 0 0 0 0

Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 4 0 0 0 0 0 0 0 0 4 0 0 0 0 4 0 0 0 0 0 0 0 0 4 0 0 0 0 0
IcmpMsg: InType0 OutType8
IcmpMsg: 4 4
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 0 0 0 0 0 0 0 0 0 0 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 0 0 0 0 0 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`;

describe('parseNetstat', () => {
  it('keys /proc/net/netstat counters by section, IPReversePathFilter under TcpExt', () => {
    const c = parseNetstat(netstat(1, 1500));
    expect(c['TcpExt.IPReversePathFilter']).toBe(1);
    expect(c['TcpExt.TW']).toBe(2);
    expect(c['TcpExt.TCPTimeWaitOverflow']).toBe(0);
    expect(c['IpExt.InNoRoutes']).toBe(0);
    expect(c['IpExt.InOctets']).toBe(1500);
    expect(c['IpExt.InNoECTPkts']).toBe(12);
    expect(c['MPTcpExt.MPCapableSYNTX']).toBe(0);
    expect(c['IpExt.IPReversePathFilter']).toBeUndefined();
    expect(Object.keys(c)).toHaveLength(TCPEXT_NAMES.length + IPEXT_NAMES.length + 2);
  });

  it('parses /proc/net/snmp, including negative values and blank lines', () => {
    const c = parseNetstat(SNMP);
    expect(c['Ip.Forwarding']).toBe(1);
    expect(c['Ip.InAddrErrors']).toBe(3);
    expect(c['Ip.OutNoRoutes']).toBe(1);
    expect(c['Icmp.InEchoReps']).toBe(4);
    expect(c['IcmpMsg.OutType8']).toBe(4);
    expect(c['Tcp.MaxConn']).toBe(-1);
    expect(c['Udp.NoPorts']).toBe(0);
    expect(c['UdpLite.MemErrors']).toBe(0);
    expect(Object.keys(c)).toHaveLength(19 + 29 + 2 + 15 + 9 + 9);
  });

  it('ignores extra names/values, non-numeric values and orphan value lines', () => {
    const c = parseNetstat(
      [
        'Foo: 1 2 3',
        'TcpExt: A B C D',
        'TcpExt: 1 x 3',
        '',
        'IpExt: InNoRoutes',
        'IpExt: 7 8 9',
      ].join('\r\n'),
    );
    expect(c).toStrictEqual({ 'TcpExt.A': 1, 'TcpExt.C': 3, 'IpExt.InNoRoutes': 7 });
  });
});

describe('diffCounters / pickCounters', () => {
  it('rp_filter drop shows up as TcpExt.IPReversePathFilter: 1', () => {
    const before = parseNetstat(netstat(0, 1500));
    const after = parseNetstat(netstat(1, 1500));
    expect(diffCounters(before, after)).toStrictEqual({ 'TcpExt.IPReversePathFilter': 1 });
  });

  it('reports after - before, counts new names from 0, ignores vanished names', () => {
    expect(
      diffCounters({ 'Ip.InReceives': 10, 'Ip.Gone': 5, 'Ip.Same': 1 }, { 'Ip.InReceives': 13, 'Ip.Same': 1, 'Ip.New': 2, 'Ip.NewZero': 0 }),
    ).toStrictEqual({ 'Ip.InReceives': 3, 'Ip.New': 2 });
  });

  it('picks by full or bare name', () => {
    const c = { ...parseNetstat(netstat(1, 1500)), ...parseNetstat(SNMP) };
    expect(pickCounters(c, ['IPReversePathFilter', 'IpExt.InNoRoutes', 'Ip.InAddrErrors', 'NoSuchCounter'])).toStrictEqual({
      'TcpExt.IPReversePathFilter': 1,
      'IpExt.InNoRoutes': 0,
      'Ip.InAddrErrors': 3,
    });
    expect(pickCounters(c, ['InCsumErrors'])).toStrictEqual({
      'IpExt.InCsumErrors': 0,
      'Icmp.InCsumErrors': 0,
      'Tcp.InCsumErrors': 0,
      'Udp.InCsumErrors': 0,
      'UdpLite.InCsumErrors': 0,
    });
    expect(pickCounters(c, ['TcpExt.InNoRoutes'])).toStrictEqual({});
  });
});

const SYSRQ_PANIC = crlf([
  '/ # echo c > /proc/sysrq-trigger',
  '[   12.345678] sysrq: Trigger a crash',
  '[   12.346012] Kernel panic - not syncing: sysrq triggered crash',
  '[   12.346500] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.192 #1',
  '[   12.346900] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014',
  '[   12.347400] Call Trace:',
  '[   12.347600]  <TASK>',
  '[   12.347800]  dump_stack_lvl+0x44/0x5c',
  '[   12.348000]  panic+0x10c/0x2e1',
  '[   12.348200]  ? _printk+0x58/0x73',
  '[   12.348400]  sysrq_handle_crash+0x16/0x20',
  '[   12.348600]  __handle_sysrq.cold+0x43/0x11b',
  '[   12.348800]  write_sysrq_trigger+0x24/0x40',
  '[   12.349000]  proc_reg_write+0x56/0xa0',
  '[   12.349200]  vfs_write+0xc0/0x3c0',
  '[   12.349400]  ksys_write+0x5f/0xe0',
  '[   12.349600]  do_syscall_64+0x3b/0x90',
  '[   12.349800]  entry_SYSCALL_64_after_hwframe+0x64/0xce',
  '[   12.350000] RIP: 0033:0x4a1b2c',
  '[   12.350200] RSP: 002b:00007ffd3c8a1e28 EFLAGS: 00000246 ORIG_RAX: 0000000000000001',
  '[   12.350400]  </TASK>',
  '[   12.351200] Kernel Offset: disabled',
  '[   12.351400] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---',
]);

const NULL_DEREF_OOPS = [
  '[    5.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008',
  '[    5.100100] #PF: supervisor read access in kernel mode',
  '[    5.100200] #PF: error_code(0x0000) - not-present page',
  '[    5.100300] PGD 0 P4D 0 ',
  '[    5.100400] Oops: 0000 [#1] PREEMPT SMP NOPTI',
  '[    5.100500] CPU: 0 PID: 87 Comm: ip Not tainted 6.1.192 #1',
  '[    5.100700] RIP: 0010:fib_table_lookup+0x1a2/0x6e0',
  '[    5.100900] RSP: 0018:ffffc900001d3a50 EFLAGS: 00010246',
  '[    5.101000] Call Trace:',
  '[    5.101050]  <IRQ>',
  '[    5.101100]  ? __die+0x1f/0x70',
  '[    5.101300]  fib_validate_source+0x1b5/0x3b0',
  '[    5.101400]  ip_route_input_slow+0x8a1/0xb30',
  '[    5.101500]  ip_route_input_noref+0x5c/0xa0',
  '[    5.101600]  ip_rcv_finish_core.constprop.0+0x77/0x3f0',
  '[    5.101700]  </IRQ>',
  '[    5.101800] Modules linked in:',
  '[    5.101900] CR2: 0000000000000008',
  '[    5.102000] ---[ end trace 0000000000000000 ]---',
];

describe('detectPanic', () => {
  it('recognises a 6.1 sysrq panic', () => {
    const p = detectPanic(SYSRQ_PANIC);
    expect(p).not.toBeNull();
    expect(p?.kind).toBe('panic');
    expect(p?.title).toBe('Kernel panic - not syncing: sysrq triggered crash');
    const lines = p?.text.split('\n') ?? [];
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe('Kernel panic - not syncing: sysrq triggered crash');
    expect(lines[2]).toBe('Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014');
    expect(lines[5]).toBe(' dump_stack_lvl+0x44/0x5c');
    expect(lines[20]).toBe('---[ end Kernel panic - not syncing: sysrq triggered crash ]---');
    expect(p?.text).not.toContain('\r');
    expect(p?.text).not.toContain('sysrq: Trigger a crash');
    expect(crashFingerprint(p!)).toBe(
      'Kernel panic - not syncing: sysrq triggered crash | dump_stack_lvl | panic | sysrq_handle_crash',
    );
  });

  it('starts a panic text at the oops that caused it', () => {
    const log = [
      '[    4.900000] Run /init as init process',
      ...NULL_DEREF_OOPS,
      '[    5.102100] RIP: 0010:fib_table_lookup+0x1a2/0x6e0',
      '[    5.102200] Kernel panic - not syncing: Fatal exception in interrupt',
      '[    5.102300] Kernel Offset: disabled',
      '[    5.102400] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---',
      '[    5.200000] Rebooting in 1 seconds..',
    ].join('\n');
    const p = detectPanic(log);
    expect(p?.kind).toBe('panic');
    expect(p?.title).toBe('Kernel panic - not syncing: Fatal exception in interrupt');
    const lines = p?.text.split('\n') ?? [];
    expect(lines[0]).toBe('BUG: kernel NULL pointer dereference, address: 0000000000000008');
    expect(lines).toHaveLength(NULL_DEREF_OOPS.length + 4);
    expect(lines.at(-1)).toBe('---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---');
    expect(crashFingerprint(p!)).toBe(
      'Kernel panic - not syncing: Fatal exception in interrupt | fib_validate_source | ip_route_input_slow | ip_route_input_noref',
    );
  });

  it('reports an oops without panic as kind bug, text ending at ---[ end trace', () => {
    const log = crlf([...NULL_DEREF_OOPS, '[    5.300000] random: crng init done']);
    const p = detectPanic(log);
    expect(p).toStrictEqual({
      kind: 'bug',
      title: 'BUG: kernel NULL pointer dereference, address: 0000000000000008',
      text: NULL_DEREF_OOPS.map((l) => l.replace(/^\[\s*\d+\.\d+\] /, '').trimEnd()).join('\n'),
    });
  });

  it('classifies Oops, general protection fault and kernel BUG at', () => {
    expect(detectPanic('[    1.000000] Oops: 0002 [#1] SMP PTI\n')).toMatchObject({
      kind: 'oops',
      title: 'Oops: 0002 [#1] SMP PTI',
    });
    expect(detectPanic('Internal error: Oops - BUG: 0 [#1] SMP ARM\n')?.kind).toBe('oops');
    expect(
      detectPanic('<4>[    2.000000] general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI'),
    ).toMatchObject({ kind: 'oops', title: 'general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] PREEMPT SMP NOPTI' });
    expect(detectPanic('[    3.000000] BUG: unable to handle page fault for address: ffffffffc0201000')).toMatchObject({
      kind: 'bug',
      title: 'BUG: unable to handle page fault for address: ffffffffc0201000',
    });
  });

  it('prefers a BUG over an earlier WARNING, and reports a lone WARNING as warning', () => {
    const warning = [
      '[    2.000000] ------------[ cut here ]------------',
      '[    2.000001] WARNING: CPU: 0 PID: 1 at net/core/dev.c:10330 netdev_run_todo+0x2c1/0x2d0',
      '[    2.000002] Modules linked in:',
      '[    2.000003] Call Trace:',
      '[    2.000004]  <TASK>',
      '[    2.000005]  ? netdev_run_todo+0x2c1/0x2d0',
      '[    2.000006]  rtnl_unlock+0x9/0x10',
      '[    2.000007]  veth_newlink+0x2c4/0x3e0',
      '[    2.000008]  </TASK>',
      '[    2.000009] ---[ end trace 0000000000000000 ]---',
      '[    2.000010] random: crng init done',
    ];
    const w = detectPanic(warning.join('\n'));
    expect(w?.kind).toBe('warning');
    expect(w?.title).toBe('WARNING: CPU: 0 PID: 1 at net/core/dev.c:10330 netdev_run_todo+0x2c1/0x2d0');
    expect(w?.text.split('\n')).toHaveLength(9);
    expect(crashFingerprint(w!)).toBe(
      'WARNING: CPU: 0 PID: 1 at net/core/dev.c:10330 netdev_run_todo+0x2c1/0x2d0 | rtnl_unlock | veth_newlink',
    );

    const withBug = [...warning, '[    3.000000] kernel BUG at net/core/skbuff.c:118!', '[    3.000001] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI'];
    expect(detectPanic(withBug.join('\n'))).toMatchObject({ kind: 'bug', title: 'kernel BUG at net/core/skbuff.c:118!' });
  });

  it('bounds the text to 80 lines', () => {
    const log = ['[    1.000000] Oops: 0000 [#1] SMP', ...Array.from({ length: 200 }, (_, i) => `[    1.000001] line ${i}`)].join('\n');
    const p = detectPanic(log);
    expect(p?.text.split('\n')).toHaveLength(80);
    expect(p?.text.split('\n')[79]).toBe('line 78');
  });

  it('returns null for a clean boot log', () => {
    const clean = crlf([
      'SeaBIOS (version 1.16.2-debian-1.16.2-1)',
      'Booting from ROM...',
      '[    0.000000] Linux version 6.1.192 (build@host) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC',
      '[    0.000000] Command line: console=ttyS0 panic=-1 oops=panic panic_on_warn=1 quiet',
      '[    0.012345] x86/fpu: x87 FPU will use FXSAVE',
      '[    0.345678] Spectre V2 : Mitigation: Retpolines',
      '[    1.234567] Freeing unused kernel image (initmem) memory: 1024K',
      '[    1.300000] Run /init as init process',
      'init: all probes done',
      '[    2.000000] reboot: Power down',
    ]);
    expect(detectPanic(clean)).toBeNull();
    expect(detectPanic('')).toBeNull();
  });
});

describe('crashFingerprint', () => {
  it('handles old-style [<addr>] frames and a trace with fewer than 3 reliable frames', () => {
    expect(
      crashFingerprint({
        kind: 'oops',
        title: 'Oops: 0000 [#1] SMP',
        text: [
          'Oops: 0000 [#1] SMP',
          'Call Trace:',
          ' [<ffffffff81634e2b>] ? skb_release_data+0x9b/0xf0',
          ' [<ffffffff8163c0ae>] ip_rcv+0x2ae/0x3a0',
          ' [<ffffffff815fa3b2>] __netif_receive_skb_core+0x582/0x800 [virtio_net]',
          'Code: 48 8b 45 d0',
        ].join('\n'),
      }),
    ).toBe('Oops: 0000 [#1] SMP | ip_rcv | __netif_receive_skb_core');
    expect(crashFingerprint({ kind: 'panic', title: 'Kernel panic - not syncing: VFS: Unable to mount root fs', text: 'x' })).toBe(
      'Kernel panic - not syncing: VFS: Unable to mount root fs',
    );
  });
});
