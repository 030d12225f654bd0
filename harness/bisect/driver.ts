// The effects around the pure bisect algorithm: git (graph, subjects, diffstat), building each
// tested commit in the harness's persistent worktree (incremental, through the kernel cache),
// booting it, and keeping the state on disk so an interrupted bisect resumes where it stopped.
import fs from 'node:fs';
import path from 'node:path';
import { LIMITS as FILE_LIMITS, readInputFile } from '../trust/files.ts';
import type { LoadedCase } from '../cases/load.ts';
import { ensureKernel, readSourceFiles } from '../kernels/providers/index.ts';
import type { KernelArtifact } from '../kernels/artifact.ts';
import type { LoadedKernel } from '../kernels/load.ts';
import { resolveCommit } from '../kernels/source.ts';
import type { KernelDef } from '../kernels/schema.ts';
import type { RunRecord, Verdict } from '../observe/types.ts';
import { checkCaseKconfig, checkTracing, type RunSpec } from '../pipeline/prepare.ts';
import { runTraced, type PathReport } from '../pipeline/tracePath.ts';
import { runCase } from '../pipeline/runCase.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import { kernelEntry, type KernelEntry } from '../report/kernels.ts';
import { hashOf } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { run } from '../util/proc.ts';
import type { Accel } from '../vm/qemu.ts';
import { repeatPlan, repeatRun, type RepeatPlan } from '../pipeline/repeats.ts';
import { classifyRuns, runBisect, type BisectState, type CommitGraph, type Mark, type Next } from './algorithm.ts';

export interface BisectOptions {
  repo: string;
  old: string;
  new: string;
  kcase: LoadedCase;
  /** config fragments (absolute paths) merged on tinyconfig */
  fragments: string[];
  repeat: number;
  /** with repeat > 1: how the repeats are made (case snapshot, seeds); default: the case's repeats, a new base seed */
  repeats?: RepeatPlan;
  threshold: number;
  cacheDir: string;
  runDir: string;
  baseImage: string;
  /** the case's guest package layers */
  layers?: string[];
  /** the accelerator to boot with (decided once, with the first kernel built) */
  accel: (k: KernelArtifact) => Promise<Accel>;
  log: Logger;
  /** start over instead of resuming a saved state */
  fresh?: boolean;
}

export interface StepRecord {
  commit: string;
  subject: string;
  mark: Mark | 'endpoint';
  verdicts: Verdict[];
  note: string;
  buildMs: number;
  built: boolean;
  bootMs: number[];
  evidence: string[];
  /** the kernel built at this commit (absent when it did not build, or in a state saved by an older version) */
  kernel?: KernelEntry;
}

export interface BisectReport {
  repo: string;
  old: string;
  new: string;
  case: string;
  oldVerdict: Verdict;
  newVerdict: Verdict;
  result: 'found' | 'ambiguous';
  commit: string | null;
  candidates: string[];
  subject: string | null;
  author: string | null;
  date: string | null;
  diffstat: string | null;
  steps: StepRecord[];
  builds: number;
  reason: string;
  evidence: { culprit: StepRecord | null; lastOld: StepRecord | null };
  statePath: string;
  /** --trace-path: where the culprit's packet path splits from its parent's (tracing variants of both) */
  divergence?: PathReport;
  /** --repeat 2 or more: how the repeats were made (mode, base seed, jitter, case snapshots) */
  repeats?: RepeatPlan;
}

interface SavedState {
  version: 1;
  params: string;
  state: BisectState;
  steps: StepRecord[];
  endpoints?: { oldVerdict: Verdict; newVerdict: Verdict };
}

async function git(repo: string, args: string[]): Promise<string> {
  const r = await run('git', ['-C', repo, ...args], { timeoutMs: 10 * 60_000, maxBuffer: 256 * 1024 * 1024 });
  if (r.exitCode !== 0) throw new HarnessError('bad-input', `git ${args.slice(0, 3).join(' ')} failed in ${repo}: ${r.stderr.trim().split('\n')[0]}`, { field: '--repo' });
  return r.stdout;
}

export async function commitGraph(repo: string, oldC: string, newC: string): Promise<CommitGraph> {
  const out = await git(repo, ['rev-list', '--ancestry-path', '--parents', `${oldC}..${newC}`]);
  const commits: string[] = [];
  const parents: Record<string, string[]> = {};
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const [c, ...ps] = line.split(' ');
    commits.push(c!);
    parents[c!] = ps;
  }
  return { commits, parents };
}

/** The evidence of a step: the signals that fired, with their first line each. */
function summarize(r: RunRecord): string[] {
  const out = r.signals.filter((x) => x.fired).map((x) => `${x.name} x${x.count}: ${x.matches[0]?.text ?? x.description}`);
  if (r.panic) out.push(r.panic.title);
  if (out.length === 0) out.push(r.reason);
  return out;
}

function commitKernel(o: Pick<BisectOptions, 'fragments'>, repo: string, commit: string): LoadedKernel {
  const short = commit.slice(0, 12);
  const def: KernelDef = {
    name: `bisect-${short}`,
    description: '',
    source: { type: 'git', repo, rev: commit },
    patches: [],
    config: { base: 'tinyconfig', fragments: o.fragments },
    expect: 'unknown',
  };
  return { def, file: `${repo} @ ${short}`, baseDir: '/' };
}

/**
 * --trace-path on a found culprit: the tracing variants of its first parent ("before") and of the
 * culprit ("after") run the case traced, and their packet paths are compared.
 */
export async function traceCulprit(o: BisectOptions, report: BisectReport): Promise<PathReport | null> {
  if (!report.commit) return null;
  const parent = (await git(report.repo, ['rev-parse', `${report.commit}^`])).trim();
  const specs: RunSpec[] = [];
  for (const commit of [parent, report.commit]) {
    const lk = commitKernel(o, report.repo, commit);
    o.log.info(`--trace-path: the tracing variant of ${commit === parent ? 'the parent' : 'the culprit'} ${commit.slice(0, 12)}`);
    const k = await ensureKernel(lk, { cacheDir: o.cacheDir, log: o.log, needs: { options: o.kcase.def.kconfig, by: `case ${o.kcase.def.name}`, file: o.kcase.file }, tracing: true });
    checkCaseKconfig(k, [o.kcase]);
    checkTracing(k, lk.file);
    const sourceFiles = await readSourceFiles(lk, o.kcase.def.sourceFiles, { cacheDir: o.cacheDir, log: o.log, artifact: k });
    specs.push({ kernel: k, kcase: o.kcase, layers: o.layers ?? [], sourceFiles, label: 'path' });
  }
  const run = async (list: RunSpec[]): Promise<RunRecord[]> => {
    const out: RunRecord[] = [];
    for (const s of list) {
      const accel = await o.accel(s.kernel);
      const r = await runCase({ kernel: s.kernel, kcase: s.kcase, baseImage: o.baseImage, layers: s.layers ?? [], sourceFiles: s.sourceFiles ?? {}, accel, runDir: o.runDir, label: `${s.label ?? 'path'}`, ...(s.tracePath ? { tracePath: s.tracePath } : {}) });
      o.log.info(`${r.kernel} (traced): ${r.verdict} in ${(r.durationMs / 1000).toFixed(1)}s`);
      out.push(r);
    }
    return out;
  };
  const { paths } = await runTraced(specs, run, o.log);
  return paths[0] ?? null;
}

export async function bisectKernel(o: BisectOptions): Promise<BisectReport> {
  const repo = path.resolve(o.repo);
  const oldC = await resolveCommit(repo, o.old).catch(() => {
    throw new HarnessError('bad-input', `--old "${o.old}" is not a commit in ${repo}`, { field: '--old' });
  });
  const newC = await resolveCommit(repo, o.new).catch(() => {
    throw new HarnessError('bad-input', `--new "${o.new}" is not a commit in ${repo}`, { field: '--new' });
  });
  if (oldC === newC) throw new HarnessError('bad-input', '--old and --new are the same commit', { field: '--new' });
  const anc = await run('git', ['-C', repo, 'merge-base', '--is-ancestor', oldC, newC], { timeoutMs: 60_000 });
  if (anc.exitCode !== 0) throw new HarnessError('bad-input', `--old ${oldC.slice(0, 12)} is not an ancestor of --new ${newC.slice(0, 12)}`, { field: '--old' });
  const graph = await commitGraph(repo, oldC, newC);
  const plan = o.repeats ?? repeatPlan(o.kcase.def.repeats, {});
  const fragmentTexts = o.fragments.map((f) => readInputFile(f, FILE_LIMITS.config, '--kernel-config'));
  const params = hashOf({ repo: fs.realpathSync(repo), oldC, newC, case: o.kcase.def, fragmentTexts, repeat: o.repeat, threshold: o.threshold });
  const statePath = path.join(o.cacheDir, 'bisect', `${params.slice(0, 24)}.json`);
  fs.mkdirSync(path.dirname(statePath), { recursive: true });
  let saved: SavedState = { version: 1, params, state: { old: oldC, new: newC, marks: {} }, steps: [] };
  if (!o.fresh && fs.existsSync(statePath)) {
    saved = JSON.parse(fs.readFileSync(statePath, 'utf8')) as SavedState;
    o.log.info(`resuming the bisect saved in ${statePath} (${saved.steps.length} steps done)`);
  }
  const save = (): void => {
    fs.writeFileSync(statePath + '.tmp', JSON.stringify(saved, null, 2));
    fs.renameSync(statePath + '.tmp', statePath);
  };
  let builds = 0;
  const subjects = new Map<string, string>();
  const subjectOf = async (c: string): Promise<string> => {
    if (!subjects.has(c)) subjects.set(c, (await git(repo, ['show', '-s', '--format=%s', c])).trim());
    return subjects.get(c)!;
  };

  const testCommit = async (commit: string, endpoint: boolean): Promise<{ verdicts: Verdict[]; step: StepRecord; records: RunRecord[] }> => {
    const short = commit.slice(0, 12);
    const lk = commitKernel(o, repo, commit);
    const subject = await subjectOf(commit);
    const t0 = Date.now();
    let k: KernelArtifact;
    try {
      k = await ensureKernel(lk, { cacheDir: o.cacheDir, log: o.log, needs: { options: o.kcase.def.kconfig, by: `case ${o.kcase.def.name}`, file: o.kcase.file } });
    } catch (err) {
      if (err instanceof HarnessError && err.kind === 'build-failed') {
        const step: StepRecord = { commit, subject, mark: 'skip', verdicts: [], note: `build failed: ${err.message}`, buildMs: Date.now() - t0, built: true, bootMs: [], evidence: [err.excerpt ?? ''] };
        if (endpoint) throw err;
        return { verdicts: [], step, records: [] };
      }
      throw err;
    }
    if (!k.cached) builds++;
    const buildMs = Date.now() - t0;
    checkCaseKconfig(k, [o.kcase]);
    const sourceFiles = await readSourceFiles(lk, o.kcase.def.sourceFiles, { cacheDir: o.cacheDir, log: o.log, artifact: k });
    const records: RunRecord[] = [];
    const accel = await o.accel(k);
    // most bisect kernels run once: a booted-kernel snapshot (0.2 s, ~32 MB) only pays with repeats,
    // which then restore the case set up once (a case snapshot) with their own seed, clock and jitter
    const snapshot = o.repeat > 1 ? {} : { snapshot: false };
    for (let i = 0; i < o.repeat; i++)
      records.push(
        await runCase({
          kernel: k,
          kcase: o.kcase,
          baseImage: o.baseImage,
          layers: o.layers ?? [],
          sourceFiles,
          accel,
          runDir: o.runDir,
          label: `${short}-${i + 1}`,
          ...snapshot,
          ...(o.repeat > 1 ? { repeat: repeatRun(plan, i + 1) } : {}),
        }),
      );
    const verdicts = records.map((r) => r.verdict);
    const step: StepRecord = {
      commit,
      subject,
      mark: 'endpoint',
      verdicts,
      note: '',
      buildMs,
      built: !k.cached,
      bootMs: records.map((r) => r.durationMs),
      evidence: summarize(records[0]!),
      kernel: kernelEntry(k.name, artifactInfo(k)),
    };
    return { verdicts, step, records };
  };

  const majority = (vs: Verdict[]): Verdict => {
    const counts = new Map<Verdict, number>();
    for (const v of vs) counts.set(v, (counts.get(v) ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  };
  const logStep = (s: StepRecord, what: string): void =>
    o.log.info(
      `${what} ${s.commit.slice(0, 12)} "${s.subject}": ${s.verdicts.join(',') || 'no run'} -> ${s.mark}${s.note ? ` (${s.note})` : ''}; build ${(s.buildMs / 1000).toFixed(1)}s${s.built ? '' : ' (cached)'}, boot ${s.bootMs.map((b) => (b / 1000).toFixed(1) + 's').join(' ')}`,
    );

  // 1. the endpoints must differ
  if (!saved.endpoints) {
    const oldT = await testCommit(oldC, true);
    const newT = await testCommit(newC, true);
    const oldVerdict = majority(oldT.verdicts);
    const newVerdict = majority(newT.verdicts);
    oldT.step.note = `old: ${oldVerdict}`;
    newT.step.note = `new: ${newVerdict}`;
    logStep(oldT.step, 'old');
    logStep(newT.step, 'new');
    for (const [v, which] of [[oldVerdict, '--old'], [newVerdict, '--new']] as const)
      if (v !== 'reproduced' && v !== 'not-reproduced')
        throw new HarnessError('bad-input', `${which} gives "${v}", not a verdict to bisect on (${(which === '--old' ? oldT : newT).records[0]?.reason ?? ''})`, { field: which });
    if (oldVerdict === newVerdict)
      throw new HarnessError('bad-input', `--old and --new both give "${oldVerdict}" on case ${o.kcase.def.name}: nothing to bisect`, { field: '--new' });
    saved.endpoints = { oldVerdict, newVerdict };
    saved.steps.push(oldT.step, newT.step);
    save();
  }
  const { oldVerdict, newVerdict } = saved.endpoints;
  o.log.info(`bisecting ${graph.commits.length} commits for the first one that gives "${newVerdict}" (old gives "${oldVerdict}")`);

  // 2. bisect
  const result = await runBisect(
    graph,
    saved.state,
    async (commit) => {
      const t = await testCommit(commit, false);
      if (t.verdicts.length === 0) {
        saved.steps.push(t.step);
        logStep(t.step, 'step');
        return { mark: 'skip', note: t.step.note };
      }
      const outcomes = t.verdicts.map((v) => (v === newVerdict ? 'new' : v === oldVerdict ? 'old' : 'error'));
      const c = classifyRuns(outcomes, { runs: o.repeat, threshold: o.threshold });
      t.step.mark = c.mark;
      t.step.note = c.note;
      saved.steps.push(t.step);
      logStep(t.step, 'step');
      return { mark: c.mark, note: c.note };
    },
    (_s, next: Next, state) => {
      saved.state = state;
      save();
      if (next.kind === 'test') o.log.info(`${next.remaining} candidates left, about ${next.stepsLeftEstimate} more steps`);
    },
  );
  saved.state = result.state;
  save();

  const culpritC = result.outcome.kind === 'found' ? result.outcome.commit : null;
  let subject: string | null = null;
  let author: string | null = null;
  let date: string | null = null;
  let diffstat: string | null = null;
  if (culpritC) {
    const [s, a, d] = (await git(repo, ['show', '-s', '--format=%s%n%an <%ae>%n%aI', culpritC])).trim().split('\n');
    subject = s ?? null;
    author = a ?? null;
    date = d ?? null;
    diffstat = (await git(repo, ['show', '--stat', '--format=', culpritC])).trim();
  }
  const culpritStep = [...saved.steps].reverse().find((s) => s.commit === culpritC) ?? null;
  const lastOld = [...saved.steps].reverse().find((s) => s.mark === 'old' || (s.commit === oldC && s.mark === 'endpoint')) ?? null;
  return {
    repo,
    old: oldC,
    new: newC,
    case: o.kcase.def.name,
    oldVerdict,
    newVerdict,
    result: result.outcome.kind,
    commit: culpritC,
    candidates: result.outcome.kind === 'ambiguous' ? result.outcome.candidates : culpritC ? [culpritC] : [],
    subject,
    author,
    date,
    diffstat,
    steps: saved.steps,
    builds,
    reason: result.outcome.kind === 'ambiguous' ? result.outcome.reason : `first commit that gives "${newVerdict}"`,
    evidence: { culprit: culpritStep, lastOld },
    statePath,
    ...(o.repeat > 1 ? { repeats: plan } : {}),
  };
}
