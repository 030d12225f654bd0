// `npm run matrix`: kernels x cases x sysctl variants as parallel guests, with JSON, JUnit XML and a
// self-contained HTML report; baselines; shards for CI. `npm run report -- merge` joins shards.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadCase } from '../cases/load.ts';
import { loadKernel } from '../kernels/load.ts';
import { compareBaseline, compareKernels, expandMatrix, shardCells, type BaselineChange, type CellSpec, type KernelChange } from '../matrix/logic.ts';
import { kernelsOf, renderKernels, type KernelEntry } from '../report/kernels.ts';
import { matrixSchema } from '../matrix/schema.ts';
import type { RunRecord, Verdict } from '../observe/types.ts';
import { prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { diffRuns } from '../report/diff.ts';
import { renderHtmlReport, type MatrixCell } from '../report/html.ts';
import { renderJUnit } from '../report/junit.ts';
import { renderDiff, renderRunDetails, renderRunsTable } from '../report/table.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { loadDataFile } from '../util/load.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot, repoRoot } from '../util/paths.ts';
import { guarded, newRunDir } from './common.ts';
import { parseAgentOutput, SECTION } from '../agent/protocol.ts';

export const DEFAULT_MATRIX = path.join(repoRoot, 'matrices/default.yaml');
const EVIDENCE_LINES = 400;

/** What a matrix run writes (matrix.json) and what `report merge` reads back. */
export interface MatrixResult {
  tool: 'kernel-repro';
  kind: 'matrix';
  matrix: string;
  runId: string;
  startedAt: string;
  accel: string;
  shard: string | null;
  /** every kernel of the result, with its source version as resolved at run time */
  kernels?: KernelEntry[];
  /** when compared with a baseline: verdict changes (each saying whether its kernel changed) and the kernels that changed */
  baseline?: { runId: string; changes: BaselineChange[]; kernelChanges: KernelChange[] };
  cells: Array<{
    id: string;
    kernel: string;
    case: string;
    variant: string;
    sysctls: Record<string, string>;
    verdict: Verdict;
    expected: Verdict | null;
    unexpected: boolean;
    reason: string;
    run: RunRecord;
    evidence: { console: string; trace: string };
  }>;
}

function readEvidence(r: RunRecord): { console: string; trace: string } {
  const lines = (f: string): string[] => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').replace(/\r/g, '').split('\n') : []);
  const con = lines(r.files.console);
  const results = fs.existsSync(r.files.results) ? fs.readFileSync(r.files.results, 'utf8') : '';
  const trace = (parseAgentOutput(results).sections[SECTION.trace] ?? '').split('\n').filter(Boolean);
  return { console: con.slice(-EVIDENCE_LINES).join('\n'), trace: trace.slice(0, EVIDENCE_LINES).join('\n') };
}

/** Write matrix.json, junit.xml and report.html for a result; return the text summary. */
export function writeReports(
  res: MatrixResult,
  dir: string,
  baseline?: MatrixResult,
): { text: string; changes: BaselineChange[]; kernelChanges: KernelChange[] } {
  fs.mkdirSync(dir, { recursive: true });
  const runs = res.cells.map((c) => c.run);
  const kernels = kernelsOf(runs);
  const changes = baseline ? compareBaseline(baseline.cells, res.cells) : [];
  const kernelChanges = baseline ? compareKernels(baseline.cells, res.cells) : [];
  const against = baseline ? { baseline: { runId: baseline.runId, changes, kernelChanges } } : {};
  fs.writeFileSync(path.join(dir, 'matrix.json'), JSON.stringify({ ...res, kernels, ...against }, null, 2));
  const changedIn = new Map(kernelChanges.flatMap((k) => k.cells.map((id) => [id, k.change] as const)));
  const cells: MatrixCell[] = res.cells.map((c) => ({
    run: c.run,
    ...(c.expected ? { expected: c.expected } : {}),
    evidence: c.evidence,
    ...(changedIn.has(c.id) ? { kernelChange: changedIn.get(c.id)! } : {}),
  }));
  fs.writeFileSync(path.join(dir, 'junit.xml'), renderJUnit(cells, { name: `kernel-repro matrix ${res.matrix}`, timestamp: res.startedAt }));
  fs.writeFileSync(
    path.join(dir, 'report.html'),
    renderHtmlReport(cells, {
      title: `kernel-repro matrix ${res.matrix}`,
      runId: res.runId,
      startedAt: res.startedAt,
      accel: res.accel,
      kernels,
      ...(baseline ? { baseline: { runId: baseline.runId, kernelChanges } } : {}),
    }),
  );
  const diffs = diffRuns(runs);
  const flips = diffs.filter((d) => d.flips);
  // report.txt as repro writes it: the table, the diff with every counter, each run's evidence
  fs.writeFileSync(path.join(dir, 'report.txt'), [renderKernels(kernels), '', renderRunsTable(runs), '', renderDiff(diffs, { allCounters: true }), ...runs.map((r) => '\n' + renderRunDetails(r))].join('\n') + '\n');
  const lines = [renderKernels(kernels), '', renderRunsTable(runs), ''];
  const unexpected = res.cells.filter((c) => c.unexpected);
  lines.push(`unexpected verdicts: ${unexpected.length}${unexpected.map((c) => `\n  ${c.id}: expected ${c.expected}, got ${c.verdict} (${c.reason})`).join('')}`);
  lines.push(`flips (verdict differs between kernels): ${flips.length ? '' : 'none'}`);
  for (const f of flips) lines.push(`  ${f.case} [${f.variant}]: ${f.kernels.map((k) => `${k}=${f.verdicts[k]}`).join('  ')}`);
  if (baseline) {
    // a verdict that moved on the same kernel is a change in behaviour; on another kernel it may be the kernel's doing
    lines.push(`changes against the baseline ${baseline.runId}: ${changes.length ? '' : 'none'}`);
    for (const ch of changes) lines.push(`  ${ch.id}: ${ch.before} -> ${ch.after}${ch.kernelChanged ? '  (kernel changed)' : '  (same kernel)'}`);
    lines.push(`kernel changed since the baseline: ${kernelChanges.length ? '' : 'none'}`);
    for (const k of kernelChanges)
      lines.push(`  ${k.kernel}: ${k.change} (${k.cells.length} cell${k.cells.length === 1 ? '' : 's'}, ${k.verdictChanges} with another verdict)`);
  }
  lines.push('', `reports: ${path.join(dir, 'report.html')}, report.txt, junit.xml, matrix.json`);
  return { text: lines.join('\n'), changes, kernelChanges };
}

function jsonOut(res: MatrixResult, changes: BaselineChange[], kernelChanges: KernelChange[]): unknown {
  const flips = diffRuns(res.cells.map((c) => c.run))
    .filter((d) => d.flips)
    .map((d) => ({ case: d.case, variant: d.variant, verdicts: d.verdicts }));
  return {
    matrix: res.matrix,
    runId: res.runId,
    shard: res.shard,
    kernels: kernelsOf(res.cells.map((c) => c.run)),
    cells: res.cells.map((c) => ({
      kernel: c.kernel,
      case: c.case,
      variant: c.variant,
      sysctls: c.sysctls,
      verdict: c.verdict,
      ...(c.expected ? { expected: c.expected } : {}),
      unexpected: c.unexpected,
      signals: Object.fromEntries(c.run.signals.map((x) => [x.name, { role: x.role, fired: x.fired, count: x.count, evidence: x.matches.slice(0, 3).map((m) => m.text) }])),
      reason: c.reason,
    })),
    flips,
    unexpected: res.cells.filter((c) => c.unexpected).length,
    changes,
    kernelChanges,
  };
}

function loadResult(file: string): MatrixResult {
  let data: MatrixResult;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8')) as MatrixResult;
  } catch (err) {
    throw new HarnessError('bad-input', `not a readable matrix result: ${(err as Error).message}`, { file, field: '(file)' });
  }
  if (data.kind !== 'matrix' || !Array.isArray(data.cells)) throw new HarnessError('bad-input', 'not a kernel-repro matrix.json', { file, field: 'kind' });
  return data;
}

interface MatrixOpts {
  matrix: string;
  concurrency?: string;
  json?: boolean;
  baseline?: string;
  failOnChange?: boolean;
  shard?: string;
  results?: string;
  install: boolean;
}

export function registerMatrix(program: Command): void {
  program
    .command('matrix')
    .description('run kernels x cases x sysctl variants in parallel guests; JSON, JUnit and HTML reports')
    .option('--matrix <file>', 'matrix file', DEFAULT_MATRIX)
    .option('-j, --concurrency <n>', 'guests at a time (default: number of cores)')
    .option('--shard <i/n>', 'run only shard i of n (CI)')
    .option('--baseline <matrix.json>', 'compare verdicts with a previous run')
    .option('--fail-on-change', 'exit 1 when a verdict differs from the baseline')
    .option('--json', 'print cells[], flips[] and changes[] as JSON on stdout')
    .option('--results <dir>', 'results folder')
    .option('--no-install', 'never install missing host packages')
    .action((opts: MatrixOpts) => guarded(() => matrix(opts)));

  const report = program.command('report').description('work with matrix results');
  report
    .command('merge')
    .description('merge shard results (matrix.json files) into one report')
    .argument('<files...>', 'matrix.json files')
    .requiredOption('--out <dir>', 'where to write the merged matrix.json, junit.xml, report.html')
    .option('--baseline <matrix.json>', 'compare with a previous run')
    .action((files: string[], o: { out: string; baseline?: string }) =>
      guarded(async () => {
        const parts = files.map(loadResult);
        const first = parts[0]!;
        const seen = new Set<string>();
        const cells = parts.flatMap((p) => p.cells).filter((c) => (seen.has(c.id) ? false : (seen.add(c.id), true)));
        const merged: MatrixResult = { ...first, shard: null, runId: `${first.runId}-merged`, cells };
        const { text, changes } = writeReports(merged, path.resolve(o.out), o.baseline ? loadResult(o.baseline) : undefined);
        process.stdout.write(text + '\n');
        return merged.cells.some((c) => c.unexpected) || changes.length ? ExitCode.runFailed : ExitCode.ok;
      }),
    );
}

export async function matrix(opts: MatrixOpts): Promise<number> {
  const startedAt = new Date().toISOString();
  const log = makeLogger();
  const file = path.resolve(opts.matrix);
  const def = loadDataFile(file, matrixSchema);
  let cells: CellSpec[] = expandMatrix(def);
  let shard: string | null = null;
  if (opts.shard) {
    const m = /^(\d+)\/(\d+)$/.exec(opts.shard);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) throw new HarnessError('bad-input', 'must be i/n with 1 <= i <= n, e.g. 2/3', { field: '--shard' });
    cells = shardCells(cells, Number(m[1]), Number(m[2]));
    shard = opts.shard;
  }
  const baseline = opts.baseline ? loadResult(path.resolve(opts.baseline)) : undefined;
  const kernels = [...new Set(cells.map((c) => c.kernel))].map((k) => loadKernel(k));
  const caseNames = [...new Set(cells.map((c) => c.case))];
  const cases = caseNames.map((c) => loadCase(c));
  const { runId, runDir } = newRunDir('matrix', opts.results);
  log.info(`matrix ${def.name}${shard ? ` shard ${shard}` : ''}: ${cells.length} cells; results in ${runDir}`);
  const prepared = await prepare({ kernels, cases, cacheDir: cacheRoot(), log, install: opts.install, workDir: runDir });
  const specs: RunSpec[] = cells.map((c) => prepared.spec(c.kernel, c.case, { sysctlOverrides: c.sysctls, label: c.variant }));
  const runs = await runAll(specs, prepared, { runDir, log, ...(opts.concurrency ? { concurrency: Number(opts.concurrency) } : {}) });
  const res: MatrixResult = {
    tool: 'kernel-repro',
    kind: 'matrix',
    matrix: def.name,
    runId,
    startedAt,
    accel: prepared.accel.accel,
    shard,
    cells: cells.map((c, i) => {
      const run = runs[i]!;
      return {
        id: c.id,
        kernel: c.kernel,
        case: c.case,
        variant: c.variant,
        sysctls: run.sysctls,
        verdict: run.verdict,
        expected: c.expected ?? null,
        unexpected: c.expected !== undefined && c.expected !== run.verdict,
        reason: run.reason,
        run,
        evidence: readEvidence(run),
      };
    }),
  };
  const { text, changes, kernelChanges } = writeReports(res, runDir, baseline);
  (opts.json ? process.stderr : process.stdout).write(text + '\n');
  if (opts.json) process.stdout.write(JSON.stringify(jsonOut(res, changes, kernelChanges), null, 2) + '\n');
  const failed = res.cells.some((c) => c.unexpected) || (opts.failOnChange && changes.length > 0);
  return failed ? ExitCode.runFailed : ExitCode.ok;
}
