import path from 'node:path';
import { builtinNames, loadDataFile, resolveDataRef } from '../util/load.ts';
import { repoRoot } from '../util/paths.ts';
import { caseSchema, type CaseDef } from './schema.ts';

export const casesDir = path.join(repoRoot, 'cases');

/** The default job's cases: the rp_filter loopback bug in its two built-in topologies (any built-in case runs with --case NAME). */
export const DEFAULT_CASES = ['rp-filter-selftest', 'rp-filter-mesos'];

export interface LoadedCase {
  def: CaseDef;
  file: string;
}

/** The built-in case names (files cases/<name>.yaml). */
export function builtinCases(): string[] {
  return builtinNames(casesDir);
}

/** Load a case by built-in name or by path to a YAML/JSON file. */
export function loadCase(ref: string): LoadedCase {
  const { file } = resolveDataRef(ref, casesDir, 'case', '--case');
  return { def: loadDataFile(file, caseSchema), file };
}
