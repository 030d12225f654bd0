// The bug library (bugs/): every bug is complete and consistent, and the matrix, the README table and
// the kernel config agree with the files. Pure reads of the repository; the verdicts themselves are
// measured on real kernels (test/e2e/20-bug-library.test.ts and the nightly's matrices/bugs.yaml).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCase } from '../../harness/cases/load.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadDataFile } from '../../harness/util/load.ts';
import { repoRoot } from '../../harness/util/paths.ts';

const bugsDir = path.join(repoRoot, 'bugs');
const casesDir = path.join(bugsDir, 'cases');
const kernelsDir = path.join(bugsDir, 'kernels');
const SERIES = ['6.1', '6.12'] as const;

const caseFiles = fs
  .readdirSync(casesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const cases = caseFiles.map((f) => ({ ...loadCase(path.join(casesDir, f)), file: f }));
/** A bug's own case is `<slug>.yaml`; `<slug>-kselftest.yaml` is its upstream selftest, the oracle. */
const bugs = cases.filter((c) => !c.def.name.endsWith('-kselftest')).map((c) => c.def.name);
const oracles = cases.filter((c) => c.def.name.endsWith('-kselftest'));

function libraryOptions(): Map<string, string> {
  const text = fs.readFileSync(path.join(kernelsDir, 'library.config'), 'utf8');
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const x = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (x) m.set(x[1]!, x[2]!);
  }
  return m;
}

const matrixFile = path.join(repoRoot, 'matrices/bugs.yaml');
const matrix = loadDataFile(matrixFile, matrixSchema);
const kernelName = (ref: string): string => loadKernel(path.resolve(path.dirname(matrixFile), ref)).def.name;
const caseName = (ref: string): string => loadCase(path.resolve(path.dirname(matrixFile), ref)).def.name;

describe('the bug library', () => {
  it('holds at least ten bugs besides 66f8209547cc', () => {
    expect(bugs.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) expect(c.def.references.join('\n')).not.toMatch(/66f8209547cc/);
  });

  it.each(cases.map((c) => [c.file, c] as const))('%s: file named after the case, a fix reference, its needs in library.config', (file, c) => {
    expect(file).toBe(`${c.def.name}.yaml`);
    const fix = c.def.references.filter((r) => /^fix: [0-9a-f]{12} \S.*$/.test(r));
    expect(fix.length, `${file}: references needs "fix: <12 hex> <subject>"`).toBeGreaterThanOrEqual(1);
    const lib = libraryOptions();
    const missing = c.def.kconfig.filter((o) => lib.get(o) !== 'y');
    expect(missing, `${file}: kconfig options not =y in bugs/kernels/library.config (the case would get its own full build)`).toEqual([]);
  });

  it.each(bugs.map((b) => [b]))('%s: a reverted kernel per series, on the library config, with its patch', (bug) => {
    for (const s of SERIES) {
      const file = path.join(kernelsDir, `${bug}-${s}-reverted.yaml`);
      expect(fs.existsSync(file), `${file} is missing`).toBe(true);
      const k = loadKernel(file);
      expect(k.def.name).toBe(`${bug}-${s}-reverted`);
      expect(k.def.config.fragments).toEqual(['library.config']);
      expect(k.def.patches.length).toBeGreaterThanOrEqual(1);
      const shipped = loadKernel(path.join(kernelsDir, `lib-${s}-shipped.yaml`)).def;
      expect(k.def.source).toEqual(shipped.source);
      expect(k.def.config).toEqual(shipped.config);
    }
  });

  it('every oracle (<bug>-kselftest) belongs to a bug of the library and runs a selftest from the kernel tree', () => {
    for (const o of oracles) {
      expect(bugs).toContain(o.def.name.replace(/-kselftest$/, ''));
      expect(o.def.sourceFiles.some((f) => f.path.startsWith('tools/testing/selftests/'))).toBe(true);
    }
  });

  it('matrices/bugs.yaml: every bug and oracle x {reverted, shipped} x {6.1, 6.12}, each with an expectation', () => {
    const cells = new Set<string>();
    for (const v of matrix.variants) {
      expect(v.cases?.length, `variant ${v.name} names its cases`).toBeGreaterThan(0);
      expect(v.kernels?.length, `variant ${v.name} names its kernels`).toBeGreaterThan(0);
      for (const c of v.cases ?? [])
        for (const k of v.kernels ?? []) {
          const kn = kernelName(k);
          const expected = typeof v.expect === 'string' ? v.expect : (v.expect?.[k] ?? v.expect?.[kn]);
          expect(expected, `${v.name}: ${kn} has an expectation`).toBeDefined();
          cells.add(`${caseName(c)}|${kn}`);
        }
    }
    for (const c of cases) {
      const bug = c.def.name.replace(/-kselftest$/, '');
      for (const s of SERIES) {
        expect(cells.has(`${c.def.name}|${bug}-${s}-reverted`), `${c.def.name} on ${bug}-${s}-reverted`).toBe(true);
        expect(cells.has(`${c.def.name}|lib-${s}-shipped`), `${c.def.name} on lib-${s}-shipped`).toBe(true);
      }
    }
  });

  it("the README's bug library table has a row per bug, with the matrix's expectations", () => {
    const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('Bug library'));
    expect(section, 'README has a "## Bug library" section').toBeDefined();
    for (const bug of bugs) {
      const row = section!.split('\n').find((l) => l.startsWith(`| [\`${bug}\`]`));
      expect(row, `README table row for ${bug}`).toBeDefined();
      const v = matrix.variants.find((x) => (x.cases ?? []).map(caseName).includes(bug))!;
      const want = (kernel: string): string => {
        const ref = (v.kernels ?? []).find((k) => kernelName(k) === kernel);
        const e = typeof v.expect === 'string' ? v.expect : (v.expect?.[kernel] ?? (ref ? v.expect?.[ref] : undefined));
        return e ?? '?';
      };
      for (const s of SERIES) expect(row).toContain(`${want(`${bug}-${s}-reverted`)} / ${want(`lib-${s}-shipped`)}`);
    }
  });
});
