// `npm run verify`: does this patch fix (or break) the behaviour? Base vs base+patch, N runs per
// case on each, a report to paste into a mailing-list reply (Markdown), plus HTML and JSON.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CASES, loadCase } from '../cases/load.ts';
import { ensureKernel, readSourceFiles, type KernelArtifact } from '../kernels/build.ts';
import { loadKernel, resolveIn, type LoadedKernel } from '../kernels/load.ts';
import type { RunRecord } from '../observe/types.ts';
import { checkCaseKconfig, prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { conclude, diffstat, parsePatch, renderMarkdown, summarizeSide, type VerifyReport } from '../verify/logic.ts';
import { collect, guarded, newRunDir } from './common.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import { kernelEntry } from '../report/kernels.ts';

interface VerifyOpts {
  patch: string;
  base: string;
  case: string[];
  repeat: string;
  json?: boolean;
  results?: string;
  concurrency?: string;
  install: boolean;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function markdownToHtml(md: string, title: string): string {
  // the Markdown is simple (headings, a table, fenced blocks, paragraphs): render just that
  const out: string[] = [];
  let inFence = false;
  let inTable = false;
  for (const line of md.split('\n')) {
    if (line.startsWith('```')) {
      out.push(inFence ? '</pre>' : '<pre>');
      inFence = !inFence;
      continue;
    }
    if (inFence) {
      out.push(esc(line));
      continue;
    }
    if (line.startsWith('|')) {
      if (/^\|[-| ]+\|$/.test(line)) continue;
      const cells = line.split('|').slice(1, -1).map((c) => esc(c.trim()).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>'));
      out.push(`${inTable ? '' : '<table>'}<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`);
      inTable = true;
      continue;
    }
    if (inTable) {
      out.push('</table>');
      inTable = false;
    }
    const h = /^(#{2,3}) (.*)$/.exec(line);
    if (h) out.push(`<h${h[1]!.length}>${esc(h[2]!)}</h${h[1]!.length}>`);
    else if (line.trim()) out.push(`<p>${esc(line).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>')}</p>`);
  }
  if (inTable) out.push('</table>');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:.5em;overflow:auto}table{border-collapse:collapse}td{border:1px solid #999;padding:.2em .6em}</style></head><body>\n${out.join('\n')}\n</body></html>\n`;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('verify a patch: run cases on the base kernel and on base+patch, conclude per case')
    .requiredOption('--patch <file>', 'the patch (git format-patch / mbox, or a plain -p1 diff)')
    .requiredOption('--base <kernel>', 'base kernel definition (name or path)')
    .option('-c, --case <name|path>', 'case, repeatable (default: the default job\'s cases)', collect, [])
    .option('--repeat <n>', 'runs per kernel and case', '3')
    .option('-j, --concurrency <n>', 'guests at a time (default: number of cores)')
    .option('--json', 'print the report JSON on stdout')
    .option('--results <dir>', 'results folder')
    .option('--no-install', 'never install missing host packages')
    .action((opts: VerifyOpts) => guarded(() => verify(opts)));
}

export async function verify(opts: VerifyOpts): Promise<number> {
  const log = makeLogger();
  const patchFile = path.resolve(opts.patch);
  if (!fs.existsSync(patchFile)) throw new HarnessError('bad-input', `patch file not found: ${patchFile}`, { field: '--patch' });
  const repeat = Number(opts.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 50) throw new HarnessError('bad-input', 'must be a whole number from 1 to 50', { field: '--repeat' });
  const base = loadKernel(opts.base);
  const cases = (opts.case.length ? opts.case : DEFAULT_CASES).map(loadCase);
  const info = parsePatch(fs.readFileSync(patchFile, 'utf8'), path.basename(patchFile));
  const derived: LoadedKernel = {
    def: {
      ...base.def,
      name: `${base.def.name}+${path.basename(patchFile).replace(/\.(patch|diff|mbox)$/, '').slice(0, 40)}`,
      patches: [...base.def.patches.map((p) => ({ file: resolveIn(base, p.file), reverse: p.reverse })), { file: patchFile, reverse: false }],
      config: { ...base.def.config, fragments: base.def.config.fragments.map((f) => resolveIn(base, f)) },
    },
    file: base.file,
    baseDir: '/',
  };
  const { runDir } = newRunDir('verify', opts.results);
  const cacheDir = cacheRoot();
  const prepared = await prepare({ kernels: [base], cases, cacheDir, log, install: opts.install, workDir: runDir });
  const baseK = prepared.spec(base.def.name, cases[0]!.def.name).kernel;
  // the patched kernel, per case (a case's kconfig needs may make a variant of it), with its own source files
  const patchedFor = new Map<string, { kernel: KernelArtifact; sourceFiles: Record<string, string> }>();
  let problem: VerifyReport['problem'];
  try {
    for (const c of cases) {
      const k = await ensureKernel(derived, { cacheDir, log, needs: { options: c.def.kconfig, by: `case ${c.def.name}`, file: c.file } });
      checkCaseKconfig(k, [c]);
      patchedFor.set(c.def.name, { kernel: k, sourceFiles: await readSourceFiles(derived, c.def.sourceFiles, { cacheDir, log, artifact: k }) });
    }
  } catch (err) {
    if (!(err instanceof HarnessError) || err.kind !== 'build-failed') throw err;
    patchedFor.clear();
    problem = { kind: 'build failed', message: err.message, excerpt: err.excerpt ?? '' };
    log.warn(`the patched kernel did not build: ${err.message}`);
  }
  const patched = patchedFor.get(cases[0]!.def.name)?.kernel ?? null;
  const specs: RunSpec[] = [];
  for (const c of cases)
    for (let i = 1; i <= repeat; i++) {
      specs.push(prepared.spec(base.def.name, c.def.name, { label: `base-${i}` }));
      const p = patchedFor.get(c.def.name);
      if (p) specs.push({ ...prepared.spec(base.def.name, c.def.name, { label: `patched-${i}` }), kernel: p.kernel, sourceFiles: p.sourceFiles });
    }
  const runs = await runAll(specs, prepared, { runDir, log, ...(opts.concurrency ? { concurrency: Number(opts.concurrency) } : {}) });
  const pick = (k: KernelArtifact | null, c: string): RunRecord[] => (k ? runs.filter((r) => r.kernel === k.name && r.case === c) : []);
  const report: VerifyReport = {
    patch: { ...info, file: patchFile, diffstat: diffstat(info) },
    base: kernelEntry(baseK.name, artifactInfo(baseK)),
    patched: patched ? kernelEntry(patched.name, artifactInfo(patched)) : null,
    ...(problem ? { problem } : {}),
    repeat,
    cases: cases.map((c) => {
      const before = summarizeSide(pick(baseK, c.def.name));
      const afterRuns = pick(patched, c.def.name);
      const after = summarizeSide(afterRuns);
      const bootProblem = afterRuns.length > 0 && afterRuns.every((r) => r.verdict === 'panic' || r.verdict === 'timeout') ? 'boot failed' : undefined;
      return { case: c.def.name, before, after, conclusion: conclude(before, after, problem?.kind ?? bootProblem) };
    }),
  };
  const md = renderMarkdown(report);
  fs.writeFileSync(path.join(runDir, 'verify.md'), md);
  fs.writeFileSync(path.join(runDir, 'verify.html'), markdownToHtml(md, `kernel-repro: ${info.subject}`));
  const json = {
    patch: { subject: info.subject, author: info.author, date: info.date, file: patchFile, diffstat: report.patch.diffstat },
    base: report.base,
    patched: report.patched,
    problem: report.problem ?? null,
    repeat,
    cases: report.cases.map((c) => ({
      case: c.case,
      before: { reproduced: c.before.reproduced, runs: c.before.runs, signals: c.before.signals },
      after: { reproduced: c.after.reproduced, runs: c.after.runs, signals: c.after.signals },
      conclusion: c.conclusion,
    })),
  };
  fs.writeFileSync(path.join(runDir, 'verify.json'), JSON.stringify(json, null, 2));
  (opts.json ? process.stderr : process.stdout).write(md + `\nreports: ${path.join(runDir, 'verify.md')} (.html, .json)\n`);
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  return problem ? ExitCode.buildFailed : ExitCode.ok;
}
