import { describe, expect, it } from 'vitest';
import { age, parseDuration, parseSize, planGc, summarize, type Unit } from '../../harness/cache/plan.ts';
import { HarnessError } from '../../harness/util/errors.ts';

const MIN = 60_000;
const DAY = 86_400_000;
const now = 100 * DAY;
const u = (id: string, bytes: number, unusedMs: number, extra: Partial<Unit> = {}): Unit => ({
  area: id.split('/')[0] as Unit['area'],
  id,
  path: `/c/${id}`,
  bytes,
  usedAt: now - unusedMs,
  ...extra,
});

describe('cache gc plan', () => {
  const units = [
    u('trees/debian-6.1', 1700, 2 * DAY),
    u('trees/git-a', 1500, 40 * DAY),
    u('kernels/k1', 40, 1 * DAY),
    u('kernels/k2', 40, 50 * DAY),
    u('snapshots/s1', 35, 5 * MIN), // just used
    u('trees/busy', 1600, 60 * DAY, { inUse: true }),
  ];

  it('--older-than removes what was not used for that long, never what a build holds', () => {
    const p = planGc(units, { olderThanMs: 30 * DAY, graceMs: 10 * MIN, now });
    expect(p.victims.map((v) => v.id)).toEqual(['kernels/k2', 'trees/git-a']); // least recently used first
    expect(p.freedBytes).toBe(1540);
    expect(p.spared).toEqual([{ unit: units[5], why: 'in use' }]);
    expect(p.overBudget).toBe(false);
  });

  it('--max-size removes least recently used first until the cache fits, and stops there', () => {
    const p = planGc(units, { maxBytes: 3400, graceMs: 10 * MIN, now });
    // total 4915: busy (in use) is skipped, k2 (50 d) then git-a (40 d) bring it to 3375 <= 3400
    expect(p.victims.map((v) => v.id)).toEqual(['kernels/k2', 'trees/git-a']);
    expect(p.keptBytes).toBe(3375);
    expect(p.totalBytes).toBe(4915);
  });

  it('--max-size 0 keeps only what is in use or used within the grace period, and says it is over budget', () => {
    const p = planGc(units, { maxBytes: 0, graceMs: 10 * MIN, now });
    expect(p.victims.map((v) => v.id).sort()).toEqual(['kernels/k1', 'kernels/k2', 'trees/debian-6.1', 'trees/git-a']);
    expect(p.spared.map((s) => `${s.unit.id}:${s.why}`).sort()).toEqual(['snapshots/s1:recently used', 'trees/busy:in use']);
    expect(p.keptBytes).toBe(1635);
    expect(p.overBudget).toBe(true);
  });

  it('both limits: the old go first, then the budget', () => {
    const p = planGc(units, { olderThanMs: 45 * DAY, maxBytes: 3500, graceMs: 0, now });
    expect(p.victims.map((v) => v.id)).toEqual(['kernels/k2', 'trees/git-a']);
  });

  it('nothing to do: no victims, nothing spared', () => {
    const p = planGc(units, { maxBytes: 10_000, graceMs: 10 * MIN, now });
    expect(p.victims).toEqual([]);
    expect(p.spared).toEqual([]);
    expect(p.freedBytes).toBe(0);
  });

  it('summarizes per area', () => {
    const s = summarize(units);
    expect(s.find((a) => a.area === 'trees')).toEqual({ area: 'trees', count: 3, bytes: 4800, lastUsed: now - 2 * DAY });
    expect(s.find((a) => a.area === 'downloads')).toEqual({ area: 'downloads', count: 0, bytes: 0, lastUsed: null });
  });
});

describe('sizes and durations on the command line', () => {
  it('parses sizes', () => {
    expect(parseSize('10G', '--max-size')).toBe(10 * 1024 ** 3);
    expect(parseSize('1.5GB', '--max-size')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('500M', '--max-size')).toBe(500 * 1024 ** 2);
    expect(parseSize('0', '--max-size')).toBe(0);
    expect(parseSize('2GiB', '--max-size')).toBe(2 * 1024 ** 3);
  });
  it('parses durations', () => {
    expect(parseDuration('30d', '--older-than')).toBe(30 * DAY);
    expect(parseDuration('12h', '--older-than')).toBe(12 * 3_600_000);
    expect(parseDuration('10m', '--keep-recent')).toBe(10 * MIN);
    expect(parseDuration('0', '--keep-recent')).toBe(0);
  });
  it('rejects nonsense naming the option', () => {
    for (const [f, v] of [
      [parseSize, '10 parsecs'],
      [parseSize, '-1G'],
      [parseSize, ''],
      [parseDuration, '7'],
      [parseDuration, 'yesterday'],
      [parseDuration, '3w'],
    ] as const) {
      let err: unknown;
      try {
        f(v, '--opt');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HarnessError);
      expect((err as HarnessError).field).toBe('--opt');
      expect((err as HarnessError).kind).toBe('bad-input');
    }
  });
  it('ages read as a person would say them', () => {
    expect(age(30_000)).toBe('30 s');
    expect(age(45 * MIN)).toBe('45 min');
    expect(age(5 * 3_600_000)).toBe('5 h');
    expect(age(3 * DAY)).toBe('3 d');
  });
});

describe('orphaned worktrees', () => {
  it('a worktree whose repository is gone always goes, even if just used, unless a build holds it', () => {
    const units = [u('trees/git-gone', 1500, 1 * MIN, { orphan: true }), u('trees/git-gone-busy', 1500, 1 * MIN, { orphan: true, inUse: true }), u('kernels/k', 40, 1 * MIN)];
    const p = planGc(units, { olderThanMs: 7 * DAY, graceMs: 10 * MIN, now });
    expect(p.victims.map((v) => v.id)).toEqual(['trees/git-gone']);
    expect(p.spared.map((s) => `${s.unit.id}:${s.why}`)).toEqual(['trees/git-gone-busy:in use']);
  });
});
