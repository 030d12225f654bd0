import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { compareBaseline, expandMatrix, shardCells } from '../../harness/matrix/logic.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadDataFile, parseData } from '../../harness/util/load.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { loadCase } from '../../harness/cases/load.ts';
import { parseDuration, parseSize } from '../../harness/cache/plan.ts';

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
  it('shards cover every cell exactly once', () => {
    const cells = expandMatrix(defaultMatrix);
    for (const n of [1, 2, 3, 5]) {
      const ids = Array.from({ length: n }, (_, i) => shardCells(cells, i + 1, n).map((c) => c.id)).flat();
      expect(ids.sort()).toEqual(cells.map((c) => c.id).sort());
    }
    expect(() => shardCells(cells, 4, 3)).toThrow();
  });
  it('the nightly workflow parses and its shards cover the default matrix exactly once', () => {
    const wf = YAML.parse(fs.readFileSync(path.join(repoRoot, '.github/workflows/nightly.yml'), 'utf8')) as {
      on: Record<string, unknown>;
      jobs: Record<string, { strategy?: { matrix: { shard: number[] } }; steps: Array<{ run?: string }>; needs?: string | string[] }>;
    };
    expect(Object.keys(wf.on)).toEqual(expect.arrayContaining(['schedule', 'workflow_dispatch']));
    const shardJob = Object.values(wf.jobs).find((j) => j.strategy?.matrix.shard);
    expect(shardJob).toBeDefined();
    const shards = shardJob!.strategy!.matrix.shard;
    const runLine = shardJob!.steps.map((s) => s.run ?? '').find((r) => r.includes('npm run matrix'))!;
    const m = /--shard \$\{\{ matrix\.shard \}\}\/(\d+)/.exec(runLine);
    expect(m).not.toBeNull();
    const of = Number(m![1]);
    expect(shards).toHaveLength(of);
    const cells = expandMatrix(defaultMatrix);
    const ids = shards.flatMap((s) => shardCells(cells, s, of).map((c) => c.id));
    expect(ids.sort()).toEqual(cells.map((c) => c.id).sort());
    const merge = Object.values(wf.jobs).find((j) => j.steps.some((s) => (s.run ?? '').includes('npm run report -- merge')));
    expect(merge?.needs).toBeDefined();
    // the kept cache is bounded, with options the CLI accepts
    const gc = shardJob!.steps.map((s) => s.run ?? '').find((r) => r.includes('npm run cache -- gc'))!;
    expect(parseDuration(/--older-than (\S+)/.exec(gc)![1]!, '--older-than')).toBe(20 * 3_600_000);
    expect(parseSize(/--max-size (\S+)/.exec(gc)![1]!, '--max-size')).toBe(3 * 1024 ** 3);
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
