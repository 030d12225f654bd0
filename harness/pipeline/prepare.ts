// Everything a batch of runs needs before the first boot: host packages, kernels (built or from
// the cache), the kconfig check of every case against every kernel, the guest image, the accelerator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { LoadedCase } from '../cases/load.ts';
import { ensurePrereqs } from '../host/prereqs.ts';
import { ensureBaseImage, type BaseImage } from '../images/initramfs.ts';
import { ensureKernel, type KernelArtifact } from '../kernels/build.ts';
import { missingRequired, parseKconfig } from '../kernels/kconfig.ts';
import type { LoadedKernel } from '../kernels/load.ts';
import type { RunRecord } from '../observe/types.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { chooseAccel, type AccelChoice } from '../vm/accel.ts';
import { bootTarget, runCase } from './runCase.ts';
import { describeKernel, kernelEntry } from '../report/kernels.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import type { SysctlOverride } from '../cases/render.ts';

export interface Prepared {
  kernels: KernelArtifact[];
  image: BaseImage;
  accel: AccelChoice;
}

/** The host packages the kernels need installed: Debian sources that are not pinned (a pinned one is fetched into the cache). */
export function prereqFilesFor(kernels: LoadedKernel[]): Array<{ file: string; pkg: string }> {
  const pkgs = new Set(kernels.flatMap((k) => (k.def.source.type === 'debian-source' && !k.def.source.version ? [k.def.source.package] : [])));
  return [...pkgs].map((pkg) => ({ file: `/usr/src/${pkg}.tar.xz`, pkg }));
}

/** Throw a bad-input error naming the option, the case and the kernel when a case's kconfig need is unmet. */
export function checkCaseKconfig(k: KernelArtifact, cases: LoadedCase[]): void {
  const cfg = parseKconfig(fs.readFileSync(k.config, 'utf8'));
  for (const c of cases) {
    const missing = missingRequired(cfg, c.def.kconfig);
    if (missing.length > 0)
      throw new HarnessError(
        'bad-input',
        `kernel ${k.name} lacks ${missing.join(', ')}, which case ${c.def.name} needs (its .config: ${k.config})`,
        { file: c.file, field: 'kconfig', hint: `add ${missing.map((m) => `${m}=y`).join(' ')} to a config fragment of ${k.name}` },
      );
  }
}

export async function prepare(o: {
  kernels: LoadedKernel[];
  cases: LoadedCase[];
  cacheDir: string;
  log: Logger;
  install: boolean;
  workDir: string;
}): Promise<Prepared> {
  await ensurePrereqs(prereqFilesFor(o.kernels), o.log, { install: o.install });
  const artifacts: KernelArtifact[] = [];
  for (const k of o.kernels) {
    const a = await ensureKernel(k, { cacheDir: o.cacheDir, log: o.log });
    o.log.info(`kernel ${a.name}: ${describeKernel(kernelEntry(a.name, artifactInfo(a)))}${a.cached ? ' (cached)' : ''}`);
    checkCaseKconfig(a, o.cases);
    artifacts.push(a);
  }
  const image = await ensureBaseImage(o.cacheDir, (m) => o.log.info(m));
  const first = artifacts[0];
  const accel = first
    ? await chooseAccel({ cacheDir: o.cacheDir, ...bootTarget(first), initrd: image.path, workDir: path.join(o.workDir, 'accel-probe') })
    : { accel: 'tcg' as const, reason: 'no kernel' };
  o.log.info(`accelerator: ${accel.accel} (${accel.reason})`);
  return { kernels: artifacts, image, accel };
}

export interface RunSpec {
  kernel: KernelArtifact;
  kcase: LoadedCase;
  sysctlOverrides?: SysctlOverride[];
  label?: string;
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
          accel: p.accel.accel,
          runDir: o.runDir,
          ...(s.sysctlOverrides ? { sysctlOverrides: s.sysctlOverrides } : {}),
          ...(s.label ? { label: s.label } : {}),
        });
        done++;
        o.log.info(`[${done}/${specs.length}] ${r.kernel} x ${r.case}${s.label ? ` [${s.label}]` : ''}: ${r.verdict} in ${(r.durationMs / 1000).toFixed(1)}s (${r.reason})`);
        o.onDone?.(r);
        return r;
      }),
    ),
  );
}
