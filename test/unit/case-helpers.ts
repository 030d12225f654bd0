// Shared by the case-language unit tests: parse a case as the loader does, and check a bad one is
// refused at its field with a typed error naming the file.
import { expect } from 'vitest';
import { caseSchema, type CaseDef } from '../../harness/cases/schema.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';

export const parseCase = (yaml: string): CaseDef => parseData(yaml, 'case.yaml', caseSchema);

export function refusedAt(yaml: string, field: string, msg?: RegExp): void {
  let err: unknown = null;
  try {
    parseCase(yaml);
  } catch (e) {
    err = e;
  }
  expect(err, `accepted a bad case (expected an error at ${field})`).toBeInstanceOf(HarnessError);
  const e = err as HarnessError;
  expect(e.file).toBe('case.yaml');
  expect(e.field).toBe(field);
  if (msg) expect(e.message).toMatch(msg);
}
