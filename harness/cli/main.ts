#!/usr/bin/env node
// kernel-repro command line: one small file per command; this one only wires them up.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { ExitCode } from '../util/errors.ts';
import { repoRoot } from '../util/paths.ts';
import { registerBench } from './bench.ts';
import { registerBisect } from './bisect.ts';
import { registerCache } from './cache.ts';
import { registerDoctor } from './doctor.ts';
import { registerMatrix } from './matrix.ts';
import { registerReduce } from './reduce.ts';
import { registerRepro } from './repro.ts';
import { registerVerify } from './verify.ts';
import { addColorOptions, exitCodesHelp, normalizeColorArgv } from './options.ts';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };

const program = new Command();
program
  .name('kernel-repro')
  .description('Reproduce Linux kernel networking bugs on demand, with evidence from the kernels themselves')
  .version(`kernel-repro ${pkg.version}`, '-V, --version', 'print the version and exit')
  .option('--no-snapshot', 'boot every guest cold: neither restore nor save booted-kernel snapshots (also KERNEL_REPRO_SNAPSHOT=0)')
  .hook('preAction', (cmd) => {
    if (cmd.opts<{ snapshot?: boolean }>().snapshot === false) process.env.KERNEL_REPRO_SNAPSHOT = '0';
  })
  .showHelpAfterError('(add --help for the options)')
  // a command-line error (unknown option, a value that is not a number, ...) is bad input: exit 2
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ExitCode.badInput));
addColorOptions(program);
program.addHelpText('after', exitCodesHelp() + '\n  (bisect-run speaks `git bisect run`\'s language: see `kernel-repro bisect-run --help`)');
registerRepro(program);
registerDoctor(program);
registerBisect(program);
registerVerify(program);
registerBench(program);
registerMatrix(program);
registerCache(program);
registerReduce(program);
await program.parseAsync(normalizeColorArgv(process.argv));
