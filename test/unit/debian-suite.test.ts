// A kernel source package from a named Debian suite (issue 21: `source: { type: debian-source,
// package: linux-source-6.12, suite: trixie }`): a private apt in the cache (its own sources list,
// lists and caches; none of /etc/apt), the suite's candidate or a pinned version fetched with
// `apt-get download`, the suite and version in the kernel's identity, no apt at all with
// --no-install, and exit 3 naming the file and field for a suite or package the archive does not serve.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { AptOps } from '../../harness/host/apt.ts';
import { suiteApt, suiteAptConf, suiteDir, suiteSourcesLine } from '../../harness/host/aptSuite.ts';
import { resolveDebianSource, resolvedRecord } from '../../harness/kernels/debsource.ts';
import { debianSource } from '../../harness/kernels/providers/debianSource.ts';
import { kernelSchema } from '../../harness/kernels/schema.ts';
import { describeKernel, kernelEntry } from '../../harness/report/kernels.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';
import { silentLogger, type Logger } from '../../harness/util/log.ts';
import { fileTempDir, testTempDir } from '../tmp.ts';

const HOUR = 3600_000;
const PKG = 'linux-source-0.0'; // installed nowhere
const NO_RELEASE = "E: The repository 'http://deb.debian.org/debian bogus Release' does not have a Release file.";

/** A scripted private apt: lists never fetched (or of the given age), what the suite serves, how updates end, every call. */
function fakeSuiteApt(o: {
  ageMs?: number | null;
  serves: Record<string, string[]>;
  update?: { ok: boolean; output: string };
  debFor?: (pkg: string, version: string, dir: string) => string | null;
}): AptOps & { calls: string[] } {
  let age = o.ageMs ?? null;
  let fetched = age !== null;
  const calls: string[] = [];
  return {
    calls,
    listsAgeMs: () => age,
    listsStamp: () => String(age),
    async update() {
      calls.push('update');
      const r = o.update ?? { ok: true, output: '' };
      if (r.ok) {
        age = 0;
        fetched = true;
      }
      return r;
    },
    async served(pkg) {
      calls.push(`served ${pkg}`);
      return fetched ? (o.serves[pkg] ?? []) : [];
    },
    async candidate(pkg) {
      calls.push(`candidate ${pkg}`);
      return fetched ? (o.serves[pkg]?.[0] ?? null) : null;
    },
    async installed() {
      calls.push('installed');
      return null;
    },
    async install(specs) {
      calls.push(`install ${specs.join(' ')}`);
      return { ok: false, output: '' };
    },
    async download(pkg, version, dir) {
      calls.push(`download ${pkg}=${version}`);
      return { deb: o.debFor?.(pkg, version, dir) ?? null, output: o.debFor ? '' : 'E: Failed to fetch' };
    },
  };
}

function logger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`), progress: () => undefined };
}

/** A real .deb holding ./usr/src/<pkg>.tar.xz, as Debian's linux-source packages do. */
function makeDeb(pkg: string, version: string, dir: string): string {
  const root = fs.mkdtempSync(path.join(dir, '..', 'debroot-'));
  fs.mkdirSync(path.join(root, 'DEBIAN'));
  fs.writeFileSync(path.join(root, 'DEBIAN/control'), `Package: ${pkg}\nVersion: ${version}\nArchitecture: all\nMaintainer: test <t@example.invalid>\nDescription: test\n`);
  fs.mkdirSync(path.join(root, 'usr/src'), { recursive: true });
  fs.writeFileSync(path.join(root, `usr/src/${pkg}.tar.xz`), `tarball of ${pkg} ${version}\n`);
  const deb = path.join(dir, `${pkg}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', root, deb], { stdio: 'ignore' });
  fs.rmSync(root, { recursive: true, force: true });
  return deb;
}

async function failure(p: Promise<unknown>): Promise<HarnessError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HarnessError);
  return e as HarnessError;
}

describe('the private apt of a suite', () => {
  it('one sources line on the Debian archive, signed by the archive keyring; -security suites from debian-security', () => {
    expect(suiteSourcesLine('trixie')).toBe('deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n');
    expect(suiteSourcesLine('trixie-security')).toBe('deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main\n');
    expect(suiteSourcesLine('bookworm-backports')).toContain('http://deb.debian.org/debian bookworm-backports main');
    for (const bad of ['', 'trixie main', 'trixie\ndeb http://x y z', '../x', 'Trixie']) expect(() => suiteSourcesLine(bad), bad).toThrow();
  });

  it('its apt.conf reads nothing of /etc/apt and writes only inside its own directory', () => {
    const dir = '/c/apt/trixie';
    const conf = suiteAptConf(dir);
    expect(conf).toContain('Dir::Etc::main "/dev/null";');
    expect(conf).toContain('Dir::Etc::parts "/c/apt/trixie/apt.conf.d";');
    expect(conf).toContain('Dir::Etc::sourcelist "/c/apt/trixie/sources.list";');
    expect(conf).toContain('Dir::Etc::sourceparts "-";');
    expect(conf).toContain('Dir::Etc::preferencesparts "-";');
    expect(conf).toContain('Dir::State::Lists "/c/apt/trixie/lists";');
    expect(conf).toContain('Dir::State::status "/c/apt/trixie/status";');
    expect(conf).toContain('Dir::Cache "/c/apt/trixie/cache";');
    expect(conf).not.toMatch(/\/etc\/apt|\/var\/lib\/apt|\/var\/cache\/apt/);
  });

  it('apt itself sees the private configuration (apt-config, no network): none of the host sources, parts or hooks', () => {
    const cache = testTempDir('kr-suite-conf-');
    suiteApt(cache, 'trixie');
    const dir = suiteDir(cache, 'trixie');
    expect(fs.readFileSync(path.join(dir, 'sources.list'), 'utf8')).toBe(suiteSourcesLine('trixie'));
    const dump = execFileSync('apt-config', ['dump'], { env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf') }, encoding: 'utf8' });
    expect(dump).toContain(`Dir::Etc::sourcelist "${path.join(dir, 'sources.list')}";`);
    expect(dump).toContain(`Dir::State::lists "${path.join(dir, 'lists')}";`);
    expect(dump).toContain(`Dir::Etc::parts "${path.join(dir, 'apt.conf.d')}";`);
    // the host's apt.conf.d hooks (docker-clean, packagekit...) are not read, so never run
    expect(dump).not.toMatch(/Post-Invoke/);
  });
});

describe('debian-source with a suite', () => {
  const cacheDir = fileTempDir('kr-suite-cache-');

  it('the schema takes a suite name, and refuses anything else naming source.suite', () => {
    const def = (source: string): unknown => parseData(`name: k\nsource: ${source}\n`, 'k.yaml', kernelSchema);
    expect(def('{ type: debian-source, package: linux-source-6.12, suite: trixie }')).toMatchObject({ source: { suite: 'trixie' } });
    expect(def('{ type: debian-source, package: linux-source-6.12, suite: trixie, version: "6.12.117-1" }')).toMatchObject({ source: { suite: 'trixie', version: '6.12.117-1' } });
    for (const bad of ['"trixie main"', '"trixie; rm -rf /"', '"../x"', '""', '"http://x/"']) {
      let e: unknown = null;
      try {
        def(`{ type: debian-source, package: linux-source-6.12, suite: ${bad} }`);
      } catch (err) {
        e = err;
      }
      expect(e, bad).toBeInstanceOf(HarnessError);
      expect((e as HarnessError).file).toBe('k.yaml');
      expect((e as HarnessError).message + String((e as HarnessError).field)).toMatch(/source\.suite|suite/);
    }
  });

  it('the suite is fetched from, never the host: a source with a suite needs no host package', () => {
    expect(debianSource.hostPackages({ type: 'debian-source', package: 'linux-source-6.12', suite: 'trixie' })).toEqual([]);
    expect(debianSource.hostPackages({ type: 'debian-source', package: 'linux-source-6.1' })).toEqual([{ file: '/usr/src/linux-source-6.1.tar.xz', pkg: 'linux-source-6.1' }]);
  });

  it("unpinned: lists fetched the first time, the suite's candidate downloaded into the cache and recorded; then cached, no apt", async () => {
    const apt = fakeSuiteApt({ serves: { [PKG]: ['0.0.7-1', '0.0.6-1'] }, debFor: makeDeb });
    const log = logger();
    const a = await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir, file: 'k.yaml', log, apt });
    expect(a).toMatchObject({ version: '0.0.7-1', pinned: false, from: 'cache' });
    expect(fs.readFileSync(a.tarball, 'utf8')).toBe(`tarball of ${PKG} 0.0.7-1\n`);
    expect(apt.calls).toEqual(['update', `candidate ${PKG}`, `served ${PKG}`, `download ${PKG}=0.0.7-1`]);
    expect(log.lines.join('\n')).toMatch(/refreshing the trixie package lists .*never fetched/);
    expect(log.lines.join('\n')).toMatch(/fetching linux-source-0\.0 0\.0\.7-1 from trixie into the cache/);
    expect(JSON.parse(fs.readFileSync(resolvedRecord(cacheDir, 'trixie', PKG), 'utf8'))).toMatchObject({ version: '0.0.7-1' });
    // fresh lists: the candidate is asked again (cheap, local), nothing is updated or downloaded
    const calls = apt.calls.length;
    const b = await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir, file: 'k.yaml', log: silentLogger, apt });
    expect(b.tarball).toBe(a.tarball);
    expect(apt.calls.slice(calls)).toEqual([`candidate ${PKG}`]);
  });

  it('stale lists are refreshed before the candidate is asked', async () => {
    const apt = fakeSuiteApt({ ageMs: 48 * HOUR, serves: { [PKG]: ['0.0.7-1'] }, debFor: makeDeb });
    await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir, file: 'k.yaml', log: silentLogger, apt });
    expect(apt.calls[0]).toBe('update');
  });

  it('--no-install: no apt at all; the last resolution from the cache, or exit 3 with the command', async () => {
    const cache = testTempDir('kr-suite-noinst-');
    const argv = ['node', 'main.ts', 'repro', '--kernel', 'k.yaml', '--no-install'];
    const apt = fakeSuiteApt({ ageMs: HOUR, serves: { [PKG]: ['0.0.7-1'] }, debFor: makeDeb });
    const never = await failure(resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir: cache, file: '/k/mine.yaml', log: silentLogger, apt, install: false, argv }));
    expect(never.exitCode).toBe(3);
    expect(never.file).toBe('/k/mine.yaml');
    expect(never.field).toBe('source.suite');
    expect(never.hint).toMatch(/:  kernel-repro repro --kernel k\.yaml$/); // the same command without --no-install
    const pinned = await failure(resolveDebianSource({ pkg: PKG, suite: 'trixie', version: '0.0.7-1', cacheDir: cache, file: 'k.yaml', log: silentLogger, apt, install: false, argv }));
    expect([pinned.exitCode, pinned.field]).toEqual([3, 'source.version']);
    expect(apt.calls).toEqual([]);
    // fetched once with apt; then --no-install takes the recorded version from the cache without apt
    const a = await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir: cache, file: 'k.yaml', log: silentLogger, apt });
    const calls = apt.calls.length;
    const log = logger();
    const b = await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir: cache, file: 'k.yaml', log, apt, install: false, argv });
    expect(b).toMatchObject({ tarball: a.tarball, version: '0.0.7-1' });
    expect(apt.calls.slice(calls)).toEqual([]);
    expect(log.lines.join('\n')).toMatch(/0\.0\.7-1, the trixie candidate when last resolved .*not refreshed/);
  });

  it('a suite the archive does not serve: exit 3 naming the file and source.suite, with apt\'s words', async () => {
    const apt = fakeSuiteApt({ serves: {}, update: { ok: false, output: NO_RELEASE } });
    const e = await failure(resolveDebianSource({ pkg: PKG, suite: 'bogus', cacheDir, file: '/k/mine.yaml', log: silentLogger, apt }));
    expect(e.exitCode).toBe(3);
    expect(e.file).toBe('/k/mine.yaml');
    expect(e.field).toBe('source.suite');
    expect(e.message).toContain('does not serve the suite "bogus"');
    expect(e.excerpt).toContain('does not have a Release file');
    expect(apt.calls).toEqual(['update']);
  });

  it('an archive out of reach: exit 3 on source.suite when there are no lists; a warning when old lists are there', async () => {
    const down = { ok: false, output: "W: Failed to fetch http://deb.debian.org/debian/dists/trixie/InRelease  Could not resolve 'deb.debian.org'" };
    const none = fakeSuiteApt({ serves: { [PKG]: ['0.0.7-1'] }, update: down });
    const e = await failure(resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir: testTempDir('kr-suite-down-'), file: 'k.yaml', log: silentLogger, apt: none }));
    expect([e.exitCode, e.field]).toEqual([3, 'source.suite']);
    expect(e.hint).toContain('APT_CONFIG=');
    const old = fakeSuiteApt({ ageMs: 72 * HOUR, serves: { [PKG]: ['0.0.7-1'] }, update: down, debFor: makeDeb });
    const log = logger();
    const r = await resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir: testTempDir('kr-suite-old-'), file: 'k.yaml', log, apt: old });
    expect(r.version).toBe('0.0.7-1');
    expect(log.lines.join('\n')).toMatch(/warning: apt-get update of the trixie lists failed; using the lists fetched 72 h ago/);
  });

  it('a package the suite does not serve: refresh once, then exit 3 naming source.package', async () => {
    const apt = fakeSuiteApt({ ageMs: HOUR, serves: {} });
    const e = await failure(resolveDebianSource({ pkg: PKG, suite: 'trixie', cacheDir, file: 'k.yaml', log: silentLogger, apt }));
    expect([e.exitCode, e.file, e.field]).toEqual([3, 'k.yaml', 'source.package']);
    expect(e.message).toBe(`the trixie suite serves no ${PKG}`);
    expect(apt.calls.filter((c) => c === 'update')).toHaveLength(1);
  });

  it('a pinned version the suite does not serve: exit 3 on source.version, the suggested line keeps the suite', async () => {
    const apt = fakeSuiteApt({ ageMs: HOUR, serves: { [PKG]: ['0.0.7-1'] } });
    const e = await failure(resolveDebianSource({ pkg: PKG, suite: 'trixie', version: '0.0.1-1', cacheDir, file: 'k.yaml', log: silentLogger, apt }));
    expect([e.exitCode, e.field]).toEqual([3, 'source.version']);
    expect(e.hint).toContain('source: { type: debian-source, package: linux-source-0.0, suite: trixie, version: "0.0.7-1" }');
    expect(apt.calls.some((c) => c.startsWith('download'))).toBe(false);
  });

  it('reports name the suite and the exact version; the suite\'s candidate is not called installed', () => {
    const ki = { release: '6.12.57', configHash: 'a'.repeat(64), key: 'k', source: 'linux-source-6.12 6.12.117-1 (trixie)', sourceVersion: '6.12.117-1', pinned: false, origin: 'trixie', patches: [] };
    expect(describeKernel(kernelEntry('lib-6.12-shipped', ki))).toBe(
      "linux-source-6.12 6.12.117-1 (trixie) (the suite's candidate, not pinned), release 6.12.57, config aaaaaaaaaaaa",
    );
    expect(describeKernel(kernelEntry('p', { ...ki, pinned: true }))).toMatch(/\(trixie\) \(pinned\)/);
    const { origin: _o, ...host } = ki;
    expect(describeKernel(kernelEntry('h', { ...host, source: 'linux-source-6.1 6.1.192-1' }))).toMatch(/\(installed, not pinned\)/);
  });
});
