// Case files: declarative reproduction scenarios. Every value that reaches the guest shell is
// constrained here by a strict pattern, and the renderer quotes it again (defence in depth).
import { z } from 'zod';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NS_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
const DEV_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;
const IPV4 = '(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${IPV4}$`);
const CIDR_RE = new RegExp(`^${IPV4}/(?:3[0-2]|[12]?\\d)$`);
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const SYSCTL_KEY_RE = /^net\.(?:ipv4|ipv6|core)\.[A-Za-z0-9_.-]+$/;
const SYSCTL_VAL_RE = /^-?[0-9]{1,10}(?:[ \t]-?[0-9]{1,10}){0,3}$/;
const KCONFIG_RE = /^CONFIG_[A-Z0-9_]+$/;
const HANDLE_RE = /^[0-9a-f]{1,4}:[0-9a-f]{0,4}$/;
const TOKEN_RE = /^[A-Za-z0-9_.:/-]{1,64}$/;

const nsName = z.string().regex(NS_RE, 'must be a namespace name: a letter, then letters, digits, _ or - (at most 32)');
const devName = z.string().regex(DEV_RE, 'must be an interface name: a letter, then letters, digits, _ . or - (at most 15)');
const ipv4 = z.string().regex(IPV4_RE, 'must be an IPv4 address like 192.0.2.1');
const cidr = z.string().regex(CIDR_RE, 'must be an IPv4 prefix like 192.0.2.1/24');
const name = z.string().regex(NAME_RE, 'must be a name: letters, digits, _ . or - (at most 64)');

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
  addresses: z.array(cidr).default([]),
  up: z.boolean().default(true),
});

const routeSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  dst: z.union([z.literal('default'), cidr]),
  via: ipv4.optional(),
  dev: devName.optional(),
  table: z.union([z.literal('main'), z.literal('local'), z.number().int().min(1).max(65535)]).optional(),
});

const sysctlSchema = z.strictObject({
  ns: nsName.default(HOST_NS),
  key: z.string().regex(SYSCTL_KEY_RE, 'must be a net.* sysctl key like net.ipv4.conf.all.rp_filter'),
  value: z.union([z.number().int(), z.string().regex(SYSCTL_VAL_RE, "must be an integer, or up to 4 integers separated by spaces")]).transform(String),
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
  protocol: z.enum(['ip', 'arp', 'all']),
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

const serverSchema = z.strictObject({
  name,
  ns: nsName.default(HOST_NS),
  /** TCP port to listen on; every connection gets `reply` and is closed */
  tcpListen: z.number().int().min(1).max(65535),
  bind: ipv4.optional(),
  reply: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -').default('kernel-repro-ok'),
});

const probeBase = {
  name,
  ns: nsName.default(HOST_NS),
  /** probe deadline inside the guest */
  timeoutMs: z.number().int().min(100).max(120_000).default(5000),
  /** stop the probe as soon as the kernel logs a new martian line (its signal), not waiting out timeouts */
  stopOnMartian: z.boolean().default(false),
  /** a control probe must pass on every kernel; if it fails the scenario itself is broken */
  control: z.boolean().default(false),
};

const probeSchema = z.union([
  z.strictObject({ ...probeBase, ping: ipv4, count: z.number().int().min(1).max(10).default(1) }),
  z.strictObject({
    ...probeBase,
    tcp: z.strictObject({
      host: ipv4,
      port: z.number().int().min(1).max(65535),
      /** the probe passes when the server's reply contains this token */
      expect: z.string().regex(TOKEN_RE, 'must be a short token: letters, digits, _ . : / -'),
    }),
  }),
]);

const martianPattern = z.strictObject({ src: ipv4.optional(), dst: ipv4.optional(), dev: devName.optional() });

export const caseSchema = z
  .strictObject({
    name,
    description: z.string().min(1),
    references: z.array(z.string()).default([]),
    /** kconfig options the case needs; checked in the final .config before any boot */
    kconfig: z.array(z.string().regex(KCONFIG_RE, 'must be a kconfig symbol like CONFIG_VETH')).default([]),
    /** network namespaces created besides `host` */
    namespaces: z.array(nsName).default([]),
    links: z.array(linkSchema).default([]),
    interfaces: z.array(interfaceSchema).default([]),
    routes: z.array(routeSchema).default([]),
    sysctls: z.array(sysctlSchema).default([]),
    qdiscs: z.array(qdiscSchema).default([]),
    filters: z.array(filterSchema).default([]),
    servers: z.array(serverSchema).default([]),
    probes: z.array(probeSchema).min(1),
    /** tracepoint groups to enable during the probes (events/<group>/enable) */
    tracepoints: z.array(z.enum(['fib', 'fib6', 'net', 'skb'])).default(['fib']),
    /** counters (from /proc/net/netstat and snmp) shown in the report */
    counters: z.array(z.string().regex(/^[A-Za-z][A-Za-z0-9.]*$/)).default(['IPReversePathFilter']),
    /** what "the bug reproduced" means */
    signature: z.strictObject({
      /** this probe fails when the bug is present */
      probe: name,
      /** and the kernel logs a martian line matching this */
      martian: martianPattern.optional(),
    }),
    /** hard deadline for the whole guest (boot + case), TCG; scaled down under KVM */
    deadlineMs: z.number().int().min(1000).max(600_000).default(60_000),
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
    for (const key of ['interfaces', 'routes', 'sysctls', 'qdiscs', 'filters', 'servers', 'probes'] as const)
      c[key].forEach((item, i) => checkNs(item.ns, [key, i, 'ns']));
    const probeNames = c.probes.map((p) => p.name);
    if (!probeNames.includes(c.signature.probe))
      ctx.addIssue({
        code: 'custom',
        path: ['signature', 'probe'],
        message: `no probe named "${c.signature.probe}" (probes: ${probeNames.join(', ')})`,
      });
    const dup = probeNames.find((n, i) => probeNames.indexOf(n) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['probes'], message: `probe name "${dup}" is used twice` });
  });

export type CaseInput = z.input<typeof caseSchema>;
export type CaseDef = z.output<typeof caseSchema>;
export type Probe = CaseDef['probes'][number];
export type Filter = CaseDef['filters'][number];
export type Sysctl = CaseDef['sysctls'][number];
