// Parse the kernel's martian-packet messages out of a console log or dmesg output. Pure: no I/O.
//
// net/ipv4/route.c (pr_fmt "IPv4: "):
//   ip_handle_martian_source():  "martian source %pI4 from %pI4, on dev %s"  (daddr, saddr, dev)
//     followed by print_hex_dump(KERN_WARNING, "ll header: ", DUMP_PREFIX_OFFSET, 16, 1, ...)
//     -> "ll header: 00000000: 98 03 9b 7f ff d0 ..." (one line per 16 bytes)
//   ip_handle_martian_destination path: "martian destination %pI4 from %pI4, dev %s"
// Very old kernels printed without the "IPv4: " prefix and with "ll header: 52:54:00:..." instead.

import type { MartianEvent } from './types.ts';
import { parseKernelLine, splitLines, type KernelLine } from './kernelLog.ts';

export { parseKernelLine, splitLines, type KernelLine };

const SOURCE_RE = /martian source (\S+) from (\S+?),\s*on dev (\S+)/;
const DEST_RE = /martian destination (\S+) from (\S+?),\s*dev (\S+)/;
const LL_RE = /^\s*ll header:\s*(?:([0-9a-fA-F]{8}):\s*)?(.*)$/;

/** How many lines after a martian message we look for its `ll header:` line (other CPUs may interleave). */
const LL_LOOKAHEAD = 4;

function isMartianLine(msg: string): boolean {
  return SOURCE_RE.test(msg) || DEST_RE.test(msg);
}

/** Collect the (possibly multi-line) `ll header:` dump that follows line `i`. */
function findLlHeader(lines: KernelLine[], i: number): string | undefined {
  const parts: string[] = [];
  let started = false;
  let scanned = 0;
  for (let j = i + 1; j < lines.length; j++) {
    const line = lines[j];
    if (line === undefined) break;
    const msg = line.msg;
    if (msg.trim() === '') continue;
    if (isMartianLine(msg)) break;
    const m = LL_RE.exec(msg);
    if (m) {
      const offset = m[1];
      const bytes = (m[2] ?? '').trim();
      if (!started) {
        // The dump must start at offset 0 (or be the old colon-separated format without offset).
        if (offset === undefined || /^0+$/.test(offset)) {
          started = true;
          if (bytes) parts.push(bytes);
          continue;
        }
      } else if (offset !== undefined && !/^0+$/.test(offset)) {
        if (bytes) parts.push(bytes);
        continue;
      } else {
        break; // a new dump starting at 0 belongs to another message
      }
    } else if (started) {
      break;
    }
    if (++scanned >= LL_LOOKAHEAD) break;
  }
  return started ? parts.join(' ') : undefined;
}

function parseWith(log: string, re: RegExp, withLl: boolean): MartianEvent[] {
  const raw = splitLines(log);
  const lines = raw.map(parseKernelLine);
  const events: MartianEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === undefined) continue;
    const m = re.exec(line.msg);
    if (!m) continue;
    const [, daddr, saddr, dev] = m;
    if (daddr === undefined || saddr === undefined || dev === undefined) continue;
    const ev: MartianEvent = { src: saddr, dst: daddr, dev, raw: (raw[i] ?? '').trimEnd() };
    if (line.time !== undefined) ev.time = line.time;
    if (withLl) {
      const ll = findLlHeader(lines, i);
      if (ll !== undefined) ev.llHeader = ll;
    }
    events.push(ev);
  }
  return events;
}

/**
 * All `martian source <daddr> from <saddr>, on dev <dev>` messages, in log order.
 * `dst` is the address after "martian source", `src` the one after "from".
 */
export function parseMartians(log: string): MartianEvent[] {
  return parseWith(log, SOURCE_RE, true);
}

/** All `martian destination <daddr> from <saddr>, dev <dev>` messages, in log order. */
export function parseMartianDestinations(log: string): MartianEvent[] {
  return parseWith(log, DEST_RE, false);
}

function ipv4ToInt(addr: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (!m) return null;
  let n = 0;
  for (let k = 1; k <= 4; k++) {
    const octet = Number(m[k]);
    if (octet > 255) return null;
    n = n * 256 + octet;
  }
  return n;
}

/** Exact match, or IPv4 CIDR match when the pattern has a `/len` suffix. */
function addrMatches(addr: string, pattern: string): boolean {
  const slash = pattern.indexOf('/');
  if (slash < 0) return addr === pattern;
  const net = ipv4ToInt(pattern.slice(0, slash));
  const lenText = pattern.slice(slash + 1);
  const len = /^\d{1,2}$/.test(lenText) ? Number(lenText) : NaN;
  const a = ipv4ToInt(addr);
  if (net === null || a === null || !(len >= 0 && len <= 32)) return false;
  if (len === 0) return true;
  const block = 2 ** (32 - len);
  return Math.floor(a / block) === Math.floor(net / block);
}

/**
 * True when every field given in `pattern` matches the event. `src`/`dst` compare exactly,
 * or as an IPv4 prefix when written as CIDR (`192.0.2.0/24`). An empty pattern matches everything.
 */
export function matchesMartian(
  ev: MartianEvent,
  pattern: { src?: string; dst?: string; dev?: string },
): boolean {
  if (pattern.src !== undefined && !addrMatches(ev.src, pattern.src)) return false;
  if (pattern.dst !== undefined && !addrMatches(ev.dst, pattern.dst)) return false;
  if (pattern.dev !== undefined && ev.dev !== pattern.dev) return false;
  return true;
}
