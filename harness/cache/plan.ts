// What `cache gc` removes: pure logic over a list of cache units (no file system here).
//
// A unit is what can go as a whole: a kernel tree (source + its build directories, ~1.7 GB, costs a
// re-extraction and a rebuild), a built kernel (~40 MB, costs a rebuild), a booted-kernel snapshot
// (~35 MB, costs one cold boot), a boot image, a downloaded tarball. Removal goes least recently
// used first; units used within the grace period or held by a running build are never removed.
// A harness worktree whose git repository was deleted can never be used again: it always goes.
import { HarnessError } from '../util/errors.ts';

export type Area = 'trees' | 'kernels' | 'snapshots' | 'images' | 'downloads';
export const AREAS: readonly Area[] = ['trees', 'kernels', 'snapshots', 'images', 'downloads'];

export interface Unit {
  area: Area;
  /** e.g. trees/debian-linux-source-6.1-4d41…, kernels/0c16…; unique */
  id: string;
  path: string;
  bytes: number;
  /** last use, ms since the epoch */
  usedAt: number;
  /** a running build holds it (trees only) */
  inUse?: boolean;
  /** a worktree whose git repository is gone: it can never be built again */
  orphan?: boolean;
}

export interface GcPolicy {
  /** keep the cache at or below this many bytes (least recently used units go first) */
  maxBytes?: number;
  /** remove every unit not used for this long */
  olderThanMs?: number;
  /** never remove a unit used this recently (a run may be about to read it) */
  graceMs: number;
  now: number;
}

export interface GcPlan {
  victims: Unit[];
  totalBytes: number;
  freedBytes: number;
  keptBytes: number;
  /** units the policy would remove but that are in use or within the grace period */
  spared: Array<{ unit: Unit; why: 'in use' | 'recently used' }>;
  /** true when the cache is still above maxBytes after removing all it may */
  overBudget: boolean;
}

export function planGc(units: readonly Unit[], p: GcPolicy): GcPlan {
  const totalBytes = units.reduce((a, u) => a + u.bytes, 0);
  const lru = [...units].sort((a, b) => a.usedAt - b.usedAt || a.id.localeCompare(b.id));
  const victims = new Set<Unit>();
  const spared = new Map<Unit, 'in use' | 'recently used'>();
  const removable = (u: Unit): boolean => {
    if (u.inUse) spared.set(u, 'in use');
    else if (p.now - u.usedAt < p.graceMs) spared.set(u, 'recently used');
    else return true;
    return false;
  };
  for (const u of lru) if (u.orphan && !u.inUse) victims.add(u);
  else if (u.orphan) spared.set(u, 'in use');
  if (p.olderThanMs !== undefined)
    for (const u of lru) if (p.now - u.usedAt > p.olderThanMs && removable(u)) victims.add(u);
  let kept = totalBytes - [...victims].reduce((a, u) => a + u.bytes, 0);
  if (p.maxBytes !== undefined)
    for (const u of lru) {
      if (kept <= p.maxBytes) break;
      if (victims.has(u) || u.orphan || !removable(u)) continue;
      victims.add(u);
      kept -= u.bytes;
    }
  const list = lru.filter((u) => victims.has(u));
  return {
    victims: list,
    totalBytes,
    freedBytes: totalBytes - kept,
    keptBytes: kept,
    spared: [...spared].map(([unit, why]) => ({ unit, why })),
    overBudget: p.maxBytes !== undefined && kept > p.maxBytes,
  };
}

/** Per-area totals, for `cache ls`. */
export function summarize(units: readonly Unit[]): Array<{ area: Area; count: number; bytes: number; lastUsed: number | null }> {
  return AREAS.map((area) => {
    const us = units.filter((u) => u.area === area);
    return {
      area,
      count: us.length,
      bytes: us.reduce((a, u) => a + u.bytes, 0),
      lastUsed: us.length ? Math.max(...us.map((u) => u.usedAt)) : null,
    };
  });
}

/** "10G", "500M", "1.5GB", "0" -> bytes. */
export function parseSize(s: string, field: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(s.trim());
  if (!m) throw new HarnessError('bad-input', `"${s}" is not a size (e.g. 10G, 500M, 0)`, { field });
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(m[1]) * unit);
}

/** "30d", "12h", "10m", "0" -> ms. */
export function parseDuration(s: string, field: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(d|h|m|s)?$/.exec(s.trim());
  if (!m || (m[2] === undefined && Number(m[1]) !== 0))
    throw new HarnessError('bad-input', `"${s}" is not a duration (e.g. 30d, 12h, 10m, 0)`, { field });
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[(m[2] ?? 's') as 'd' | 'h' | 'm' | 's'];
  return Math.round(Number(m[1]) * unit);
}

export function age(ms: number): string {
  if (ms < 90_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 90 * 60_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 36 * 3_600_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} d`;
}
