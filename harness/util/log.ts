// Progress output on stderr (stdout stays clean for --json). Elapsed seconds prefix every line.
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  /** a progress line for a long step; overwritten in place on a TTY */
  progress(msg: string): void;
}

export function makeLogger(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const t0 = Date.now();
  const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
  let inPlace = false;
  const clear = (): void => {
    if (inPlace && stream.isTTY) stream.write('\r\x1b[K');
    inPlace = false;
  };
  return {
    info(msg) {
      if (opts.quiet) return;
      clear();
      stream.write(`${stamp()} ${msg}\n`);
    },
    warn(msg) {
      clear();
      stream.write(`${stamp()} warning: ${msg}\n`);
    },
    progress(msg) {
      if (opts.quiet) return;
      if (stream.isTTY) {
        stream.write(`\r\x1b[K${stamp()} ${msg}`);
        inPlace = true;
      } else stream.write(`${stamp()} ${msg}\n`);
    },
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, progress() {} };
