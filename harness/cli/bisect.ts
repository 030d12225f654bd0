// `npm run bisect`: the first commit whose verdict on a case equals the verdict at --new.
// `bisect-run`: a `git bisect run` entry (exit 0 = not reproduced, 1 = reproduced, 125 = skip).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadCase } from '../cases/load.ts';
import { bisectKernel, type BisectReport } from '../bisect/driver.ts';
import { ensurePrereqs } from '../host/prereqs.ts';
import { ensureBaseImage } from '../images/initramfs.ts';
import { ensureKernel, readSourceFiles, type KernelArtifact } from '../kernels/build.ts';
import { ensurePackageLayer } from '../images/packages.ts';
import { caseNeeds } from '../cases/needs.ts';
import { kernelsDir } from '../kernels/load.ts';
import { checkCaseKconfig } from '../pipeline/prepare.ts';
import { bootTarget, runCase } from '../pipeline/runCase.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { run } from '../util/proc.ts';
import { chooseAccel } from '../vm/accel.ts';
import type { Accel } from '../vm/qemu.ts';
import { collect, guarded, newRunDir } from './common.ts';
import { describeKernel } from '../report/kernels.ts';

interface BisectOpts {
  repo: string;
  old: string;
  new: string;
  case: string;
  kernelConfig: string[];
  repeat: string;
  threshold: string;
  json?: boolean;
  fresh?: boolean;
  results?: string;
  install: boolean;
}

function fragments(list: string[]): string[] {
  const frags = list.length ? list.map((f) => path.resolve(f)) : [path.join(kernelsDir, 'config/base.config')];
  for (const f of frags) if (!fs.existsSync(f)) throw new HarnessError('bad-input', `config fragment not found: ${f}`, { field: '--kernel-config' });
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
    .option('--repeat <n>', 'runs per commit (flaky reproducers)', '1')
    .option('--threshold <f>', 'fraction of runs that must agree for a mark (1 = unanimous)', '1')
    .option('--fresh', 'start over instead of resuming a saved bisect')
    .option('--json', 'print the result as JSON on stdout')
    .option('--results <dir>', 'results folder')
    .option('--no-install', 'never install missing host packages')
    .action((opts: BisectOpts) =>
      guarded(async () => {
        const log = makeLogger();
        const kcase = loadCase(opts.case);
        const repeat = Number(opts.repeat);
        const threshold = Number(opts.threshold);
        if (!Number.isInteger(repeat) || repeat < 1 || repeat > 50) throw new HarnessError('bad-input', 'must be a whole number from 1 to 50', { field: '--repeat' });
        if (!(threshold > 0 && threshold <= 1)) throw new HarnessError('bad-input', 'must be a fraction in (0, 1]', { field: '--threshold' });
        const frags = fragments(opts.kernelConfig);
        await ensurePrereqs([], log, { install: opts.install });
        const { runDir } = newRunDir('bisect', opts.results);
        const cacheDir = cacheRoot();
        const image = await ensureBaseImage(cacheDir, (m) => log.info(m));
        const layer = await ensurePackageLayer({ packages: caseNeeds(kcase.def).packages, cacheDir, log, baseLibs: image.meta.libs, file: kcase.file });
        // the accelerator probe needs a kernel: decided once, with the first one built
        let accel: Promise<Accel> | undefined;
        const accelFor = (k: KernelArtifact): Promise<Accel> =>
          (accel ??= chooseAccel({ cacheDir, ...bootTarget(k), initrd: image.path, workDir: runDir }).then((a) => {
            log.info(`accelerator: ${a.accel} (${a.reason})`);
            return a.accel;
          }));
        const report = await bisectKernel({
          repo: opts.repo,
          old: opts.old,
          new: opts.new,
          kcase,
          fragments: frags,
          repeat,
          threshold,
          cacheDir,
          runDir,
          baseImage: image.path,
          layers: layer ? [layer.path] : [],
          accel: accelFor,
          log,
          ...(opts.fresh ? { fresh: true } : {}),
        });
        const text = renderBisectReport(report);
        fs.writeFileSync(path.join(runDir, 'bisect.json'), JSON.stringify(report, null, 2));
        fs.writeFileSync(path.join(runDir, 'bisect.txt'), text);
        (opts.json ? process.stderr : process.stdout).write(text + `\n\nreport: ${path.join(runDir, 'bisect.txt')}\n`);
        if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
        return report.result === 'found' ? ExitCode.ok : ExitCode.runFailed;
      }),
    );

  program
    .command('bisect-run')
    .description('for `git bisect run`: build HEAD of the current git tree, run the case; exit 0 not reproduced, 1 reproduced, 125 skip')
    .requiredOption('-c, --case <name|path>', 'the case')
    .option('--kernel-config <fragment>', 'config fragment, repeatable', collect, [])
    .action((opts: { case: string; kernelConfig: string[] }) =>
      guarded(async () => {
        const log = makeLogger();
        const kcase = loadCase(opts.case);
        const top = await run('git', ['rev-parse', '--show-toplevel'], { timeoutMs: 30_000 });
        if (top.exitCode !== 0) throw new HarnessError('bad-input', 'not inside a git tree (run it from the kernel tree git bisect works on)', { field: 'cwd' });
        const repo = top.stdout.trim();
        const cacheDir = cacheRoot();
        try {
          const lk = { def: { name: 'bisect-run', description: '', source: { type: 'git' as const, repo, rev: 'HEAD' }, patches: [], config: { base: 'tinyconfig' as const, fragments: fragments(opts.kernelConfig) }, expect: 'unknown' as const }, file: repo, baseDir: '/' };
          const k = await ensureKernel(lk, { cacheDir, log, needs: { options: kcase.def.kconfig, by: `case ${kcase.def.name}`, file: kcase.file } });
          checkCaseKconfig(k, [kcase]);
          const sourceFiles = await readSourceFiles(lk, kcase.def.sourceFiles, { cacheDir, log, artifact: k });
          const image = await ensureBaseImage(cacheDir, (m) => log.info(m));
          const layer = await ensurePackageLayer({ packages: caseNeeds(kcase.def).packages, cacheDir, log, baseLibs: image.meta.libs, file: kcase.file });
          const { runDir } = newRunDir('bisect-run');
          const accel = await chooseAccel({ cacheDir, ...bootTarget(k), initrd: image.path, workDir: runDir });
          const r = await runCase({ kernel: k, kcase, baseImage: image.path, layers: layer ? [layer.path] : [], sourceFiles, accel: accel.accel, runDir });
          process.stdout.write(`${r.verdict}: ${r.reason}\n`);
          return r.verdict === 'reproduced' ? 1 : r.verdict === 'not-reproduced' ? 0 : 125;
        } catch (err) {
          if (err instanceof HarnessError && err.kind === 'build-failed') {
            process.stderr.write(`build failed, skipping this commit: ${err.message}\n`);
            return 125;
          }
          throw err;
        }
      }),
    );
}
