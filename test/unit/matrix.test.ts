import { describe, expect, it } from 'vitest';
import path from 'node:path';
import YAML from 'yaml';
import { compareBaseline, expandMatrix, planShards, shardCells } from '../../harness/matrix/logic.ts';
import { cellFailed, checkMatrixResult, matrixFailed, mergeShards, type MatrixResult } from '../../harness/matrix/result.ts';
import { matrixResult, SMALL_MATRIX } from './records.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadDataFile, parseData } from '../../harness/util/load.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { loadCase } from '../../harness/cases/load.ts';

const defaultMatrix = loadDataFile(path.join(repoRoot, 'matrices/default.yaml'), matrixSchema);

describe('matrix', () => {
  it('the default matrix expands to 2 kernels x (2 cases x 3 rp_filter + mesos defaults) = 14 cells', () => {
    const cells = expandMatrix(defaultMatrix);
    expect(cells).toHaveLength(14);
    const v1 = cells.filter((c) => c.variant === 'all.rp_filter=1');
    expect(v1.map((c) => `${c.kernel}:${c.expected}`)).toEqual(['6.1-vanilla:reproduced', '6.1-vanilla:reproduced', '6.1-fixed:not-reproduced', '6.1-fixed:not-reproduced']);
    expect(cells.filter((c) => c.variant === 'mesos-defaults').map((c) => c.case)).toEqual(['rp-filter-mesos', 'rp-filter-mesos']);
    expect(cells[0]!.sysctls).toEqual([{ ns: '*', key: 'net.ipv4.conf.all.rp_filter', value: '0' }]);
  });
  it('shards hold whole kernels: every cell exactly once, each kernel in one shard', () => {
    const cells = expandMatrix(defaultMatrix);
    for (const n of [1, 2]) {
      const shards = Array.from({ length: n }, (_, i) => shardCells(cells, i + 1, n));
      expect(shards.flat().map((c) => c.id).sort()).toEqual(cells.map((c) => c.id).sort());
      const kernelsOf = shards.map((s) => new Set(s.map((c) => c.kernel)));
      for (const k of defaultMatrix.kernels) expect(kernelsOf.filter((ks) => ks.has(k))).toHaveLength(1);
    }
    expect(planShards(cells, 2).map((s) => [s.kernels, s.cells])).toEqual([
      [['6.1-vanilla'], 7],
      [['6.1-fixed'], 7],
    ]);
    expect(() => shardCells(cells, 3, 2)).toThrow(/shard 3\/2 does not exist/);
    expect(() => planShards(cells, 3)).toThrow(/3 shards, but the matrix has 2 kernels \(6\.1-vanilla, 6\.1-fixed\): a shard holds whole kernels/);
  });
  it('the shard plan balances cells: the kernel with the most cells first, to the lightest shard', () => {
    const def = { ...SMALL_MATRIX, kernels: ['a', 'b', 'c', 'd'], cases: ['x', 'y'], variants: [{ name: 'v', sysctls: [] }, { name: 'w', sysctls: [], cases: ['x'] }] };
    const cells = expandMatrix(def).filter((c) => !(c.kernel === 'd' && c.case === 'y')); // d: 2 cells, others 3
    const plan = planShards(cells, 3);
    expect(plan.map((s) => s.kernels)).toEqual([['a', 'd'], ['b'], ['c']]);
    expect(plan.map((s) => s.cells)).toEqual([5, 3, 3]);
    expect(planShards(cells, 3)).toEqual(plan); // deterministic
    expect(planShards(cells, 1)).toEqual([{ index: 1, of: 1, kernels: ['a', 'b', 'c', 'd'], cells: 11 }]);
  });
  it('baseline comparison lists changed, new and missing cells', () => {
    const a = [
      { id: 'k|c|v1', kernel: 'k', case: 'c', variant: 'v1', verdict: 'reproduced' as const },
      { id: 'k|c|v2', kernel: 'k', case: 'c', variant: 'v2', verdict: 'not-reproduced' as const },
    ];
    const b = [
      { id: 'k|c|v1', kernel: 'k', case: 'c', variant: 'v1', verdict: 'not-reproduced' as const },
      { id: 'k|c|v3', kernel: 'k', case: 'c', variant: 'v3', verdict: 'timeout' as const },
    ];
    expect(compareBaseline(a, b)).toEqual([
      { id: 'k|c|v1', before: 'reproduced', after: 'not-reproduced' },
      { id: 'k|c|v3', before: 'absent', after: 'timeout' },
      { id: 'k|c|v2', before: 'not-reproduced', after: 'absent' },
    ]);
  });
  const bad: Array<[string, string, string]> = [
    ['no kernels', 'name: m\nkernels: []\ncases: [c]\n', 'kernels'],
    ['sysctl with a command', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v, sysctls: ["net.ipv4.ip_forward=1;reboot"] }]\n', 'variants[0].sysctls[0]'],
    ['expect for an unknown kernel', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v, expect: { other: reproduced } }]\n', 'variants[0].expect.other'],
    ['unknown verdict', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v, expect: broken }]\n', 'variants[0].expect'],
    ['duplicate variant', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v }, { name: v }]\n', 'variants[1].name'],
    ['variant case not in the matrix', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v, cases: [d] }]\n', 'variants[0].cases'],
    ['variant kernel not in the matrix', 'name: m\nkernels: [k]\ncases: [c]\nvariants: [{ name: v, kernels: [other] }]\n', 'variants[0].kernels'],
  ];
  for (const [what, yaml, field] of bad)
    it(`rejects a matrix with ${what}`, () => {
      try {
        parseData(yaml, 'm.yaml', matrixSchema);
        throw new Error('accepted');
      } catch (e) {
        expect(e).toBeInstanceOf(HarnessError);
        expect((e as HarnessError).field).toBe(field);
      }
    });
  it('"*" sysctls apply in every namespace of the case', () => {
    const r = renderCase(loadCase('rp-filter-selftest').def, { sysctlOverrides: [{ ns: '*', key: 'net.ipv4.conf.all.rp_filter', value: '2' }] });
    expect(r.files['/case/sysctl-host.sh']).toMatch(/echo 2 > \/proc\/sys\/net\/ipv4\/conf\/all\/rp_filter\n$/);
    expect(r.files['/case/sysctl-ns2.sh']).toMatch(/echo 2 > \/proc\/sys\/net\/ipv4\/conf\/all\/rp_filter\n$/);
  });
});

describe('merging shards', () => {
  const shard = (index: number, of = 3, accel = 'tcg'): { file: string; result: MatrixResult } => ({ file: `shard-${index}/matrix.json`, result: matrixResult(SMALL_MATRIX, { shard: { index, of }, accel }) });
  const error = (f: () => unknown): HarnessError => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(HarnessError);
      return e as HarnessError;
    }
    throw new Error('accepted');
  };

  it('joins every shard of one plan, in shard order, and says where each ran', () => {
    const m = mergeShards([shard(3), shard(1, 3, 'kvm'), shard(2)]);
    expect(m.shard).toBeNull();
    expect(m.cells.map((c) => c.kernel)).toEqual(['k-a', 'k-a', 'k-b', 'k-b', 'k-c', 'k-c']);
    expect(m.accel).toBe('kvm+tcg');
    expect(m.shards!.map((s) => `${s.index}/${s.of} ${s.kernels.join(',')} ${s.accel} ${s.file}`)).toEqual([
      '1/3 k-a kvm shard-1/matrix.json',
      '2/3 k-b tcg shard-2/matrix.json',
      '3/3 k-c tcg shard-3/matrix.json',
    ]);
    expect(m.accelReason).toContain('shard 1/3: kvm (KVM works');
    expect(m.startedAt).toBe('2024-05-01T10:00:00.000Z');
  });
  it('refuses a missing shard, naming it and its kernels', () => {
    const e = error(() => mergeShards([shard(1), shard(3)]));
    expect(e.message).toBe('shard 2/3 (k-b) is missing (given: 1/3, 3/3)');
    expect(e.exitCode).toBe(2);
    expect(error(() => mergeShards([shard(2)])).message).toBe('shard 1/3 (k-a) and shard 3/3 (k-c) are missing (given: 2/3)');
  });
  it('refuses a shard given twice, naming both files', () => {
    const twice = { ...shard(2), file: 'again/matrix.json' };
    const e = error(() => mergeShards([shard(1), shard(2), twice, shard(3)]));
    expect(e.message).toBe('shard 2/3 (k-b) is given twice: shard-2/matrix.json and again/matrix.json');
    expect(e.file).toBe('again/matrix.json');
  });
  it('refuses shards of another plan or matrix, a whole run among shards, and a shard with the wrong cells', () => {
    expect(error(() => mergeShards([shard(1), shard(2), { file: 'two.json', result: matrixResult(SMALL_MATRIX, { shard: { index: 2, of: 2 } }) }])).field).toBe('shard.plan');
    const other = shard(2);
    other.result.matrix = 'other';
    expect(error(() => mergeShards([shard(1), other, shard(3)])).message).toMatch(/is a shard of matrix "other"/);
    expect(error(() => mergeShards([shard(1), { file: 'whole.json', result: matrixResult(SMALL_MATRIX) }])).message).toMatch(/is a whole matrix run, not a shard/);
    const short = shard(3);
    short.result.cells.pop();
    expect(error(() => mergeShards([shard(1), shard(2), short])).message).toBe('has 1 cells of k-c; its plan gives shard 3/3 (k-c) 2 cells');
    expect(error(() => mergeShards([])).message).toBe('no matrix.json given');
  });
  it('a whole run alone merges to itself', () => {
    const whole = matrixResult(SMALL_MATRIX);
    expect(mergeShards([{ file: 'm.json', result: whole }])).toBe(whole);
  });
  it('reads back only what this version wrote (a baseline needs only ids and verdicts)', () => {
    const old = { ...matrixResult(SMALL_MATRIX) } as Partial<MatrixResult>;
    delete old.schemaVersion;
    expect(error(() => checkMatrixResult(old, 'old.json', true)).message).toMatch(/missing: written by an older kernel-repro/);
    expect(checkMatrixResult(old, 'old.json', false).cells).toHaveLength(6);
    expect(error(() => checkMatrixResult({ kind: 'summary' }, 'x.json', false)).field).toBe('kind');
  });
  it('a cell without an expectation fails on error, timeout or panic; the run then fails', () => {
    expect(cellFailed({ verdict: 'timeout', expected: null, reason: 'r' })).toBe(true);
    expect(cellFailed({ verdict: 'reproduced', expected: null, reason: 'r' })).toBe(false);
    expect(cellFailed({ verdict: 'timeout', expected: 'timeout', reason: 'r' })).toBe(false);
    const res = matrixResult(SMALL_MATRIX, { verdictOf: (c) => (c.kernel === 'k-c' && c.variant === 'rp1' ? 'panic' : (c.expected ?? 'not-reproduced')) });
    expect(res.cells.find((c) => c.kernel === 'k-c' && c.variant === 'rp1')).toMatchObject({ expected: null, unexpected: false });
    expect(matrixFailed(res, [], false)).toBe(true);
    expect(matrixFailed(matrixResult(SMALL_MATRIX), [], false)).toBe(false);
    const change = [{ id: 'x', before: 'reproduced' as const, after: 'not-reproduced' as const }];
    expect(matrixFailed(matrixResult(SMALL_MATRIX), change, false)).toBe(false);
    expect(matrixFailed(matrixResult(SMALL_MATRIX), change, true)).toBe(true);
  });
});

describe('variants restricted to kernels: a library pairs each case with its own kernels', () => {
  it('a variant with kernels and cases makes only those cells, with its expectations', () => {
    const m = matrixSchema.parse({
      name: 'lib',
      kernels: ['a-reverted', 'b-reverted', 'shipped'],
      cases: ['a', 'b'],
      variants: [
        { name: 'a', cases: ['a'], kernels: ['a-reverted', 'shipped'], expect: { 'a-reverted': 'reproduced', shipped: 'not-reproduced' } },
        { name: 'b', cases: ['b'], kernels: ['b-reverted', 'shipped'], expect: { 'b-reverted': 'reproduced', shipped: 'not-reproduced' } },
      ],
    });
    expect(expandMatrix(m).map((c) => `${c.id}=${c.expected ?? ''}`)).toEqual([
      'a-reverted|a|a=reproduced',
      'b-reverted|b|b=reproduced',
      'shipped|a|a=not-reproduced',
      'shipped|b|b=not-reproduced',
    ]);
  });
});

describe('byDefinitionName: a matrix whose kernels and cases are given by path', () => {
  it('names every kernel and case by its definition, in variants and expectations too, once each', async () => {
    const { byDefinitionName } = await import('../../harness/matrix/logic.ts');
    const m = matrixSchema.parse({
      name: 'm',
      kernels: ['6.1-vanilla', 'defs/k.yaml'],
      cases: ['defs/c.yaml', 'rp-filter-selftest', './defs/c.yaml'],
      variants: [{ name: 'v', cases: ['defs/c.yaml'], kernels: ['defs/k.yaml', '6.1-vanilla'], expect: { 'defs/k.yaml': 'not-reproduced', '6.1-vanilla': 'reproduced' } }],
    });
    const names: Record<string, string> = { 'defs/k.yaml': 'k', '6.1-vanilla': '6.1-vanilla', 'defs/c.yaml': 'c', './defs/c.yaml': 'c', 'rp-filter-selftest': 'rp-filter-selftest' };
    const d = byDefinitionName(m, (r) => names[r]!, (r) => names[r]!);
    expect(d.kernels).toEqual(['6.1-vanilla', 'k']);
    expect(d.cases).toEqual(['c', 'rp-filter-selftest']);
    expect(d.variants[0]!.cases).toEqual(['c']);
    expect(d.variants[0]!.kernels).toEqual(['k', '6.1-vanilla']);
    expect(d.variants[0]!.expect).toEqual({ k: 'not-reproduced', '6.1-vanilla': 'reproduced' });
    expect(expandMatrix(d).map((c) => `${c.id}=${c.expected ?? ''}`)).toEqual(['6.1-vanilla|c|v=reproduced', 'k|c|v=not-reproduced']);
  });
  it('a variant may name a definition given by path by its name; an unknown name is refused naming the field', async () => {
    const { byDefinitionName } = await import('../../harness/matrix/logic.ts');
    const m = matrixSchema.parse({ name: 'm', kernels: ['defs/k.yaml'], cases: ['defs/c.yaml'], variants: [{ name: 'v', kernels: ['k'], expect: { k: 'reproduced' } }] });
    const names: Record<string, string> = { 'defs/k.yaml': 'k', 'defs/c.yaml': 'c' };
    expect(expandMatrix(byDefinitionName(m, (r) => names[r]!, (r) => names[r]!)).map((c) => `${c.id}=${c.expected ?? ''}`)).toEqual(['k|c|v=reproduced']);
    const bad = matrixSchema.parse({ ...m, variants: [{ name: 'v', expect: { nosuch: 'reproduced' } }] });
    expect(() => byDefinitionName(bad, (r) => names[r]!, (r) => names[r]!, 'm.yaml')).toThrow(/kernel "nosuch" is not in the matrix's kernels/);
    try {
      byDefinitionName(bad, (r) => names[r]!, (r) => names[r]!, 'm.yaml');
    } catch (e) {
      expect((e as { field?: string }).field).toBe('variants[0].expect.nosuch');
    }
  });
});
