// Reliability end to end: a build failure, QEMU missing, a corrupted cache entry, SIGINT during a
// build and during a boot, and two runs at once sharing one cache.
import { describe, expect, it, onTestFinished } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { extractTarball } from '../../harness/util/extract.ts';
import { formatError, HarnessError } from '../../harness/util/errors.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const work = fileTempDir('kr-rel-');
const base = path.join(repoRoot, 'kernels/config/base.config');
const commentPatch = fs.readFileSync(path.join(repoRoot, 'test/fixtures/comment-only.patch'), 'utf8');

/** A kernel definition on 6.1 (as shipped) with one extra patch; a fresh token forces a build. */
function kernelWith(name: string, patchText: string): string {
  const p = path.join(work, `${name}.patch`);
  fs.writeFileSync(p, patchText);
  const k = path.join(work, `${name}.yaml`);
  fs.writeFileSync(k, `name: ${name}\nsource: { type: debian-source, package: linux-source-6.1 }\npatches: [{ file: ${p} }]\nconfig: { fragments: [${base}] }\n`);
  return k;
}
const uniqueComment = (): string => commentPatch.replace('(comment-only test change)', `(test ${crypto.randomBytes(4).toString('hex')})`);

function alive(pattern: string): string {
  try {
    return execFileSync('pgrep', ['-af', pattern]).toString().trim();
  } catch {
    return '';
  }
}

const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const main = path.join(repoRoot, 'harness/cli/main.ts');

describe('reliability', () => {
  it('a build failure: exit 4, the compiler error in the message, no cache entry', async () => {
    const k = kernelWith('broken-build', fs.readFileSync(path.join(repoRoot, 'test/fixtures/breaks-build.patch'), 'utf8'));
    const r = await cli(['repro', '--kernel', k, '--case', 'rp-filter-selftest', '--no-install']);
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toMatch(/error \(build-failed\): .*build of broken-build failed/);
    expect(r.stderr).toMatch(/#error kernel-repro: this patch breaks the build/);
    expect(r.stderr).toMatch(/full log: .*broken-build-.*\.log/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const index = path.join(cacheRoot(), 'kernels');
    const metas = fs.readdirSync(index).filter((d) => /^[0-9a-f]{64}$/.test(d)).map((d) => fs.readFileSync(path.join(index, d, 'manifest.json'), 'utf8'));
    expect(metas.some((m) => m.includes(path.join(work, 'broken-build.patch')))).toBe(false);
  });

  it('QEMU missing: exit 3 with the package to install', async () => {
    const r = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--no-install'], { env: { KERNEL_REPRO_QEMU: '/nonexistent/qemu-system-x86_64', KERNEL_REPRO_ACCEL: 'tcg' } });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/cannot start \/nonexistent\/qemu-system-x86_64/);
    expect(r.stderr).toMatch(/qemu-system-x86/);
  });

  it('a corrupted cache entry is detected and rebuilt', async () => {
    const ok = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--json', '--no-install']);
    expect(ok.exitCode).toBe(0);
    const key = (JSON.parse(ok.stdout) as { runs: Array<{ kernelInfo: { key: string } }> }).runs[0]!.kernelInfo.key;
    fs.appendFileSync(path.join(cacheRoot(), 'kernels', key, 'vmlinux'), 'garbage');
    const r = await cli(['repro', '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--json', '--no-install']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/discarded: file vmlinux does not match its manifest \(rebuilding\)/);
    expect((JSON.parse(r.stdout) as { runs: Array<{ verdict: string }> }).runs[0]!.verdict).toBe('not-reproduced');
  });

  it('SIGINT during a build: exit 130, no make left, no cache entry, the next run works', async () => {
    const k = kernelWith('sigint-build', uniqueComment());
    const child = execa(tsx, [main, 'repro', '--kernel', k, '--case', 'rp-filter-selftest', '--no-install'], { reject: false });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const t0 = Date.now();
    while (!/building sigint-build/.test(err) && Date.now() - t0 < 300_000) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const res = await child;
    expect(res.exitCode).toBe(130);
    await new Promise((r) => setTimeout(r, 500));
    // this cache's builds only: another harness on the machine (a CI job, a second checkout) may be building
    expect(alive(`make -C ${cacheRoot().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/trees/`)).toBe('');
    const again = await cli(['repro', '--kernel', k, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    expect(again.exitCode).toBe(0);
    expect((JSON.parse(again.stdout) as { runs: Array<{ verdict: string }> }).runs[0]!.verdict).toBe('not-reproduced');
  });

  it('SIGINT during a boot: exit 130 at once, no QEMU left', async () => {
    const results = path.join(work, 'sigint-boot');
    const vmTemps = (): string[] => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('kr-vm-'));
    const tempsBefore = vmTemps();
    const child = execa(tsx, [main, 'repro', '--kernel', '6.1-fixed', '--kernel', '6.1-vanilla', '--no-install', '--results', results], { reject: false });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const t0 = Date.now();
    while (!/accelerator:/.test(err) && Date.now() - t0 < 300_000) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGINT');
    const res = await child;
    expect(res.exitCode).toBe(130);
    expect(Date.now() - t0).toBeLessThan(300_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(alive(`qemu-system.*${results}`)).toBe('');
    expect(vmTemps().filter((f) => !tempsBefore.includes(f))).toEqual([]); // the guests' control sockets went with them
  });

  it('two runs at once sharing one cache: one builds, the other waits, both correct', async () => {
    const k = kernelWith('shared-build', uniqueComment());
    const [r1, r2] = await Promise.all([
      cli(['repro', '--kernel', k, '--case', 'rp-filter-selftest', '--json', '--no-install']),
      cli(['repro', '--kernel', k, '--case', 'rp-filter-mesos', '--json', '--no-install']),
    ]);
    expect(r1.exitCode).toBe(0);
    expect(r2.exitCode).toBe(0);
    const both = r1.stderr + r2.stderr;
    expect(both.match(/built shared-build/g) ?? []).toHaveLength(1);
    // the second run says what it waits for and who holds it (util/lock.ts)
    expect(both).toMatch(/waiting for the kernel tree \S+ \(to build shared-build\): held by pid \d+ on \S+ \(building shared-build, since /);
    for (const r of [r1, r2]) expect((JSON.parse(r.stdout) as { runs: Array<{ verdict: string }> }).runs[0]!.verdict).toBe('not-reproduced');
  });
});

// A full disk, for real: small tmpfs mounts stand in for a cache disk with little room left.
const isRoot = process.getuid?.() === 0;
function smallDisk(name: string, size: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  onTestFinished(() => {
    execFileSync('umount', ['-l', dir]);
  });
  return dir;
}

describe.runIf(isRoot)('a full disk (tmpfs mounts; needs root)', () => {
  it('a cache with too little room: repro stops before extracting, exit 5, naming the directory and the need; nothing half-written', async () => {
    const cache = smallDisk('small-cache', '120m');
    const r = await cli(['repro', '--kernel', '6.1-vanilla', '--case', 'rp-filter-selftest', '--no-install'], { env: { KERNEL_REPRO_CACHE: cache } });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toMatch(
      new RegExp(`error \\(no-space\\): not enough disk space in ${cache}/trees/debian-linux-source-6\\.1-[0-9a-f]+ for extracting and building linux-source-6\\.1 [^:]*: it needs about [\\d.]+ GB, \\d+ MB free`),
    );
    expect(r.stderr).toContain('hint: free disk space');
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    const trees = path.join(cache, 'trees');
    for (const t of fs.readdirSync(trees)) expect(fs.readdirSync(path.join(trees, t)).filter((f) => f === 'src' || f.includes('staging'))).toEqual([]);
    expect(fs.existsSync(path.join(cache, 'kernels')) ? fs.readdirSync(path.join(cache, 'kernels')).filter((f) => /^[0-9a-f]{64}$/.test(f)) : []).toEqual([]);
  });

  it('the disk fills during an extraction (tar and the safe extractor): a no-space error, no staging tree left, no tree in place', async () => {
    const disk = smallDisk('full-during', '48m');
    const logFile = path.join(work, 'extract.log');
    for (const untrusted of [false, true]) {
      const dest = path.join(disk, `src-${untrusted}`);
      const err = await extractTarball('/usr/src/linux-source-6.1.tar.xz', dest, logFile, untrusted).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HarnessError);
      expect((err as HarnessError).kind).toBe('no-space');
      expect(formatError(err)).toMatch(/no space left on the device|not enough disk space/);
      expect(fs.readdirSync(disk)).toEqual([]); // staging removed, nothing at dest
    }
  });
});
