// A run folder per kernel x case pair: the same pair given twice (`--case X --case X`, a kernel or
// case listed twice in a matrix) would run twice into one folder and spoil both runs. What is given
// twice runs once, with a notice; two different files under one name are an error (they would be
// told apart by nothing in the report).
import type { LoadedCase } from '../cases/load.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

export interface Deduped<T> {
  items: T[];
  /** one line per name given more than once: "case rp-filter-mesos is given 2 times (--case): it runs once" */
  notices: string[];
}

/**
 * `items` with each name once, in first-seen order. `origin` tells two things of one name apart
 * (their files): the same name from another origin is a bad-input error naming both.
 */
export function dedupeByName<T>(
  items: readonly T[],
  o: { name: (t: T) => string; origin: (t: T) => string; what: string; field: string; file?: string; hint?: string },
): Deduped<T> {
  const first = new Map<string, { item: T; origin: string; count: number }>();
  for (const it of items) {
    const name = o.name(it);
    const seen = first.get(name);
    if (!seen) {
      first.set(name, { item: it, origin: o.origin(it), count: 1 });
      continue;
    }
    if (seen.origin !== o.origin(it))
      throw new HarnessError('bad-input', `two ${o.what}s are named ${name} (${seen.origin} and ${o.origin(it)})`, {
        ...(o.file !== undefined ? { file: o.file } : {}),
        field: o.field,
        ...(o.hint !== undefined ? { hint: o.hint } : {}),
      });
    seen.count++;
  }
  const notices = [...first]
    .filter(([, v]) => v.count > 1)
    .map(([name, v]) => `${o.what} ${name} is given ${v.count} times (${o.field}): it runs once`);
  return { items: [...first.values()].map((v) => v.item), notices };
}

/** Cases likewise: one given twice runs once (a notice); two different case files with one name are an error. */
export function uniqueCases(cases: LoadedCase[], log?: Pick<Logger, 'info'>): LoadedCase[] {
  const d = dedupeByName(cases, { name: (c) => c.def.name, origin: (c) => c.file, what: 'case', field: '--case' });
  for (const n of d.notices) log?.info(`note: ${n}`);
  return d.items;
}
