// Repeats at probe cost, end to end on the real 6.1 kernels: the first repeat of a kernel x case sets
// the case up and saves the guest there (a case snapshot); the others restore it and only pay for
// their probes and evidence. Independent repeats reseed the guest's CRNG, set its clock and wait a
// seeded jitter, and what the kernel hands out differs (UUIDs, TCP initial sequence numbers, the
// clock); replays keep the snapshot's clock. Verdicts and kernel evidence are the same as a run that
// sets the case up itself. A case that stops in its setup makes no snapshot; a damaged one is made again.
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { loadCase } from '../../harness/cases/load.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { prepare, type Prepared } from '../../harness/pipeline/prepare.ts';
import { runCase } from '../../harness/pipeline/runCase.ts';
import { repeatRun, type RepeatPlan } from '../../harness/pipeline/repeats.ts';
import type { RunRecord } from '../../harness/observe/types.ts';
import { makeLogger } from '../../harness/util/log.ts';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { fileTempDir } from '../tmp.ts';
import { cli } from './helpers.ts';

const runDir = fileTempDir('kr-repeats-');
// snapshots in their own cache directory (kernels and images from the shared cache)
const snapCache = fileTempDir('kr-repeatcache-');
const fixture = path.join(repoRoot, 'test/fixtures/cases/repeat-independence.yaml');
const kernels = [loadKernel('6.1-vanilla'), loadKernel('6.1-fixed')];
const cases = [loadCase(fixture), loadCase('rp-filter-mesos')];
let prepared: Prepared;

beforeAll(async () => {
  // install: the fixture's guest packages (tcpdump for its capture) are fetched into the cache if missing
  // (--no-install would stop at them: defect 10); nothing is installed on the host
  prepared = await prepare({ kernels, cases, cacheDir: cacheRoot(), log: makeLogger(), install: true, workDir: runDir });
}, 20 * 60_000);

function caseSnapshots(): string[] {
  const dir = path.join(snapCache, 'snapshots');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((d) => /^[0-9a-f]{64}$/.test(d) && JSON.parse(fs.readFileSync(path.join(dir, d, 'manifest.json'), 'utf8')).meta.level === 'case');
}

async function series(kernel: string, kcase: string, plan: RepeatPlan, from: number, n: number, tag: string): Promise<RunRecord[]> {
  const spec = prepared.spec(kernel, kcase);
  const out: RunRecord[] = [];
  for (let i = from; i < from + n; i++)
    out.push(
      await runCase({
        kernel: spec.kernel,
        kcase: spec.kcase,
        baseImage: prepared.image.path,
        layers: spec.layers ?? [],
        accel: prepared.accel.accel,
        runDir,
        cacheDir: snapCache,
        label: `${tag}-${i}`,
        repeat: repeatRun(plan, i),
      }),
    );
  return out;
}

const output = (r: RunRecord, probe: string): string => r.probes.find((p) => p.name === probe)?.output.trim() ?? '';
const isn = (r: RunRecord): string | undefined => r.captures[0]?.summary.find((l) => /Flags \[S\]/.test(l))?.match(/seq (\d+)/)?.[1];

describe('repeats from a case snapshot', () => {
  it('independent repeats: set up once, then restored; reseeded, clock set; UUIDs and TCP ISNs differ; replays keep the snapshot clock', async () => {
    const plan: RepeatPlan = { mode: 'independent', baseSeed: '0123456789abcdef0123456789abcdef', jitterMs: 5, snapshot: true };
    const runs = await series('6.1-fixed', 'repeat-independence', plan, 1, 4, 'ind');
    expect(runs.map((r) => r.vm.repeat?.caseSnapshot)).toEqual(['created', 'restored', 'restored', 'restored']);
    expect(new Set(runs.map((r) => r.vm.repeat?.caseSnapshotKey)).size).toBe(1);
    expect(caseSnapshots()).toHaveLength(1);
    for (const r of runs) {
      expect(r.verdict).toBe('not-reproduced');
      expect(r.probes.find((p) => p.name === 'tcp')?.passed).toBe(true);
      // the guest really reseeded its CRNG with this repeat's seed (the ioctls answered ok)
      expect(r.vm.repeat?.applied).toEqual({ clock: 'ok', addEntropy: 'ok', reseed: 'ok' });
      expect(r.warnings.filter((w) => /not reseeded|not set/.test(w))).toEqual([]);
      // a restored repeat did not run the setup again: its step records are the snapshot's
      expect(r.vm.repeat?.guestMs).toBeGreaterThan(0);
    }
    // the seeds are the plan's, one per repeat
    expect(runs.map((r) => r.vm.repeat?.seed)).toEqual([1, 2, 3, 4].map((i) => repeatRun(plan, i).seed));
    const uuids = runs.map((r) => output(r, 'uuid'));
    for (const u of uuids) expect(u).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(uuids).size).toBe(4);
    const isns = runs.map(isn);
    for (const s of isns) expect(s).toMatch(/^\d+$/);
    expect(new Set(isns).size).toBe(4);

    // the guest's clock is the host's at the go (set from it), not the snapshot's: seen after a pause
    await new Promise((r) => setTimeout(r, 4000));
    const before = Math.floor(Date.now() / 1000);
    const [late] = await series('6.1-fixed', 'repeat-independence', plan, 5, 1, 'ind');
    expect(late!.vm.repeat?.caseSnapshot).toBe('restored');
    expect(Number(output(late!, 'clock'))).toBeGreaterThanOrEqual(before - 1);

    // replay: the same snapshot (same key: the go is not part of it), nothing applied, and the guest's
    // clock is the snapshot's (seconds behind the host by now)
    const replays = await series('6.1-fixed', 'repeat-independence', { ...plan, mode: 'replay' }, 1, 2, 'replay');
    for (const r of replays) {
      expect(r.vm.repeat?.caseSnapshot).toBe('restored');
      expect(r.vm.repeat?.caseSnapshotKey).toBe(runs[0]!.vm.repeat?.caseSnapshotKey);
      expect(r.vm.repeat?.applied).toEqual({ clock: 'skipped', addEntropy: 'skipped', reseed: 'skipped' });
      expect(r.vm.repeat?.jitterUs).toBe(0);
      expect(Number(output(r, 'clock'))).toBeLessThan(before - 2);
    }
  });

  it('the built-in case keeps its verdicts and kernel evidence on both kernels, repeat after repeat', async () => {
    const plan: RepeatPlan = { mode: 'independent', baseSeed: 'fedcba9876543210fedcba9876543210', jitterMs: 5, snapshot: true };
    const vanilla = await series('6.1-vanilla', 'rp-filter-mesos', plan, 1, 3, 'mesos-v');
    const fixed = await series('6.1-fixed', 'rp-filter-mesos', plan, 1, 3, 'mesos-f');
    expect(vanilla.map((r) => r.vm.repeat?.caseSnapshot)).toEqual(['created', 'restored', 'restored']);
    expect(fixed.map((r) => r.vm.repeat?.caseSnapshot)).toEqual(['created', 'restored', 'restored']);
    for (const r of vanilla) {
      expect(r.verdict).toBe('reproduced');
      // the martian line is this repeat's own (the kernel logs it during the probe, after the restore)
      expect(r.signals.find((s) => s.name === 'martian')?.matches.map((m) => `${m.fields?.src} ${m.fields?.dst} ${m.fields?.dev}`)).toEqual(['10.53.180.130 10.53.180.130 lo']);
      // counters before are the snapshot's, after are this repeat's: the delta is one repeat's drop
      expect(r.counterDeltas['host:TcpExt.IPReversePathFilter']).toBe(1);
    }
    for (const r of fixed) {
      expect(r.verdict).toBe('not-reproduced');
      expect(r.signals.find((s) => s.name === 'martian')?.fired).toBe(false);
    }
    // the same seed for repeat i on both kernels: compared on the same inputs
    expect(vanilla.map((r) => r.vm.repeat?.seed)).toEqual(fixed.map((r) => r.vm.repeat?.seed));
  });

  it('a damaged case snapshot is detected and made again; a case that stops in its setup makes none', async () => {
    const plan: RepeatPlan = { mode: 'independent', baseSeed: '00000000000000000000000000000001', jitterMs: 0, snapshot: true };
    const [first] = await series('6.1-fixed', 'repeat-independence', plan, 1, 1, 'dmg');
    const key = first!.vm.repeat!.caseSnapshotKey!;
    const file = path.join(snapCache, 'snapshots', key, 'snapshot.bin');
    fs.truncateSync(file, 4096);
    const [again] = await series('6.1-fixed', 'repeat-independence', plan, 2, 1, 'dmg');
    expect(again!.vm.repeat?.caseSnapshot).toBe('created');
    expect(again!.verdict).toBe('not-reproduced');

    // a setup step that fails: the verdict says so, no case snapshot, no wait for a go that never comes
    const broken = path.join(runDir, 'broken-setup.yaml');
    fs.writeFileSync(
      broken,
      fs.readFileSync(fixture, 'utf8').replace('name: repeat-independence', 'name: repeat-broken') + 'steps:\n  - { name: fails, ns: host, exec: [/bin/false] }\n',
    );
    const kcase = loadCase(broken);
    const spec = prepared.spec('6.1-fixed', 'repeat-independence');
    const n = caseSnapshots().length;
    const t0 = Date.now();
    const r = await runCase({ kernel: spec.kernel, kcase, baseImage: prepared.image.path, layers: spec.layers ?? [], accel: prepared.accel.accel, runDir, cacheDir: snapCache, label: 'broken', repeat: repeatRun(plan, 1) });
    expect(r.verdict).toBe('error');
    expect(r.reason).toMatch(/fails/);
    expect(r.vm.repeat?.caseSnapshot).toBe('none');
    expect(r.vm.repeat?.applied).toBeNull();
    expect(caseSnapshots()).toHaveLength(n);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('verify --repeat runs its repeats from case snapshots and says how, with the seed to run them again', async () => {
    const out = path.join(runDir, 'verify');
    const r = await cli(['verify', '--patch', 'test/fixtures/comment-only.patch', '-k', '6.1-fixed', '-c', fixture, '--repeat', '3', '-j', '1', '--results', out, '--seed', 'abcdefabcdefabcdefabcdefabcdefab'], {
      env: { KERNEL_REPRO_CACHE: cacheRoot() },
    });
    if (r.exitCode !== 0) console.error(r.stdout.slice(-2000), r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'verify.json'), 'utf8')) as { repeats: { baseSeed: string; runs: number; reseeded: number; independent: number; restored: number; caseSnapshotsCreated: number } };
    expect(json.repeats.baseSeed).toBe('abcdefabcdefabcdefabcdefabcdefab');
    expect(json.repeats.runs).toBe(6);
    expect(json.repeats.reseeded).toBe(6);
    // two kernels (base and patched): each set the case up at most once (a snapshot left by an earlier run of the same kernel and case is reused)
    expect(json.repeats.restored + json.repeats.caseSnapshotsCreated).toBe(6);
    expect(json.repeats.restored).toBeGreaterThanOrEqual(4);
    expect(fs.readFileSync(path.join(out, 'verify.md'), 'utf8')).toMatch(/Repeats: independent: guest CRNG reseeded in 6 of 6.*--seed abcdefabcdefabcdefabcdefabcdefab/);
    // a bad seed is refused while parsing, naming the option
    const bad = await cli(['verify', '--patch', 'test/fixtures/comment-only.patch', '-k', '6.1-fixed', '--seed', 'xyz']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--seed/);
  });
});
