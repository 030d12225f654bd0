// Defect 13: the same kernel x case pair given twice ran twice into one run folder and both runs
// ended in error. Given twice, it runs once, with a notice; two different files under one name stay
// an error.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { loadCase } from '../../harness/cases/load.ts';
import { uniqueNames } from '../../harness/cli/repro.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { expandMatrix } from '../../harness/matrix/logic.ts';
import { dedupeByName, uniqueCases } from '../../harness/pipeline/dedupe.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

describe('defect 13: a kernel or case given twice runs once', () => {
  it('cases: by name and file, in first-seen order, one notice per name given more than once', () => {
    const notes: string[] = [];
    const cases = uniqueCases(['rp-filter-mesos', 'rp-filter-selftest', 'cases/rp-filter-mesos.yaml', 'rp-filter-mesos'].map(loadCase), { info: (m) => notes.push(m) });
    expect(cases.map((c) => c.def.name)).toEqual(['rp-filter-mesos', 'rp-filter-selftest']);
    expect(notes).toEqual(['note: case rp-filter-mesos is given 3 times (--case): it runs once']);
    expect(uniqueCases(['rp-filter-mesos', 'rp-filter-selftest'].map(loadCase), { info: (m) => notes.push(m) })).toHaveLength(2);
    expect(notes).toHaveLength(1);
  });

  it('kernels: the same definition twice runs once; two definitions with one name are an error naming both', () => {
    const notes: string[] = [];
    const ks = uniqueNames([loadKernel('6.1-fixed'), loadKernel('6.1-vanilla'), loadKernel(path.join(repoRoot, 'kernels/6.1-fixed.yaml'))], { info: (m) => notes.push(m) });
    expect(ks.map((k) => k.def.name)).toEqual(['6.1-fixed', '6.1-vanilla']);
    expect(notes).toEqual(['note: kernel 6.1-fixed is given 2 times (--kernel): it runs once']);
    const dir = testTempDir('kr-dup-');
    fs.copyFileSync(path.join(repoRoot, 'kernels/6.1-fixed.yaml'), path.join(dir, 'other.yaml'));
    fs.cpSync(path.join(repoRoot, 'kernels/config'), path.join(dir, 'config'), { recursive: true });
    expect(() => uniqueNames([loadKernel('6.1-fixed'), loadKernel(path.join(dir, 'other.yaml'))])).toThrow(/^two kernels are named 6\.1-fixed \(.*kernels\/6\.1-fixed\.yaml and .*other\.yaml\)$/);
  });

  it('a matrix listing a kernel or case twice: each cell once', () => {
    const d = dedupeByName(['a', 'b', 'a'], { name: (x) => x, origin: () => 'm.yaml', what: 'kernel', field: 'kernels', file: 'm.yaml' });
    expect(d).toEqual({ items: ['a', 'b'], notices: ['kernel a is given 2 times (kernels): it runs once'] });
    const cells = expandMatrix({ name: 'm', kernels: d.items, cases: ['x'], variants: [{ name: 'v', sysctls: [] }] } as unknown as Parameters<typeof expandMatrix>[0]);
    expect(new Set(cells.map((c) => c.id)).size).toBe(cells.length);
  });

  it('the command line says it, before anything runs', async () => {
    const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
    // a sysctl that does not parse stops the run right after the kernels and cases are read
    const r = await execa(tsx, [path.join(repoRoot, 'harness/cli/main.ts'), 'repro', '--kernel', '6.1-fixed', '--kernel', 'kernels/6.1-fixed.yaml', '--case', 'rp-filter-selftest', '--case', 'rp-filter-selftest', '--sysctl', 'nonsense', '--no-install'], { cwd: repoRoot, reject: false });
    expect(r.stderr).toMatch(/note: kernel 6\.1-fixed is given 2 times \(--kernel\): it runs once/);
    expect(r.stderr).toMatch(/note: case rp-filter-selftest is given 2 times \(--case\): it runs once/);
    expect(r.stderr).toMatch(/error \(bad-input\): .*--sysctl/);
    expect(r.exitCode).toBe(2);
  }, 30_000);
});
