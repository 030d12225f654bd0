// Shared CLI plumbing: run ids, results folders, the error boundary.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, formatError, HarnessError } from '../util/errors.ts';
import { installSignalHandlers, killAll } from '../util/proc.ts';
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

/** Run a command body; print errors readably (never a stack trace) and exit with a typed code. */
export async function guarded(body: () => Promise<number>): Promise<never> {
  installSignalHandlers(() => {
    process.stderr.write('\ninterrupted: stopping guests and builds\n');
  });
  let code: number;
  try {
    code = await body();
  } catch (err) {
    killAll();
    process.stderr.write(formatError(err) + '\n');
    if (process.env.KERNEL_REPRO_DEBUG && err instanceof Error) process.stderr.write((err.stack ?? '') + '\n');
    code = err instanceof HarnessError ? err.exitCode : ExitCode.runFailed;
  }
  process.exit(code);
}

export function parseSysctlArg(s: string): { ns: string; key: string; value: string } {
  const m = /^(?:([A-Za-z][A-Za-z0-9_-]*):)?(net\.[A-Za-z0-9_.-]+)=(-?\d+(?:\s+-?\d+){0,3})$/.exec(s);
  if (!m) throw new HarnessError('bad-input', `"${s}" is not [ns:]net.key=value (e.g. host:net.ipv4.conf.all.rp_filter=0)`, { field: '--sysctl' });
  return { ns: m[1] ?? 'host', key: m[2]!, value: m[3]! };
}
