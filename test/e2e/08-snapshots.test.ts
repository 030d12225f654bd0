// Booted-kernel snapshots end to end on the real kernels (from the shared cache): the first run of a
// kernel boots cold and saves the booted guest; later runs restore it and give the same verdict
// with the same kernel evidence; a damaged snapshot is detected and made again; a restored guest
// is held to its deadline like any other; snapshots off means cold boots and nothing saved.
import { beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { loadCase } from '../../harness/cases/load.ts';
import { ensureBaseImage, type BaseImage } from '../../harness/images/initramfs.ts';
import { ensureKernel } from '../../harness/kernels/providers/index.ts';
import type { KernelArtifact } from '../../harness/kernels/artifact.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { runCase } from '../../harness/pipeline/runCase.ts';
import { makeLogger } from '../../harness/util/log.ts';
import { cacheRoot } from '../../harness/util/paths.ts';
import { processAlive } from './helpers.ts';
import { fileTempDir, testTempDir } from '../tmp.ts';

let vanilla: KernelArtifact;
let fixed: KernelArtifact;
let image: BaseImage;
const runDir = fileTempDir('kr-snap-');
// snapshots in their own cache directory (kernels and the image come from the shared cache)
const snapCache = fileTempDir('kr-snapcache-');
const selftest = () => loadCase('rp-filter-selftest');

function snapshots(): string[] {
  const dir = path.join(snapCache, 'snapshots');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => /^[0-9a-f]{64}$/.test(d)) : [];
}

beforeAll(async () => {
  const log = makeLogger();
  vanilla = await ensureKernel(loadKernel('6.1-vanilla'), { cacheDir: cacheRoot(), log });
  fixed = await ensureKernel(loadKernel('6.1-fixed'), { cacheDir: cacheRoot(), log });
  image = await ensureBaseImage(cacheRoot(), log.info);
});

describe('booted-kernel snapshots', () => {
  it('first run boots cold and saves; the next restores it: same verdict, same kernel evidence, boot log kept', async () => {
    const base = { kcase: selftest(), baseImage: image.path, accel: 'tcg' as const, runDir, cacheDir: snapCache, snapshot: true };
    const first = await runCase({ ...base, kernel: vanilla, label: 'first' });
    expect(first.vm.snapshot?.use).toBe('created');
    expect(snapshots()).toHaveLength(1);
    const again = await runCase({ ...base, kernel: vanilla, label: 'again' });
    expect(again.vm.snapshot?.use).toBe('restored');
    expect(again.vm.snapshot?.restoreMs).toBeGreaterThan(0);
    for (const r of [first, again]) {
      expect(r.verdict).toBe('reproduced');
      const sig = (name: string) => r.signals.find((x) => x.name === name)!;
      expect(sig('martian').matches.map((m) => `${m.fields?.src} ${m.fields?.dst} ${m.fields?.dev}`)).toEqual(['192.0.2.1 192.0.2.1 lo']);
      expect(r.counterDeltas['host:TcpExt.IPReversePathFilter']).toBe(1);
      expect(sig('fib-lo-mismatch').matches.map((m) => m.text).join('\n')).toMatch(/192\.0\.2\.1\/0 -> 192\.0\.2\.1\/0 .*==> dev veth1/);
      // the guest's `uname -r` is the release the build recorded (whatever point release the archive served)
      expect(r.kernelInfo.release).toBe(vanilla.meta.release);
    }
    // the restored run's own console starts after the restore; the boot log is the snapshot's, kept with the run
    expect(fs.readFileSync(again.files.console, 'utf8')).not.toMatch(/Linux version/);
    expect(fs.readFileSync(again.files.console, 'utf8')).toMatch(/martian source 192\.0\.2\.1 from 192\.0\.2\.1, on dev lo/);
    expect(fs.readFileSync(again.files.bootConsole!, 'utf8')).toContain(`Linux version ${vanilla.meta.release} `);
    expect(again.vm.bootMs).toBe(first.vm.bootMs);
    // the harness ends QEMU once the agent is done
    expect(again.vm.stoppedAfterDone).toBe(true);
    expect(processAlive(path.join(runDir, '6.1-vanilla__rp-filter-selftest__again'))).toBe(false);

    // another kernel has its own snapshot, and its own verdict
    const f1 = await runCase({ ...base, kernel: fixed, label: 'fixed-1' });
    const f2 = await runCase({ ...base, kernel: fixed, label: 'fixed-2' });
    expect([f1.vm.snapshot?.use, f2.vm.snapshot?.use]).toEqual(['created', 'restored']);
    expect([f1.verdict, f2.verdict]).toEqual(['not-reproduced', 'not-reproduced']);
    expect(f2.signals.find((x) => x.name === 'martian')?.fired).toBe(false);
    // the case's named counters are reported even at zero (the agent sends only non-zero ones otherwise)
    expect(f2.counters['host:TcpExt.IPReversePathFilter']).toBe(0);
    expect(snapshots()).toHaveLength(2);
  });

  it('a damaged snapshot is detected (size, QEMU refusing the stream, a load that does not end) and made again; the verdict is right', async () => {
    const base = { kernel: vanilla, kcase: selftest(), baseImage: image.path, accel: 'tcg' as const, runDir, cacheDir: snapCache, snapshot: true };
    const ok = await runCase({ ...base, label: 'd0' });
    const key = ok.vm.snapshot!.key!;
    const file = path.join(snapCache, 'snapshots', key, 'snapshot.bin');
    // 1. truncated: caught before QEMU starts
    fs.truncateSync(file, 4096);
    const t = await runCase({ ...base, label: 'd1' });
    expect(t.vm.snapshot?.use).toBe('created');
    expect(t.verdict).toBe('reproduced');
    // 2. same size, garbage: written since its digest was checked (the entry's stamps), so it is
    // hashed again, does not match its manifest and is discarded before QEMU starts
    const size = fs.statSync(file).size;
    fs.writeFileSync(file, Buffer.alloc(size, 0x5a));
    const w = await runCase({ ...base, label: 'd2w' });
    expect(w.vm.snapshot?.use).toBe('created');
    expect(w.verdict).toBe('reproduced');
    // 2b. garbage its manifest vouches for (as a state made by another QEMU build would be): QEMU
    // refuses to load it, and the run boots cold instead
    fs.writeFileSync(file, Buffer.alloc(fs.statSync(file).size, 0x5a)); // the state d2w saved
    const mf = path.join(snapCache, 'snapshots', key, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(mf, 'utf8')) as { files: Record<string, string> };
    manifest.files['snapshot.bin'] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    fs.writeFileSync(mf, JSON.stringify(manifest));
    const g = await runCase({ ...base, label: 'd2' });
    expect(g.vm.snapshot?.use).toBe('created');
    expect(g.vm.snapshot?.note).toMatch(/did not load \(QEMU refused the state: qemu-system-x86_64: load of migration failed/);
    expect(g.verdict).toBe('reproduced');
    // 3. a load that does not finish within its limit (here 1 ms, as a stuck `inmigrate` would
    // look): abandoned, QEMU stopped, discarded, booted cold and saved again
    const h = await runCase({ ...base, label: 'd3', restoreLimitMs: 1 });
    expect(h.vm.snapshot?.use).toBe('created');
    expect(h.vm.snapshot?.note).toMatch(/did not load \(the snapshot was still loading after 1 ms\)/);
    expect(h.verdict).toBe('reproduced');
    expect(processAlive(path.join(runDir, '6.1-vanilla__rp-filter-selftest__d3'))).toBe(false);
    const r = await runCase({ ...base, label: 'd4' });
    expect(r.vm.snapshot?.use).toBe('restored');
    expect(r.verdict).toBe('reproduced');
  });

  it('a restored guest is held to its deadline: verdict timeout, QEMU gone', async () => {
    const r = await runCase({ kernel: vanilla, kcase: selftest(), baseImage: image.path, accel: 'tcg', runDir, cacheDir: snapCache, snapshot: true, label: 'late', deadlineMs: 400 });
    expect(r.vm.snapshot?.use).toBe('restored');
    expect(r.verdict).toBe('timeout');
    expect(r.vm.timedOut).toBe(true);
    expect(processAlive(path.join(runDir, '6.1-vanilla__rp-filter-selftest__late'))).toBe(false);
  });

  it('snapshots off: the guest boots cold and nothing is saved', async () => {
    const empty = testTempDir('kr-nosnap-');
    const r = await runCase({ kernel: fixed, kcase: selftest(), baseImage: image.path, accel: 'tcg', runDir, cacheDir: empty, snapshot: false, label: 'off' });
    expect(r.vm.snapshot?.use).toBe('cold');
    expect(r.verdict).toBe('not-reproduced');
    expect(fs.existsSync(path.join(empty, 'snapshots'))).toBe(false);
    expect(fs.readFileSync(r.files.console, 'utf8')).toContain(`Linux version ${fixed.meta.release} `);
  });
});
