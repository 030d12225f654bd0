// Kernel identity (issue 11): the package lists are refreshed before installing when stale or when
// apt has no candidate; a pinned Debian source is fetched into the cache as that exact version, or
// refused (exit 3) with the versions the archive serves; reports name every kernel with its source
// version; a matrix baseline tells a kernel update apart from a change in behaviour.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  listsStale,
  ListsRefresher,
  LISTS_MAX_AGE_MS,
  newestTime,
  parseMadison,
  parsePolicyCandidate,
  type AptOps,
} from '../../harness/host/apt.ts';
import { installPackages } from '../../harness/host/prereqs.ts';
import { resolveDebianSource } from '../../harness/kernels/debsource.ts';
import { concreteImage } from '../../harness/kernels/providers/debianImage.ts';
import { kernelSchema } from '../../harness/kernels/schema.ts';
import { compareBaseline, compareKernels, type CellOutcome } from '../../harness/matrix/logic.ts';
import type { KernelInfo } from '../../harness/observe/types.ts';
import { describeKernel, identityChange, kernelEntry, renderKernels } from '../../harness/report/kernels.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';
import { silentLogger, type Logger } from '../../harness/util/log.ts';
import { fileTempDir } from '../tmp.ts';

const HOUR = 3600_000;

/** A scripted apt: what the archive serves before and after an update, and a log of the calls. */
function fakeApt(o: {
  ageMs: number | null;
  before: Record<string, string[]>;
  after?: Record<string, string[]>;
  installOk?: boolean | ((updated: boolean) => boolean);
  installed?: Record<string, string>;
  debFor?: (pkg: string, version: string, dir: string) => string | null;
}): AptOps & { calls: string[] } {
  let updated = false;
  const lists = (): Record<string, string[]> => (updated ? (o.after ?? o.before) : o.before);
  const installed: Record<string, string> = { ...(o.installed ?? {}) };
  const calls: string[] = [];
  return {
    calls,
    listsAgeMs: () => (updated ? 0 : o.ageMs),
    listsStamp: () => (updated ? 'new' : 'old'),
    async update() {
      calls.push('update');
      updated = true;
      return { ok: true, output: '' };
    },
    async served(pkg) {
      calls.push(`served ${pkg}`);
      return lists()[pkg] ?? [];
    },
    async candidate(pkg) {
      calls.push(`candidate ${pkg}`);
      return lists()[pkg]?.[0] ?? null;
    },
    async installed(pkg) {
      return installed[pkg] ?? null;
    },
    async install(specs) {
      calls.push(`install ${specs.join(' ')}`);
      const ok = typeof o.installOk === 'function' ? o.installOk(updated) : (o.installOk ?? true);
      if (ok) for (const p of specs) installed[p] = lists()[p]?.[0] ?? 'unknown';
      return { ok, output: ok ? '' : 'E: Unable to locate package' };
    },
    async download(pkg, version, dir) {
      calls.push(`download ${pkg}=${version}`);
      return { deb: o.debFor?.(pkg, version, dir) ?? null, output: '' };
    },
  };
}

function logger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`), progress: () => undefined };
}

describe('package lists', () => {
  it('parses apt-cache madison and policy', () => {
    const madison = [
      'linux-source-6.1 |  6.1.192-1 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages',
      'linux-source-6.1 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages',
      'linux-source-6.10 | 6.10.1-1 | http://example/other Packages',
    ].join('\n');
    expect(parseMadison(madison, 'linux-source-6.1')).toEqual(['6.1.192-1', '6.1.176-1']);
    expect(parseMadison('', 'linux-source-6.1')).toEqual([]);
    expect(parsePolicyCandidate('linux-source-6.1:\n  Installed: (none)\n  Candidate: 6.1.176-1\n')).toBe('6.1.176-1');
    expect(parsePolicyCandidate('linux-source-6.1:\n  Installed: (none)\n  Candidate: (none)\n')).toBeNull();
    expect(parsePolicyCandidate('')).toBeNull();
  });

  it('lists are stale after a day, or when nobody ever refreshed them', () => {
    expect(listsStale(null)).toBe(true);
    expect(listsStale(LISTS_MAX_AGE_MS + 1)).toBe(true);
    expect(listsStale(2 * HOUR)).toBe(false);
    expect(newestTime([null, 5, 3])).toBe(5);
    expect(newestTime([null])).toBeNull();
  });

  it('stale lists are refreshed before installing, and the installed version is printed', async () => {
    const apt = fakeApt({ ageMs: 40 * 24 * HOUR, before: { 'linux-source-6.1': ['6.1.176-1'] }, after: { 'linux-source-6.1': ['6.1.192-1', '6.1.176-1'] } });
    const log = logger();
    const v = await installPackages(['linux-source-6.1'], apt, log, new ListsRefresher(apt, log, true));
    expect(apt.calls[0]).toBe('update');
    expect(apt.calls.indexOf('update')).toBeLessThan(apt.calls.indexOf('install linux-source-6.1'));
    expect(v).toEqual({ 'linux-source-6.1': '6.1.192-1' });
    expect(log.lines.join('\n')).toMatch(/refreshing the package lists \(apt-get update\): last refreshed 960 h ago/);
    expect(log.lines.join('\n')).toContain('installed: linux-source-6.1 6.1.192-1');
  });

  it('fresh lists with a candidate: no refresh; no candidate: refresh once, then install', async () => {
    const fresh = fakeApt({ ageMs: HOUR, before: { qemu: ['7.2'] } });
    await installPackages(['qemu'], fresh, silentLogger, new ListsRefresher(fresh, silentLogger, true));
    expect(fresh.calls).not.toContain('update');
    const unknown = fakeApt({ ageMs: HOUR, before: {}, after: { 'linux-source-6.1': ['6.1.192-1'] } });
    await installPackages(['linux-source-6.1'], unknown, silentLogger, new ListsRefresher(unknown, silentLogger, true));
    expect(unknown.calls.filter((c) => c === 'update')).toHaveLength(1);
    expect(unknown.calls.indexOf('update')).toBeLessThan(unknown.calls.indexOf('install linux-source-6.1'));
  });

  it('an install that fails on fresh-looking lists refreshes them and tries again; a second failure is exit 3 with apt\'s words', async () => {
    const apt = fakeApt({ ageMs: HOUR, before: { x: ['1'] }, installOk: (updated) => updated });
    await installPackages(['x'], apt, silentLogger, new ListsRefresher(apt, silentLogger, true));
    expect(apt.calls.filter((c) => c.startsWith('install'))).toHaveLength(2);
    const never = fakeApt({ ageMs: HOUR, before: { x: ['1'] }, installOk: false });
    const err = await installPackages(['x'], never, silentLogger, new ListsRefresher(never, silentLogger, true)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HarnessError);
    expect((err as HarnessError).exitCode).toBe(3);
    expect((err as HarnessError).excerpt).toContain('Unable to locate package');
  });

  it('without the right to refresh (not root, or KERNEL_REPRO_APT_UPDATE=0), nothing is refreshed', async () => {
    const apt = fakeApt({ ageMs: null, before: { x: ['1'] } });
    await installPackages(['x'], apt, silentLogger, new ListsRefresher(apt, silentLogger, false));
    expect(apt.calls).not.toContain('update');
  });
});

describe('pinned Debian sources', () => {
  const cacheDir = fileTempDir('kr-pin-cache-');
  const PKG = 'linux-source-0.0'; // not installed anywhere: /usr/src/linux-source-0.0.tar.xz does not exist

  /** A real .deb holding ./usr/src/<pkg>.tar.xz, as Debian's linux-source packages do. */
  function makeDeb(pkg: string, version: string, dir: string): string {
    const root = fs.mkdtempSync(path.join(cacheDir, 'debroot-'));
    fs.mkdirSync(path.join(root, 'DEBIAN'));
    fs.writeFileSync(path.join(root, 'DEBIAN/control'), `Package: ${pkg}\nVersion: ${version}\nArchitecture: all\nMaintainer: test <t@example.invalid>\nDescription: test\n`);
    fs.mkdirSync(path.join(root, 'usr/src'), { recursive: true });
    fs.writeFileSync(path.join(root, `usr/src/${pkg}.tar.xz`), `tarball of ${pkg} ${version}\n`);
    const deb = path.join(dir, `${pkg}_${version}_all.deb`);
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', root, deb], { stdio: 'ignore' });
    fs.rmSync(root, { recursive: true, force: true });
    return deb;
  }

  it('an unpinned source that is not installed is a missing prerequisite that suggests pinning', async () => {
    const apt = fakeApt({ ageMs: HOUR, before: {} });
    const err = await resolveDebianSource({ pkg: PKG, cacheDir, file: 'k.yaml', log: silentLogger, apt }).catch((e: unknown) => e);
    expect((err as HarnessError).exitCode).toBe(3);
    expect((err as HarnessError).field).toBe('source.package');
    expect((err as HarnessError).hint).toMatch(/source\.version/);
  });

  it('a pinned version is fetched into the cache (not installed), once; it is that exact version', async () => {
    const apt = fakeApt({ ageMs: HOUR, before: { [PKG]: ['0.0.2-1', '0.0.1-1'] }, debFor: (p, v, dir) => makeDeb(p, v, dir) });
    const log = logger();
    const a = await resolveDebianSource({ pkg: PKG, version: '0.0.1-1', cacheDir, file: 'k.yaml', log, apt });
    expect(a).toMatchObject({ version: '0.0.1-1', pinned: true, from: 'cache' });
    expect(a.tarball.startsWith(path.join(cacheDir, 'downloads'))).toBe(true);
    expect(fs.readFileSync(a.tarball, 'utf8')).toBe(`tarball of ${PKG} 0.0.1-1\n`);
    expect(apt.calls).toContain(`download ${PKG}=0.0.1-1`);
    expect(apt.calls.some((c) => c.startsWith('install'))).toBe(false);
    expect(log.lines.join('\n')).toMatch(/fetching linux-source-0\.0 0\.0\.1-1 into the cache/);
    // no .deb is kept, and no staging directory is left
    expect(fs.readdirSync(path.dirname(a.tarball))).toEqual(expect.arrayContaining([`${PKG}.tar.xz`, 'manifest.json']));
    expect(fs.readdirSync(path.join(cacheDir, 'downloads')).filter((d) => d.startsWith('.staging'))).toEqual([]);
    // again: from the cache, no download
    const calls = apt.calls.length;
    const b = await resolveDebianSource({ pkg: PKG, version: '0.0.1-1', cacheDir, file: 'k.yaml', log: silentLogger, apt });
    expect(b.tarball).toBe(a.tarball);
    expect(apt.calls.slice(calls)).toEqual([]);
  });

  it('a version the archive no longer serves: refresh, then exit 3 listing what it serves and the one-line change', async () => {
    const apt = fakeApt({ ageMs: HOUR, before: { [PKG]: ['0.0.2-1'] }, after: { [PKG]: ['0.0.3-1', '0.0.2-1'] } });
    const err = await resolveDebianSource({ pkg: PKG, version: '0.0.0-9', cacheDir, file: '/k/mine.yaml', log: silentLogger, apt }).catch((e: unknown) => e);
    expect(apt.calls).toContain('update'); // "not found" refreshes even fresh-looking lists
    expect(err).toBeInstanceOf(HarnessError);
    const e = err as HarnessError;
    expect(e.exitCode).toBe(3);
    expect(e.file).toBe('/k/mine.yaml');
    expect(e.field).toBe('source.version');
    expect(e.message).toBe('the package archive no longer serves linux-source-0.0 0.0.0-9; it serves 0.0.3-1, 0.0.2-1');
    expect(e.hint).toContain('source: { type: debian-source, package: linux-source-0.0, version: "0.0.3-1" }');
    expect(apt.calls.some((c) => c.startsWith('download'))).toBe(false);
  });

  it('a failed download leaves nothing in the cache', async () => {
    const apt = fakeApt({ ageMs: HOUR, before: { [PKG]: ['0.0.5-1'] }, debFor: () => null });
    const err = await resolveDebianSource({ pkg: PKG, version: '0.0.5-1', cacheDir, file: 'k.yaml', log: silentLogger, apt }).catch((e: unknown) => e);
    expect((err as HarnessError).exitCode).toBe(3);
    expect(fs.readdirSync(path.join(cacheDir, 'downloads')).filter((d) => d.startsWith('.staging'))).toEqual([]);
  });

  it('the schema takes a version for debian-source and debian-image, and refuses what is not a Debian version', () => {
    const def = (source: string): unknown => parseData(`name: k\nsource: ${source}\n`, 'k.yaml', kernelSchema);
    expect(def('{ type: debian-source, package: linux-source-6.1, version: "6.1.192-1" }')).toMatchObject({ source: { version: '6.1.192-1' } });
    expect(def('{ type: debian-image, package: linux-image-cloud-amd64, version: "6.1.192-1" }')).toMatchObject({ source: { version: '6.1.192-1' } });
    expect(def('{ type: debian-source, package: linux-source-6.1 }')).toMatchObject({ source: { type: 'debian-source' } });
    for (const bad of ['"6.1; rm -rf /"', '"../../etc"', '""', '"x".repeat', `"${'1'.repeat(100)}"`]) {
      const e = (() => {
        try {
          def(`{ type: debian-source, package: linux-source-6.1, version: ${bad} }`);
          return null;
        } catch (err) {
          return err as HarnessError;
        }
      })();
      expect(e, bad).toBeInstanceOf(HarnessError);
      expect(e!.file).toBe('k.yaml');
    }
    expect(concreteImage('linux-image-6.1.0-41-cloud-amd64 (= 6.1.192-1)')).toEqual({ pkg: 'linux-image-6.1.0-41-cloud-amd64', version: '6.1.192-1' });
    expect(concreteImage('linux-image-6.1.0-41-cloud-amd64')).toEqual({ pkg: 'linux-image-6.1.0-41-cloud-amd64' });
    expect(concreteImage('')).toBeNull();
  });
});

const info = (o: Partial<KernelInfo> = {}): KernelInfo => ({
  release: '6.1.192',
  configHash: 'a'.repeat(64),
  key: 'k'.repeat(64),
  source: 'linux-source-6.1 6.1.192-1',
  sourceVersion: '6.1.192-1',
  pinned: false,
  patches: ['reverse patches/0001-fix.patch'],
  ...o,
});

describe('kernel identity in reports', () => {
  it('names the source with its version, pinned or not, the patches, release and config', () => {
    expect(describeKernel(kernelEntry('6.1-vanilla', info()))).toBe(
      'linux-source-6.1 6.1.192-1 (installed, not pinned), -R 0001-fix.patch, release 6.1.192, config aaaaaaaaaaaa',
    );
    expect(describeKernel(kernelEntry('p', info({ pinned: true, patches: [] })))).toBe('linux-source-6.1 6.1.192-1 (pinned), release 6.1.192, config aaaaaaaaaaaa');
    const { sourceVersion: _v, pinned: _p, ...git } = info({ source: 'linux@0123456789ab' });
    expect(kernelEntry('g', git).pinned).toBeNull();
    expect(renderKernels([kernelEntry('6.1-vanilla', info()), kernelEntry('6.1-fixed', info({ patches: [] }))])).toBe(
      [
        'kernels:',
        '  6.1-vanilla  linux-source-6.1 6.1.192-1 (installed, not pinned), -R 0001-fix.patch, release 6.1.192, config aaaaaaaaaaaa',
        '  6.1-fixed    linux-source-6.1 6.1.192-1 (installed, not pinned), release 6.1.192, config aaaaaaaaaaaa',
      ].join('\n'),
    );
  });

  it('an identity change says what changed; the same kernel has none', () => {
    expect(identityChange(info(), info({ key: 'other', release: 'other' }))).toBeNull(); // the key follows the inputs; the release is the guest's word
    expect(identityChange(info({ source: 'linux-source-6.1 6.1.176-1', sourceVersion: '6.1.176-1' }), info())).toBe(
      'source linux-source-6.1 6.1.176-1 -> linux-source-6.1 6.1.192-1',
    );
    expect(identityChange(info(), info({ configHash: 'b'.repeat(64), patches: [] }))).toBe(
      'patches [-R 0001-fix.patch] -> []; config aaaaaaaaaaaa -> bbbbbbbbbbbb',
    );
  });
});

describe('matrix baselines: kernel changed vs behaviour changed', () => {
  const cell = (id: string, verdict: CellOutcome['verdict'], ki?: KernelInfo): CellOutcome => ({
    id,
    kernel: id.split('|')[0]!,
    case: 'c',
    variant: 'v',
    verdict,
    ...(ki ? { run: { kernelInfo: ki } } : {}),
  });
  const old = info({ source: 'linux-source-6.1 6.1.176-1', sourceVersion: '6.1.176-1' });

  it('a verdict change on the same kernel is behaviour; on an updated kernel it says the kernel changed', () => {
    const before = [cell('k1|c|v', 'reproduced', info()), cell('k2|c|v', 'reproduced', old)];
    const after = [cell('k1|c|v', 'not-reproduced', info()), cell('k2|c|v', 'not-reproduced', info())];
    expect(compareBaseline(before, after)).toEqual([
      { id: 'k1|c|v', before: 'reproduced', after: 'not-reproduced' },
      { id: 'k2|c|v', before: 'reproduced', after: 'not-reproduced', kernelChanged: 'source linux-source-6.1 6.1.176-1 -> linux-source-6.1 6.1.192-1' },
    ]);
  });

  it('a kernel that changed is reported even when no verdict moved, once per kernel, with its cells', () => {
    const before = [cell('k1|c|a', 'reproduced', old), cell('k1|c|b', 'not-reproduced', old), cell('k2|c|a', 'reproduced', info())];
    const after = [cell('k1|c|a', 'reproduced', info()), cell('k1|c|b', 'reproduced', info()), cell('k2|c|a', 'reproduced', info())];
    expect(compareKernels(before, after)).toEqual([
      { kernel: 'k1', change: 'source linux-source-6.1 6.1.176-1 -> linux-source-6.1 6.1.192-1', cells: ['k1|c|a', 'k1|c|b'], verdictChanges: 1 },
    ]);
    // results without kernel identity (older files) compare on verdicts only
    expect(compareKernels([cell('k1|c|a', 'reproduced')], [cell('k1|c|a', 'reproduced', info())])).toEqual([]);
  });
});
