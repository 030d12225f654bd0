// Load a YAML or JSON data file and validate it against a zod schema. Every failure is a
// HarnessError naming the file and the field at fault.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { HarnessError } from './errors.ts';
import { readInputFile } from '../trust/files.ts';

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += (out ? '.' : '') + String(p);
  }
  return out || '(top level)';
}

/** Parse text as YAML (JSON is a subset) and validate. `file` is used in messages only. */
export function parseData<S extends z.ZodType>(text: string, file: string, schema: S): z.output<S> {
  let raw: unknown;
  try {
    const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'syntax';
      throw new HarnessError('bad-input', `not valid YAML/JSON: ${e.message.split('\n')[0]}`, { file, field: where });
    }
    raw = doc.toJS();
  } catch (err) {
    if (err instanceof HarnessError) throw err;
    throw new HarnessError('bad-input', `not valid YAML/JSON: ${(err as Error).message}`, { file, field: 'syntax' });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new HarnessError('bad-input', 'expected a mapping of fields at the top level', { file, field: '(top level)' });
  const res = schema.safeParse(raw);
  if (!res.success) {
    const issues = res.error.issues;
    const first = issues[0]!;
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1, 4).map((i) => formatPath(i.path)).join(', ')})` : '';
    throw new HarnessError('bad-input', `${first.message}${more}`, { file, field: formatPath(first.path) });
  }
  return res.data;
}

/** Definitions (kernels, cases, matrices) are small: a few KB. */
export const MAX_DEFINITION_BYTES = 1024 * 1024;

// Input files are read through the trust boundary (regular files only, bounded): ../trust/files.ts.
export { readInputFile } from '../trust/files.ts';

export function loadDataFile<S extends z.ZodType>(file: string, schema: S, maxBytes = MAX_DEFINITION_BYTES): z.output<S> {
  return parseData(readInputFile(file, maxBytes), file, schema);
}

/** Names of the data files (<name>.yaml/.yml/.json) in a folder of built-ins. */
export function builtinNames(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f) => f.replace(/\.(ya?ml|json)$/, ''))
    .sort();
}

/**
 * A reference given on the command line: a path (contains "/" or ends in .yaml/.yml/.json) or the
 * name of a built-in in `dir`. Returns the file and whether it was a path.
 */
export function resolveDataRef(ref: string, dir: string, what: string, option: string): { file: string; isPath: boolean } {
  if (ref.includes('/') || /\.(ya?ml|json)$/.test(ref)) return { file: path.resolve(ref), isPath: true };
  const found = ['.yaml', '.yml', '.json'].map((ext) => path.join(dir, ref + ext)).find((f) => fs.existsSync(f));
  if (!found)
    throw new HarnessError('bad-input', `no built-in ${what} named "${ref}" (built in: ${builtinNames(dir).join(', ')})`, {
      field: option,
      hint: `pass a built-in name or a path to a ${what} file`,
    });
  return { file: found, isPath: false };
}
