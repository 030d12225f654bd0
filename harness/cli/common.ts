// Shared CLI plumbing: run ids, results folders, the error boundary.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, formatError, HarnessError, normalizeError } from '../util/errors.ts';
import { installSignalHandlers, killAll, wasInterrupted } from '../util/proc.ts';
import { resultsRoot } from '../util/paths.ts';

export function newRunDir(kind: string, explicit?: string): { runId: string; runDir: string } {
  const runId = `${new Date().toISOString().replace(/[:.]/g, '-').replace('Z', '')}-${kind}-${crypto.randomBytes(2).toString('hex')}`;
  const runDir = explicit ? path.resolve(explicit) : path.join(resultsRoot(), runId);
  fs.mkdirSync(runDir, { recursive: true });
  return { runId, runDir };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The exit code of an error: its typed code, 1 for anything untyped. */
export function errorExitCode(raw: unknown): number {
  const err = normalizeError(raw);
  return err instanceof HarnessError ? err.exitCode : ExitCode.runFailed;
}

/**
 * Run a command body; print errors readably (never a stack trace) and exit with a typed code
 * (`exitCodeOf` maps an error to another code, as bisect-run does for `git bisect run`).
 */
export async function guarded(body: () => Promise<number>, exitCodeOf: (err: unknown) => number = errorExitCode): Promise<never> {
  installSignalHandlers(() => {
    process.stderr.write('\ninterrupted: stopping guests and builds\n');
  });
  // the last line of defence: an error event nobody listened for (a stream on a full disk, say)
  // still ends in a readable message and a typed exit code, with guests and builds stopped
  process.on('uncaughtException', (err) => fail(err, exitCodeOf));
  let code: number;
  try {
    code = await body();
  } catch (err) {
    fail(err, exitCodeOf);
  }
  // a large --json written into a pipe is still in flight: process.exit would cut it (64 KiB of
  // 400 KB reached a slow reader); let it drain first (SIGINT's backstop still ends a stuck one)
  await new Promise<void>((resolve) => (process.stdout.writableLength === 0 ? resolve() : process.stdout.write('', () => resolve())));
  // after SIGINT/SIGTERM the run ends as interrupted, whatever the body made of it
  process.exit(wasInterrupted() ? ExitCode.interrupted : code);
}

function fail(raw: unknown, exitCodeOf: (err: unknown) => number): never {
  killAll();
  const err = normalizeError(raw);
  process.stderr.write(formatError(err) + '\n');
  if (process.env.KERNEL_REPRO_DEBUG && raw instanceof Error) process.stderr.write((raw.stack ?? '') + '\n');
  const code = exitCodeOf(raw);
  process.exit(wasInterrupted() ? ExitCode.interrupted : code);
}

export function parseSysctlArg(s: string): { ns: string; key: string; value: string } {
  const m = /^(?:([A-Za-z][A-Za-z0-9_-]*):)?(net\.[A-Za-z0-9_.-]+)=(-?\d+(?:\s+-?\d+){0,3})$/.exec(s);
  if (!m) throw new HarnessError('bad-input', `"${s}" is not [ns:]net.key=value (e.g. host:net.ipv4.conf.all.rp_filter=0)`, { field: '--sysctl' });
  return { ns: m[1] ?? 'host', key: m[2]!, value: m[3]! };
}
