// The cache as `cache ls` and `cache gc` see it: the file-system side (scan, sizes, locks, removal).
// What to remove is decided in plan.ts.
import fs from 'node:fs';
import path from 'node:path';
import { lockStatus, tryLock } from '../util/lock.ts';
import { run } from '../util/proc.ts';
import type { Area, Unit } from './plan.ts';

const KEY = /^[0-9a-f]{64}$/;

function mtime(p: string): number {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function dirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

/** Last use of a kernel tree: its stamp, its patch state, its newest build log. */
function treeUsedAt(root: string): number {
  const logs = path.join(root, 'logs');
  let newest = Math.max(mtime(path.join(root, '.last-used')), mtime(path.join(root, 'state.json')));
  try {
    for (const f of fs.readdirSync(logs)) newest = Math.max(newest, mtime(path.join(logs, f)));
  } catch {
    /* no logs yet */
  }
  return newest || mtime(root);
}

/** A tree is in use while a live process holds its lock (see util/lock.ts). */
function treeInUse(root: string): boolean {
  return lockStatus(path.join(root, '.lock')).held;
}

/** Disk usage (bytes) of each path, with one `du`. */
async function diskUsage(paths: string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (let i = 0; i < paths.length; i += 200) {
    const chunk = paths.slice(i, i + 200);
    const r = await run('du', ['-s', '-B1', '--', ...chunk], { timeoutMs: 5 * 60_000 });
    for (const line of r.stdout.split('\n')) {
      const m = /^(\d+)\t(.*)$/.exec(line);
      if (m) sizes.set(m[2]!, Number(m[1]));
    }
  }
  return sizes;
}

/** Every removable unit of the cache at `cacheDir`. Leftovers of an interrupted removal count as unused. */
export async function scanCache(cacheDir: string): Promise<Unit[]> {
  const found: Array<Omit<Unit, 'bytes'>> = [];
  const add = (area: Area, rel: string, usedAt: number, inUse = false, orphan = false): void => {
    found.push({ area, id: rel, path: path.join(cacheDir, rel), usedAt, ...(inUse ? { inUse } : {}), ...(orphan ? { orphan } : {}) });
  };
  for (const name of dirs(path.join(cacheDir, 'trees'))) {
    const root = path.join(cacheDir, 'trees', name);
    if (name.startsWith('.gc-')) add('trees', `trees/${name}`, 0);
    else {
      const repo = worktreeRepo(path.join(root, 'src'));
      add('trees', `trees/${name}`, treeUsedAt(root), treeInUse(root), repo !== undefined && !fs.existsSync(repo));
    }
  }
  for (const area of ['kernels', 'snapshots', 'images'] as const) {
    for (const name of dirs(path.join(cacheDir, area))) {
      if (name.startsWith('.gc-')) add(area, `${area}/${name}`, 0);
      else if (KEY.test(name)) add(area, `${area}/${name}`, mtime(path.join(cacheDir, area, name, 'manifest.json')));
    }
  }
  const withFiles = path.join(cacheDir, 'images', 'with-files');
  // images with a kernel's modules: <key>.cpio, its last use in <key>.cpio.used
  for (const f of fs.existsSync(withFiles) ? fs.readdirSync(withFiles).filter((x) => x.endsWith('.cpio')) : [])
    add('images', `images/with-files/${f}`, Math.max(mtime(path.join(withFiles, f)), mtime(path.join(withFiles, `${f}.used`))));
  for (const name of dirs(path.join(cacheDir, 'downloads'))) {
    if (KEY.test(name)) add('downloads', `downloads/${name}`, mtime(path.join(cacheDir, 'downloads', name)));
  }
  const partial = path.join(cacheDir, 'downloads', 'partial');
  for (const f of fs.existsSync(partial) ? fs.readdirSync(partial).filter((x) => x.endsWith('.part')) : [])
    add('downloads', `downloads/partial/${f}`, mtime(path.join(partial, f)));
  const sizes = await diskUsage(found.map((u) => u.path));
  return found.map((u) => ({ ...u, bytes: sizes.get(u.path) ?? 0 }));
}

/** The git repository a worktree at `dir` belongs to, from its `.git` file. */
function worktreeRepo(dir: string): string | undefined {
  try {
    const m = /^gitdir: (.*)\/worktrees\/[^/]+\s*$/m.exec(fs.readFileSync(path.join(dir, '.git'), 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Remove one unit: renamed aside first (atomic: a run sees it whole or not at all), then deleted.
 * A tree is removed only if its lock can be taken at once; false if a build holds it.
 */
export async function removeUnit(u: Unit): Promise<boolean> {
  const aside = path.join(path.dirname(u.path), `.gc-${path.basename(u.path).replace(/^\.gc-/, '')}-${process.pid}`);
  if (u.area === 'trees' && !path.basename(u.path).startsWith('.gc-')) {
    const lock = tryLock(path.join(u.path, '.lock'), { what: `removing ${u.id} (cache gc)` });
    if (!lock) return false; // a build holds it
    const repo = worktreeRepo(path.join(u.path, 'src'));
    try {
      fs.renameSync(u.path, aside);
    } finally {
      lock.release(); // its lock moved with it: nothing left to remove
    }
    fs.rmSync(aside, { recursive: true, force: true });
    // a harness worktree of a user's repository: let git forget it
    if (repo && fs.existsSync(repo)) await run('git', ['--git-dir', repo, 'worktree', 'prune'], { timeoutMs: 60_000 }).catch(() => undefined);
    return true;
  }
  if (path.basename(u.path).startsWith('.gc-')) {
    fs.rmSync(u.path, { recursive: true, force: true });
    return true;
  }
  try {
    fs.renameSync(u.path, aside);
  } catch {
    return true; // already gone
  }
  fs.rmSync(aside, { recursive: true, force: true });
  fs.rmSync(`${u.path}.used`, { force: true });
  return true;
}
