// `npm run bisect`: the first commit whose verdict on a case equals the verdict at --new.
// `bisect-run`: a `git bisect run` entry (exit 0 = not reproduced, 1 = reproduced, 125 = skip,
// 2xx = abort: see harness/bisect/runexit.ts).
import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { loadCase } from '../cases/load.ts';
import { bisectKernel, traceCulprit, type BisectReport } from '../bisect/driver.ts';
import { renderDivergences } from '../report/divergence.ts';
import { BISECT_RUN_SKIP, bisectRunExitCode, bisectRunMeaning } from '../bisect/runexit.ts';
import { ensurePrereqs } from '../host/prereqs.ts';
import { ensureBaseImage } from '../images/initramfs.ts';
import { ensureKernel, readSourceFiles } from '../kernels/providers/index.ts';
import type { KernelArtifact } from '../kernels/artifact.ts';
import { ensurePackageLayer } from '../images/packages.ts';
import { caseNeeds } from '../cases/needs.ts';
import { kernelsDir } from '../kernels/load.ts';
import { checkCaseKconfig } from '../pipeline/prepare.ts';
import { bootTarget, runCase } from '../pipeline/runCase.ts';
import { ExitCode, formatError, HarnessError } from '../util/errors.ts';
import { MAX_DEFINITION_BYTES, readInputFile } from '../util/load.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { run, wasInterrupted } from '../util/proc.ts';
import { chooseAccel } from '../vm/accel.ts';
import type { Accel } from '../vm/qemu.ts';
import { collect, guarded, newRunDir } from './common.ts';
import { describeKernel } from '../report/kernels.ts';
import { BISECT_RUN_EXIT_CODES, exitCodesHelp, fractionArg, repeatModeOptions, repeatOption } from './options.ts';
import { repeatPlan } from '../pipeline/repeats.ts';

interface BisectOpts {
  repo: string;
  old: string;
  new: string;
  case: string;
  kernelConfig: string[];
  repeat: number;
  threshold: number;
  json?: boolean;
  fresh?: boolean;
  results?: string;
  install: boolean;
  tracePath?: boolean;
  replay?: boolean;
  seed?: string;
}

/** Version of bisect.json (and `bisect --json`); raised when a field changes meaning. */
export const BISECT_SCHEMA_VERSION = 1;

function fragments(list: string[]): string[] {
  const frags = list.length ? list.map((f) => path.resolve(f)) : [path.join(kernelsDir, 'config/base.config')];
  for (const f of frags) readInputFile(f, MAX_DEFINITION_BYTES, '--kernel-config'); // a regular file of bounded size
  return frags;
}

export function renderBisectReport(r: BisectReport): string {
  const lines = [`bisect of ${r.case} in ${r.repo}: old ${r.old.slice(0, 12)} gives ${r.oldVerdict}, new ${r.new.slice(0, 12)} gives ${r.newVerdict}`, ''];
  lines.push(`kernels: built from ${r.repo} at each step's commit (git), one config for all`);
  lines.push('steps:');
  for (const s of r.steps)
    lines.push(
      `  ${s.commit.slice(0, 12)} ${s.mark.padEnd(8)} ${(s.verdicts.join(',') || '-').padEnd(28)} build ${(s.buildMs / 1000).toFixed(1).padStart(6)}s${s.built ? '' : ' (cached)'}  boot ${s.bootMs.map((b) => (b / 1000).toFixed(1) + 's').join(' ') || '-'}  ${s.kernel ? `[${s.kernel.release}, config ${s.kernel.configHash.slice(0, 12)}]  ` : ''}${s.subject}`,
    );
  lines.push('', `kernels built: ${r.builds}`);
  if (r.repeats)
    lines.push(
      `repeats: ${r.repeats.mode === 'replay' ? 'replays of each commit\'s case snapshot' : `independent (guest CRNG reseeded, clock set, jitter up to ${r.repeats.jitterMs} ms)`}${r.repeats.snapshot ? ', restored from the case set up once per commit' : ''}; base seed ${r.repeats.baseSeed} (--seed to run the same seeds again)`,
    );
  if (r.result === 'found') {
    lines.push('', `first commit that gives "${r.newVerdict}":`, `  commit ${r.commit}`, `  Author: ${r.author}`, `  Date:   ${r.date}`, '', `      ${r.subject}`, '');
    if (r.diffstat) lines.push(...r.diffstat.split('\n').map((l) => '  ' + l));
    const ev = (label: string, s: BisectReport['evidence']['culprit']): void => {
      if (!s) return;
      lines.push(`  evidence at ${label} ${s.commit.slice(0, 12)} (${s.verdicts.join(',')}):`);
      if (s.kernel) lines.push(`    kernel: ${describeKernel(s.kernel)}`);
      for (const e of s.evidence) lines.push(`    ${e}`);
    };
    lines.push('');
    ev('the culprit', r.evidence.culprit);
    ev('the last "old" commit', r.evidence.lastOld);
    if (r.divergence) lines.push('', 'the culprit against its parent (--trace-path):', renderDivergences([r.divergence]));
  } else {
    lines.push('', `no single commit: ${r.reason}`, 'candidates (the first "new" commit is one of these):');
    for (const c of r.candidates) lines.push(`  ${c}`);
  }
  return lines.join('\n');
}

export function registerBisect(program: Command): void {
  program
    .command('bisect')
    .description('find the first commit whose verdict on a case equals the verdict at --new (a regression or a fix)')
    .requiredOption('--repo <dir>', 'kernel git repository (built in a worktree of the harness, your checkout is not touched)')
    .requiredOption('--old <rev>', 'a revision that behaves the "old" way')
    .requiredOption('--new <rev>', 'a later revision that behaves the "new" way')
    .requiredOption('-c, --case <name|path>', 'the case to run on each commit')
    .option('--kernel-config <fragment>', 'config fragment on tinyconfig, repeatable (default: kernels/config/base.config)', collect, [])
    .addOption(repeatOption('runs per commit (flaky reproducers)', 1))
    .addOption(repeatModeOptions()[0]!)
    .addOption(repeatModeOptions()[1]!)
    .addOption(new Option('--threshold <f>', 'fraction of runs that must agree for a mark (1 = unanimous)').argParser(fractionArg).default(1))
    .option('--fresh', 'start over instead of resuming a saved bisect')
    .option('--json', 'print the result as JSON on stdout')
    .option('--results <dir>', 'results folder (default: results/<run-id>)')
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .addHelpText('after', exitCodesHelp())
    .option('--trace-path', "once the culprit is found, compare its packet path with its parent's (tracing variants) and name the function where they split")
    .action((opts: BisectOpts) =>
      guarded(async () => {
        const log = makeLogger();
        const kcase = loadCase(opts.case);
        const { repeat, threshold } = opts;
        const frags = fragments(opts.kernelConfig);
        await ensurePrereqs([], log, { install: opts.install });
        const { runDir } = newRunDir('bisect', opts.results);
        const cacheDir = cacheRoot();
        const image = await ensureBaseImage(cacheDir, (m) => log.info(m));
        const layer = await ensurePackageLayer({ packages: caseNeeds(kcase.def).packages, cacheDir, log, baseLibs: image.meta.libs, file: kcase.file, install: opts.install });
        // the accelerator probe needs a kernel: decided once, with the first one built
        let accel: Promise<Accel> | undefined;
        const accelFor = (k: KernelArtifact): Promise<Accel> =>
          (accel ??= chooseAccel({ cacheDir, ...bootTarget(k), initrd: image.path, workDir: runDir }).then((a) => {
            log.info(`accelerator: ${a.accel} (${a.reason})`);
            return a.accel;
          }));
        const bo = {
          repo: opts.repo,
          old: opts.old,
          new: opts.new,
          kcase,
          fragments: frags,
          repeat,
          repeats: repeatPlan(kcase.def.repeats, { ...(opts.replay ? { replay: true } : {}), ...(opts.seed ? { seed: opts.seed } : {}) }),
          threshold,
          cacheDir,
          runDir,
          baseImage: image.path,
          layers: layer ? [layer.path] : [],
          accel: accelFor,
          log,
          ...(opts.fresh ? { fresh: true } : {}),
        };
        const report = await bisectKernel(bo);
        if (opts.tracePath && report.commit) {
          const d = await traceCulprit(bo, report);
          if (d) report.divergence = d;
        }
        const text = renderBisectReport(report);
        const json = { schemaVersion: BISECT_SCHEMA_VERSION, ...report };
        fs.writeFileSync(path.join(runDir, 'bisect.json'), JSON.stringify(json, null, 2));
        fs.writeFileSync(path.join(runDir, 'bisect.txt'), text);
        (opts.json ? process.stderr : process.stdout).write(text + `\n\nreport: ${path.join(runDir, 'bisect.txt')}\n`);
        if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
        return report.result === 'found' ? ExitCode.ok : ExitCode.runFailed;
      }),
    );

  program
    .command('bisect-run')
    .description('for `git bisect run`: build HEAD of the current git tree, run the case; exit 0 good (not reproduced), 1 bad (reproduced), 125 skip, 2xx abort')
    .requiredOption('-c, --case <name|path>', 'the case')
    .option('--kernel-config <fragment>', 'config fragment on tinyconfig, repeatable (default: kernels/config/base.config)', collect, [])
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .addHelpText('after', exitCodesHelp(BISECT_RUN_EXIT_CODES))
    .action((opts: { case: string; kernelConfig: string[]; install: boolean }) => guarded(() => bisectRun(opts), bisectRunAbortCode));
}

/** An error that escaped bisect-run: say that the bisection stops, and why; abort (or 125 for a kernel build). */
function bisectRunAbortCode(err: unknown): number {
  const code = bisectRunExitCode({ kind: 'harness-error', error: err });
  process.stderr.write(`bisect-run: this is not about the commit: stopping the bisection (exit ${code}); fix the above and run \`git bisect run\` again\n`);
  return code;
}

async function bisectRun(opts: { case: string; kernelConfig: string[]; install: boolean }): Promise<number> {
  const log = makeLogger();
  const kcase = loadCase(opts.case);
  const frags = fragments(opts.kernelConfig);
  await ensurePrereqs([], log, { install: opts.install });
  const top = await run('git', ['rev-parse', '--show-toplevel'], { timeoutMs: 30_000 });
  if (top.exitCode !== 0) throw new HarnessError('bad-input', 'not inside a git tree (run it from the kernel tree git bisect works on)', { field: 'cwd' });
  const repo = top.stdout.trim();
  const head = (await run('git', ['rev-parse', 'HEAD'], { timeoutMs: 30_000, cwd: repo })).stdout.trim();
  const cacheDir = cacheRoot();
  const lk = { def: { name: 'bisect-run', description: '', source: { type: 'git' as const, repo, rev: 'HEAD' }, patches: [], config: { base: 'tinyconfig' as const, fragments: frags }, expect: 'unknown' as const }, file: repo, baseDir: '/' };
  let k: KernelArtifact;
  try {
    // the case's kconfig needs are merged into every commit's kernel the same way
    k = await ensureKernel(lk, { cacheDir, log, install: opts.install, needs: { options: kcase.def.kconfig, by: `case ${kcase.def.name}`, file: kcase.file } });
  } catch (err) {
    if (!(err instanceof HarnessError && err.kind === 'build-failed') || wasInterrupted()) throw err;
    process.stderr.write(`${formatError(err)}\nbisect-run: ${head.slice(0, 12)}: the kernel does not build: skip (exit ${BISECT_RUN_SKIP})\n`);
    return bisectRunExitCode({ kind: 'kernel-build-failed' });
  }
  try {
    checkCaseKconfig(k, [kcase]);
  } catch (err) {
    // the same config fragments on every commit: a missing option would be missing everywhere
    if (err instanceof HarnessError && err.field === 'kconfig')
      throw new HarnessError('bad-input', err.message, { ...(err.file ? { file: err.file } : {}), field: 'kconfig', hint: `every commit is built with the same config: add the option to a fragment given with --kernel-config (default: kernels/config/base.config)` });
    throw err;
  }
  const sourceFiles = await readSourceFiles(lk, kcase.def.sourceFiles, { cacheDir, log, install: opts.install, artifact: k });
  const image = await ensureBaseImage(cacheDir, (m) => log.info(m));
  const layer = await ensurePackageLayer({ packages: caseNeeds(kcase.def).packages, cacheDir, log, baseLibs: image.meta.libs, file: kcase.file, install: opts.install });
  const { runDir } = newRunDir('bisect-run');
  const accel = await chooseAccel({ cacheDir, ...bootTarget(k), initrd: image.path, workDir: runDir });
  const r = await runCase({ kernel: k, kcase, baseImage: image.path, layers: layer ? [layer.path] : [], sourceFiles, accel: accel.accel, runDir });
  if (wasInterrupted()) throw new HarnessError('interrupted', 'interrupted during the run');
  const code = bisectRunExitCode({ kind: 'verdict', verdict: r.verdict });
  process.stdout.write(`${r.verdict}: ${r.reason}\n`);
  process.stdout.write(`bisect-run: ${head.slice(0, 12)}: ${r.verdict}: ${bisectRunMeaning(code)} (exit ${code}); evidence in ${runDir}\n`);
  return code;
}
