// `npm run reduce`: from a messy reproduction to the smallest case that still tells the kernels
// apart (delta debugging over the case's elements, every trial an ordinary run; harness/reduce/).
import path from 'node:path';
import type { Command } from 'commander';
import { runReduce } from '../reduce/driver.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { makeLogger } from '../util/log.ts';
import { guarded, newRunDir } from './common.ts';
import { concurrencyOption, exitCodesHelp } from './options.ts';
import os from 'node:os';

interface ReduceOpts {
  case?: string;
  kernel?: string;
  against?: string;
  out?: string;
  results?: string;
  json?: boolean;
  concurrency?: number;
  install: boolean;
}

export function registerReduce(program: Command): void {
  program
    .command('reduce')
    .description('reduce a case to the smallest one that still reproduces on --kernel and not on --against (1-minimal, by delta debugging)')
    .option('-c, --case <name|path>', 'the case to reduce (built-in name or path)')
    .option('-k, --kernel <name|path>', 'the kernel where the case reproduces (any form --kernel takes in repro)')
    .option('--against <name|path>', 'a kernel where it does not (a fixed one): the reduced case must still tell the two apart; without it, the reduction only keeps "reproduced" (weaker)')
    .option('--out <file>', 'also write the reduced case here (it is always in the results folder as reduced.yaml)')
    .option('--results <dir>', 'results folder (default: results/<run-id>): reduced.yaml, reduce.json, reduce.md, trials/')
    .option('--json', 'print reduce.json on stdout (human output goes to stderr)')
    .addOption(concurrencyOption())
    .option('--no-install', 'never install missing host packages; fail with the command instead')
    .addHelpText(
      'after',
      exitCodesHelp() +
        '\n  For reduce, 0: reduced; 1: the original case does not reproduce on --kernel (or, with --against, also reproduces there or errs): nothing to reduce, the verdicts say why.',
    )
    .action((opts: ReduceOpts) => guarded(() => reduce(opts)));
}

export async function reduce(opts: ReduceOpts): Promise<number> {
  if (!opts.case) throw new HarnessError('bad-input', 'which case? e.g. --case rp-filter-selftest or --case ./mybug.yaml', { field: '--case' });
  if (!opts.kernel) throw new HarnessError('bad-input', 'which kernel reproduces it? e.g. --kernel 6.1-vanilla (and --against 6.1-fixed)', { field: '--kernel' });
  const log = makeLogger();
  const out = (s: string): void => void (opts.json ? process.stderr : process.stdout).write(s + '\n');
  const { runId, runDir } = newRunDir('reduce', opts.results);
  log.info(`run ${runId}: reducing ${opts.case} on ${opts.kernel}${opts.against ? ` against ${opts.against}` : ' (no --against: keeping "reproduced" only, a weaker reduction)'}; results in ${runDir}`);
  const r = await runReduce({
    caseRef: opts.case,
    buggy: opts.kernel,
    ...(opts.against ? { against: opts.against } : {}),
    runDir,
    ...(opts.out ? { out: path.resolve(opts.out) } : {}),
    concurrency: opts.concurrency ?? os.availableParallelism(),
    install: opts.install,
    log,
  });
  if (!r.report) {
    const t = r.originalTrial;
    out(
      [
        `the original case does not ${opts.against ? 'tell the kernels apart' : 'reproduce'}: nothing to reduce`,
        ...t.runs.map((x) => `  ${x.kernel} (attempt ${x.attempt}): ${x.verdict}: ${x.reason}`),
        `  (${t.why})`,
        `evidence: ${path.join(runDir, 'trials')}`,
      ].join('\n'),
    );
    return ExitCode.runFailed;
  }
  const rep = r.report;
  const kept = rep.elements.filter((e) => e.status === 'necessary' || e.status === 'required');
  out(
    [
      `${rep.case.name}: ${rep.original.elements.length} -> ${rep.reduced.elements.length} elements (1-minimal), ${rep.trialCount} trials, ${rep.runCount} runs, ${(rep.wallMs / 1000).toFixed(0)} s`,
      rep.mode === 'reproduces' ? 'weaker: kept "reproduced" on one kernel only; nothing checked that a fixed kernel still differs (give --against FIXED)' : '',
      'kept:',
      ...kept.map((e) => `  ${e.id.padEnd(28)} ${e.label}${e.status === 'required' ? `  (required: ${e.note})` : ''}`),
      ...rep.elements.filter((e) => e.status === 'simplified').map((e) => `  ${e.id.padEnd(28)} ${e.label}: ${e.note.split(';')[0]}`),
      `reduced case: ${rep.reduced.file}`,
      `report: ${path.join(runDir, 'reduce.md')}  json: ${path.join(runDir, 'reduce.json')}`,
    ]
      .filter((l) => l !== '')
      .join('\n'),
  );
  // a large JSON into a pipe: wait until it is handed over before the process exits
  if (opts.json) process.stdout.write(JSON.stringify(rep, null, 2) + '\n'); // guarded() lets it drain before exiting
  return ExitCode.ok;
}
