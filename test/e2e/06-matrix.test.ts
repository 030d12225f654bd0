// End to end: the default matrix (2 kernels x 2 cases x rp_filter 0/1/2 + Mesos defaults) in
// parallel guests; the flips; JUnit; the HTML report in a real headless Chromium; baselines.
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
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

  it('writes JUnit with one test per cell', () => {
    const xml = fs.readFileSync(path.join(out, 'junit.xml'), 'utf8');
    expect(xml.match(/<testcase /g) ?? []).toHaveLength(14);
    expect(xml).toMatch(/<testsuites [^>]*failures="0"/);
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

  it('a baseline with the same verdicts passes; a changed one fails and names the cell', async () => {
    const same = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--out', path.join(out, 'merged'), '--baseline', path.join(out, 'matrix.json')]);
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toMatch(/changes against the baseline .*: none/);
    const changed = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as { cells: Array<{ id: string; verdict: string }> };
    changed.cells[0]!.verdict = 'reproduced';
    fs.writeFileSync(path.join(out, 'old.json'), JSON.stringify({ ...changed, kind: 'matrix' }));
    const diff = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--out', path.join(out, 'merged2'), '--baseline', path.join(out, 'old.json')]);
    expect(diff.exitCode).toBe(1);
    expect(diff.stdout).toContain(`${changed.cells[0]!.id}: reproduced -> not-reproduced`);
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
    const r = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--out', dir, '--baseline', path.join(out, 'older.json')]);
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
    // and a verdict that moved on an updated kernel says so
    const flipped: Res = { ...old, cells: old.cells.map((c, i) => (i === 0 ? { ...c, verdict: c.verdict === 'reproduced' ? 'not-reproduced' : 'reproduced' } : c)) };
    fs.writeFileSync(path.join(out, 'older-flipped.json'), JSON.stringify(flipped));
    const f = await cli(['report', 'merge', path.join(out, 'matrix.json'), '--out', path.join(out, 'merged-kernel2'), '--baseline', path.join(out, 'older-flipped.json')]);
    expect(f.exitCode).toBe(1);
    expect(f.stdout).toMatch(new RegExp(`${res.cells[0]!.id.replace(/[|.*+?^${}()[\]\\]/g, '\\$&')}: \\S+ -> \\S+  \\((kernel changed|same kernel)\\)`));
    expect(f.stdout).toContain(res.cells[0]!.kernel === '6.1-vanilla' ? '(kernel changed)' : '(same kernel)');
  });
});
