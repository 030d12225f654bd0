// `cache ls` and `cache gc` on a real cache: kernels copied from the shared cache, a snapshot and
// a boot image made by a real run, and two kernel trees (one old, one held by a running build).
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const cache = fileTempDir('kr-gc-');
const env = { KERNEL_REPRO_CACHE: cache };
const DAY = 86_400_000;

interface Ls { freeBytes: number; areas: Array<{ area: string; count: number; bytes: number }>; units: Array<{ id: string; area: string; inUse?: boolean; bytes: number }> }
interface Gc { removed: Array<{ id: string }>; spared: Array<{ id: string; why: string }>; overBudget: boolean; freedBytes: number }

function fakeTree(name: string, ageMs: number): string {
  const root = path.join(cache, 'trees', name);
  fs.mkdirSync(path.join(root, 'src'), { recursive: true });
  fs.writeFileSync(path.join(root, 'src', 'Makefile'), Buffer.alloc(1 << 20, 0x41));
  fs.writeFileSync(path.join(root, '.lock'), '');
  const stamp = path.join(root, '.last-used');
  fs.writeFileSync(stamp, '');
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(stamp, t, t);
  fs.utimesSync(root, t, t);
  return root;
}

describe('cache ls and cache gc', () => {
  it('lists what a run left, removes by age and by size, never a tree a build holds', async () => {
    // the kernels from the shared cache (built by 01-repro), so the run below builds nothing
    fs.cpSync(path.join(cacheRoot(), 'kernels'), path.join(cache, 'kernels'), { recursive: true });
    const r = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--json', '--no-install'], { env });
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toMatch(/building 6\.1-fixed/);

    const old = fakeTree('old-tree', 40 * DAY);
    const busy = fakeTree('busy-tree', 40 * DAY);
    // a build holding the tree's lock, as ensureKernel does
    const script = path.join(cache, 'holder.mts');
    fs.writeFileSync(script, `import { tryLock } from ${JSON.stringify(path.join(repoRoot, 'harness/util/lock.ts'))};\nif (tryLock(${JSON.stringify(path.join(busy, '.lock'))}, { what: 'building busy' })) console.log('locked');\nsetInterval(() => {}, 1000);\n`);
    const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
    const holder = execa(process.execPath, ['--import', loader, script], { cwd: repoRoot, reject: false });
    await new Promise<void>((res) => holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && res()));
    try {
      const ls1 = JSON.parse((await cli(['cache', 'ls', '--json'], { env })).stdout) as Ls;
      const count = (a: string): number => ls1.areas.find((x) => x.area === a)!.count;
      expect(count('trees')).toBe(2);
      expect(count('snapshots')).toBe(1); // saved by the run
      expect(count('images')).toBeGreaterThanOrEqual(1); // the base image
      expect(count('kernels')).toBeGreaterThanOrEqual(2);
      expect(ls1.units.find((u) => u.id === 'trees/busy-tree')!.inUse).toBe(true);
      expect(ls1.units.find((u) => u.id === 'trees/old-tree')!.bytes).toBeGreaterThanOrEqual(1 << 20);
      const human = await cli(['cache'], { env });
      expect(human.stdout).toMatch(/^cache: .* free on its disk\)$/m);
      expect(human.stdout).toMatch(/^ {2}busy-tree\s+\d+ MB\s+used 40 d ago {2}\[in use\]$/m);

      // by age: only the old tree that nobody holds
      const g1 = JSON.parse((await cli(['cache', 'gc', '--older-than', '30d', '--json'], { env })).stdout) as Gc;
      expect(g1.removed.map((u) => u.id)).toEqual(['trees/old-tree']);
      expect(g1.spared).toEqual([expect.objectContaining({ id: 'trees/busy-tree', why: 'in use' })]);
      expect(fs.existsSync(old)).toBe(false);

      // a dry run removes nothing
      const dry = await cli(['cache', 'gc', '--max-size', '0', '--keep-recent', '0', '--dry-run'], { env });
      expect(dry.stdout).toMatch(/^would remove snapshots\/[0-9a-f]{64} \(\d+ MB, unused for \d+ s\)$/m);
      expect((JSON.parse((await cli(['cache', 'ls', '--json'], { env })).stdout) as Ls).units.length).toBe(ls1.units.length - 1);

      // by size, to nothing: all but the held tree; the cache says it is still over budget
      const g2 = JSON.parse((await cli(['cache', 'gc', '--max-size', '0', '--keep-recent', '0', '--json'], { env })).stdout) as Gc;
      expect(g2.overBudget).toBe(true);
      const ls2 = JSON.parse((await cli(['cache', 'ls', '--json'], { env })).stdout) as Ls;
      expect(ls2.units.map((u) => u.id)).toEqual(['trees/busy-tree']);
      expect(fs.readdirSync(path.join(cache, 'kernels')).filter((f) => f.startsWith('.gc-'))).toEqual([]);
      expect(g2.freedBytes).toBeGreaterThan(50 << 20);

      // nonsense on the command line names the option
      const bad = await cli(['cache', 'gc', '--max-size', 'lots'], { env });
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toContain('error (bad-input): --max-size: "lots" is not a size');
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
  });
});
