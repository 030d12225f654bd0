// Kernel identity end to end, against the real package archive, whatever versions it serves today:
// a definition pinned to the installed linux-source version names it as pinned (and reuses the
// built kernel); a pinned version the archive does not serve stops with exit 3, listing what it
// serves; another served version is fetched into the cache as that exact version, with nothing
// installed on the host. The versions are read from apt and dpkg at test time, never written here.
// A package of another suite (trixie's linux-source-6.12) comes through a private apt in the cache,
// the host's apt configuration and lists untouched.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseMadison, systemApt } from '../../harness/host/apt.ts';
import { suiteDir } from '../../harness/host/aptSuite.ts';
import { readResolved, resolveDebianSource, resolvedRecord } from '../../harness/kernels/debsource.ts';
import { makeLogger } from '../../harness/util/log.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const PKG = 'linux-source-6.1';
const dir = fileTempDir('kr-identity-');
const installed = (): string => execFileSync('dpkg-query', ['-W', '-f=${Version}', PKG]).toString().trim();
const served = (): string[] => parseMadison(execFileSync('apt-cache', ['madison', PKG]).toString(), PKG);

function definition(name: string, version: string): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    [
      `name: ${name}`,
      `source: { type: debian-source, package: ${PKG}, version: "${version}" }`,
      'config:',
      '  base: tinyconfig',
      `  fragments: [${path.join(repoRoot, 'kernels/config/base.config')}]`,
      '',
    ].join('\n'),
  );
  return file;
}

interface Summary {
  kernels: Array<{ name: string; source: string; sourceVersion: string; pinned: boolean }>;
  runs: Array<{ verdict: string; kernelInfo: { sourceVersion: string; pinned: boolean; key: string } }>;
}

describe('pinned kernel sources', () => {
  it('pinned to the installed version: named as pinned everywhere, and the same kernel as the unpinned definition', async () => {
    const version = installed();
    const r = await cli(['repro', '--kernel', definition('pinned-here', version), '--kernel', '6.1-fixed', '--case', 'rp-filter-selftest', '--json', '--results', path.join(dir, 'here')]);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.kernels.map((k) => [k.name, k.sourceVersion, k.pinned])).toEqual([
      ['pinned-here', version, true],
      ['6.1-fixed', version, false],
    ]);
    expect(s.runs.map((x) => x.verdict)).toEqual(['not-reproduced', 'not-reproduced']);
    expect(s.runs[0]!.kernelInfo.key).toBe(s.runs[1]!.kernelInfo.key); // same source, same config: one kernel
    expect(r.stderr).toMatch(/kernel pinned-here: linux-source-6\.1 \S+ \(pinned\).*\(cached\)/);
    // the table's header names the versions; so does report.txt
    expect(r.stderr).toContain(`pinned-here  linux-source-6.1 ${version} (pinned)`);
    expect(r.stderr).toContain(`6.1-fixed    linux-source-6.1 ${version} (installed, not pinned)`);
    expect(fs.readFileSync(path.join(dir, 'here', 'report.txt'), 'utf8')).toContain(`linux-source-6.1 ${version} (pinned)`);
  });

  it('a pinned version the archive does not serve: exit 3, the versions it serves, the one-line change', async () => {
    const file = definition('pinned-gone', '6.1.0-0');
    const r = await cli(['repro', '--kernel', file, '--case', 'rp-filter-selftest', '--results', path.join(dir, 'gone')]);
    expect(r.exitCode).toBe(3);
    const now = served(); // after the harness's own refresh, if it made one
    expect(now.length).toBeGreaterThan(0);
    expect(r.stderr).toContain(`error (missing-prereq): ${file}: source.version: the package archive no longer serves ${PKG} 6.1.0-0; it serves ${now.join(', ')}`);
    expect(r.stderr).toContain(`hint: pin a version it serves: change the definition's source line to  source: { type: debian-source, package: ${PKG}, version: "${now[0]}" }`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('another served version is fetched into the cache as exactly that version; nothing is installed', async (ctx) => {
    const here = installed();
    const other = served().find((v) => v !== here);
    if (!other) {
      ctx.skip(); // the archive serves only the installed version today: nothing else to fetch
      return;
    }
    const cacheDir = path.join(dir, 'cache');
    const src = await resolveDebianSource({ pkg: PKG, version: other, cacheDir, file: 'pinned-other.yaml', log: makeLogger(), apt: systemApt() });
    expect(src).toMatchObject({ version: other, pinned: true, from: 'cache' });
    expect(src.tarball.startsWith(cacheDir)).toBe(true);
    // the tarball is that version's kernel: its Makefile's VERSION.PATCHLEVEL.SUBLEVEL is the Debian version's upstream part
    const makefile = execFileSync('tar', ['-xJOf', src.tarball, `${PKG}/Makefile`], { maxBuffer: 16 * 1024 * 1024 }).toString();
    const field = (f: string): string => new RegExp(`^${f} = (\\d+)`, 'm').exec(makefile)?.[1] ?? '?';
    expect(`${field('VERSION')}.${field('PATCHLEVEL')}.${field('SUBLEVEL')}`).toBe(other.replace(/-[^-]*$/, '').replace(/^\d+:/, ''));
    expect(installed()).toBe(here);
  }, 15 * 60_000);
});

/** Every file under a directory with its size and mtime (what a run must leave as it was). */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(d);
    } catch {
      return; // unreadable (e.g. lists/partial as another user): not ours to compare
    }
    for (const n of names.sort()) {
      const f = path.join(d, n);
      const st = fs.lstatSync(f);
      if (st.isDirectory()) walk(f);
      else out.push(`${f} ${st.size} ${st.mtimeMs}`);
    }
  };
  walk(root);
  return out;
}

describe('a kernel source package from another Debian suite', () => {
  it("trixie's linux-source-6.12: its private lists, its candidate fetched as that exact version; /etc/apt and the host's lists untouched", async () => {
    const before = [...snapshot('/etc/apt'), ...snapshot('/var/lib/apt/lists')];
    const cacheDir = path.join(dir, 'suite-cache');
    const pkg = 'linux-source-6.12';
    const src = await resolveDebianSource({ pkg, suite: 'trixie', cacheDir, file: 'lib-6.12.yaml', log: makeLogger(), install: true });
    expect(src).toMatchObject({ pinned: false, from: 'cache' });
    expect(src.version).toMatch(/^6\.12\.\d+-/);
    const makefile = execFileSync('tar', ['-xJOf', src.tarball, `${pkg}/Makefile`], { maxBuffer: 16 * 1024 * 1024 }).toString();
    const field = (f: string): string => new RegExp(`^${f} = (\\d+)`, 'm').exec(makefile)?.[1] ?? '?';
    expect(`${field('VERSION')}.${field('PATCHLEVEL')}.${field('SUBLEVEL')}`).toBe(src.version.replace(/-[^-]*$/, ''));
    // apt's files are the suite's, in the cache
    const lists = fs.readdirSync(path.join(suiteDir(cacheDir, 'trixie'), 'lists'));
    expect(lists.some((f) => /dists_trixie_InRelease$/.test(f))).toBe(true);
    expect(readResolved(resolvedRecord(cacheDir, 'trixie', pkg))?.version).toBe(src.version);
    // the host: nothing changed, nothing installed, its apt still knows no trixie
    expect([...snapshot('/etc/apt'), ...snapshot('/var/lib/apt/lists')]).toEqual(before);
    expect(spawnSync('dpkg-query', ['-W', '-f=${db:Status-Status}', pkg]).stdout.toString()).not.toBe('installed');
    expect(fs.existsSync(`/usr/src/${pkg}.tar.xz`)).toBe(false);
    expect(execFileSync('apt-cache', ['policy', pkg]).toString()).not.toContain('trixie');
    // --no-install: the same version from the cache, no apt
    const again = await resolveDebianSource({ pkg, suite: 'trixie', cacheDir, file: 'lib-6.12.yaml', log: makeLogger(), install: false });
    expect(again).toEqual(src);
  }, 15 * 60_000);
});
