// One kernel x one case: compose the initramfs, boot with a deadline, parse what the kernel and
// the agent reported, decide the verdict, keep the evidence on disk.
import fs from 'node:fs';
import path from 'node:path';
import { bundleScript, renderCase, type SysctlOverride } from '../cases/render.ts';
import type { LoadedCase } from '../cases/load.ts';
import type { KernelArtifact } from '../kernels/build.ts';
import { parseKconfig } from '../kernels/kconfig.ts';
import { diffCounters, parseNetstat, pickCounters } from '../observe/counters.ts';
import { parseFibTrace, summarizeFib } from '../observe/fib.ts';
import { parseMartians } from '../observe/martian.ts';
import { detectPanic } from '../observe/panic.ts';
import { parseAgentOutput } from '../observe/results.ts';
import type { Counters, RunRecord } from '../observe/types.ts';
import { decideVerdict } from '../observe/verdict.ts';
import type { Accel, Machine } from '../vm/qemu.ts';
import { imageWithFiles } from '../images/initramfs.ts';
import { runSession } from '../vm/session.ts';
import { SnapshotStore } from '../vm/snapshot.ts';
import { modulesForCase } from '../kernels/modsource.ts';
import { cacheRoot } from '../util/paths.ts';
import { artifactInfo } from '../kernels/artifact.ts';

export interface RunCaseOptions {
  kernel: KernelArtifact;
  kcase: LoadedCase;
  baseImage: string;
  accel: Accel;
  runDir: string;
  sysctlOverrides?: SysctlOverride[];
  /** override the case's deadline (ms) */
  deadlineMs?: number;
  machine?: Machine;
  /** label for the variant directory */
  label?: string;
  /** extra kernel command-line words (e.g. kr.fault=hang in the harness's own fault tests) */
  append?: string[];
  cacheDir?: string;
  /** restore a booted-guest snapshot of this kernel when there is one, save one when not (default true) */
  snapshot?: boolean;
  /** a restore still loading after this long is abandoned: snapshot discarded, cold boot (default 15 s) */
  restoreLimitMs?: number;
}

/** Snapshots on unless KERNEL_REPRO_SNAPSHOT=0 or the caller says no. */
export function snapshotsWanted(o: { snapshot?: boolean }): boolean {
  return o.snapshot ?? process.env.KERNEL_REPRO_SNAPSHOT !== '0';
}

/** The machine and kernel file to boot: microvm + PVH vmlinux when the kernel supports it, else pc + bzImage. */
export function bootTarget(k: KernelArtifact): { machine: Machine; kernel: string } {
  const machine = preferredMachine(k);
  return { machine, kernel: machine === 'microvm' ? k.vmlinux : k.bzImage };
}

export function preferredMachine(k: KernelArtifact): Machine {
  if (!fs.existsSync(k.vmlinux)) return 'pc'; // distribution kernels ship only a bzImage
  const cfg = parseKconfig(fs.readFileSync(k.config, 'utf8'));
  return cfg.get('CONFIG_PVH') === 'y' ? 'microvm' : 'pc';
}

/** Counters of every namespace: "ns:Section.Name" -> value, from the agent's counters-<tag>:<ns> sections. */
function countersFrom(sections: Record<string, string>, tag: string): Record<string, Counters> {
  const out: Record<string, Counters> = {};
  for (const [name, text] of Object.entries(sections)) {
    const m = new RegExp(`^counters-${tag}:(.+)$`).exec(name);
    if (m?.[1]) out[m[1]] = parseNetstat(text);
  }
  return out;
}

export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

export async function runCase(o: RunCaseOptions): Promise<RunRecord> {
  const started = Date.now();
  const c = o.kcase.def;
  const dir = path.join(o.runDir, safeName(`${o.kernel.name}__${c.name}${o.label ? '__' + o.label : ''}`));
  fs.mkdirSync(dir, { recursive: true });
  const rendered = renderCase(c, { sysctlOverrides: o.sysctlOverrides ?? [] });
  for (const [p, content] of Object.entries(rendered.files)) {
    const dest = path.join(dir, 'case', p.replace(/^\/case\//, ''));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, content);
  }
  // a modular (distribution) kernel gets exactly the modules the case's kconfig needs
  const cacheDir = o.cacheDir ?? cacheRoot();
  const mods = await modulesForCase(o.kernel, c.kconfig, cacheDir);
  // the modules go into the boot image (cached; its snapshot is shared by every run needing them),
  // the list of what to load travels with the case
  const bootFiles = Object.fromEntries(Object.entries(mods.files).filter(([p]) => p.startsWith('/lib/modules/')));
  const caseFiles = Object.fromEntries(Object.entries(mods.files).filter(([p]) => !p.startsWith('/lib/modules/')));
  const initrd = await imageWithFiles(o.baseImage, bootFiles, cacheDir);
  const caseBundle = Buffer.from(bundleScript({ ...rendered.files, ...caseFiles }));
  const target = o.machine ? { machine: o.machine, kernel: o.machine === 'microvm' ? o.kernel.vmlinux : o.kernel.bzImage } : bootTarget(o.kernel);
  const machine = target.machine;
  const deadlineMs = o.deadlineMs ?? (o.accel === 'kvm' ? Math.ceil(c.deadlineMs / 3) : c.deadlineMs);
  const consoleFile = path.join(dir, 'console.log');
  const resultsFile = path.join(dir, 'results.txt');
  fs.rmSync(consoleFile, { force: true });
  const vm = await runSession({
    spec: { accel: o.accel, machine, kernel: target.kernel, initrd, ...(o.append ? { append: o.append } : {}) },
    bundle: caseBundle,
    deadlineMs,
    consoleFile,
    resultsFile,
    snapshots: snapshotsWanted(o) ? new SnapshotStore(cacheDir) : null,
    ...(o.restoreLimitMs !== undefined ? { restoreLimitMs: o.restoreLimitMs } : {}),
  });
  let bootConsole: string | undefined;
  if (vm.snapshot.bootConsole && fs.existsSync(vm.snapshot.bootConsole)) {
    // the kernel's boot messages of a restored guest are the snapshot's: kept with the run's evidence
    bootConsole = path.join(dir, 'boot-console.log');
    fs.copyFileSync(vm.snapshot.bootConsole, bootConsole);
  }

  const report = parseAgentOutput(vm.results);
  // the console (ttyS0, console_loglevel 7) holds every kernel message the case can produce
  const martians = parseMartians(vm.console);
  const panic = detectPanic(vm.console);
  const before = countersFrom(report.sections, 'before');
  const after = countersFrom(report.sections, 'after');
  const counterDeltas: Record<string, number> = {};
  const counters: Record<string, number> = {};
  for (const [ns, a] of Object.entries(after)) {
    for (const [k, v] of Object.entries(diffCounters(before[ns] ?? {}, a))) counterDeltas[`${ns}:${k}`] = v;
    for (const [k, v] of Object.entries(pickCounters(a, c.counters))) counters[`${ns}:${k}`] = v;
  }
  const rpFilterDelta = Object.entries(counterDeltas)
    .filter(([k]) => k.endsWith('.IPReversePathFilter'))
    .reduce((s, [, v]) => s + v, 0);
  const fib = parseFibTrace(report.sections['trace'] ?? '');
  // the lookups that show the rp_filter mismatch: source-validation (reverse) lookups for a packet
  // that arrived on lo (iif 1, oif 0; in v4.18+ also proto 0 and no ports) whose result device is not lo
  const fibEvidence = fib
    .filter(
      (e) =>
        e.iif === 1 &&
        e.oif === 0 &&
        (e.proto === undefined || (e.proto === 0 && !e.sport && !e.dport)) &&
        e.nhDev !== undefined &&
        e.nhDev !== 'lo',
    )
    .map(summarizeFib);
  const uniqueFib = [...new Set(fibEvidence)];
  const { verdict, reason } = decideVerdict({
    signature: c.signature,
    controlProbes: c.probes.filter((p) => p.control).map((p) => p.name),
    report,
    martians,
    rpFilterDelta,
    panic,
    vmTimedOut: vm.timedOut,
    deadlineMs,
  });
  const sysctls: Record<string, string> = {};
  for (const s of o.sysctlOverrides ?? []) sysctls[`${s.ns}:${s.key}`] = s.value;
  const record: RunRecord = {
    kernel: o.kernel.name,
    case: c.name,
    sysctls,
    verdict,
    reason: vm.accelError ? `${reason} (QEMU: ${vm.accelError})` : reason,
    martians: martians.map((m) => ({ src: m.src, dst: m.dst, dev: m.dev, ...(m.time !== undefined ? { time: m.time } : {}), raw: m.raw })),
    counters,
    counterDeltas,
    probes: report.probes,
    fibEvidence: uniqueFib,
    fibEventCount: fib.length,
    ...(panic && panic.kind !== 'warning' ? { panic } : {}),
    kernelInfo: { ...artifactInfo(o.kernel), release: report.hello?.kernel || o.kernel.meta.release },
    vm: {
      accel: o.accel,
      machine,
      ...(report.hello ? { bootMs: report.hello.uptimeMs } : {}),
      ...(report.doneUptimeMs ? { guestMs: report.doneUptimeMs } : {}),
      ...(report.doneUptimeMs && report.caseUptimeMs !== undefined ? { caseMs: report.doneUptimeMs - report.caseUptimeMs } : {}),
      wallMs: vm.durationMs,
      exitCode: vm.exitCode,
      timedOut: vm.timedOut,
      ...(vm.stoppedAfterDone ? { stoppedAfterDone: true } : {}),
      snapshot: {
        use: vm.snapshot.use,
        ...(vm.snapshot.key ? { key: vm.snapshot.key } : {}),
        ...(vm.snapshot.restoreMs !== undefined ? { restoreMs: vm.snapshot.restoreMs } : {}),
        ...(vm.snapshot.note ? { note: vm.snapshot.note } : {}),
      },
    },
    durationMs: Date.now() - started,
    files: { console: consoleFile, results: resultsFile, record: path.join(dir, 'record.json'), ...(bootConsole ? { bootConsole } : {}) },
  };
  if (report.steps.some((s) => s.rc !== 0)) {
    const failed = report.steps.find((s) => s.rc !== 0)!;
    const out = report.sections[`step-output:${failed.label}`];
    if (out) record.reason += `: ${out.trim().split('\n').slice(0, 3).join(' / ')}`;
  }
  fs.writeFileSync(path.join(dir, 'record.json'), JSON.stringify(record, null, 2));
  return record;
}
