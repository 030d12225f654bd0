// Bring your own kernel, end to end. A kernel tree is extracted and built BY HAND here, outside
// the harness (Debian's linux-source-6.1, tinyconfig + kernels/config/base.config merged with
// make's own merge_config.sh, the fix reverse-applied for the vanilla image, ccache), and the harness
// is given what a kernel developer has: the bzImage (its config read from the image's IKCONFIG, or
// from the .config beside it), a vmlinux, the tree itself with its own .config, and a Debian
// linux-image .deb fetched with apt-get download. Every verdict is read from what the kernels printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCase } from '../../harness/cases/load.ts';
import { missingRequired, parseKconfig } from '../../harness/kernels/kconfig.ts';
import { walkTree } from '../../harness/kernels/source.ts';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const work = fileTempDir('kr-own-');
const src = path.join(work, 'src'); // the hand-built tree (built out of tree into `build`, as many do)
const build = path.join(work, 'build');
const images = path.join(work, 'images');
const patch = path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch');
const DEFAULT_CASES = ['rp-filter-mesos', 'rp-filter-selftest'];

interface Run {
  kernel: string;
  case: string;
  verdict: string;
  signals: Array<{ name: string; fired: boolean; matches: Array<{ text: string }> }>;
  kernelInfo: { release: string; key: string; source: string; configHash: string; caseConfig?: string[] };
  vm: { machine: string };
  files: { console: string };
}
interface Summary {
  runs: Run[];
}

const sha256 = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const timings: string[] = [];

/** make, as a kernel developer runs it by hand: out of tree, with ccache (the harness's ccache dir, so later runs are warm). */
async function make(...targets: string[]): Promise<void> {
  const t0 = Date.now();
  const r = await execa('make', ['-C', src, `O=${build}`, `-j${os.availableParallelism()}`, 'CC=ccache gcc', ...targets], {
    reject: false,
    all: true,
    timeout: 40 * 60_000,
    env: { CCACHE_DIR: path.join(cacheRoot(), 'ccache'), CCACHE_BASEDIR: work, CCACHE_NOHASHDIR: '1' },
  });
  if (r.exitCode !== 0) throw new Error(`make ${targets.join(' ')} failed:\n${String(r.all).slice(-3000)}`);
  timings.push(`by hand: make ${targets.join(' ')}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

async function sh(cmd: string, args: string[], cwd = work): Promise<string> {
  const r = await execa(cmd, args, { cwd, reject: false, all: true, timeout: 20 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${String(r.all).slice(-3000)}`);
  return String(r.stdout);
}

const run = (s: Summary, kernel: string, kcase: string): Run => {
  const r = s.runs.find((x) => x.kernel === kernel && x.case === kcase);
  if (!r) throw new Error(`no run ${kernel} x ${kcase} in ${s.runs.map((x) => `${x.kernel} x ${x.case}`).join(', ')}`);
  return r;
};

beforeAll(async () => {
  const t0 = Date.now();
  fs.mkdirSync(src);
  await sh('tar', ['-xf', '/usr/src/linux-source-6.1.tar.xz', '-C', src, '--strip-components=1']);
  timings.push(`by hand: extract linux-source-6.1: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  // the config: tinyconfig, the harness's base fragment, IKCONFIG, and what the default cases need
  const needs = [...new Set(DEFAULT_CASES.flatMap((c) => loadCase(c).def.kconfig))];
  const frag = path.join(work, 'own.config');
  fs.writeFileSync(frag, ['CONFIG_IKCONFIG=y', ...needs.map((o) => `${o}=y`)].join('\n') + '\n');
  await make('tinyconfig');
  await sh(path.join(src, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', build, path.join(build, '.config'), path.join(repoRoot, 'kernels/config/base.config'), frag], src);
  await make('olddefconfig');
  // vanilla: the fix taken out; its config only inside the image (IKCONFIG), nothing beside it
  await sh('patch', ['-p1', '-R', '--batch', '-d', src, '-i', patch]);
  await make('bzImage');
  fs.mkdirSync(path.join(images, 'vanilla'), { recursive: true });
  fs.copyFileSync(path.join(build, 'arch/x86/boot/bzImage'), path.join(images, 'vanilla/bzImage'));
  fs.copyFileSync(path.join(build, '.config'), path.join(work, 'vanilla.config')); // kept aside for the test's own checks
  // fixed: the fix back in, IKCONFIG off: its config is the .config beside the image
  await sh('patch', ['-p1', '--batch', '-d', src, '-i', patch]);
  await sh(path.join(src, 'scripts/config'), ['--file', path.join(build, '.config'), '-d', 'IKCONFIG']);
  await make('olddefconfig');
  await make('bzImage');
  fs.mkdirSync(path.join(images, 'fixed'), { recursive: true });
  fs.copyFileSync(path.join(build, 'arch/x86/boot/bzImage'), path.join(images, 'fixed/bzImage'));
  fs.copyFileSync(path.join(build, '.config'), path.join(images, 'fixed/.config'));
  fs.mkdirSync(path.join(images, 'fixed-elf'), { recursive: true });
  fs.copyFileSync(path.join(build, 'vmlinux'), path.join(images, 'fixed-elf/vmlinux'));
  fs.copyFileSync(path.join(build, '.config'), path.join(images, 'fixed-elf/.config'));
}, 60 * 60_000);

afterAll(() => {
  console.log(timings.join('\n'));
});

describe('bring your own kernel', () => {
  it('a bzImage built by hand outside the harness runs both default cases: vanilla reproduces (martian drops), the fixed one does not', async () => {
    const vanilla = path.join(images, 'vanilla/bzImage');
    const fixed = path.join(images, 'fixed/bzImage');
    const elf = path.join(images, 'fixed-elf/vmlinux');
    const r = await cli(['repro', '--kernel', vanilla, '--kernel', fixed, '--kernel', elf, '--json', '--no-install']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    timings.push(`repro of 3 prebuilt kernels x 2 cases: ${(r.durationMs / 1000).toFixed(1)}s`);
    expect(r.stderr).not.toMatch(/building |configuring /); // booted as they are
    // where each config came from: the image's own IKCONFIG, the .config beside it
    expect(r.stderr).toContain(`config from the IKCONFIG of ${vanilla}`);
    expect(r.stderr).toContain(`config from ${path.join(images, 'fixed/.config')}`);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.runs).toHaveLength(6);
    const release = fs.readFileSync(path.join(build, 'include/config/kernel.release'), 'utf8').trim();
    for (const c of DEFAULT_CASES) {
      const v = run(s, 'vanilla-bzImage', c);
      const f = run(s, 'fixed-bzImage', c);
      const e = run(s, 'fixed-elf-vmlinux', c);
      expect([v.verdict, f.verdict, e.verdict], c).toEqual(['reproduced', 'not-reproduced', 'not-reproduced']);
      // what the kernel printed: the martian line on vanilla only
      const martian = v.signals.find((x) => x.name === 'martian');
      expect(martian?.fired).toBe(true);
      expect(martian?.matches[0]?.text).toMatch(/martian source (\S+) from \1, on dev lo/);
      expect(fs.readFileSync(v.files.console, 'utf8')).toMatch(/martian source \S+ from \S+, on dev lo/);
      expect(f.signals.find((x) => x.name === 'martian')?.fired).toBe(false);
      // identity: the file's hash; the release the guest reported is the one the hand build made
      expect(v.kernelInfo.source).toContain(`sha256 ${sha256(vanilla).slice(0, 12)}`);
      expect(f.kernelInfo.source).toContain(`sha256 ${sha256(fixed).slice(0, 12)}`);
      for (const x of [v, f, e]) expect(x.kernelInfo.release).toBe(release);
      // a bzImage boots on the pc machine, a vmlinux (PVH) on microvm
      expect(v.vm.machine).toBe('pc');
      expect(e.vm.machine).toBe('microvm');
    }
  });

  it("a prebuilt kernel that lacks a case's option fails before boot, naming the option and the case", async () => {
    const vanilla = path.join(images, 'vanilla/bzImage');
    const nft = loadCase('rp-filter-mesos-nft');
    const missing = missingRequired(parseKconfig(fs.readFileSync(path.join(work, 'vanilla.config'), 'utf8')), nft.def.kconfig);
    expect(missing.length).toBeGreaterThan(0);
    const results = path.join(work, 'results-nft');
    const r = await cli(['repro', '--kernel', vanilla, '--case', 'rp-filter-mesos-nft', '--no-install', '--results', results]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`error (bad-input): ${nft.file}: kconfig: kernel vanilla-bzImage lacks ${missing.join(', ')}, which case rp-filter-mesos-nft needs (its config: the IKCONFIG of ${vanilla})`);
    expect(r.stderr).not.toMatch(/accelerator:|\n\s+at /); // nothing booted, no stack trace
    expect(fs.existsSync(results) ? fs.readdirSync(results, { recursive: true }).map(String).filter((f) => /console\.log$/.test(f)) : []).toEqual([]); // no guest console anywhere
  });

  it('a tree with its own .config builds (out of tree, never writing into it) and runs', async () => {
    // the tree as a developer leaves it: its .config at the top (which makes `make O=` refuse it)
    fs.copyFileSync(path.join(build, '.config'), path.join(src, '.config'));
    const state = (): string[] => walkTree(src).map((e) => `${e.rel} ${e.size} ${e.mtimeMs}`);
    const all = (): string[] => fs.readdirSync(src, { recursive: true }).map(String).sort();
    const before = state();
    const filesBefore = all();
    const r = await cli(['repro', '--kernel', src, '--json', '--no-install']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    const built = /built src \(([^)]+)\) in ([\d.]+)s/.exec(r.stderr);
    expect(built).not.toBeNull();
    timings.push(`the harness building the tree: ${built![2]}s (whole repro: ${(r.durationMs / 1000).toFixed(1)}s)`);
    expect(r.stderr).toContain(`configuring src: ${path.join(src, '.config')}`);
    expect(r.stderr).toContain('make O= refuses such a tree, so it is built from a mirror');
    const s = JSON.parse(r.stdout) as Summary;
    for (const c of DEFAULT_CASES) {
      const x = run(s, 'src', c);
      expect(x.verdict, c).toBe('not-reproduced'); // the tree holds the fix
      expect(x.kernelInfo.source).toBe(src);
      expect(x.kernelInfo.caseConfig).toBeUndefined(); // its own config had every option the cases need
      expect(x.kernelInfo.release).toBe(fs.readFileSync(path.join(build, 'include/config/kernel.release'), 'utf8').trim());
    }
    // never written to: same files, same sizes and times
    expect(state()).toEqual(before);
    expect(all()).toEqual(filesBefore);

    // again: from the cache; after an edit in the tree: a new kernel, rebuilt incrementally
    const again = await cli(['repro', '--kernel', src, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).not.toMatch(/building src/);
    const key1 = run(JSON.parse(again.stdout) as Summary, 'src', 'rp-filter-selftest').kernelInfo.key;
    fs.appendFileSync(path.join(src, 'net/ipv4/fib_frontend.c'), '\n/* edited by hand */\n');
    const edited = await cli(['repro', '--kernel', src, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    if (edited.exitCode !== 0) console.error(edited.stderr.slice(-4000));
    expect(edited.exitCode).toBe(0);
    const rebuilt = /built src \([^)]+\) in ([\d.]+)s, (\d+) build steps/.exec(edited.stderr);
    expect(rebuilt).not.toBeNull();
    timings.push(`the harness rebuilding the tree after a one-file edit: ${rebuilt![1]}s, ${rebuilt![2]} steps`);
    const key2 = run(JSON.parse(edited.stdout) as Summary, 'src', 'rp-filter-selftest').kernelInfo.key;
    expect(key2).not.toBe(key1);
  });

  it('a local linux-image .deb (apt-get download) runs', async () => {
    const debs = path.join(work, 'debs');
    fs.mkdirSync(debs);
    // the concrete image package behind Debian's cloud metapackage, as apt resolves it today
    const depends = await sh('apt-cache', ['depends', '--important', 'linux-image-cloud-amd64']);
    const pkg = /Depends: (linux-image-\d\S*)/.exec(depends)?.[1];
    expect(pkg).toBeDefined();
    await sh('apt-get', ['download', pkg!], debs);
    const deb = path.join(debs, fs.readdirSync(debs).find((f) => f.endsWith('.deb'))!);
    const version = (await sh('dpkg-deb', ['-f', deb, 'Version'])).trim();
    const r = await cli(['repro', '--kernel', deb, '--json', '--no-install']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toMatch(/building |apt-get download/);
    const s = JSON.parse(r.stdout) as Summary;
    for (const c of DEFAULT_CASES) {
      const x = run(s, pkg!, c);
      expect(x.verdict, c).toBe('not-reproduced'); // Debian's 6.1 has the fix
      expect(x.kernelInfo.source).toBe(`${pkg} ${version} (local .deb ${path.basename(deb)}, prebuilt)`);
      expect(x.kernelInfo.release).toBe(pkg!.replace(/^linux-image-/, ''));
    }
  });

  it('--modules goes with a kernel image only', async () => {
    const r = await cli(['repro', '--kernel', src, '--modules', work, '--no-install']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('error (bad-input): --modules: --modules goes with a kernel image (bzImage, vmlinux)');
  });
});
