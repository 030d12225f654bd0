// Typed errors: every failure the user can meet ends in one of these, printed as a readable
// message (never a stack trace) with the file and field at fault where there is one.

export const ExitCode = {
  ok: 0,
  runFailed: 1, // a run ended in error / timeout / panic, or an expectation was not met
  badInput: 2, // a kernel, case or matrix file (or a command-line value) is invalid
  missingPrereq: 3, // host prerequisites missing and not installable here
  buildFailed: 4, // a kernel or image failed to build
  noSpace: 5, // the disk holding the cache (or results) is full
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorKind = 'bad-input' | 'missing-prereq' | 'build-failed' | 'boot-failed' | 'no-space' | 'interrupted' | 'internal';

export class HarnessError extends Error {
  readonly kind: ErrorKind;
  readonly file?: string;
  readonly field?: string;
  readonly hint?: string;
  /** excerpt of a log that shows the cause (build log tail, rejected hunks, ...) */
  readonly excerpt?: string;
  readonly logPath?: string;

  constructor(
    kind: ErrorKind,
    message: string,
    opts: { file?: string; field?: string; hint?: string; excerpt?: string; logPath?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'HarnessError';
    this.kind = kind;
    if (opts.file !== undefined) this.file = opts.file;
    if (opts.field !== undefined) this.field = opts.field;
    if (opts.hint !== undefined) this.hint = opts.hint;
    if (opts.excerpt !== undefined) this.excerpt = opts.excerpt;
    if (opts.logPath !== undefined) this.logPath = opts.logPath;
  }

  get exitCode(): ExitCodeValue {
    switch (this.kind) {
      case 'bad-input':
        return ExitCode.badInput;
      case 'missing-prereq':
        return ExitCode.missingPrereq;
      case 'build-failed':
        return ExitCode.buildFailed;
      case 'no-space':
        return ExitCode.noSpace;
      case 'interrupted':
        return ExitCode.interrupted;
      default:
        return ExitCode.runFailed;
    }
  }
}

export function badInput(file: string, field: string, message: string, hint?: string): HarnessError {
  return new HarnessError('bad-input', message, { file, field, ...(hint ? { hint } : {}) });
}

export const NO_SPACE_HINT =
  'free disk space (`npm run cache` shows what the cache holds; `npm run cache -- gc --max-size 5G` removes the least recently used kernel trees, kernels, snapshots and images), or point KERNEL_REPRO_CACHE at a larger disk';

/** A full disk met by a plain file-system call (ENOSPC/EDQUOT) becomes a typed `no-space` error. */
export function normalizeError(err: unknown): unknown {
  if (err instanceof HarnessError || !(err instanceof Error)) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT')
    return new HarnessError('no-space', `no space left on the device${e.path ? ` writing ${e.path}` : ''} (${e.code})`, {
      hint: NO_SPACE_HINT,
      cause: err,
    });
  return err;
}

/** Render any error as the few lines a user should see. */
export function formatError(raw: unknown): string {
  const err = normalizeError(raw);
  if (err instanceof HarnessError) {
    const where = [err.file, err.field].filter(Boolean).join(': ');
    const lines = [`error (${err.kind}): ${where ? where + ': ' : ''}${err.message}`];
    if (err.excerpt) lines.push('', ...err.excerpt.split('\n').map((l) => '  | ' + l));
    if (err.logPath) lines.push(`full log: ${err.logPath}`);
    if (err.hint) lines.push(`hint: ${err.hint}`);
    return lines.join('\n');
  }
  if (err instanceof Error) return `error (internal): ${err.message}`;
  return `error (internal): ${String(err)}`;
}
