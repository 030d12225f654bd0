// `npm run repro`: build/fetch kernels, run cases on each, print per-run table and cross-kernel diff.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CASES, loadCase } from '../cases/load.ts';
import { loadKernel, type LoadedKernel } from '../kernels/load.ts';
import { prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { diffRuns } from '../report/diff.ts';
import { reproKtap } from '../report/ktap.ts';
import { allCompleted, buildSummary } from '../report/summary.ts';
import { renderDiff, renderRunDetails, renderRunsTable } from '../report/table.ts';
import { kernelsOf, renderKernels } from '../report/kernels.ts';
import { ExitCode } from '../util/errors.ts';
import { makeLogger, type Logger } from '../util/log.ts';
import { dedupeByName, uniqueCases } from '../pipeline/dedupe.ts';
import { cacheRoot } from '../util/paths.ts';
import { qemuVersion } from '../vm/accel.ts';
import { collect, guarded, newRunDir, parseSysctlArg } from './common.ts';
import { concurrencyOption, exitCodesHelp, formatOption, outputFormat, useColor, type Format } from './options.ts';
import { runTraced } from '../pipeline/tracePath.ts';
import { renderDivergences } from '../report/divergence.ts';
import type { RunRecord } from '../observe/types.ts';

export const DEFAULT_KERNELS = ['6.1-vanilla', '6.1-fixed'];

interface ReproOpts {
  kernel: string[];
  case: string[];
  sysctl: string[];
  json?: boolean;
  format?: Format;
  results?: string;
  concurrency?: number;
  install: boolean;
  details?: boolean;
  tracePath?: boolean;
  modules?: string;
}

export function registerRepro(program: Command): void {
  program
    .command('repro')
    .description('reproduce cases on kernels and print what each kernel did (default: the rp_filter loopback bug on 6.1 vanilla vs fixed)')
    .option('-k, --kernel <name|path>', 'kernel, repeatable (default: 6.1-vanilla, 6.1-fixed): a built-in name, a definition (.yaml), a bzImage or vmlinux, a source tree, a linux-image .deb, or a Debian package linux-image-...[=version]', collect, [])
    .option('--modules <dir>', 'modules of the kernel image given with --kernel (lib/modules/<release>; default: looked for beside the image)')
    .option('-c, --case <name|path>', `case, repeatable (default: ${DEFAULT_CASES.join(', ')}; built in: see cases/)`, collect, [])
    .option('-s, --sysctl <[ns:]key=value>', 'extra sysctl applied after the case\'s own, repeatable', collect, [])
    .option('--json', 'print the summary JSON on stdout (same as --format json; human output goes to stderr)')
    .addOption(formatOption(['text', 'json', 'ktap']))
    .option('--results <dir>', 'results folder (default: results/<run-id>)')
    .addOption(concurrencyOption())
    .option('--details', 'print the evidence of every run, not only the table and diff')
    .option('--trace-path', "record the signature probe's path through each kernel (tracing variants of the kernels) and name the function where the kernels' paths split")
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .addHelpText('after', exitCodesHelp())
    .action((opts: ReproOpts) => guarded(() => repro(opts)));
}

export async function repro(opts: ReproOpts): Promise<number> {
  const format = outputFormat(opts);
  const startedAt = new Date().toISOString();
  const log = makeLogger();
  const out = (s: string): void => void (format === 'text' ? process.stdout : process.stderr).write(s + '\n');
  const kernels = uniqueNames((opts.kernel.length ? opts.kernel : DEFAULT_KERNELS).map((r) => loadKernel(r, { modules: opts.modules })), log);
  const cases = uniqueCases((opts.case.length ? opts.case : DEFAULT_CASES).map(loadCase), log);
  const sysctls = opts.sysctl.map(parseSysctlArg);
  const { runId, runDir } = newRunDir('repro', opts.results);
  log.info(`run ${runId}: ${kernels.length} kernel(s) x ${cases.length} case(s); results in ${runDir}`);
  const prepared = await prepare({ kernels, cases, cacheDir: cacheRoot(), log, install: opts.install, workDir: runDir, ...(opts.tracePath ? { tracing: true } : {}) });
  const specs: RunSpec[] = [];
  for (const k of kernels) for (const c of cases) specs.push(prepared.spec(k.def.name, c.def.name, sysctls.length ? { sysctlOverrides: sysctls } : {}));
  const runSpecs = (s: RunSpec[]): Promise<RunRecord[]> => runAll(s, prepared, { runDir, log, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  const { runs, paths } = opts.tracePath ? await runTraced(specs, runSpecs, log) : { runs: await runSpecs(specs), paths: undefined };
  const summary = buildSummary({ runId, startedAt, accel: prepared.accel.accel, qemu: (await qemuVersion()) ?? undefined }, runs, paths);
  const diffs = diffRuns(runs);
  const color = format === 'text' && useColor();
  const kernelsHead = renderKernels(kernelsOf(runs));
  const human = [
    kernelsHead,
    '',
    renderRunsTable(runs, { color }),
    '',
    renderDiff(diffs, { color }),
    ...(paths ? ['', renderDivergences(paths)] : []),
    ...(opts.details ? runs.map((r) => '\n' + renderRunDetails(r)) : []),
  ].join('\n');
  fs.writeFileSync(path.join(runDir, 'summary.json'), JSON.stringify(summary, null, 2));
  fs.writeFileSync(path.join(runDir, 'report.txt'), [kernelsHead, '', renderRunsTable(runs), '', renderDiff(diffs, { allCounters: true }), ...(paths ? ['', renderDivergences(paths)] : []), ...runs.map((r) => '\n' + renderRunDetails(r))].join('\n'));
  out(human);
  out(`\nsummary: ${path.join(runDir, 'summary.json')}  report: ${path.join(runDir, 'report.txt')}`);
  if (format === 'json') process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  if (format === 'ktap') process.stdout.write(reproKtap(runs, [`kernel-repro repro, run ${runId}`, `accelerator: ${prepared.accel.accel} (${prepared.accel.reason})`]));
  return allCompleted(runs) ? ExitCode.ok : ExitCode.runFailed;
}

/**
 * Kernels are told apart by name (in the table, the results folders, the JSON): one given twice runs
 * once (a notice); two different ones with one name are an error.
 */
export function uniqueNames(kernels: LoadedKernel[], log?: Pick<Logger, 'info'>): LoadedKernel[] {
  const d = dedupeByName(kernels, {
    name: (k) => k.def.name,
    origin: (k) => k.file,
    what: 'kernel',
    field: '--kernel',
    hint: 'give one of them a definition file with another name (source: { type: image, path: ... } and so on; see "Adding a kernel")',
  });
  for (const n of d.notices) log?.info(`note: ${n}`);
  return d.items;
}

