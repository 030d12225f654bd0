// `reduce`, the effectful part: every candidate is written as a case file under the run's folder,
// loaded through the real case loader (an invalid candidate is "not the bug" without a run), and
// run as an ordinary run of the pipeline `repro` and `verify` use (prepare + runAll), with
// snapshots: the first attempt sets the candidate up and saves its case snapshot, the confirming
// repeat restores it. Case snapshots of candidates are discarded once their trial is over (each
// candidate runs once: they would only fill the snapshot budget).
import fs from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { loadCase, type LoadedCase } from '../cases/load.ts';
import { caseSchema, type CaseDef } from '../cases/schema.ts';
import { renderCase } from '../cases/render.ts';
import { loadKernel } from '../kernels/load.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import type { RunRecord } from '../observe/types.ts';
import { prepare, runAll } from '../pipeline/prepare.ts';
import { repeatPlan, repeatRun } from '../pipeline/repeats.ts';
import { kernelEntry } from '../report/kernels.ts';
import { hashOf } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import { readInputFile, MAX_DEFINITION_BYTES } from '../util/load.ts';
import type { Logger } from '../util/log.ts';
import { silentLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { SnapshotStore } from '../vm/snapshot.ts';
import type { TestOutcome } from './ddmin.ts';
import { applyElements, caseElements, closure } from './elements.ts';
import { elementReports, REDUCE_SCHEMA_VERSION, renderReduceMarkdown, type ReduceReport, type TrialRecord } from './report.ts';
import { reduceSearch } from './search.ts';
import { judgeTrial, type Role, type RunOutcome } from './trial.ts';
import { reducedYaml } from './yaml.ts';

export interface ReduceOptions {
  caseRef: string;
  buggy: string;
  against?: string;
  runDir: string;
  /** where the reduced case goes besides the run's folder */
  out?: string;
  concurrency: number;
  install: boolean;
  log: Logger;
}

export interface ReduceResult {
  /** null: the original does not show the behaviour in the first place */
  report: ReduceReport | null;
  /** the original's trial (its verdicts), always */
  originalTrial: TrialRecord;
  reducedFile: string | null;
  markdown: string | null;
}

/** A case's content: its definition, hashed (key order does not matter). */
export function candidateKey(def: CaseDef): string {
  return hashOf(def);
}

/**
 * What a candidate runs, for the memo: the case bundle it renders to (the files the guest gets),
 * so that two candidates the guest cannot tell apart (lo's entry without its MAC, or no entry: lo is
 * brought up either way) are one trial. Everything else of the case (signature, signals, deadline)
 * is the same in every candidate.
 */
export function runKey(def: CaseDef): string {
  try {
    return hashOf({ bundle: renderCase(def, { checkpoint: true }).files });
  } catch {
    return hashOf(def);
  }
}

export async function runReduce(o: ReduceOptions): Promise<ReduceResult> {
  const started = Date.now();
  const log = o.log;
  const lc = loadCase(o.caseRef);
  const text = readInputFile(lc.file, MAX_DEFINITION_BYTES, '--case');
  const ce = caseElements(lc.def);
  const buggyK = loadKernel(o.buggy);
  const fixedK = o.against ? loadKernel(o.against) : null;
  if (fixedK && fixedK.def.name === buggyK.def.name)
    throw new HarnessError('bad-input', `--kernel and --against are the same kernel (${buggyK.def.name}): the bug must be the difference between two kernels`, { field: '--against' });
  const kernels = fixedK ? [buggyK, fixedK] : [buggyK];
  const cacheDir = cacheRoot();
  const prepared = await prepare({ kernels, cases: [lc], cacheDir, log, install: o.install, workDir: o.runDir });
  const kernelOf = (role: Role): string => (role === 'buggy' ? buggyK.def.name : fixedK!.def.name);
  const plan = repeatPlan(lc.def.repeats, {});
  const limit = pLimit(Math.max(1, o.concurrency));
  const snapshots = new SnapshotStore(cacheDir);
  const trialsDir = path.join(o.runDir, 'trials');
  fs.mkdirSync(trialsDir, { recursive: true });
  const trials = new Map<string, TrialRecord>();
  let trialNo = 0;
  let runCount = 0;
  const keyOf = (ids: readonly string[]): string => runKey(applyElements(lc.def, ce, ids));

  const runTrial = async (ids: readonly string[]): Promise<TestOutcome> => {
    const t0 = Date.now();
    const id = `t${String(trialNo++).padStart(4, '0')}`;
    const kept = closure(ce, ids);
    const file = path.join(trialsDir, `${id}.yaml`);
    fs.writeFileSync(file, reducedYaml(text, lc.def, ce, kept, { header: [`kernel-repro reduce: candidate ${id} of ${lc.file} (${kept.length} of ${ce.elements.length} elements)`] }));
    const rec: TrialRecord = { id, elements: kept.length, kept, outcome: 'not-bug', flaky: false, confirmed: false, why: '', runs: [], file, ms: 0 };
    trials.set(id, rec);
    let candidate: LoadedCase;
    try {
      candidate = loadCase(file);
    } catch (err) {
      if (!(err instanceof HarnessError) || err.kind !== 'bad-input') throw err;
      Object.assign(rec, { outcome: 'invalid', why: `not a valid case (${err.field ?? ''}: ${err.message}): not the bug, not run`, ms: Date.now() - t0 });
      log.info(`${id} (${kept.length} elements): invalid candidate: ${err.field ?? ''}: ${err.message}`);
      return { bug: false, trial: id };
    }
    // what runs is the file; it must be the candidate the search means
    const expected = caseSchema.safeParse(applyElements(lc.def, ce, kept));
    if (!expected.success || candidateKey(expected.data) !== candidateKey(candidate.def))
      log.warn(`${id}: the candidate's file differs from the candidate (${file}); running the file`);
    const createdSnapshots: string[] = [];
    const run = async (role: Role, attempt: 1 | 2): Promise<RunOutcome> =>
      limit(async () => {
        const spec = { ...prepared.spec(kernelOf(role), lc.def.name, { label: `${id}-${attempt}`, repeat: repeatRun(plan, attempt) }), kcase: candidate };
        let r: RunRecord;
        try {
          [r] = (await runAll([spec], prepared, { runDir: trialsDir, log: silentLogger, concurrency: 1 })) as [RunRecord];
        } catch (err) {
          // an interrupt, a full disk or a missing prerequisite ends the reduction; anything else
          // (QEMU refusing to start, a snapshot removed under the run) is this run's error: not the bug
          if (err instanceof HarnessError && err.kind !== 'internal' && err.kind !== 'boot-failed') throw err;
          const message = err instanceof Error ? err.message : String(err);
          log.warn(`${id}: the ${role} kernel's run ${attempt} failed in the harness: ${message} (counted as an error)`);
          runCount++;
          rec.runs.push({ role, attempt, kernel: kernelOf(role), verdict: 'error', reason: `harness: ${message}`, ms: 0, dir: '' });
          return { verdict: 'error', reason: `harness: ${message}`, repeatable: false };
        }
        runCount++;
        const cs = r.vm.repeat;
        if (cs?.caseSnapshot === 'created' && cs.caseSnapshotKey) createdSnapshots.push(cs.caseSnapshotKey);
        rec.runs.push({ role, attempt, kernel: r.kernel, verdict: r.verdict, reason: r.reason, ms: r.durationMs, dir: path.dirname(r.files.console) });
        // the probes ran: the setup completed (a setup step that failed stops the case before them)
        return { verdict: r.verdict, reason: r.reason, repeatable: r.probes.length > 0, ms: r.durationMs };
      });
    try {
      const j = await judgeTrial(run, { against: fixedK !== null });
      Object.assign(rec, { outcome: j.bug ? 'bug' : 'not-bug', flaky: j.flaky, confirmed: j.confirmed, why: j.why, ms: Date.now() - t0 });
      log.info(`${id} (${kept.length} elements): ${j.bug ? 'still the bug' : 'not the bug'}: ${j.why}`);
      return { bug: j.bug, trial: id };
    } finally {
      for (const k of createdSnapshots) snapshots.discard(k);
    }
  };

  // the original first: it must show the behaviour, confirmed, or there is nothing to reduce
  const all = closure(ce, ce.elements.map((e) => e.id));
  log.info(`case ${lc.def.name}: ${ce.elements.length} removable elements (${ce.required.length} more the signature needs); checking that the original ${fixedK ? `reproduces on ${buggyK.def.name} and not on ${fixedK.def.name}` : `reproduces on ${buggyK.def.name}`}`);
  const original = await runTrial(all);
  const originalTrial = trials.get(original.trial)!;
  if (!original.bug) return { report: null, originalTrial, reducedFile: null, markdown: null };

  const result = await reduceSearch(ce, {
    test: (cands) => Promise.all(cands.map((c) => runTrial(c))),
    key: keyOf,
    parallel: Math.max(1, o.concurrency),
    original,
    onRound: (r) =>
      log.info(`round ${r.round}${r.pass > 1 ? ` (pass ${r.pass})` : ''}: ${r.elements} elements left, granularity ${r.granularity}; ${trials.size} trials, ${runCount} runs, ${((Date.now() - started) / 1000).toFixed(0)} s`),
  });

  const reducedName = `${lc.def.name}-reduced`.slice(0, 64);
  const reducedFile = path.join(o.runDir, 'reduced.yaml');
  const header = [
    `Reduced by kernel-repro reduce from ${lc.file}`,
    fixedK
      ? `(still reproduced on ${buggyK.def.name} and not-reproduced on ${fixedK.def.name}; ${result.kept.length} of ${ce.elements.length} elements kept, 1-minimal; see reduce.md)`
      : `(still reproduced on ${buggyK.def.name}, not checked against a fixed kernel; ${result.kept.length} of ${ce.elements.length} elements kept; see reduce.md)`,
  ];
  const yamlText = reducedYaml(text, lc.def, ce, result.kept, { name: reducedName, header });
  fs.writeFileSync(reducedFile, yamlText);
  // the written file is the reduced candidate (only its name differs)
  const check = loadCase(reducedFile);
  const expected = caseSchema.parse(applyElements(lc.def, ce, result.kept));
  if (candidateKey({ ...check.def, name: expected.name }) !== candidateKey(expected)) log.warn(`the reduced file ${reducedFile} differs from the reduced candidate; the trials' files are in ${trialsDir}`);
  if (o.out) {
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    fs.writeFileSync(o.out, yamlText);
  }
  const buggyA = prepared.spec(buggyK.def.name, lc.def.name).kernel;
  const fixedA = fixedK ? prepared.spec(fixedK.def.name, lc.def.name).kernel : null;
  const trialList = [...trials.values()];
  const runs = trialList.flatMap((t) => t.runs);
  const mean = (xs: number[]): number | null => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : null);
  const wallMs = Date.now() - started;
  const report: ReduceReport = {
    schemaVersion: REDUCE_SCHEMA_VERSION,
    case: { name: lc.def.name, file: lc.file },
    mode: fixedK ? 'difference' : 'reproduces',
    kernels: { buggy: kernelEntry(buggyA.name, artifactInfo(buggyA)), fixed: fixedA ? kernelEntry(fixedA.name, artifactInfo(fixedA)) : null },
    original: { elements: ce.elements.map((e) => ({ id: e.id, label: e.label })), required: ce.required },
    reduced: { name: reducedName, file: o.out ? path.resolve(o.out) : reducedFile, elements: result.kept.map((id) => ({ id, label: ce.byId.get(id)!.label })) },
    elements: elementReports(ce, result, trials),
    simplifications: result.simplifications,
    oneMinimal: true,
    trialCount: trialList.length,
    runCount,
    flakyTrials: trialList.filter((t) => t.flaky).length,
    invalidTrials: trialList.filter((t) => t.outcome === 'invalid').length,
    wallMs,
    secondsPerTrial: wallMs / 1000 / Math.max(1, trialList.length),
    originalRunMs: originalTrial.runs.find((r) => r.role === 'buggy' && r.attempt === 1)?.ms ?? null,
    meanRunMs: { firstAttempt: mean(runs.filter((r) => r.attempt === 1).map((r) => r.ms)), repeat: mean(runs.filter((r) => r.attempt === 2).map((r) => r.ms)) },
    trials: trialList,
  };
  const markdown = renderReduceMarkdown(report);
  fs.writeFileSync(path.join(o.runDir, 'reduce.json'), JSON.stringify(report, null, 2));
  fs.writeFileSync(path.join(o.runDir, 'reduce.md'), markdown);
  return { report, originalTrial, reducedFile, markdown };
}
