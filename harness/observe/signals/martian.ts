// Signal kind `martian`: the kernel logged "martian source DST from SRC, on dev DEV" (IPv4,
// net/ipv4/route.c ip_handle_martian_source). The kernel logs it only with log_martians=1, so this
// kind turns that sysctl on in every namespace (evidence only: it changes no verdict).
import { z } from 'zod';
import { matchesMartian, parseMartians } from '../martian.ts';
import { ereEscape, MAX_MATCHES, type SignalKind } from './types.ts';

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const ipv4 = z.string().regex(IPV4, 'must be an IPv4 address like 192.0.2.1');

export const schema = z.strictObject({
  kind: z.literal('martian'),
  /** the packet's source address (the "from" field) */
  src: ipv4.optional(),
  /** the packet's destination (the "martian source" field) */
  dst: ipv4.optional(),
  dev: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/, 'must be an interface name').optional(),
});
export type MartianSignal = z.output<typeof schema>;

export const martianSignal: SignalKind<MartianSignal> = {
  kind: 'martian',
  schema,
  describe: (s) => `martian source ${s.dst ?? '*'} from ${s.src ?? '*'}, on dev ${s.dev ?? '*'}`,
  needs: (s) => ({
    sysctls: [{ ns: '*', key: 'net.ipv4.conf.all.log_martians', value: '1' }],
    logWatch: `martian source ${s.dst ? ereEscape(s.dst) : '[^ ]+'} from ${s.src ? ereEscape(s.src) : '[^ ,]+'}, on dev ${s.dev ? ereEscape(s.dev) + '( |$)' : ''}`,
  }),
  evaluate(s, o) {
    const hits = parseMartians(o.console).filter((m) => matchesMartian(m, s));
    return {
      fired: hits.length > 0,
      count: hits.length,
      matches: hits.slice(0, MAX_MATCHES).map((m) => ({ text: m.raw.replace(/^.*?(martian)/, '$1'), fields: { src: m.src, dst: m.dst, dev: m.dev, ...(m.time !== undefined ? { time: m.time } : {}) } })),
    };
  },
};
