// Defect 10: with --no-install the guest packages are never fetched with apt (no apt-get update, no
// apt-get download): a layer that is not in the cache is a missing-prereq error (exit 3) with the
// exact command that fetches it.
import { describe, expect, it } from 'vitest';
import type { AptOps } from '../../harness/host/apt.ts';
import { ensurePackageLayer, rerunWithInstall } from '../../harness/images/packages.ts';
import { ExitCode, formatError, HarnessError } from '../../harness/util/errors.ts';
import { silentLogger } from '../../harness/util/log.ts';
import { testTempDir } from '../tmp.ts';

/** An apt whose lists are a month old, serving every package at version 1.0-1, and that records what it is asked. */
function recordingApt(): AptOps & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    listsAgeMs: () => 30 * 24 * 3600_000,
    listsStamp: () => 'lists',
    async update() {
      calls.push('apt-get update');
      return { ok: true, output: '' };
    },
    async served() {
      return ['1.0-1'];
    },
    async candidate() {
      return '1.0-1';
    },
    async installed() {
      return null;
    },
    async install(specs) {
      calls.push(`apt-get install ${specs.join(' ')}`);
      return { ok: false, output: '' };
    },
    async download(pkg, version) {
      calls.push(`apt-get download ${pkg}=${version}`);
      return { deb: null, output: 'E: no network here' };
    },
  };
}

describe('defect 10: --no-install runs no apt-get for guest packages', () => {
  const layer = (install: boolean | undefined, apt: AptOps) =>
    ensurePackageLayer({ packages: ['kr-test-no-such-pkg'], cacheDir: testTempDir('kr-noinst-'), log: silentLogger, baseLibs: [], file: 'cases/x.yaml', apt, ...(install === undefined ? {} : { install }) });

  it('a layer not in the cache: missing-prereq (exit 3) naming the packages and the command, and apt-get never ran', async () => {
    const apt = recordingApt();
    const err = await layer(false, apt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HarnessError);
    const h = err as HarnessError;
    expect([h.kind, h.exitCode, h.file, h.field]).toEqual(['missing-prereq', ExitCode.missingPrereq, 'cases/x.yaml', 'packages']);
    expect(h.message).toBe('the guest packages kr-test-no-such-pkg 1.0-1 are not in the cache, and --no-install runs no apt-get to fetch them');
    expect(h.hint).toMatch(/^run once without --no-install, which fetches them into the cache with apt-get download \(nothing is installed on this machine\): {2}kernel-repro\b/);
    expect(h.hint).not.toContain('--no-install ');
    expect(apt.calls).toEqual([]);
    expect(formatError(h)).toMatch(/^error \(missing-prereq\): cases\/x\.yaml: packages: the guest packages/);
  });

  it('without --no-install the same layer is fetched with apt-get download (here: failing), so the test above can tell', async () => {
    const apt = recordingApt();
    await expect(layer(undefined, apt)).rejects.toMatchObject({ kind: 'missing-prereq', message: 'apt-get download kr-test-no-such-pkg=1.0-1 failed' });
    expect(apt.calls).toContain('apt-get download kr-test-no-such-pkg=1.0-1');
  });

  it('the command to run instead is this run\'s, without --no-install, quoted for a shell', () => {
    expect(rerunWithInstall(['node', 'main.ts', 'repro', '--case', 'rp-filter-mesos', '--no-install', '-k', '6.1-fixed'])).toBe('kernel-repro repro --case rp-filter-mesos -k 6.1-fixed');
    expect(rerunWithInstall(['node', 'main.ts', 'verify', '--patch', "my fix's.patch", '--no-install'])).toBe(`kernel-repro verify --patch 'my fix'\\''s.patch'`);
  });
});
