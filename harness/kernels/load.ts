import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { builtinNames, loadDataFile, resolveDataRef } from '../util/load.ts';
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
  return builtinNames(kernelsDir);
}

export function loadKernel(ref: string): LoadedKernel {
  const { file, isPath } = resolveDataRef(ref, kernelsDir, 'kernel', '--kernel');
  const def = loadDataFile(file, kernelSchema);
  const baseDir = isPath ? path.dirname(file) : kernelsDir;
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
