#!/usr/bin/env node
// kernel-repro command line: one small file per command; this one only wires them up.
import { Command } from 'commander';
import { registerBench } from './bench.ts';
import { registerBisect } from './bisect.ts';
import { registerCache } from './cache.ts';
import { registerDoctor } from './doctor.ts';
import { registerMatrix } from './matrix.ts';
import { registerRepro } from './repro.ts';
import { registerVerify } from './verify.ts';

const program = new Command();
program
  .name('kernel-repro')
  .description('Reproduce Linux kernel networking bugs on demand, with evidence from the kernels themselves')
  .option('--no-snapshot', 'boot every guest cold: neither restore nor save booted-kernel snapshots (also KERNEL_REPRO_SNAPSHOT=0)')
  .hook('preAction', (cmd) => {
    if (cmd.opts<{ snapshot?: boolean }>().snapshot === false) process.env.KERNEL_REPRO_SNAPSHOT = '0';
  })
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
registerRepro(program);
registerDoctor(program);
registerBisect(program);
registerVerify(program);
registerBench(program);
registerMatrix(program);
registerCache(program);
await program.parseAsync(process.argv);
