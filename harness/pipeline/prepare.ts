// Everything a batch of runs needs before the first boot: host packages, kernels (built or from
// the cache), the kconfig check of every case against every kernel, the guest image, the accelerator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { LoadedCase } from '../cases/load.ts';
import { ensurePrereqs } from '../host/prereqs.ts';
import { ensureBaseImage, type BaseImage } from '../images/initramfs.ts';
import { ensureKernel, hostPackagesFor, readSourceFiles } from '../kernels/providers/index.ts';
import type { KernelArtifact } from '../kernels/artifact.ts';
import { ensurePackageLayer } from '../images/packages.ts';
import { caseNeeds } from '../cases/needs.ts';
import { missingRequired, parseKconfig, TRACE_KCONFIG } from '../kernels/kconfig.ts';
import type { LoadedKernel } from '../kernels/load.ts';
import type { RunRecord } from '../observe/types.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { chooseAccel, type AccelChoice } from '../vm/accel.ts';
import { bootTarget, runCase } from './runCase.ts';
import { describeKernel, kernelEntry } from '../report/kernels.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import type { SysctlOverride } from '../cases/render.ts';
import type { RepeatRun } from './repeats.ts';

export interface Prepared {
  /** every kernel the runs use (a definition's own build, and variants with a case's kconfig needs merged) */
  kernels: KernelArtifact[];
  image: BaseImage;
  accel: AccelChoice;
  /** what a case needs to run on a kernel definition: the kernel (its own, or the variant the case's
   *  kconfig needs made), the case's package layer, the files it takes from that kernel's source tree */
  spec(kernel: string, kcase: string, extra?: Pick<RunSpec, 'sysctlOverrides' | 'label' | 'repeat'>): RunSpec;
}

/** A kernel to trace paths on (--trace-path) must have what the tracing variant merges in (a prebuilt one is only checked). */
export function checkTracing(k: KernelArtifact, file: string): void {
  const missing = missingRequired(parseKconfig(fs.readFileSync(k.config, 'utf8')), TRACE_KCONFIG);
  if (missing.length)
    throw new HarnessError('bad-input', `kernel ${k.name} lacks ${missing.join(', ')}, which --trace-path needs (its .config: ${k.config})`, {
      file,
      field: 'source',
      hint: 'a kernel built from source gets them merged in (the tracing variant); a prebuilt one must have them',
    });
}

/** Throw a bad-input error naming the option, the case and the kernel when a case's kconfig need is unmet. */
export function checkCaseKconfig(k: KernelArtifact, cases: LoadedCase[]): void {
  const cfg = parseKconfig(fs.readFileSync(k.config, 'utf8'));
  // a prebuilt kernel says where its config was read from (its own IKCONFIG, a file beside it)
  const from = k.meta.configFrom ? `its config: ${k.meta.configFrom}` : `its .config: ${k.config}`;
  for (const c of cases) {
    const missing = missingRequired(cfg, c.def.kconfig);
    if (missing.length > 0)
      throw new HarnessError('bad-input', `kernel ${k.name} lacks ${missing.join(', ')}, which case ${c.def.name} needs (${from})`, {
        file: c.file,
        field: 'kconfig',
        hint: k.meta.configFrom
          ? `rebuild the kernel with ${missing.map((m) => `${m}=y`).join(' ')}, or give its source tree (--kernel path/to/tree): the harness merges what the case needs`
          : `add ${missing.map((m) => `${m}=y`).join(' ')} to a config fragment of ${k.name}`,
      });
    // a module is only usable when the kernel's modules came with it
    const modular = c.def.kconfig.filter((o) => cfg.get(o) === 'm');
    if (modular.length > 0 && !k.modules)
      throw new HarnessError('bad-input', `kernel ${k.name} has ${modular.join(', ')} as module(s), which case ${c.def.name} needs, but no modules came with it (${from})`, {
        file: c.file,
        field: 'kconfig',
        hint: 'give the modules directory (--modules DIR: lib/modules/<release>, as make modules_install INSTALL_MOD_PATH=DIR makes it)',
      });
  }
}

export async function prepare(o: {
  kernels: LoadedKernel[];
  cases: LoadedCase[];
  cacheDir: string;
  log: Logger;
  install: boolean;
  workDir: string;
  /** the tracing variant of every kernel (--trace-path) */
  tracing?: boolean;
}): Promise<Prepared> {
  await ensurePrereqs(hostPackagesFor(o.kernels), o.log, { install: o.install });
  const byPair = new Map<string, { kernel: KernelArtifact; sourceFiles: Record<string, string> }>();
  const distinct = new Map<string, KernelArtifact>();
  for (const k of o.kernels) {
    for (const c of o.cases) {
      // a kernel built from source gets what the case needs merged into its config; a prebuilt one is checked
      const a = await ensureKernel(k, { cacheDir: o.cacheDir, log: o.log, install: o.install, needs: { options: c.def.kconfig, by: `case ${c.def.name}`, file: c.file }, ...(o.tracing ? { tracing: true } : {}) });
      if (o.tracing) checkTracing(a, k.file);
      if (!distinct.has(a.key)) {
        distinct.set(a.key, a);
        o.log.info(`kernel ${a.name}: ${describeKernel(kernelEntry(a.name, artifactInfo(a)))}${a.cached ? ' (cached)' : ''}`);
      }
      checkCaseKconfig(a, [c]);
      const sourceFiles = await readSourceFiles(k, c.def.sourceFiles, { cacheDir: o.cacheDir, log: o.log, install: o.install, artifact: a });
      byPair.set(JSON.stringify([k.def.name, c.def.name]), { kernel: a, sourceFiles });
    }
  }
  const image = await ensureBaseImage(o.cacheDir, o.log);
  const layers = new Map<string, string[]>();
  for (const c of o.cases) {
    const layer = await ensurePackageLayer({ packages: caseNeeds(c.def).packages, cacheDir: o.cacheDir, log: o.log, baseLibs: image.meta.libs, file: c.file, install: o.install });
    layers.set(c.def.name, layer ? [layer.path] : []);
  }
  const kernels = [...distinct.values()];
  const first = kernels[0];
  const accel = first
    ? await chooseAccel({ cacheDir: o.cacheDir, ...bootTarget(first), initrd: image.path, workDir: path.join(o.workDir, 'accel-probe') })
    : { accel: 'tcg' as const, reason: 'no kernel' };
  o.log.info(`accelerator: ${accel.accel} (${accel.reason})`);
  const caseByName = new Map(o.cases.map((c) => [c.def.name, c]));
  return {
    kernels,
    image,
    accel,
    spec(kernel, kcase, extra = {}) {
      const pair = byPair.get(JSON.stringify([kernel, kcase]));
      const c = caseByName.get(kcase);
      if (!pair || !c) throw new HarnessError('internal', `${kernel} x ${kcase} was not prepared`);
      return { kernel: pair.kernel, kcase: c, layers: layers.get(kcase) ?? [], sourceFiles: pair.sourceFiles, ...extra };
    },
  };
}

export interface RunSpec {
  kernel: KernelArtifact;
  kcase: LoadedCase;
  /** the case's guest package layers (cpio files appended to the boot image) */
  layers?: string[];
  /** files from the kernel's source tree, path -> content */
  sourceFiles?: Record<string, string>;
  sysctlOverrides?: SysctlOverride[];
  label?: string;
  /** record the signature probe's path (a tracing kernel), with the return values of these functions */
  tracePath?: { returns: string[] };
  /** one of a series of repeats (restored from the case snapshot, with its own seed, clock and jitter) */
  repeat?: RepeatRun;
}

/** Run every spec, up to `concurrency` guests at a time; results in spec order. */
export async function runAll(
  specs: RunSpec[],
  p: Prepared,
  o: { runDir: string; log: Logger; concurrency?: number; onDone?: (r: RunRecord) => void },
): Promise<RunRecord[]> {
  const limit = pLimit(Math.max(1, o.concurrency ?? os.availableParallelism()));
  let done = 0;
  return Promise.all(
    specs.map((s) =>
      limit(async () => {
        const r = await runCase({
          kernel: s.kernel,
          kcase: s.kcase,
          baseImage: p.image.path,
          ...(s.layers ? { layers: s.layers } : {}),
          ...(s.sourceFiles ? { sourceFiles: s.sourceFiles } : {}),
          accel: p.accel.accel,
          runDir: o.runDir,
          ...(s.sysctlOverrides ? { sysctlOverrides: s.sysctlOverrides } : {}),
          ...(s.label ? { label: s.label } : {}),
          ...(s.tracePath ? { tracePath: s.tracePath } : {}),
          ...(s.repeat ? { repeat: s.repeat } : {}),
        });
        done++;
        o.log.info(`[${done}/${specs.length}] ${r.kernel} x ${r.case}${s.label ? ` [${s.label}]` : ''}: ${r.verdict} in ${(r.durationMs / 1000).toFixed(1)}s (${r.reason})`);
        o.onDone?.(r);
        return r;
      }),
    ),
  );
}
