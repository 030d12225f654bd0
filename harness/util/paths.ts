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

/** $KERNEL_REPRO_RESULTS, else results/ in the clone, else (an installed package, whose folder
 * is no place for run output) results/ in the current directory. */
export function resultsRoot(env: NodeJS.ProcessEnv = process.env, root = repoRoot, cwd = process.cwd()): string {
  if (env.KERNEL_REPRO_RESULTS) return path.resolve(env.KERNEL_REPRO_RESULTS);
  return root.split(path.sep).includes('node_modules') ? path.join(cwd, 'results') : path.join(root, 'results');
}
