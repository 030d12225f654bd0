// `npm run verify`: does this patch fix (or break) the behaviour? Base vs base+patch, N runs per
// case on each, a report to paste into a mailing-list reply (Markdown), plus HTML and JSON.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CASES, loadCase } from '../cases/load.ts';
import { ensureKernel, isPrebuilt, readSourceFiles } from '../kernels/providers/index.ts';
import type { KernelArtifact } from '../kernels/artifact.ts';
import { loadKernel, resolveIn, type LoadedKernel } from '../kernels/load.ts';
import type { RunRecord } from '../observe/types.ts';
import { checkCaseKconfig, checkTracing, prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { runTraced } from '../pipeline/tracePath.ts';
import { divergenceJson } from '../report/divergence.ts';
import { HarnessError } from '../util/errors.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { readInputFile } from '../util/load.ts';
import { markdownToHtml } from '../verify/html.ts';
import { conclude, diffstat, parsePatch, renderMarkdown, summarizeSide, verifyExitCode, VERIFY_SCHEMA_VERSION, type VerifyReport } from '../verify/logic.ts';
import { collect, guarded, newRunDir } from './common.ts';
import { uniqueCases } from '../pipeline/dedupe.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import { kernelEntry } from '../report/kernels.ts';
import { concurrencyOption, exitCodesHelp, hiddenAlias, repeatModeOptions, repeatOption } from './options.ts';
import { newBaseSeed, repeatPlan, repeatRun, summarizeRepeats } from '../pipeline/repeats.ts';

interface VerifyOpts {
  patch: string;
  kernel?: string;
  base?: string;
  case: string[];
  repeat: number;
  json?: boolean;
  results?: string;
  concurrency?: number;
  install: boolean;
  tracePath?: boolean;
  replay?: boolean;
  seed?: string;
}

/** A patch is text: 16 MB is far more than any kernel patch series. */
const MAX_PATCH_BYTES = 16 * 1024 * 1024;

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('verify a patch: run cases on the base kernel and on base+patch, conclude per case')
    .requiredOption('--patch <file>', 'the patch (git format-patch / mbox, or a plain -p1 diff)')
    .option('-k, --kernel <name|path>', 'the base kernel definition: the patch goes on top of it (required)')
    .addOption(hiddenAlias('--base <kernel>', '--kernel'))
    .option('-c, --case <name|path>', 'case, repeatable (default: the default job\'s cases)', collect, [])
    .addOption(repeatOption('runs per kernel and case', 3))
    .addOption(repeatModeOptions()[0]!)
    .addOption(repeatModeOptions()[1]!)
    .addOption(concurrencyOption())
    .option('--json', 'print the report JSON on stdout')
    .option('--results <dir>', 'results folder (default: results/<run-id>)')
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .addHelpText('after', exitCodesHelp())
    .option('--trace-path', "record the signature probe's path on both kernels (tracing variants) and name the function where they split")
    .action((opts: VerifyOpts) => guarded(() => verify(opts)));
}

export async function verify(opts: VerifyOpts): Promise<number> {
  const log = makeLogger();
  const patchFile = path.resolve(opts.patch);
  const patchText = readInputFile(patchFile, MAX_PATCH_BYTES, '--patch');
  const repeat = opts.repeat;
  const kernelRef = opts.kernel ?? opts.base;
  if (!kernelRef) throw new HarnessError('bad-input', 'which kernel does the patch go on? e.g. --kernel 6.1-vanilla', { field: '--kernel' });
  const base = loadKernel(kernelRef);
  if (isPrebuilt(base))
    throw new HarnessError('bad-input', `${base.def.name} is a prebuilt kernel (${base.def.source.type}): a patch needs a kernel the harness builds`, {
      file: base.file,
      field: '--kernel',
      hint: 'give the source it was built from: a source tree (--kernel path/to/tree) or a kernel definition',
    });
  const cases = uniqueCases((opts.case.length ? opts.case : DEFAULT_CASES).map(loadCase), log);
  const info = parsePatch(patchText, path.basename(patchFile));
  const derived: LoadedKernel = {
    def: {
      ...base.def,
      name: `${base.def.name}+${path.basename(patchFile).replace(/\.(patch|diff|mbox)$/, '').slice(0, 40)}`,
      patches: [...base.def.patches.map((p) => ({ file: resolveIn(base, p.file), reverse: p.reverse })), { file: patchFile, reverse: false }],
      config: { ...base.def.config, fragments: base.def.config.fragments.map((f) => resolveIn(base, f)) },
    },
    file: base.file,
    baseDir: '/',
    patchUnderTest: patchFile,
  };
  const { runDir } = newRunDir('verify', opts.results);
  const cacheDir = cacheRoot();
  const tracing = opts.tracePath ? { tracing: true } : {};
  const prepared = await prepare({ kernels: [base], cases, cacheDir, log, install: opts.install, workDir: runDir, ...tracing });
  const baseK = prepared.spec(base.def.name, cases[0]!.def.name).kernel;
  // the patched kernel, per case (a case's kconfig needs may make a variant of it), with its own source files
  const patchedFor = new Map<string, { kernel: KernelArtifact; sourceFiles: Record<string, string> }>();
  let problem: VerifyReport['problem'];
  try {
    for (const c of cases) {
      const k = await ensureKernel(derived, { cacheDir, log, install: opts.install, needs: { options: c.def.kconfig, by: `case ${c.def.name}`, file: c.file }, ...tracing });
      checkCaseKconfig(k, [c]);
      if (opts.tracePath) checkTracing(k, patchFile);
      patchedFor.set(c.def.name, { kernel: k, sourceFiles: await readSourceFiles(derived, c.def.sourceFiles, { cacheDir, log, install: opts.install, artifact: k }) });
    }
  } catch (err) {
    if (!(err instanceof HarnessError) || err.kind !== 'build-failed') throw err;
    patchedFor.clear();
    problem = { kind: 'build failed', message: err.message, excerpt: err.excerpt ?? '' };
    log.warn(`the patched kernel did not build: ${err.message}`);
  }
  const patched = patchedFor.get(cases[0]!.def.name)?.kernel ?? null;
  // repeats: each kernel sets a case up once (a case snapshot) and every repeat restores it, with
  // its own seed (the same on both kernels), clock and jitter, unless the case or --replay says replay
  const baseSeed = opts.seed ?? newBaseSeed();
  const plans = cases.map((c) => ({ case: c.def.name, plan: repeatPlan(c.def.repeats, { ...(opts.replay ? { replay: true } : {}), seed: baseSeed }) }));
  const specs: RunSpec[] = [];
  for (const [ci, c] of cases.entries())
    for (let i = 1; i <= repeat; i++) {
      const rep = repeat > 1 ? { repeat: repeatRun(plans[ci]!.plan, i) } : {};
      specs.push(prepared.spec(base.def.name, c.def.name, { label: `base-${i}`, ...rep }));
      const p = patchedFor.get(c.def.name);
      if (p) specs.push({ ...prepared.spec(base.def.name, c.def.name, { label: `patched-${i}`, ...rep }), kernel: p.kernel, sourceFiles: p.sourceFiles });
    }
  const runSpecs = (s: RunSpec[]): Promise<RunRecord[]> => runAll(s, prepared, { runDir, log, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  const { runs, paths } = opts.tracePath ? await runTraced(specs, runSpecs, log) : { runs: await runSpecs(specs), paths: undefined };
  const pick = (k: KernelArtifact | null, c: string): RunRecord[] => (k ? runs.filter((r) => r.kernel === k.name && r.case === c) : []);
  const report: VerifyReport = {
    patch: { ...info, file: patchFile, diffstat: diffstat(info) },
    base: kernelEntry(baseK.name, artifactInfo(baseK)),
    patched: patched ? kernelEntry(patched.name, artifactInfo(patched)) : null,
    ...(problem ? { problem } : {}),
    repeat,
    ...(repeat > 1 ? { repeats: summarizeRepeats(baseSeed, plans, runs) } : {}),
    cases: cases.map((c) => {
      const before = summarizeSide(pick(baseK, c.def.name));
      const afterRuns = pick(patched, c.def.name);
      const after = summarizeSide(afterRuns);
      const bootProblem = afterRuns.length > 0 && afterRuns.every((r) => r.verdict === 'panic' || r.verdict === 'timeout') ? 'boot failed' : undefined;
      const path = paths?.find((x) => x.case === c.def.name);
      return { case: c.def.name, before, after, conclusion: conclude(before, after, problem?.kind ?? bootProblem), ...(path ? { path } : {}) };
    }),
  };
  const md = renderMarkdown(report);
  fs.writeFileSync(path.join(runDir, 'verify.md'), md);
  fs.writeFileSync(path.join(runDir, 'verify.html'), markdownToHtml(md, `kernel-repro: ${info.subject}`));
  const json = {
    schemaVersion: VERIFY_SCHEMA_VERSION,
    patch: { subject: info.subject, author: info.author, date: info.date, file: patchFile, diffstat: report.patch.diffstat },
    base: report.base,
    patched: report.patched,
    problem: report.problem ?? null,
    repeat,
    repeats: report.repeats ?? null,
    cases: report.cases.map((c) => ({
      case: c.case,
      before: { reproduced: c.before.reproduced, runs: c.before.runs, signals: c.before.signals },
      after: { reproduced: c.after.reproduced, runs: c.after.runs, signals: c.after.signals },
      conclusion: c.conclusion,
      ...(c.path ? { divergence: divergenceJson(c.path) } : {}),
    })),
  };
  fs.writeFileSync(path.join(runDir, 'verify.json'), JSON.stringify(json, null, 2));
  (opts.json ? process.stderr : process.stdout).write(md + `\nreports: ${path.join(runDir, 'verify.md')} (.html, .json)\n`);
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  return verifyExitCode(report);
}
