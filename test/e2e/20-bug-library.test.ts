// End to end: the bug library (bugs/) on 6.1, through matrices/bugs.yaml: every bug's case and its
// upstream selftest (where one exists) on the bug's reverted kernel and on the shipped kernel, all on
// one kernel config (bugs/kernels/library.config), so the reverts rebuild only the files their patch
// touches. The verdicts asserted are the matrix's expectations, which were measured on both kernels
// (each case file says why the kernel does it). 6.12 runs in the nightly (the whole matrix).
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { expandMatrix } from '../../harness/matrix/logic.ts';
import { byDefinitionName } from '../../harness/matrix/logic.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadCase } from '../../harness/cases/load.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { loadDataFile } from '../../harness/util/load.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const matrixFile = path.join(repoRoot, 'matrices/bugs.yaml');
const at = (ref: string): string => path.resolve(path.dirname(matrixFile), ref);
const matrix = byDefinitionName(
  loadDataFile(matrixFile, matrixSchema),
  (k) => loadKernel(at(k)).def.name,
  (c) => loadCase(at(c)).def.name,
);
/** The 6.1 cells: the shipped kernel and every bug's 6.1 revert. */
const kernels61 = matrix.kernels.filter((k) => /-6\.1-(?:reverted|shipped)$/.test(k));
const cells61 = expandMatrix(matrix).filter((c) => kernels61.includes(c.kernel));

interface Cell { kernel: string; case: string; variant: string; verdict: string; expected?: string | null; unexpected: boolean; reason?: string; signals: Record<string, { fired: boolean }> }
let json: { cells: Cell[]; unexpected: number };
const out = fileTempDir('kr-bugs-');

beforeAll(async () => {
  const r = await cli(['matrix', '--matrix', matrixFile, '--json', '--results', out, ...kernels61.flatMap((k) => ['--cell', `${k}|*|*`])]);
  if (r.exitCode !== 0) console.error(r.stderr.slice(-6000));
  json = JSON.parse(r.stdout) as typeof json;
}, 80 * 60_000);

describe('the bug library on 6.1 (matrices/bugs.yaml)', () => {
  it('runs every 6.1 cell of the matrix', () => {
    expect(cells61.length).toBeGreaterThanOrEqual(20);
    expect(json.cells.map((c) => `${c.kernel}|${c.case}|${c.variant}`).sort()).toEqual(cells61.map((c) => c.id).sort());
  });

  it('each cell gives the verdict measured and written in the matrix', () => {
    const got = json.cells.map((c) => `${c.kernel} ${c.case}: ${c.verdict}${c.verdict === 'error' ? ` (${c.reason ?? ''})` : ''}`).sort();
    const want = cells61.map((c) => `${c.kernel} ${c.case}: ${c.expected}`).sort();
    expect(got).toEqual(want);
    expect(json.unexpected).toBe(0);
  });

  it("each upstream selftest (the oracle) agrees with its bug's case, kernel by kernel", () => {
    const verdict = new Map(json.cells.map((c) => [`${c.kernel}|${c.case}`, c.verdict]));
    const oracles = json.cells.filter((c) => c.case.endsWith('-kselftest'));
    for (const o of oracles) expect(`${o.kernel} ${o.case}: ${o.verdict}`).toBe(`${o.kernel} ${o.case}: ${verdict.get(`${o.kernel}|${o.case.replace(/-kselftest$/, '')}`)}`);
  });
});
