// End to end: the default matrix (2 kernels x 2 cases x rp_filter 0/1/2 + Mesos defaults) in
// parallel guests; the flips; JUnit (valid against the Jenkins xunit schema); KTAP read by the
// kernel's own kunit.py; the HTML report in a real headless Chromium; baselines; the nightly's
// steps (.ci/nightly.mjs) over a two-shard matrix.
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const out = fileTempDir('kr-matrix-');
interface Cell { kernel: string; case: string; variant: string; verdict: string; expected?: string; unexpected: boolean; signals: Record<string, { fired: boolean; count: number; evidence: string[] }> }
let json: { cells: Cell[]; flips: Array<{ case: string; variant: string; verdicts: Record<string, string> }>; unexpected: number };

beforeAll(async () => {
  const r = await cli(['matrix', '--json', '--results', out]);
  if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
  expect(r.exitCode).toBe(0);
  json = JSON.parse(r.stdout) as typeof json;
}, 45 * 60_000);

describe('npm run matrix (default matrix)', () => {
  it('rp_filter=1 reproduces on vanilla only; 0, 2 and the Mesos defaults nowhere', () => {
    expect(json.cells).toHaveLength(14);
    for (const c of json.cells) {
      const want = c.variant === 'all.rp_filter=1' && c.kernel === '6.1-vanilla' ? 'reproduced' : 'not-reproduced';
      expect(`${c.kernel} ${c.case} ${c.variant} ${c.verdict}`).toBe(`${c.kernel} ${c.case} ${c.variant} ${want}`);
    }
    expect(json.unexpected).toBe(0);
    const mesosV1 = json.cells.find((c) => c.kernel === '6.1-vanilla' && c.case === 'rp-filter-mesos' && c.variant === 'all.rp_filter=1')!;
    expect(mesosV1.signals['martian']?.evidence).toContain('martian source 10.53.180.130 from 10.53.180.130, on dev lo');
    expect(mesosV1.signals['rp-drop']?.fired).toBe(true);
  });

  it('the flips are exactly the rp_filter=1 cells', () => {
    expect(json.flips.map((f) => `${f.case} ${f.variant}`).sort()).toEqual([
      'rp-filter-mesos *:net.ipv4.conf.all.rp_filter=1',
      'rp-filter-selftest *:net.ipv4.conf.all.rp_filter=1',
    ]);
  });

  it('writes JUnit with one test per cell, valid against the Jenkins xunit JUnit schema', () => {
    const xml = fs.readFileSync(path.join(out, 'junit.xml'), 'utf8');
    expect(xml.match(/<testcase /g) ?? []).toHaveLength(14);
    expect(xml).toMatch(/<testsuites [^>]*failures="0"/);
    execFileSync('xmllint', ['--noout', '--schema', path.join(repoRoot, 'test/fixtures/junit-10.xsd'), path.join(out, 'junit.xml')], { stdio: 'pipe' });
  });

  it("KTAP of the matrix and of repro, read by the kernel's own parser (tools/testing/kunit/kunit.py parse)", async () => {
    // the parser of the kernel the tests build from: linux-source-6.1's tools/testing/kunit
    execFileSync('tar', ['-xJf', '/usr/src/linux-source-6.1.tar.xz', '-C', out, '--strip-components=1', '--wildcards', '*/tools/testing/kunit/*.py']);
    const kunit = path.join(out, 'tools/testing/kunit/kunit.py');
    const parse = (text: string, name: string): { exitCode: number; cases: Array<{ name: string; status: string }> } => {
      const file = path.join(out, `${name}.ktap`);
      fs.writeFileSync(file, text);
      const json = path.join(out, `${name}.kunit.json`);
      let exitCode = 0;
      try {
        execFileSync('python3', [kunit, 'parse', `--json=${json}`, file], { stdio: 'pipe' });
      } catch (e) {
        exitCode = (e as { status: number }).status;
      }
      const j = JSON.parse(fs.readFileSync(json, 'utf8')) as { test_cases: Array<{ name: string; status: string }> };
      return { exitCode, cases: j.test_cases };
    };
    // every cell of this run as expected: 14 passes
    const all = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--results', path.join(out, 'ktap-merge'), '--format', 'ktap']);
    expect(all.exitCode).toBe(0);
    const p = parse(all.stdout, 'matrix');
    expect(p.exitCode).toBe(0);
    expect(p.cases).toHaveLength(14);
    expect(p.cases.every((c) => c.status === 'PASS')).toBe(true);
    expect(p.cases.map((c) => c.name)).toContain('6.1-vanilla/rp-filter-mesos/all.rp_filter=1');
    expect(all.stdout).toMatch(/# signal martian \(signature\) x\d+: martian source 10\.53\.180\.130 from 10\.53\.180\.130, on dev lo\n(?:# .*\n)*ok \d+ 6\.1-vanilla\/rp-filter-mesos\/all\.rp_filter=1 # reproduced/);
    // the same run with one expectation turned wrong: that cell fails, for the parser too (exit 1)
    const wrong = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as { cells: Array<{ kernel: string; case: string; variant: string; expected: string }> };
    const cell = wrong.cells.find((c) => c.kernel === '6.1-fixed' && c.variant === 'all.rp_filter=1')!;
    cell.expected = 'reproduced';
    fs.writeFileSync(path.join(out, 'wrong.json'), JSON.stringify(wrong));
    const w = await cli(['report', 'merge', path.join(out, 'wrong.json'), '--results', path.join(out, 'ktap-wrong'), '--format', 'ktap']);
    expect(w.exitCode).toBe(1);
    const pw = parse(w.stdout, 'wrong');
    expect(pw.exitCode).not.toBe(0);
    expect(pw.cases.filter((c) => c.status !== 'PASS').map((c) => `${c.name} ${c.status}`)).toEqual([`6.1-fixed/${cell.case}/all.rp_filter=1 FAIL`]);
    expect(w.stdout).toContain(`not ok`);
    expect(w.stdout).toMatch(/ # expected reproduced, got not-reproduced\n/);
    // repro --format ktap: one run of a built kernel
    const r = await cli(['repro', '-k', '6.1-fixed', '-c', 'rp-filter-selftest', '--format', 'ktap', '--results', path.join(out, 'ktap-repro'), '--no-install']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^KTAP version 1\n/);
    const pr = parse(r.stdout, 'repro');
    expect(pr).toEqual({ exitCode: 0, cases: [{ name: '6.1-fixed/rp-filter-selftest', status: 'PASS' }] });
  });

  it('the HTML report renders in headless Chromium without console errors, and a cell opens its evidence', async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto('file://' + path.join(out, 'report.html'));
      const cells = page.locator('button.cell');
      expect(await cells.count()).toBe(14);
      const target = page.locator('button.cell[data-kernel="6.1-vanilla"][data-case="rp-filter-mesos"][data-variant*="rp_filter=1"]');
      const id = await target.getAttribute('data-target');
      expect(id).toBeTruthy();
      const section = page.locator(`#${id}`);
      expect(await section.isVisible()).toBe(false);
      await target.click();
      expect(await section.isVisible()).toBe(true);
      expect(await section.innerText()).toContain('martian source 10.53.180.130 from 10.53.180.130, on dev lo');
      expect(await page.locator('#flips').innerText()).toContain('rp_filter=1');
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('a baseline with the same verdicts passes; a changed one fails with --fail-on-change and names the cell', async () => {
    const same = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--results', path.join(out, 'merged'), '--baseline', path.join(out, 'matrix.json'), '--fail-on-change']);
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toMatch(/changes against the baseline .*: none/);
    const changed = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as { cells: Array<{ id: string; verdict: string }> };
    changed.cells[0]!.verdict = 'reproduced';
    fs.writeFileSync(path.join(out, 'old.json'), JSON.stringify({ ...changed, kind: 'matrix' }));
    const diff = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--out', path.join(out, 'merged2'), '--baseline', path.join(out, 'old.json'), '--fail-on-change']);
    expect(diff.exitCode).toBe(1);
    expect(diff.stdout).toContain(`${changed.cells[0]!.id}: reproduced -> not-reproduced`);
    expect(fs.readFileSync(path.join(out, 'merged2', 'summary.md'), 'utf8')).toContain(`- \`${changed.cells[0]!.id}\`: reproduced -> not-reproduced`);
    const noFlag = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--results', path.join(out, 'merged3'), '--baseline', path.join(out, 'old.json')]);
    expect(noFlag.exitCode).toBe(0); // a change is reported; it fails the run only when asked, as with matrix
  });

});

describe('the nightly steps (.ci/nightly.mjs) over a two-shard matrix', () => {
  it('plans one shard per kernel, runs each shard, merges them into one report with a job summary', async () => {
    const dir = path.join(out, 'nightly');
    fs.mkdirSync(dir);
    const matrixFile = path.join(dir, 'two.yaml');
    fs.writeFileSync(
      matrixFile,
      ['name: two', 'kernels: [6.1-vanilla, 6.1-fixed]', 'cases: [rp-filter-selftest]', 'variants:', '  - name: rp1', '    sysctls: ["*:net.ipv4.conf.all.rp_filter=1"]', '    expect: { 6.1-vanilla: reproduced, 6.1-fixed: not-reproduced }', ''].join('\n'),
    );
    const env = { NIGHTLY_MATRIX: matrixFile, NIGHTLY_OUT: path.join(dir, 'out'), NIGHTLY_MERGED: path.join(dir, 'merged'), NIGHTLY_CACHE_GC: '0', KERNEL_REPRO_CACHE: cacheRoot(), GITHUB_OUTPUT: path.join(dir, 'output'), GITHUB_STEP_SUMMARY: path.join(dir, 'summary.md') };
    const step = (args: string[]) => execa('node', [path.join(repoRoot, '.ci/nightly.mjs'), ...args], { cwd: dir, env, reject: false, all: true, stdin: 'ignore' });
    const plan = await step(['plan']);
    expect(plan.exitCode, String(plan.all)).toBe(0);
    const shards = JSON.parse(/^shards=(.*)$/m.exec(fs.readFileSync(env.GITHUB_OUTPUT, 'utf8'))![1]!) as Array<{ index: number; of: number; kernels: string[] }>;
    expect(shards.map((s) => `${s.index}/${s.of} ${s.kernels.join(',')}`)).toEqual(['1/2 6.1-vanilla', '2/2 6.1-fixed']);
    for (const s of shards) {
      const r = await step(['shard', `${s.index}/${s.of}`]);
      expect(r.exitCode, String(r.all).slice(-3000)).toBe(0);
      const res = JSON.parse(fs.readFileSync(path.join(env.NIGHTLY_OUT, `shard-${s.index}`, 'matrix.json'), 'utf8')) as { shard: { kernels: string[] }; cells: Array<{ kernel: string }>; accel: string };
      expect(res.cells.map((c) => c.kernel)).toEqual(s.kernels); // the shard ran its own kernel only
    }
    const merged = await step(['merge', env.NIGHTLY_OUT]);
    expect(merged.exitCode, String(merged.all).slice(-3000)).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(env.NIGHTLY_MERGED, 'matrix.json'), 'utf8')) as { cells: Array<{ kernel: string; verdict: string }>; shards: Array<{ accel: string }>; accel: string };
    expect(m.cells.map((c) => `${c.kernel} ${c.verdict}`)).toEqual(['6.1-vanilla reproduced', '6.1-fixed not-reproduced']);
    const md = fs.readFileSync(env.GITHUB_STEP_SUMMARY, 'utf8');
    expect(md).toContain('## kernel-repro matrix `two`: 2 cells, all as expected');
    for (const [i, s] of m.shards.entries()) expect(md).toContain(`| ${i + 1}/2 | ${shards[i]!.kernels[0]} | **${s.accel}** (`); // which accelerator, as the run recorded it
    execFileSync('xmllint', ['--noout', '--schema', path.join(repoRoot, 'test/fixtures/junit-10.xsd'), path.join(env.NIGHTLY_MERGED, 'junit.xml')], { stdio: 'pipe' });
    // a shard that left nothing: the merge names it
    fs.rmSync(path.join(env.NIGHTLY_OUT, 'shard-2'), { recursive: true });
    const partial = await step(['merge', env.NIGHTLY_OUT]);
    expect(partial.exitCode).toBe(2);
    expect(String(partial.all)).toContain('shard 2/2 (6.1-fixed) is missing (given: 1/2)');
  });

  it('a kernel that changed since the baseline is reported as "kernel changed", apart from behaviour, in text, JSON, JUnit and HTML', async () => {
    // the baseline as an older night would have left it: 6.1-vanilla built from another point release
    interface Res { runId: string; cells: Array<{ id: string; kernel: string; verdict: string; run: { kernelInfo: { source: string; sourceVersion?: string } } }> }
    const res = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as Res;
    const now = res.cells.find((c) => c.kernel === '6.1-vanilla')!.run.kernelInfo;
    expect(now.sourceVersion).toMatch(/^\d/); // resolved at run time, whatever the archive served
    const older = { ...now, source: 'linux-source-6.1 6.1.1-1', sourceVersion: '6.1.1-1' };
    const old: Res = { ...res, runId: 'older-night', cells: res.cells.map((c) => (c.kernel === '6.1-vanilla' ? { ...c, run: { ...c.run, kernelInfo: older } } : c)) };
    fs.writeFileSync(path.join(out, 'older.json'), JSON.stringify(old));
    const dir = path.join(out, 'merged-kernel');
    const r = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--results', dir, '--baseline', path.join(out, 'older.json'), '--fail-on-change']);
    expect(r.exitCode).toBe(0); // no verdict moved: a kernel update alone is not a failure
    expect(r.stdout).toMatch(/changes against the baseline older-night: none/);
    const nVanilla = res.cells.filter((c) => c.kernel === '6.1-vanilla').length;
    expect(r.stdout).toContain(`kernel changed since the baseline: \n  6.1-vanilla: source linux-source-6.1 6.1.1-1 -> ${now.source} (${nVanilla} cells, 0 with another verdict)`);
    expect(r.stdout).not.toMatch(/6\.1-fixed: source/);
    const merged = JSON.parse(fs.readFileSync(path.join(dir, 'matrix.json'), 'utf8')) as { kernels: Array<{ name: string; sourceVersion: string }>; baseline: { changes: unknown[]; kernelChanges: Array<{ kernel: string; cells: string[] }> } };
    expect(merged.baseline.changes).toEqual([]);
    expect(merged.baseline.kernelChanges.map((k) => [k.kernel, k.cells.length])).toEqual([['6.1-vanilla', nVanilla]]);
    expect(merged.kernels.map((k) => k.name)).toEqual(['6.1-vanilla', '6.1-fixed']);
    expect(merged.kernels[0]!.sourceVersion).toBe(now.sourceVersion);
    const xml = fs.readFileSync(path.join(dir, 'junit.xml'), 'utf8');
    expect(xml.match(/kernel changed since the baseline: source linux-source-6\.1 6\.1\.1-1/g) ?? []).toHaveLength(nVanilla);
    const html = fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
    expect(html).toMatch(/<section id="kernel-changes">/);
    expect(html.match(/<span class="kchg">kernel changed<\/span>/g) ?? []).toHaveLength(nVanilla);
    expect(fs.readFileSync(path.join(dir, 'summary.md'), 'utf8')).toMatch(/### Kernel changed since the baseline: 1\n- `6\.1-vanilla`: source linux-source-6\.1 6\.1\.1-1 -> /);
    // and a verdict that moved on an updated kernel says so
    const flipped: Res = { ...old, cells: old.cells.map((c, i) => (i === 0 ? { ...c, verdict: c.verdict === 'reproduced' ? 'not-reproduced' : 'reproduced' } : c)) };
    fs.writeFileSync(path.join(out, 'older-flipped.json'), JSON.stringify(flipped));
    const f = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--results', path.join(out, 'merged-kernel2'), '--baseline', path.join(out, 'older-flipped.json'), '--fail-on-change']);
    expect(f.exitCode).toBe(1);
    expect(f.stdout).toMatch(new RegExp(`${res.cells[0]!.id.replace(/[|.*+?^${}()[\]\\]/g, '\\$&')}: \\S+ -> \\S+  \\((kernel changed|same kernel)\\)`));
    expect(f.stdout).toContain(res.cells[0]!.kernel === '6.1-vanilla' ? '(kernel changed)' : '(same kernel)');
  });
});

describe('a matrix naming a kernel and a case by path', () => {
  it('paths resolve against the matrix file; cells, folders and expectations use the definitions names', async () => {
    // a copy of the built-in fixed kernel and selftest case under other names, in a folder of
    // their own (the kernel's fragment path resolves against its own folder)
    const dir = path.join(out, 'by-path');
    fs.mkdirSync(path.join(dir, 'defs'), { recursive: true });
    fs.cpSync(path.join(repoRoot, 'kernels', 'config'), path.join(dir, 'defs', 'config'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'defs', 'k.yaml'), fs.readFileSync(path.join(repoRoot, 'kernels', '6.1-fixed.yaml'), 'utf8').replace(/^name: 6\.1-fixed$/m, 'name: path-fixed'));
    fs.writeFileSync(path.join(dir, 'defs', 'c.yaml'), fs.readFileSync(path.join(repoRoot, 'cases', 'rp-filter-selftest.yaml'), 'utf8').replace(/^name: rp-filter-selftest$/m, 'name: path-selftest'));
    fs.writeFileSync(
      path.join(dir, 'm.yaml'),
      ['name: by-path', 'kernels: [6.1-vanilla, defs/k.yaml]', 'cases: [defs/c.yaml, defs/c.yaml]', 'variants:', '  - { name: as-is, expect: { 6.1-vanilla: reproduced, defs/k.yaml: not-reproduced } }', ''].join('\n'),
    );
    // run from another folder: the paths are the matrix file's, not the working directory's
    const r = await cli(['matrix', '--matrix', path.join(dir, 'm.yaml'), '--json', '--no-install', '--results', path.join(dir, 'out')]);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-4000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/note: case path-selftest is given 2 times \(cases\): it runs once/);
    const res = JSON.parse(r.stdout) as { cells: Array<{ kernel: string; case: string; variant: string; verdict: string; unexpected: boolean }> };
    expect(res.cells.map((c) => `${c.kernel}|${c.case}|${c.variant}=${c.verdict}`).sort()).toEqual(['6.1-vanilla|path-selftest|as-is=reproduced', 'path-fixed|path-selftest|as-is=not-reproduced']);
    expect(res.cells.every((c) => !c.unexpected)).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'out')).filter((f) => f.includes('__')).sort()).toEqual(['6.1-vanilla__path-selftest__as-is', 'path-fixed__path-selftest__as-is']);
  });
});
