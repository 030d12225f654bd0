// Lines of the kernel log as a console, `dmesg` or /dev/kmsg prints them: the message and what the
// prefixes say (timestamp, level). Pure.

/** One console/dmesg line split into the kernel message and what the prefixes told us. */
export interface KernelLine {
  /** the message text, without \r, loglevel, timestamp or caller-id prefixes */
  msg: string;
  /** printk timestamp in seconds, when printed */
  time?: number;
  /** console loglevel (0-7), when printed as `<N>` or in /dev/kmsg records */
  level?: number;
}

// printk always prints "[%5lu.%06lu]"; CONFIG_PRINTK_CALLER adds "[    T1]" / "[    C0]".
const TS_RE = /\[\s*(\d+\.\d{6})\](?:\[\s*[TC]\d+\])?\s?/;
// /dev/kmsg record: "<prefix>,<seq>,<usec>,<flags>[,...];message"
const KMSG_RE = /^(\d+),\d+,(\d+),[^;]*;/;
const LEVEL_RE = /^<(\d)>/;

/**
 * Split one line of console output / `dmesg` / `dmesg -r` / /dev/kmsg into message and metadata.
 * A timestamp is looked for anywhere in the line, since on a serial console user-space output
 * without a trailing newline (a shell prompt, say) can end up in front of a kernel message.
 */
export function parseKernelLine(line: string): KernelLine {
  let s = line.replace(/\r/g, '');
  const km = KMSG_RE.exec(s);
  if (km) {
    return { msg: s.slice(km[0].length), time: Number(km[2]) / 1e6, level: Number(km[1]) & 7 };
  }
  let level: number | undefined;
  const lm = LEVEL_RE.exec(s);
  if (lm) {
    level = Number(lm[1]);
    s = s.slice(lm[0].length);
  }
  const out: KernelLine = { msg: s };
  const tm = TS_RE.exec(s);
  if (tm) {
    out.msg = s.slice(tm.index + tm[0].length);
    out.time = Number(tm[1]);
  }
  if (level !== undefined) out.level = level;
  return out;
}

/** Split text into lines, accepting \n, \r\n and stray \r. */
export function splitLines(text: string): string[] {
  return text.split(/\r?\n|\r(?!\n)/).map((l) => l.replace(/\r/g, ''));
}

