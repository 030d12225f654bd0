// Trust rule: what the guest writes on its result channel (ttyS1, a file QEMU writes: results.txt)
// cannot exhaust the host. The guest controls every byte of it, so:
//   1. The channel is capped while it is written: watchChannel polls the file's size (every
//      100 ms) and, once it passes the cap (RESULT_CHANNEL_MAX_BYTES, 16 MiB, or
//      KERNEL_REPRO_RESULTS_MAX_BYTES from the host's environment), the caller stops the guest;
//      the run ends with an error verdict naming the channel and the cap (floodReason), within
//      a fraction of a second of the cap being passed, not with a deadline, an OOM or a hang.
//   2. The channel is read with a bounded reader (readChannel): at most the cap, cut at the last
//      whole line, and marked `truncated` when there was more.
//   3. Lines are bounded: a reader of lines (LineSplitter, parseAgentOutput) keeps at most
//      MAX_CHANNEL_LINE_CHARS (4096) characters of a line and counts the lines it cut; a line
//      without an end is never accumulated past that either.
// The console (ttyS0) is capped separately, at 8 MiB (util/proc.ts maxBuffer).
import fs from 'node:fs';

export const MiB = 1024 * 1024;
/** The result channel's cap, unless the host's environment sets another. */
export const RESULT_CHANNEL_MAX_BYTES = 16 * MiB;
/** The smallest cap the environment may set (the boot records alone take a few KB). */
export const MIN_RESULT_CHANNEL_BYTES = 64 * 1024;
/** Lines of the result channel are kept to this many characters (like case-pattern lines: trust/regex.ts). */
export const MAX_CHANNEL_LINE_CHARS = 4096;
/** How often the size of a channel being written is checked. */
export const WATCH_INTERVAL_MS = 100;

/** The cap in force: KERNEL_REPRO_RESULTS_MAX_BYTES (trusted: the host's environment) or 16 MiB. */
export function resultChannelCap(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.KERNEL_REPRO_RESULTS_MAX_BYTES;
  if (v === undefined || v === '') return RESULT_CHANNEL_MAX_BYTES;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= MIN_RESULT_CHANNEL_BYTES ? n : RESULT_CHANNEL_MAX_BYTES;
}

/** "16 MiB", "64 KiB", "1000 bytes" */
export function formatBytes(n: number): string {
  if (n >= MiB && n % (MiB / 16) === 0) return `${n / MiB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** What the host saw of a guest channel. */
export interface ChannelState {
  /** bytes the guest wrote (the file's size when the run ended) */
  bytes: number;
  capBytes: number;
  /** more than capBytes were written: what was read stops at the cap */
  truncated: boolean;
  /** the guest was stopped because it passed the cap while running */
  flooded: boolean;
  /** run time (ms) at which the flood was seen */
  floodedAtMs?: number;
}

/** The error verdict's reason for a flooded channel. */
export function floodReason(channel: string, s: Pick<ChannelState, 'capBytes' | 'floodedAtMs'>): string {
  return `guest flooded the ${channel} past ${formatBytes(s.capBytes)}: stopped ${s.floodedAtMs !== undefined ? `after ${(s.floodedAtMs / 1000).toFixed(1)} s ` : ''}(the channel is capped)`;
}

export interface ChannelWatch {
  /** set once the file passed the cap */
  flood(): { bytes: number; atMs: number } | null;
  stop(): void;
}

/**
 * Watch a file a guest channel is written to; call `onFlood` once when it grows past `capBytes`
 * (the caller stops the guest). Polls with stat: no read of the content.
 */
export function watchChannel(file: string, capBytes: number, onFlood: (bytes: number) => void, intervalMs = WATCH_INTERVAL_MS): ChannelWatch {
  const started = Date.now();
  let flood: { bytes: number; atMs: number } | null = null;
  const check = (): void => {
    if (flood) return;
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return; // not created yet
    }
    if (size > capBytes) {
      flood = { bytes: size, atMs: Date.now() - started };
      clearInterval(timer);
      onFlood(size);
    }
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return {
    flood: () => flood,
    stop: () => {
      check();
      clearInterval(timer);
    },
  };
}

/** The channel's text, at most `capBytes` of it (cut at the last whole line when cut at all). */
export function readChannel(file: string, capBytes: number = resultChannelCap()): { text: string; state: ChannelState } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return { text: '', state: { bytes: 0, capBytes, truncated: false, flooded: false } };
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { text: '', state: { bytes: 0, capBytes, truncated: false, flooded: false } };
    const buf = Buffer.alloc(Math.min(st.size, capBytes + 1));
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n <= 0) break;
      got += n;
    }
    const truncated = got > capBytes || st.size > capBytes;
    let data = buf.subarray(0, Math.min(got, capBytes));
    if (truncated) {
      const nl = data.lastIndexOf(0x0a);
      data = data.subarray(0, nl >= 0 ? nl + 1 : 0);
    }
    return { text: data.toString('utf8'), state: { bytes: Math.max(st.size, got), capBytes, truncated, flooded: false } };
  } finally {
    fs.closeSync(fd);
  }
}

/** Just the text of a channel file written by an earlier run (a report reading results.txt). */
export function readChannelText(file: string): string {
  return readChannel(file).text;
}

/**
 * Split a stream of text into lines of at most MAX_CHANNEL_LINE_CHARS characters: a longer line
 * is cut (its rest dropped up to the next newline) and counted; nothing grows without bound.
 */
export class LineSplitter {
  private partial = '';
  private dropping = false;
  /** lines that were cut */
  longLines = 0;
  constructor(private readonly max = MAX_CHANNEL_LINE_CHARS) {}

  /** Feed text; returns the complete lines in it (without "\n" or a trailing "\r"). */
  push(text: string): string[] {
    const out: string[] = [];
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      const piece = text.slice(from, nl < 0 ? text.length : nl);
      if (!this.dropping) {
        this.partial += piece;
        if (this.partial.length > this.max) {
          this.partial = this.partial.slice(0, this.max);
          this.longLines++;
          this.dropping = true;
        }
      }
      if (nl < 0) break;
      out.push(this.partial.replace(/\r$/, ''));
      this.partial = '';
      this.dropping = false;
      from = nl + 1;
    }
    return out;
  }

  /** The last line, if the text did not end with a newline. */
  end(): string | null {
    const last = this.partial;
    this.partial = '';
    this.dropping = false;
    return last === '' ? null : last.replace(/\r$/, '');
  }
}

/** Every line of `text`, each cut to `max` characters; and how many were cut. Linear in the text. */
export function boundedLines(text: string, max = MAX_CHANNEL_LINE_CHARS): { lines: string[]; longLines: number } {
  const lines = text.split('\n');
  let longLines = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.length > max) {
      lines[i] = lines[i]!.slice(0, max);
      longLines++;
    }
  }
  return { lines, longLines };
}
