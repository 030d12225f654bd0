import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { loadDataFile } from '../util/load.ts';
import { repoRoot } from '../util/paths.ts';
import { kernelSchema, type KernelDef } from './schema.ts';

export const kernelsDir = path.join(repoRoot, 'kernels');

export interface LoadedKernel {
  def: KernelDef;
  file: string;
  /** directory the definition's relative paths resolve against */
  baseDir: string;
}

export function builtinKernels(): string[] {
  return fs
    .readdirSync(kernelsDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => f.replace(/\.ya?ml$/, ''))
    .sort();
}

export function loadKernel(ref: string): LoadedKernel {
  const looksLikePath = ref.includes('/') || /\.(ya?ml|json)$/.test(ref);
  let file: string;
  if (looksLikePath) file = path.resolve(ref);
  else {
    const found = ['.yaml', '.yml', '.json'].map((e) => path.join(kernelsDir, ref + e)).find((f) => fs.existsSync(f));
    if (!found)
      throw new HarnessError('bad-input', `no built-in kernel named "${ref}" (built in: ${builtinKernels().join(', ')})`, {
        field: '--kernel',
      });
    file = found;
  }
  const def = loadDataFile(file, kernelSchema);
  const baseDir = looksLikePath ? path.dirname(file) : kernelsDir;
  const resolve = (p: string): string => (path.isAbsolute(p) ? p : path.join(baseDir, p));
  def.patches.forEach((p, i) => {
    if (!fs.existsSync(resolve(p.file)))
      throw new HarnessError('bad-input', `patch file not found: ${resolve(p.file)}`, { file, field: `patches[${i}].file` });
  });
  def.config.fragments.forEach((f, i) => {
    if (!fs.existsSync(resolve(f)))
      throw new HarnessError('bad-input', `config fragment not found: ${resolve(f)}`, { file, field: `config.fragments[${i}]` });
  });
  return { def, file, baseDir };
}

export function resolveIn(k: LoadedKernel, p: string): string {
  return path.isAbsolute(p) ? p : path.join(k.baseDir, p);
}
