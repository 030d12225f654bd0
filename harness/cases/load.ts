import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { loadDataFile } from '../util/load.ts';
import { repoRoot } from '../util/paths.ts';
import { caseSchema, type CaseDef } from './schema.ts';

export const casesDir = path.join(repoRoot, 'cases');

export interface LoadedCase {
  def: CaseDef;
  file: string;
}

/** List the built-in case names (files cases/<name>.yaml). */
export function builtinCases(): string[] {
  return fs
    .readdirSync(casesDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => f.replace(/\.ya?ml$/, ''))
    .sort();
}

/** Load a case by built-in name or by path to a YAML/JSON file. */
export function loadCase(ref: string): LoadedCase {
  const looksLikePath = ref.includes('/') || /\.(ya?ml|json)$/.test(ref);
  let file: string;
  if (looksLikePath) file = path.resolve(ref);
  else {
    const candidates = ['.yaml', '.yml', '.json'].map((ext) => path.join(casesDir, ref + ext));
    const found = candidates.find((c) => fs.existsSync(c));
    if (!found)
      throw new HarnessError('bad-input', `no built-in case named "${ref}" (built in: ${builtinCases().join(', ')})`, {
        field: '--case',
        hint: 'pass a built-in name or a path to a case file',
      });
    file = found;
  }
  const def = loadDataFile(file, caseSchema);
  return { def, file };
}
