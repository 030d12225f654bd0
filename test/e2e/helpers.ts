import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Run the real CLI as a user would (through tsx), with the shared kernel cache. */
export async function cli(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  const t0 = Date.now();
  const r = await execa(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'harness/cli/main.ts'), ...args], {
    cwd: repoRoot,
    reject: false,
    timeout: opts.timeoutMs ?? 45 * 60_000,
    env: { ...opts.env },
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: Date.now() - t0 };
}

/** Is a process whose command line contains `marker` still running (e.g. a QEMU of one run)? */
export function processAlive(marker: string): boolean {
  try {
    return execFileSync('pgrep', ['-f', marker]).toString().trim().length > 0;
  } catch {
    return false;
  }
}
