// `npm run reduce` on the real 6.1 kernels: the rp_filter selftest padded with 30 irrelevant
// sysctls, an extra dummy link with addresses and a second namespace with a veth pair, addresses and
// routes reduces to the selftest's core; then its 1-minimality is checked independently of reduce's
// own trials: for each element it kept, the case without that element runs through `repro` on both
// kernels and must no longer tell them apart, while the reduced case itself still does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadCase } from '../../harness/cases/load.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { applyElements, caseElements } from '../../harness/reduce/elements.ts';
import type { ReduceReport } from '../../harness/reduce/report.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';

const FIXTURE = path.join(repoRoot, 'test/fixtures/cases/rp-filter-selftest-padded.yaml');

interface Summary {
  runs: Array<{ kernel: string; case: string; verdict: string; reason: string }>;
}

describe('reduce', () => {
  it('reduces the padded selftest to its core, 1-minimal on the real kernels', async () => {
    const t0 = Date.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-reduce-'));
    const out = path.join(dir, 'reduced.yaml');
    const r = await cli(['reduce', '--case', FIXTURE, '--kernel', '6.1-vanilla', '--against', '6.1-fixed', '--out', out, '--results', path.join(dir, 'run'), '--json', '-j', '2']);
    expect(r.exitCode, r.stderr.slice(-3000)).toBe(0);
    const rep = JSON.parse(r.stdout) as ReduceReport;
    expect(rep.schemaVersion).toBe(1);
    expect(rep.mode).toBe('difference');
    expect(rep.kernels.buggy.name).toBe('6.1-vanilla');
    expect(rep.kernels.fixed?.name).toBe('6.1-fixed');
    expect(r.stderr).toMatch(/round \d+: \d+ elements left/);
    for (const f of ['reduce.json', 'reduce.md', 'reduced.yaml']) expect(fs.existsSync(path.join(dir, 'run', f))).toBe(true);

    // the padding is gone: none of the 30 sysctls, no dummy1, no ns3 and its veth pair, no routes
    const fixture = loadCase(FIXTURE);
    const reduced = loadCase(out);
    const text = fs.readFileSync(out, 'utf8');
    expect(reduced.def.name).toBe('rp-filter-selftest-padded-reduced');
    const paddingKeys = fixture.def.sysctls.slice(0, 30).map((s) => `${s.ns}:${s.key}`);
    for (const s of reduced.def.sysctls) expect(paddingKeys).not.toContain(`${s.ns}:${s.key}`);
    expect(reduced.def.namespaces).toEqual(['ns2']);
    expect(reduced.def.links.map((l) => l.name)).not.toContain('dummy1');
    expect(reduced.def.links.map((l) => l.name)).not.toContain('vx0');
    expect(reduced.def.routes).toEqual([]);
    expect(text).not.toContain('203.0.113.');
    expect(text).not.toContain('198.18.');
    // what is left is the selftest's own: its veth pair and mirred filters
    expect(reduced.def.links.map((l) => l.name)).toContain('veth1');
    expect(reduced.def.filters.length).toBeGreaterThan(0);
    expect(reduced.def.filters.every((f) => typeof f.action === 'object')).toBe(true);
    // the comments of what survives are kept, the padding's go with it
    expect(text).toContain("# The kernel's own evidence.");
    expect(text).toContain('# 1. ns2 lo egress -> veth2 egress');
    expect(text).not.toContain('# padding');
    expect(rep.reduced.elements.length).toBeLessThan(rep.original.elements.length / 2);
    // every element has its trial
    for (const e of rep.elements) if (e.status !== 'required') expect(e.trial, e.id).toMatch(/^t\d{4}$/);
    expect(rep.trialCount).toBe(rep.trials.length);
    const reduceMs = Date.now() - t0;

    // 1-minimality, independently: each kept element removed in turn, run through repro
    const ce = caseElements(fixture.def);
    const kept = rep.reduced.elements.map((e) => e.id);
    const files: string[] = [];
    kept.forEach((id, i) => {
      const def = caseSchema.parse(applyElements(fixture.def, ce, kept.filter((x) => x !== id)));
      const f = path.join(dir, `without-${i}.yaml`);
      fs.writeFileSync(f, YAML.stringify({ ...def, name: `without-${i}` }));
      files.push(f);
    });
    const check = await cli(['repro', '--kernel', '6.1-vanilla', '--kernel', '6.1-fixed', '--case', out, ...files.flatMap((f) => ['--case', f]), '--json', '-j', '2', '--results', path.join(dir, 'check')]);
    const summary = JSON.parse(check.stdout) as Summary;
    const verdict = (k: string, c: string): string => summary.runs.find((x) => x.kernel === k && x.case === c)?.verdict ?? 'missing';
    // the reduced case still tells the kernels apart
    expect(verdict('6.1-vanilla', reduced.def.name)).toBe('reproduced');
    expect(verdict('6.1-fixed', reduced.def.name)).toBe('not-reproduced');
    // without any one of its elements it does not
    kept.forEach((id, i) => {
      const pair = [verdict('6.1-vanilla', `without-${i}`), verdict('6.1-fixed', `without-${i}`)];
      expect(pair, `without ${id} (${rep.reduced.elements[i]!.label}) the case still discriminates`).not.toEqual(['reproduced', 'not-reproduced']);
    });
    process.stderr.write(
      `19-reduce: ${rep.original.elements.length} -> ${kept.length} elements, ${rep.trialCount} trials, ${rep.runCount} runs, reduce ${(reduceMs / 1000).toFixed(0)} s, 1-minimality check ${(check.durationMs / 1000).toFixed(0)} s (${kept.length * 2 + 2} runs), total ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
    );
  });

  it('bad input and a case that does not discriminate: exit 2 and 1, saying why', async () => {
    const bad = await cli(['reduce', '--case', 'rp-filter-selftest', '--kernel', '6.1-vanilla', '--against', '6.1-vanilla']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--against');
    const none = await cli(['reduce', '--kernel', '6.1-vanilla']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('--case');
    // IPv6 has no rp_filter: the selftest in IPv6 reproduces on neither kernel
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-reduce-'));
    const r = await cli(['reduce', '--case', 'rp-filter-selftest-ipv6', '--kernel', '6.1-vanilla', '--against', '6.1-fixed', '--results', dir, '-j', '2']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('the original case does not tell the kernels apart');
    expect(r.stdout).toMatch(/6\.1-vanilla \(attempt 1\): not-reproduced/);
  });
});
