// The nightly workflow (.github/workflows/nightly.yml, which runs the reusable matrix.yml once per
// matrix file) and its steps (.ci/nightly.mjs): the workflows are checked by a GitHub Actions schema validator; the plan and merge steps run here for real on
// matrix results made up for the test (the shard step, which boots kernels, runs in 06-matrix).
import { MATRIX_SCHEMA_VERSION } from '../../harness/matrix/result.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { validateWorkflow } from '@action-validator/core';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { parseDuration, parseSize } from '../../harness/cache/plan.ts';
import { expandMatrix, planShards } from '../../harness/matrix/logic.ts';
import { matrixSchema } from '../../harness/matrix/schema.ts';
import { loadDataFile } from '../../harness/util/load.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { matrixResult, SMALL_MATRIX } from './records.ts';

const nightlyText = fs.readFileSync(path.join(repoRoot, '.github/workflows/nightly.yml'), 'utf8');
const workflowText = fs.readFileSync(path.join(repoRoot, '.github/workflows/matrix.yml'), 'utf8');
const script = path.join(repoRoot, '.ci/nightly.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-nightly-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
}
interface Job {
  'runs-on': string;
  needs?: string | string[];
  if?: string;
  container?: { image: string; options?: string };
  strategy?: { matrix: { shard: string } };
  outputs?: Record<string, string>;
  permissions?: unknown;
  steps: Step[];
}
const wf = YAML.parse(workflowText) as { on: Record<string, unknown>; permissions: Record<string, string>; env: Record<string, string>; jobs: Record<string, Job> };
const nightlyWf = YAML.parse(nightlyText) as { on: Record<string, unknown>; permissions: Record<string, string>; jobs: Record<string, { uses: string; with: Record<string, string>; secrets: string }> };

async function nightly(args: string[], env: Record<string, string>): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa('node', [script, ...args], { cwd: tmp, reject: false, env, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('the nightly workflow', () => {
  it('passes a GitHub Actions workflow schema validator, which rejects a broken copy', () => {
    expect(validateWorkflow(nightlyText).errors).toEqual([]);
    expect(validateWorkflow(workflowText).errors).toEqual([]);
    const broken = workflowText.replace('    runs-on: ubuntu-24.04\n    timeout-minutes: 10\n', '    timeout-minutes: 10\n    stepz: []\n');
    expect(broken).not.toBe(workflowText);
    expect(validateWorkflow(broken).errors.length).toBeGreaterThan(0);
  });

  it('pins every action by commit SHA and reads the repository only', () => {
    expect(wf.permissions).toEqual({ contents: 'read' });
    const uses = Object.values(wf.jobs).flatMap((j) => j.steps.map((s) => s.uses).filter((u): u is string => !!u));
    expect(uses.length).toBeGreaterThanOrEqual(6);
    for (const u of uses) expect(u).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/);
    for (const line of workflowText.split('\n').filter((l) => l.includes('uses:'))) expect(line).toMatch(/ # v\d+\.\d+\.\d+$/);
    for (const j of Object.values(wf.jobs)) expect(j.permissions).toBeUndefined();
    expect(nightlyWf.permissions).toEqual({ contents: 'read' });
    expect(Object.keys(nightlyWf.on)).toEqual(expect.arrayContaining(['schedule', 'workflow_dispatch']));
    expect(Object.keys(wf.on)).toEqual(['workflow_call']);
  });

  it('runs the default matrix and the bug library, each through the reusable matrix workflow', () => {
    const calls = Object.values(nightlyWf.jobs).map((j) => `${j.uses} ${j.with.matrix} ${j.with.name} ${j.secrets}`);
    expect(calls).toEqual(['./.github/workflows/matrix.yml matrices/default.yaml default inherit', './.github/workflows/matrix.yml matrices/bugs.yaml bugs inherit']);
    for (const j of Object.values(nightlyWf.jobs)) expect(fs.existsSync(path.join(repoRoot, j.with.matrix ?? ''))).toBe(true);
    expect(wf.env.NIGHTLY_MATRIX).toBe('${{ inputs.matrix }}');
    // two calls in one run: their artifacts and caches must not collide
    expect(workflowText).toContain('name: shard-${{ inputs.name }}-${{ matrix.shard.id }}');
    expect(workflowText).toContain('pattern: shard-${{ inputs.name }}-*');
  });

  it('runs the shards in a Debian 12 container, one per planned shard, with KVM when the runner has it and a cache per kernel', () => {
    const { plan, shard, report } = wf.jobs as Record<'plan' | 'shard' | 'report', Job>;
    expect(plan.steps.map((s) => s.run ?? '')).toContain('node .ci/nightly.mjs plan');
    expect(plan.outputs).toMatchObject({ shards: '${{ steps.plan.outputs.shards }}', kvm_options: '${{ steps.plan.outputs.kvm_options }}' });
    expect(shard.needs).toBe('plan');
    expect(shard.container?.image).toMatch(/^node:20-bookworm$/); // Debian 12: linux-source-6.1 is in its archive
    expect(shard.container?.options).toBe('${{ needs.plan.outputs.kvm_options }}');
    expect(shard.strategy?.matrix.shard).toBe('${{ fromJSON(needs.plan.outputs.shards) }}');
    const cache = shard.steps.find((s) => s.uses?.startsWith('actions/cache@'))!;
    expect(cache.with?.key).toMatch(/^kernels-\$\{\{ inputs\.name \}\}-\$\{\{ matrix\.shard\.key \}\}-/);
    expect(cache.with?.path).toBe('.kernel-cache');
    expect(shard.steps.map((s) => s.run ?? '')).toContain('node .ci/nightly.mjs shard ${{ matrix.shard.index }}/${{ matrix.shard.of }}');
    // the remote cache: read during the shard, published after it, both only from a secret
    const runs = shard.steps.map((s) => s.run ?? '');
    expect(runs.indexOf('node .ci/nightly.mjs publish')).toBeGreaterThan(runs.indexOf('node .ci/nightly.mjs shard ${{ matrix.shard.index }}/${{ matrix.shard.of }}'));
    const publish = shard.steps.find((s) => s.run === 'node .ci/nightly.mjs publish') as Job['steps'][number] & { env?: Record<string, string> };
    expect(publish.env?.KERNEL_REPRO_REMOTE_CACHE).toBe('${{ secrets.KERNEL_REPRO_REMOTE_CACHE }}');
    expect(report.needs).toEqual(['plan', 'shard']);
    expect(report.if).toMatch(/always\(\)/);
    expect(report.steps.map((s) => s.run ?? '')).toContain('node .ci/nightly.mjs merge shards');
    const uploads = report.steps.filter((s) => s.uses?.startsWith('actions/upload-artifact@')).map((s) => s.with?.path);
    expect(uploads).toEqual(['merged', 'merged/junit.xml']);
  });

  it('bounds the kept cache with options the CLI accepts', () => {
    const text = fs.readFileSync(script, 'utf8');
    const gc = /\['cache', 'gc', '--older-than', '([^']+)', '--max-size', '([^']+)'\]/.exec(text);
    expect(gc).not.toBeNull();
    expect(parseDuration(gc![1]!, '--older-than')).toBe(20 * 3_600_000);
    expect(parseSize(gc![2]!, '--max-size')).toBe(3 * 1024 ** 3);
  });
});

describe('.ci/nightly.mjs', { timeout: 120_000 }, () => {
  it('plan: one shard per kernel of the default matrix, and the KVM device only when there is one', async () => {
    const defaultCells = expandMatrix(loadDataFile(path.join(repoRoot, 'matrices/default.yaml'), matrixSchema));
    const kvm = path.join(tmp, 'kvm');
    fs.writeFileSync(kvm, '');
    for (const [device, options] of [
      [kvm, `--device ${kvm}`],
      [path.join(tmp, 'no-kvm'), ''],
    ] as const) {
      const out = path.join(tmp, `github-output-${options ? 'kvm' : 'tcg'}`);
      const r = await nightly(['plan'], { GITHUB_OUTPUT: out, NIGHTLY_KVM_DEVICE: device });
      expect(r.exitCode, r.stderr).toBe(0);
      const lines = Object.fromEntries(fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(lines.kvm_options).toBe(options);
      const shards = JSON.parse(lines.shards!) as Array<{ index: number; of: number; kernels: string[]; cells: number; id: string; key: string }>;
      expect(shards.map(({ index, of, kernels, cells }) => ({ index, of, kernels, cells }))).toEqual(planShards(defaultCells, 2));
      expect(shards.map((s) => `${s.id} ${s.key}`)).toEqual(['1-of-2 6.1-vanilla', '2-of-2 6.1-fixed']);
    }
  });

  it('publish: skipped without a remote cache; with one, cache push of kernels and images (an unreachable one fails)', async () => {
    const none = await nightly(['publish'], { KERNEL_REPRO_REMOTE_CACHE: '' });
    expect(none.exitCode, none.stderr).toBe(0);
    expect(none.stderr).toContain('no remote cache configured (KERNEL_REPRO_REMOTE_CACHE): nothing to publish');
    const cache = path.join(tmp, 'publish-cache');
    fs.mkdirSync(path.join(cache, 'kernels', 'a'.repeat(64)), { recursive: true });
    fs.writeFileSync(path.join(cache, 'kernels', 'a'.repeat(64), 'manifest.json'), JSON.stringify({ key: 'a'.repeat(64), files: {}, meta: {} }));
    const down = await nightly(['publish'], { KERNEL_REPRO_CACHE: cache, KERNEL_REPRO_REMOTE_CACHE: 'http://127.0.0.1:9/cache' });
    expect(down.stderr).toContain('kernel-repro cache push --kind kernels,images,snapshots');
    expect(down.stderr).toMatch(/remote cache unreachable \(.*ECONNREFUSED/);
    expect(down.exitCode).toBe(3);
  });

  const writeShards = (dir: string, indices: number[], o: { failing?: boolean } = {}): void => {
    for (const i of indices) {
      const res = matrixResult(SMALL_MATRIX, {
        shard: { index: i, of: 3 },
        accel: i === 1 ? 'kvm' : 'tcg',
        ...(o.failing ? { verdictOf: (c) => (c.kernel === 'k-c' && c.variant === 'rp1' ? 'timeout' : (c.expected ?? 'not-reproduced')) } : {}),
      });
      fs.mkdirSync(path.join(dir, `shard-${i}-of-3`), { recursive: true });
      fs.writeFileSync(path.join(dir, `shard-${i}-of-3`, 'matrix.json'), JSON.stringify(res));
    }
  };

  it('merge: all shards give one report, the Markdown summary in the job summary, JUnit valid for Jenkins', async () => {
    const shards = path.join(tmp, 'all');
    writeShards(shards, [1, 2, 3]);
    const summary = path.join(tmp, 'step-summary-all.md');
    const merged = path.join(tmp, 'merged-all');
    const r = await nightly(['merge', shards], { GITHUB_STEP_SUMMARY: summary, NIGHTLY_MERGED: merged });
    expect(r.exitCode, r.stderr).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(merged, 'matrix.json'), 'utf8')) as { schemaVersion: number; cells: unknown[]; shards: Array<{ accel: string }> };
    expect(m.schemaVersion).toBe(MATRIX_SCHEMA_VERSION);
    expect(m.cells).toHaveLength(6);
    expect(m.shards.map((s) => s.accel)).toEqual(['kvm', 'tcg', 'tcg']);
    const md = fs.readFileSync(summary, 'utf8');
    expect(md).toContain('## kernel-repro matrix `small`: 6 cells, all as expected');
    expect(md).toContain('| 1/3 | k-a | **kvm** (KVM works (probe boot 300 ms)) | `run-1` |');
    expect(md).toContain('| 2/3 | k-b | **tcg** (no /dev/kvm) | `run-2` |');
    expect(md).toContain('JUnit (junit.xml): 6 tests, 0 failures, 0 errors');
    execFileSync('xmllint', ['--noout', '--schema', path.join(repoRoot, 'test/fixtures/junit-10.xsd'), path.join(merged, 'junit.xml')], { stdio: 'pipe' });
  });

  it('merge: a cell that timed out without an expectation fails the merge (exit 1) and becomes an annotation', async () => {
    const shards = path.join(tmp, 'failing');
    writeShards(shards, [1, 2, 3], { failing: true });
    const summary = path.join(tmp, 'step-summary-failing.md');
    const r = await nightly(['merge', shards], { GITHUB_STEP_SUMMARY: summary, NIGHTLY_MERGED: path.join(tmp, 'merged-failing'), GITHUB_ACTIONS: 'true' });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('::error title=k-c case-x [rp1]::timeout: the guest ended in timeout');
    const md = fs.readFileSync(summary, 'utf8');
    expect(md).toContain('1 not as expected');
    expect(md).toContain('JUnit (junit.xml): 6 tests, 0 failures, 1 errors');
    expect(md).toContain('- `k-c|case-x|rp1`: timeout: the guest ended in timeout');
  });

  it('merge: a missing or duplicated shard is refused (exit 2) and named', async () => {
    const missing = path.join(tmp, 'missing');
    writeShards(missing, [1, 3]);
    const summary = path.join(tmp, 'step-summary-missing.md');
    const r = await nightly(['merge', missing], { GITHUB_STEP_SUMMARY: summary, NIGHTLY_MERGED: path.join(tmp, 'merged-missing') });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('shard 2/3 (k-b) is missing (given: 1/3, 3/3)');
    expect(fs.readFileSync(summary, 'utf8')).toContain('the shards could not be merged');

    const dup = path.join(tmp, 'dup');
    writeShards(dup, [1, 2, 3]);
    fs.cpSync(path.join(dup, 'shard-2-of-3'), path.join(dup, 'shard-2-again'), { recursive: true });
    const d = await nightly(['merge', dup], { NIGHTLY_MERGED: path.join(tmp, 'merged-dup') });
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toMatch(/shard 2\/3 \(k-b\) is given twice: .*shard-2-again\/matrix\.json and .*shard-2-of-3\/matrix\.json/);

    const none = await nightly(['merge', path.join(tmp, 'empty')], {});
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('no shard left a matrix.json');
  });
});
