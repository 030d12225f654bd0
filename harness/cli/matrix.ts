// `npm run matrix`: kernels x cases x sysctl variants as parallel guests, with JSON, JUnit XML, a
// self-contained HTML report and a Markdown summary; baselines; shards (whole kernels) for CI.
// `npm run report -- merge` joins the shards of one run. The logic lives in harness/matrix/.
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadCase } from '../cases/load.ts';
import { dedupeByName } from '../pipeline/dedupe.ts';
import { loadKernel } from '../kernels/load.ts';
import { byDefinitionName, expandMatrix, planShards, selectCells, shardCells, type BaselineChange, type CellSpec, type KernelChange } from '../matrix/logic.ts';
import { loadResult, readEvidence, writeReports } from '../matrix/reports.ts';
import { cellResult, MATRIX_SCHEMA_VERSION, matrixFailed, matrixJson, mergeShards, type MatrixResult, type ShardInfo } from '../matrix/result.ts';
import { matrixSchema } from '../matrix/schema.ts';
import { prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { matrixKtap } from '../report/ktap.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { loadDataFile } from '../util/load.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot, repoRoot } from '../util/paths.ts';
import { collect, guarded, newRunDir } from './common.ts';
import { runTraced } from '../pipeline/tracePath.ts';
import type { RunRecord } from '../observe/types.ts';
import { concurrencyOption, exitCodesHelp, formatOption, hiddenAlias, outputFormat, shardArg, useColor, type Format } from './options.ts';

export const DEFAULT_MATRIX = path.join(repoRoot, 'matrices/default.yaml');

interface MatrixOpts {
  matrix: string;
  concurrency?: number;
  json?: boolean;
  format?: Format;
  baseline?: string;
  failOnChange?: boolean;
  shard?: { index: number; of: number };
  planShards?: number | 'per-kernel';
  results?: string;
  install: boolean;
  cell: string[];
  tracePath?: boolean;
}

interface MergeOpts {
  results?: string;
  out?: string;
  baseline?: string;
  failOnChange?: boolean;
  json?: boolean;
  format?: Format;
}

function planShardsArg(v: string): number | 'per-kernel' {
  if (v === 'per-kernel') return v;
  if (/^\d{1,3}$/.test(v) && Number(v) >= 1) return Number(v);
  throw new InvalidArgumentError('must be a whole number of shards, or per-kernel');
}

/** Print the result as the chosen format; human text to stdout, or to stderr when stdout carries JSON/KTAP. */
function emit(res: MatrixResult, text: string, changes: BaselineChange[], kernelChanges: KernelChange[], format: Format): void {
  (format === 'text' ? process.stdout : process.stderr).write(text + '\n');
  if (format === 'json') process.stdout.write(JSON.stringify(matrixJson(res, changes, kernelChanges), null, 2) + '\n');
  if (format === 'ktap') {
    const shard = res.shard ? ` shard ${res.shard.index}/${res.shard.of} (${res.shard.kernels.join(', ')})` : '';
    process.stdout.write(matrixKtap(res.cells, [`kernel-repro matrix ${res.matrix}${shard}, run ${res.runId}`, `accelerator: ${res.accel} (${res.accelReason})`]));
  }
}

export function registerMatrix(program: Command): void {
  program
    .command('matrix')
    .description('run kernels x cases x sysctl variants in parallel guests; JSON, JUnit, HTML and Markdown reports')
    .option('--matrix <file>', 'matrix file', DEFAULT_MATRIX)
    .addOption(concurrencyOption())
    .addOption(new Option('--shard <i/n>', 'run only shard i of n; a shard holds whole kernels, so it builds only its own (CI)').argParser(shardArg))
    .addOption(new Option('--plan-shards <n>', 'print the shard plan for n shards (or per-kernel) as JSON and run nothing').argParser(planShardsArg))
    .option('--baseline <matrix.json>', 'compare verdicts with a previous run')
    .option('--fail-on-change', 'exit 1 when a verdict differs from the baseline')
    .option('--json', 'print cells[], flips[] and changes[] as JSON on stdout (same as --format json)')
    .addOption(formatOption(['text', 'json', 'ktap']))
    .option('--results <dir>', 'results folder (default: results/<run-id>)')
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .option('--cell <kernel|case|variant>', 're-run only these cells, repeatable; "*" for any part (e.g. "*|rp-filter-selftest|all.rp_filter=1")', collect, [])
    .option('--trace-path', "record the signature probe's path on each kernel (tracing variants) and name the function where the kernels' paths split, per case and variant")
    .addHelpText('after', exitCodesHelp())
    .action((opts: MatrixOpts) => guarded(() => matrix(opts)));

  const report = program.command('report').description('work with matrix results');
  report
    .command('merge')
    .description('merge the shards of one matrix run (their matrix.json files) into one report; refuses a missing or duplicated shard')
    .argument('<files...>', 'matrix.json files')
    .option('--results <dir>', 'where to write the merged matrix.json, junit.xml, report.html and summary.md')
    .addOption(hiddenAlias('--out <dir>', '--results'))
    .option('--baseline <matrix.json>', 'compare with a previous run')
    .option('--fail-on-change', 'exit 1 when a verdict differs from the baseline')
    .option('--json', 'print the merged cells as JSON on stdout (same as --format json)')
    .addOption(formatOption(['text', 'json', 'ktap']))
    .addHelpText('after', exitCodesHelp())
    .action((files: string[], o: MergeOpts) =>
      guarded(async () => {
        const format = outputFormat(o);
        const parts = files.map((f) => ({ file: f, result: loadResult(path.resolve(f), true) }));
        const merged = mergeShards(parts);
        const { runDir } = newRunDir('merge', o.results ?? o.out);
        const baseline = o.baseline ? loadResult(path.resolve(o.baseline), false) : undefined;
        const { text, changes, kernelChanges } = writeReports(merged, runDir, baseline, { color: format === 'text' && useColor() });
        emit(merged, text, changes, kernelChanges, format);
        return matrixFailed(merged, changes, o.failOnChange ?? false) ? ExitCode.runFailed : ExitCode.ok;
      }),
    );
}

export async function matrix(opts: MatrixOpts): Promise<number> {
  const format = outputFormat(opts);
  const startedAt = new Date().toISOString();
  const log = makeLogger();
  const file = path.resolve(opts.matrix);
  const given = loadDataFile(file, matrixSchema);
  // kernels and cases given by path resolve against the matrix file's folder; cells carry the
  // definitions' names (a path is no cell id, nor a results folder)
  const refIn = (r: string): string => (r.includes('/') || /\.(ya?ml|json)$/.test(r) ? path.resolve(path.dirname(file), r) : r);
  const loadedKernels = new Map(given.kernels.map((r) => [r, loadKernel(refIn(r))] as const));
  const loadedCases = new Map(given.cases.map((r) => [r, loadCase(refIn(r))] as const));
  // a kernel or case listed twice would make cells with one id (one results folder): once, with a notice
  const dk = dedupeByName(given.kernels, { name: (k) => loadedKernels.get(k)!.def.name, origin: (k) => loadedKernels.get(k)!.file, what: 'kernel', field: 'kernels', file });
  const dc = dedupeByName(given.cases, { name: (c) => loadedCases.get(c)!.def.name, origin: (c) => loadedCases.get(c)!.file, what: 'case', field: 'cases', file });
  for (const n of [...dk.notices, ...dc.notices]) log.info(`note: ${n}`);
  const kernelByName = new Map(dk.items.map((r) => [loadedKernels.get(r)!.def.name, loadedKernels.get(r)!] as const));
  const caseByName = new Map(dc.items.map((r) => [loadedCases.get(r)!.def.name, loadedCases.get(r)!] as const));
  const def = byDefinitionName(given, (k) => loadedKernels.get(k)!.def.name, (c) => loadedCases.get(c)!.def.name, file);
  const all: CellSpec[] = expandMatrix(def);
  if (opts.planShards !== undefined) {
    const n = opts.planShards === 'per-kernel' ? new Set(all.map((c) => c.kernel)).size : opts.planShards;
    const plan = planShards(all, n);
    process.stdout.write(JSON.stringify({ schemaVersion: MATRIX_SCHEMA_VERSION, matrix: def.name, cells: all.length, shards: plan.map((s) => ({ ...s, id: `${s.index}-of-${s.of}`, key: s.kernels.join('+') })) }, null, 2) + '\n');
    return ExitCode.ok;
  }
  let cells = all;
  let shard: ShardInfo | null = null;
  if (opts.shard) {
    const { index, of } = opts.shard;
    cells = shardCells(all, index, of);
    const plan = planShards(all, of);
    shard = { index, of, kernels: plan[index - 1]!.kernels, plan };
  }
  if (opts.cell.length) {
    const before = cells;
    cells = selectCells(cells, opts.cell);
    if (cells.length === 0)
      throw new HarnessError('bad-input', `no cell of ${def.name} matches ${opts.cell.join(', ')} (cells: ${before.map((c) => c.id).join(', ')})`, { file, field: '--cell' });
  }
  const baseline = opts.baseline ? loadResult(path.resolve(opts.baseline), false) : undefined;
  const kernels = [...new Set(cells.map((c) => c.kernel))].map((k) => kernelByName.get(k)!);
  const cases = [...new Set(cells.map((c) => c.case))].map((c) => caseByName.get(c)!);
  const { runId, runDir } = newRunDir('matrix', opts.results);
  log.info(`matrix ${def.name}${shard ? ` shard ${shard.index}/${shard.of} (${shard.kernels.join(', ')})` : ''}: ${cells.length} cells; results in ${runDir}`);
  const prepared = await prepare({ kernels, cases, cacheDir: cacheRoot(), log, install: opts.install, workDir: runDir, ...(opts.tracePath ? { tracing: true } : {}) });
  const specs: RunSpec[] = cells.map((c) => prepared.spec(c.kernel, c.case, { sysctlOverrides: c.sysctls, label: c.variant }));
  const runSpecs = (s: RunSpec[]): Promise<RunRecord[]> => runAll(s, prepared, { runDir, log, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  const { runs, paths } = opts.tracePath ? await runTraced(specs, runSpecs, log) : { runs: await runSpecs(specs), paths: undefined };
  const res: MatrixResult = {
    schemaVersion: MATRIX_SCHEMA_VERSION,
    tool: 'kernel-repro',
    kind: 'matrix',
    matrix: def.name,
    runId,
    startedAt,
    accel: prepared.accel.accel,
    accelReason: prepared.accel.reason,
    shard,
    ...(paths ? { divergences: paths } : {}),
    cells: cells.map((c, i) => cellResult(c, runs[i]!, readEvidence(runs[i]!))),
  };
  const { text, changes, kernelChanges } = writeReports(res, runDir, baseline, { color: format === 'text' && useColor() });
  emit(res, text, changes, kernelChanges, format);
  return matrixFailed(res, changes, opts.failOnChange ?? false) ? ExitCode.runFailed : ExitCode.ok;
}
