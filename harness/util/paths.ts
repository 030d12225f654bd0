import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (where package.json, cases/, kernels/ live). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Kernel/image cache root: $KERNEL_REPRO_CACHE, else $XDG_CACHE_HOME/kernel-repro, else ~/.cache/kernel-repro. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KERNEL_REPRO_CACHE) return path.resolve(env.KERNEL_REPRO_CACHE);
  const xdg = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'kernel-repro');
}

export function resultsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.KERNEL_REPRO_RESULTS ? path.resolve(env.KERNEL_REPRO_RESULTS) : path.join(repoRoot, 'results');
}
