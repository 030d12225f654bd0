// Case files: declarative reproduction scenarios. Every value that reaches the guest shell is
// constrained here by a strict pattern, and the renderer quotes it again (defence in depth).
// Free text that goes into files the guest reads (an nftables ruleset) never reaches a shell.
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { signalSchema } from '../observe/signals/index.ts';
import { TRACEPOINT_RE } from '../observe/signals/tracepoint.ts';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NS_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
const DEV_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;
const IPV4 = '(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const SYSCTL_KEY_RE = /^net\.(?:ipv4|ipv6|core|netfilter|unix)\.[A-Za-z0-9_.-]+$/;
const SYSCTL_VAL_RE = /^-?[0-9]{1,10}(?:[ \t]-?[0-9]{1,10}){0,3}$/;
const KCONFIG_RE = /^CONFIG_[A-Z0-9_]+$/;
const HANDLE_RE = /^[0-9a-f]{1,4}:[0-9a-f]{0,4}$/;
const TOKEN_RE = /^[A-Za-z0-9_.:/-]{1,64}$/;
/** a string a command's output must hold, or must not: printable, no leading or trailing blank (quoted by the renderer, matched as a plain string) */
const TEXT_TOKEN_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;
/** a Debian package name (policy 5.6.1) */
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]{1,62}$/;
/** an argument of an exec step or probe: printable, no control characters (quoted again by the renderer) */
const ARG_RE = /^[\x20-\x7e]{0,256}$/;
/** a path inside the kernel source tree */
const SOURCE_PATH_RE = /^(?:[A-Za-z0-9_][A-Za-z0-9_.+-]*\/)*[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;

const nsName = z.string().regex(NS_RE, 'must be a namespace name: a letter, then letters, digits, _ or - (at most 32)');
const devName = z.string().regex(DEV_RE, 'must be an interface name: a letter, then letters, digits, _ . or - (at most 15)');
const name = z.string().regex(NAME_RE, 'must be a name: letters, digits, _ . or - (at most 64)');

/** IPv4 or IPv6 address (no zone id); IPv6 in any spelling node's parser accepts, restricted to hex, digits, ':' and '.'. */
export function isAddress(s: string): boolean {
  return isIPv4(s) || (isIPv6(s) && /^[0-9A-Fa-f:.]+$/.test(s));
}
export function familyOf(addr: string): 4 | 6 {
  return addr.includes(':') ? 6 : 4;
}
const address = z.string().refine(isAddress, 'must be an IPv4 or IPv6 address like 192.0.2.1 or 2001:db8::1');
const cidr = z.string().refine((s) => {
  const [a, len, ...rest] = s.split('/');
  if (rest.length || a === undefined || len === undefined || !/^\d{1,3}$/.test(len) || !isAddress(a)) return false;
  return Number(len) <= (familyOf(a) === 6 ? 128 : 32);
}, 'must be an IPv4 or IPv6 prefix like 192.0.2.1/24 or 2001:db8::1/64');

/** The namespace every case has: the VM's initial network namespace. */
export const HOST_NS = 'host';

const linkSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('veth'),
    name: devName,
    ns: nsName.default(HOST_NS),
    peer: z.strictObject({ name: devName, ns: nsName.default(HOST_NS) }),
  }),
  z.strictObject({ type: z.literal('dummy'), name: devName, ns: nsName.default(HOST_NS) }),
]);

const interfaceSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  mac: z.string().regex(MAC_RE, 'must be a lower-case MAC address like 52:54:00:6a:c7:5e').optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  addresses: z.array(cidr).max(64).default([]),
  /** IPv6 duplicate address detection on this interface's addresses (off by default: addresses are usable at once) */
  dad: z.boolean().default(false),
  up: z.boolean().default(true),
});

const routeSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  /** a prefix, or `default` (IPv6 when `via` is an IPv6 address or `family: 6`) */
  dst: z.union([z.literal('default'), cidr]),
  via: address.optional(),
  dev: devName.optional(),
  family: z.union([z.literal(4), z.literal(6)]).optional(),
  table: z.union([z.literal('main'), z.literal('local'), z.number().int().min(1).max(65535)]).optional(),
});

const sysctlSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  key: z.string().regex(SYSCTL_KEY_RE, 'must be a net.* sysctl key like net.ipv4.conf.all.rp_filter or net.ipv6.conf.all.forwarding'),
  value: z.union([z.number().int(), z.string().regex(SYSCTL_VAL_RE, 'must be an integer, or up to 4 integers separated by spaces')]).transform(String),
});

const qdiscSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  kind: z.enum(['ingress', 'clsact', 'fq_codel', 'pfifo_fast', 'prio']),
  parent: z.literal('root').optional(),
  handle: z.string().regex(HANDLE_RE, 'must be a tc handle like 1:').optional(),
});

const U32_MATCH_RE = new RegExp(
  [
    `^ip (?:src|dst) ${IPV4}(?:/(?:3[0-2]|[12]?\\d))?$`,
    '^ip (?:sport|dport) \\d{1,5} 0x[0-9a-f]{1,4}$',
    '^ip protocol \\d{1,3} 0x[0-9a-f]{1,2}$',
    '^ether (?:src|dst) [0-9a-f]{2}(?::[0-9a-f]{2}){5}$',
  ].join('|'),
);

const filterSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dev: devName,
  /** `ingress` (ingress qdisc) or a qdisc handle like `1:` */
  parent: z.union([z.literal('ingress'), z.string().regex(HANDLE_RE, 'must be ingress or a tc handle like 1:')]),
  protocol: z.enum(['ip', 'ipv6', 'arp', 'all']),
  prio: z.number().int().min(1).max(65535).optional(),
  match: z.union([
    z.literal('basic'),
    z.strictObject({
      u32: z
        .array(z.string().regex(U32_MATCH_RE, 'must be a u32 match like "ip dst 10.0.0.1/32" or "ip sport 31744 0xfc00"'))
        .min(1),
    }),
  ]),
  action: z.union([
    z.literal('pass'),
    z.literal('drop'),
    z.strictObject({
      mirred: z.strictObject({
        direction: z.enum(['egress', 'ingress']),
        mode: z.enum(['redirect', 'mirror']),
        dev: devName,
      }),
    }),
  ]),
});

/** An nftables ruleset for one namespace, loaded with `nft -f` (never through a shell). */
const nftablesSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  ruleset: z
    .string()
    .min(1)
    .max(16_384)
    .refine((s) => !/[\x00-\x08\x0b-\x1f\x7f]/.test(s), 'must be plain text (no control characters)'),
});

const textToken = z.string().regex(TEXT_TOKEN_RE, 'must be printable text of at most 128 characters, without leading or trailing blanks');
const port = z.number().int().min(1).max(65535);

const argv = z.array(z.string().regex(ARG_RE, 'must be printable text without control characters (at most 256)')).min(1).max(64);

/** A command run after the topology is set up, before servers and probes. */
const stepSchema = z.strictObject({
  name,
  ns: nsName.default(HOST_NS),
  /** program and arguments; a bare program name is looked up in PATH (a real file before a busybox applet) */
  exec: argv,
  expectRc: z.number().int().min(0).max(255).default(0),
  /** its output must hold this (else the case stops, as on a wrong exit code) */
  expect: textToken.optional(),
  /** its output must not hold this (else the case stops, as on a wrong exit code) */
  absent: textToken.optional(),
  timeoutMs: z.number().int().min(100).max(300_000).default(30_000),
});

const serverSchema = z
  .strictObject({
    name,
    ns: nsName.default(HOST_NS),
    /** TCP port to listen on; every connection gets `reply` and is closed */
    tcpListen: z.number().int().min(1).max(65535).optional(),
    /** UDP port to listen on; every datagram is answered with `reply` (socat in the guest) */
    udpListen: z.number().int().min(1).max(65535).optional(),
    bind: address.optional(),
    reply: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -').default('kernel-repro-ok'),
  })
  .refine((s) => (s.tcpListen === undefined) !== (s.udpListen === undefined), { message: 'needs exactly one of tcpListen and udpListen', path: ['tcpListen'] });

/** A packet capture on an interface, from before the probes until after them. */
const captureSchema = z.strictObject({
  name: name.optional(),
  ns: nsName.default(HOST_NS),
  dev: devName,
  /** bytes kept per packet */
  snaplen: z.number().int().min(64).max(65535).default(256),
  /** stop after this many packets */
  count: z.number().int().min(1).max(10_000).default(200),
});

const probeBase = {
  name,
  ns: nsName.default(HOST_NS),
  /** probe deadline inside the guest */
  timeoutMs: z.number().int().min(100).max(300_000).default(5000),
  /** stop the probe as soon as the kernel logs the signature's signal (a martian or log signal), not waiting out timeouts */
  stopOnSignal: z.boolean().default(false),
  /** a control probe must pass on every kernel; if it fails the scenario itself is broken */
  control: z.boolean().default(false),
};

const probeSchema = z.union([
  z.strictObject({ ...probeBase, ping: address, count: z.number().int().min(1).max(10).default(1) }),
  z.strictObject({
    ...probeBase,
    tcp: z.strictObject({
      host: address,
      port: z.number().int().min(1).max(65535),
      /** the probe passes when the server's reply contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -'),
      /** connect from this local port (the probe is then socat's, with sourceport= and reuseaddr) */
      sport: port.optional(),
    }),
  }),
  z.strictObject({
    ...probeBase,
    udp: z.strictObject({
      host: address,
      port: z.number().int().min(1).max(65535),
      /** the probe sends one datagram and passes when the reply contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -'),
      /** send from this source port (socat sourceport=) */
      sport: port.optional(),
    }),
  }),
  z.strictObject({
    ...probeBase,
    exec: z.strictObject({
      argv,
      /** the probe passes when the command exits with this code... */
      expectRc: z.number().int().min(0).max(255).default(0),
      /** ...and its output contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -').optional(),
      /** ...and its output does not contain this */
      absent: textToken.optional(),
      /** read the output's kselftest "TEST: <what> [ OK ]" / "[FAIL]" / "[SKIP]" lines as results <probe>/<what> */
      results: z.literal('kselftest').optional(),
    }),
  }),
]);

export const caseSchema = z
  .strictObject({
    name,
    description: z.string().min(1).max(4000),
    references: z.array(z.string().max(500)).max(50).default([]),
    /** kconfig options the case needs: merged into kernels built from source, checked in prebuilt ones */
    kconfig: z.array(z.string().regex(KCONFIG_RE, 'must be a kconfig symbol like CONFIG_VETH')).max(200).default([]),
    /** Debian packages the guest needs (with their libraries), e.g. [bash, iputils-ping] */
    packages: z.array(z.string().regex(PACKAGE_RE, 'must be a Debian package name like iputils-ping')).max(32).default([]),
    /** files from the source tree of the kernel under test, put in the guest at /src/<path> */
    sourceFiles: z.array(z.string().regex(SOURCE_PATH_RE, 'must be a relative path inside the kernel tree like tools/testing/selftests/net/fib_tests.sh')).max(32).default([]),
    /** network namespaces created besides `host` */
    namespaces: z.array(nsName).max(32).default([]),
    links: z.array(linkSchema).max(128).default([]),
    interfaces: z.array(interfaceSchema).max(128).default([]),
    routes: z.array(routeSchema).max(256).default([]),
    sysctls: z.array(sysctlSchema).max(256).default([]),
    qdiscs: z.array(qdiscSchema).max(128).default([]),
    filters: z.array(filterSchema).max(256).default([]),
    nftables: z.array(nftablesSchema).max(32).default([]),
    steps: z.array(stepSchema).max(64).default([]),
    servers: z.array(serverSchema).max(32).default([]),
    captures: z.array(captureSchema).max(16).default([]),
    probes: z.array(probeSchema).min(1).max(64),
    /** tracepoints to enable during the probes, as evidence: a group (fib, fib6, skb, net) or group:event */
    tracepoints: z.array(z.string().regex(TRACEPOINT_RE, 'must be a tracepoint group like fib, or group:event like skb:kfree_skb')).max(32).default([]),
    /** counters (from /proc/net/netstat, snmp and snmp6) shown in the report, even at zero */
    counters: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)?$/)).max(64).default([]),
    /** the kernel's own evidence the case reads: its signature, and other evidence */
    signals: z.array(signalSchema).max(32).default([]),
    /** what "the behaviour is present" means */
    signature: z.strictObject({
      /** this probe (or kselftest result <probe>/<what>) behaves this way when it is present */
      probe: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?:\/[A-Za-z0-9_.-]{1,128})?$/, 'must be a probe name, or <probe>/<result> for a kselftest result'),
      when: z.enum(['fail', 'pass']).default('fail'),
      /** and the kernel shows every one of these signals (names from `signals`) */
      signals: z.array(name).max(16).default([]),
      /** and none of these (names from `signals`): the bug is an action the kernel fails to take, which the fixed kernel takes */
      absent: z.array(name).max(16).default([]),
      /** results that must pass on every kernel, besides the probes marked control (e.g. kselftest results <probe>/<what>) */
      controls: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?:\/[A-Za-z0-9_.-]{1,128})?$/)).max(16).default([]),
    }),
    /** hard deadline for the whole guest (boot + case), TCG; scaled down under KVM */
    deadlineMs: z.number().int().min(1000).max(1_800_000).default(60_000),
    /** how repeated runs (verify/bisect/repro --repeat) are made: each restores the case, set up once
     *  (a case snapshot), then independent: the guest's CRNG reseeded, its clock set, a random delay
     *  of up to jitterMs before the probes; replay: the snapshot's own state, bit for bit */
    repeats: z
      .strictObject({
        mode: z.enum(['independent', 'replay']).default('independent'),
        jitterMs: z.number().int().min(0).max(10_000).default(5),
        /** false: every repeat sets the case up again (it still gets its own seed, clock and jitter) */
        snapshot: z.boolean().default(true),
      })
      .default({ mode: 'independent', jitterMs: 5, snapshot: true }),
  })
  .superRefine((c, ctx) => {
    const namespaces = new Set([HOST_NS, ...c.namespaces]);
    const checkNs = (ns: string, path: (string | number)[]): void => {
      if (!namespaces.has(ns))
        ctx.addIssue({ code: 'custom', path, message: `namespace "${ns}" is not declared in namespaces` });
    };
    if (c.namespaces.includes(HOST_NS))
      ctx.addIssue({ code: 'custom', path: ['namespaces'], message: `"${HOST_NS}" is implicit; do not declare it` });
    c.links.forEach((l, i) => {
      checkNs(l.ns, ['links', i, 'ns']);
      if (l.type === 'veth') checkNs(l.peer.ns, ['links', i, 'peer', 'ns']);
    });
    for (const key of ['interfaces', 'routes', 'sysctls', 'qdiscs', 'filters', 'nftables', 'steps', 'servers', 'captures', 'probes'] as const)
      c[key].forEach((item, i) => checkNs(item.ns, [key, i, 'ns']));
    c.signals.forEach((s, i) => {
      if ('ns' in s && typeof s.ns === 'string') checkNs(s.ns, ['signals', i, 'ns']);
    });
    const unique = (key: string, names: string[]): void => {
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) ctx.addIssue({ code: 'custom', path: [key], message: `name "${dup}" is used twice` });
    };
    const probeNames = c.probes.map((p) => p.name);
    unique('probes', probeNames);
    unique('signals', c.signals.map((s) => s.name));
    unique('steps', c.steps.map((s) => s.name));
    unique('servers', c.servers.map((s) => s.name));
    c.nftables.forEach((n, i) => {
      if (c.nftables.findIndex((m) => m.ns === n.ns) !== i) ctx.addIssue({ code: 'custom', path: ['nftables', i, 'ns'], message: `namespace "${n.ns}" has a ruleset already: one ruleset per namespace` });
    });
    // a probe name, or <exec probe with kselftest results>/<result>
    const refersToProbe = (ref: string): boolean => {
      const [probe, sub] = ref.split('/');
      const p = c.probes.find((x) => x.name === probe);
      return !!p && (sub === undefined || ('exec' in p && p.exec.results === 'kselftest'));
    };
    if (!refersToProbe(c.signature.probe))
      ctx.addIssue({
        code: 'custom',
        path: ['signature', 'probe'],
        message: `no probe named "${c.signature.probe}" (probes: ${probeNames.join(', ')}; a kselftest result is <exec probe with results: kselftest>/<result>)`,
      });
    c.signature.controls.forEach((ref, i) => {
      if (!refersToProbe(ref)) ctx.addIssue({ code: 'custom', path: ['signature', 'controls', i], message: `no probe or kselftest result "${ref}"` });
    });
    const signalNames = c.signals.map((s) => s.name);
    c.signature.signals.forEach((s, i) => {
      if (!signalNames.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'signals', i], message: `no signal named "${s}" (signals: ${signalNames.join(', ') || 'none declared'})` });
    });
    c.signature.absent.forEach((s, i) => {
      if (!signalNames.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'absent', i], message: `no signal named "${s}" (signals: ${signalNames.join(', ') || 'none declared'})` });
      else if (c.signature.signals.includes(s))
        ctx.addIssue({ code: 'custom', path: ['signature', 'absent', i], message: `signal "${s}" is in signature.signals too: it cannot both fire and be absent` });
    });
    c.probes.forEach((p, i) => {
      if (p.stopOnSignal && !c.signals.some((s) => c.signature.signals.includes(s.name) && (s.kind === 'martian' || s.kind === 'log' || s.kind === 'splat')))
        ctx.addIssue({ code: 'custom', path: ['probes', i, 'stopOnSignal'], message: 'needs a martian, log or splat signal in the signature: the agent watches the kernel log for it' });
    });
    c.routes.forEach((r, i) => {
      const fam = r.dst === 'default' ? (r.family ?? (r.via ? familyOf(r.via) : 4)) : familyOf(r.dst.split('/')[0]!);
      if (r.via && familyOf(r.via) !== fam) ctx.addIssue({ code: 'custom', path: ['routes', i, 'via'], message: `gateway ${r.via} is not of the route's address family (IPv${fam})` });
    });
  });

export type CaseInput = z.input<typeof caseSchema>;
export type CaseDef = z.output<typeof caseSchema>;
export type Probe = CaseDef['probes'][number];
export type Filter = CaseDef['filters'][number];
export type Sysctl = CaseDef['sysctls'][number];
export type Server = CaseDef['servers'][number];
export type Step = CaseDef['steps'][number];
export type Capture = CaseDef['captures'][number];
