// One kernel x one case: compose the initramfs, boot with a deadline, parse what the kernel and
// the agent reported, decide the verdict, keep the evidence on disk.
import fs from 'node:fs';
import path from 'node:path';
import { bundleScript, renderCase, type SysctlOverride } from '../cases/render.ts';
import { setupFailure, setupSteps } from '../cases/display.ts';
import type { LoadedCase } from '../cases/load.ts';
import type { KernelArtifact } from '../kernels/artifact.ts';
import { parseKconfig } from '../kernels/kconfig.ts';
import { diffCounters, parseNetstat, pickCounters } from '../observe/counters.ts';
import { detectPanic } from '../observe/panic.ts';
import { parseAgentOutput, sectionsByPrefix, SECTION, type AgentReport } from '../agent/protocol.ts';
import { caseNeeds } from '../cases/needs.ts';
import { HOST_NS } from '../cases/schema.ts';
import { kselftestResults } from '../observe/kselftest.ts';
import { floodReason, formatBytes, MAX_CHANNEL_LINE_CHARS } from '../trust/channel.ts';
import { evaluateSignals } from '../observe/signals/index.ts';
import { parseSymbols, parseTrace, tracePhases, unavailableTracepoints } from '../observe/trace.ts';
import { graphCmdline, parsePath } from '../observe/path.ts';
import type { Counters, RepeatInfo, RunRecord, SourceFileRecord } from '../observe/types.ts';
import type { SourceFile } from '../cases/schema.ts';
import { decideVerdict } from '../observe/verdict.ts';
import type { Accel, Machine } from '../vm/qemu.ts';
import { imageWithFiles } from '../images/initramfs.ts';
import { runSession } from '../vm/session.ts';
import { SnapshotStore } from '../vm/snapshot.ts';
import { modulesForCase } from '../kernels/modsource.ts';
import { cacheRoot } from '../util/paths.ts';
import { artifactInfo } from '../kernels/artifact.ts';
import { frameGo } from '../agent/protocol.ts';
import type { RepeatRun } from './repeats.ts';

export interface RunCaseOptions {
  kernel: KernelArtifact;
  kcase: LoadedCase;
  baseImage: string;
  /** guest package layers appended to the boot image */
  layers?: string[];
  /** files from the kernel's source tree (path -> content), put at /src/<path> */
  sourceFiles?: Record<string, string>;
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
  /** record the signature probe's path (a tracing kernel, --trace-path), with the return values of these functions */
  tracePath?: { returns: string[] };
  /** one of a series of repeats: the case stops at its checkpoint once set up (saved as a case
   *  snapshot by the first repeat, restored by the others) and gets this repeat's seed, clock and jitter */
  repeat?: RepeatRun;
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

/** Counters of every namespace: ns -> "Section.Name" -> value, from the agent's counters-<tag>:<ns> sections. */
function countersFrom(report: AgentReport, tag: 'before' | 'probes' | 'after'): Record<string, Counters> {
  const out: Record<string, Counters> = {};
  const prefix = tag === 'before' ? SECTION.countersBefore('') : tag === 'probes' ? SECTION.countersProbes('') : SECTION.countersAfter('');
  for (const [ns, text] of Object.entries(sectionsByPrefix(report, prefix))) out[ns] = parseNetstat(text);
  return out;
}

function goFor(r: RepeatRun): Buffer {
  return frameGo({ seed: r.seed, epochS: Date.now() / 1000, jitterUs: r.jitterUs, mode: r.mode });
}

export function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

/** What a repeat's record says about it: its seed, what the guest did with it, where it started from. */
export function repeatRecord(r: RepeatRun, report: AgentReport, caseSnap: { use: 'restored' | 'created' | 'none'; key?: string; note?: string } | undefined): RepeatInfo {
  return {
    index: r.index,
    mode: r.mode,
    seed: r.seed,
    jitterUs: r.jitterUs,
    applied: report.go ? { clock: report.go.clock, addEntropy: report.go.addEntropy, reseed: report.go.reseed } : null,
    ...(report.go && report.doneUptimeMs !== undefined ? { guestMs: report.doneUptimeMs - report.go.uptimeMs } : {}),
    caseSnapshot: caseSnap?.use ?? 'none',
    ...(caseSnap?.key ? { caseSnapshotKey: caseSnap.key } : {}),
    ...(caseSnap?.note ? { note: caseSnap.note } : {}),
  };
}

/** Which of the case's source files the kernel's tree gave (the files read: path -> content). */
export function sourceFilesRecord(wanted: SourceFile[], files: Record<string, string>): SourceFileRecord[] {
  return wanted.map((f) => ({ path: f.path, optional: f.optional, present: Object.hasOwn(files, f.path) }));
}

export async function runCase(o: RunCaseOptions): Promise<RunRecord> {
  const started = Date.now();
  const c = o.kcase.def;
  const dir = path.join(o.runDir, safeName(`${o.kernel.name}__${c.name}${o.label ? '__' + o.label : ''}`));
  fs.mkdirSync(dir, { recursive: true });
  const rendered = renderCase(c, { sysctlOverrides: o.sysctlOverrides ?? [], ...(o.sourceFiles ? { sourceFiles: o.sourceFiles } : {}), ...(o.tracePath ? { tracePath: o.tracePath } : {}), ...(o.repeat ? { checkpoint: true } : {}) });
  const setup = setupSteps(rendered.files);
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
  const initrd = await imageWithFiles(o.baseImage, bootFiles, cacheDir, o.layers ?? []);
  const caseBundle = Buffer.from(bundleScript({ ...rendered.files, ...caseFiles }));
  const target = o.machine ? { machine: o.machine, kernel: o.machine === 'microvm' ? o.kernel.vmlinux : o.kernel.bzImage } : bootTarget(o.kernel);
  const machine = target.machine;
  const deadlineMs = o.deadlineMs ?? (o.accel === 'kvm' ? Math.ceil(c.deadlineMs / 3) : c.deadlineMs);
  const consoleFile = path.join(dir, 'console.log');
  const resultsFile = path.join(dir, 'results.txt');
  fs.rmSync(consoleFile, { force: true });
  // a traced run boots with the graph armed (its own booted-kernel snapshot)
  const append = [...(o.append ?? []), ...(o.tracePath ? graphCmdline() : [])];
  const vm = await runSession({
    spec: { accel: o.accel, machine, kernel: target.kernel, initrd, ...(append.length ? { append } : {}) },
    bundle: caseBundle,
    deadlineMs,
    consoleFile,
    resultsFile,
    snapshots: snapshotsWanted(o) ? new SnapshotStore(cacheDir) : null,
    ...(o.restoreLimitMs !== undefined ? { restoreLimitMs: o.restoreLimitMs } : {}),
    // the go carries the host clock as the run starts (a restored guest resumes with the snapshot's)
    ...(o.repeat ? { checkpoint: { go: goFor(o.repeat), snapshot: o.repeat.snapshot } } : {}),
  });
  let bootConsole: string | undefined;
  if (vm.snapshot.bootConsole && fs.existsSync(vm.snapshot.bootConsole)) {
    // the kernel's boot messages of a restored guest are the snapshot's: kept with the run's evidence
    bootConsole = path.join(dir, 'boot-console.log');
    fs.copyFileSync(vm.snapshot.bootConsole, bootConsole);
  }

  const report = parseAgentOutput(vm.results);
  // kselftest results of exec probes become probes of their own, after their parent
  report.probes = report.probes.flatMap((p) => {
    const probe = c.probes.find((x) => x.name === p.name);
    return probe && 'exec' in probe && probe.exec.results === 'kselftest' ? [p, ...kselftestResults(p)] : [p];
  });
  // the console (ttyS0, console_loglevel 7) holds every kernel message the case can produce
  const panic = detectPanic(vm.console);
  const before = countersFrom(report, 'before');
  const after = countersFrom(report, 'after');
  const needs = caseNeeds(c);
  const counterDeltas: Record<string, number> = {};
  const counters: Record<string, number> = {};
  for (const [ns, a] of Object.entries(after)) {
    for (const [k, v] of Object.entries(diffCounters(before[ns] ?? {}, a))) counterDeltas[`${ns}:${k}`] = v;
    for (const [k, v] of Object.entries(pickCounters(a, needs.counters))) counters[`${ns}:${k}`] = v;
  }
  // the events of each phase (tracepoints armed before the steps mark the trace); the probes' are the usual evidence
  const traceAll = tracePhases(parseTrace(report.sections[SECTION.trace] ?? ''));
  const trace = traceAll.filter((e) => e.phase === 'probes');
  const graph = o.tracePath ? parsePath(report.sections[SECTION.path] ?? '') : null;
  const roleOrder = { signature: 0, absent: 1, evidence: 2 } as const;
  const signals = evaluateSignals(
    c.signals,
    c.signature.signals,
    {
      console: vm.console,
      trace,
      traceAll,
      unavailable: unavailableTracepoints(report.warnings),
      countersBefore: before,
      countersAfter: after,
      ...(needs.countersAtProbes ? { countersAtProbes: countersFrom(report, 'probes') } : {}),
      symbols: parseSymbols(report.sections[SECTION.symbols] ?? ''),
      namespaces: [HOST_NS, ...c.namespaces],
    },
    c.signature.absent,
  ).sort((a, b) => roleOrder[a.role] - roleOrder[b.role]);
  const captures = report.captures.map((cap) => {
    const file = path.join(dir, `capture-${safeName(cap.name)}.pcap`);
    fs.writeFileSync(file, Buffer.from((report.sections[SECTION.capturePcap(cap.name)] ?? '').replace(/\s+/g, ''), 'base64'));
    const summary = (report.sections[SECTION.captureSummary(cap.name)] ?? '').split('\n').filter((l) => l.trim());
    return { name: cap.name, ns: cap.ns, dev: cap.dev, packets: cap.packets, file, summary };
  });
  const { verdict, reason } = decideVerdict({
    signature: { ...(c.signature.probe !== undefined ? { probe: c.signature.probe } : {}), when: c.signature.when ?? 'fail' },
    controlProbes: [...c.probes.filter((p) => p.control).map((p) => p.name), ...c.signature.controls],
    report,
    signals,
    panic,
    vmTimedOut: vm.timedOut,
    deadlineMs,
    ...(vm.resultsChannel?.flooded ? { flood: floodReason('result channel (ttyS1)', vm.resultsChannel) } : {}),
  });
  const sysctls: Record<string, string> = {};
  for (const s of o.sysctlOverrides ?? []) sysctls[`${s.ns}:${s.key}`] = s.value;
  const record: RunRecord = {
    kernel: o.kernel.name,
    case: c.name,
    sysctls,
    verdict,
    reason: vm.accelError ? `${reason} (QEMU: ${vm.accelError})` : reason,
    counters,
    counterDeltas,
    probes: report.probes,
    ...(c.sourceFiles.length ? { sourceFiles: sourceFilesRecord(c.sourceFiles, o.sourceFiles ?? {}) } : {}),
    signals,
    traceEvents: trace.length,
    ...(graph ? { path: { ...graph.stats, units: graph.units.length, probed: o.tracePath?.returns.length ?? 0 } } : {}),
    captures,
    warnings: report.warnings,
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
      ...(vm.resultsChannel && (vm.resultsChannel.truncated || vm.resultsChannel.flooded) ? { resultsChannel: vm.resultsChannel } : {}),
      ...(o.repeat ? { repeat: repeatRecord(o.repeat, report, vm.snapshot.case) } : {}),
      snapshot: {
        use: vm.snapshot.use,
        ...(vm.snapshot.key ? { key: vm.snapshot.key } : {}),
        ...(vm.snapshot.restoreMs !== undefined ? { restoreMs: vm.snapshot.restoreMs } : {}),
        ...(vm.snapshot.note ? { note: vm.snapshot.note } : {}),
      },
    },
    durationMs: Date.now() - started,
    setup: setup.map((s) => ({ label: s.label, ns: s.ns, commands: s.commands.map((x) => x.text) })),
    files: { console: consoleFile, results: resultsFile, record: path.join(dir, 'record.json'), case: path.join(dir, 'case'), ...(bootConsole ? { bootConsole } : {}) },
  };
  if (o.repeat?.mode === 'independent' && report.go && (report.go.addEntropy !== 'ok' || report.go.reseed !== 'ok'))
    record.warnings.push(`repeat ${o.repeat.index}: the guest's CRNG was not reseeded (RNDADDENTROPY: ${report.go.addEntropy}, RNDRESEEDCRNG: ${report.go.reseed}); its random state may be the snapshot's`);
  if (o.repeat?.mode === 'independent' && report.go && report.go.clock !== 'ok')
    record.warnings.push(`repeat ${o.repeat.index}: the guest's clock was not set (${report.go.clock}); it runs on from the snapshot's`);
  if (vm.resultsChannel?.truncated)
    record.warnings.push(`the result channel had ${vm.resultsChannel.bytes} bytes: only its first ${formatBytes(vm.resultsChannel.capBytes)} were read`);
  if (report.longLines) record.warnings.push(`${report.longLines} line(s) of the result channel were longer than ${MAX_CHANNEL_LINE_CHARS} characters: cut to that`);
  for (const sg of signals) if (sg.incomplete) record.warnings.push(`signal ${sg.name}: ${sg.incomplete}`);
  const failed = report.steps.find((s) => !s.ok);
  if (failed) {
    const out = report.sections[SECTION.stepOutput(failed.label)];
    // a setup step's reason quotes the command that failed, as a person would type it
    const at = out && record.reason === `setup step ${failed.label} failed` ? setupFailure(setup, failed.label, out) : null;
    if (at) record.reason = at;
    else if (out) record.reason += `: ${out.trim().split('\n').slice(0, 3).join(' / ')}`;
  }
  fs.writeFileSync(path.join(dir, 'record.json'), JSON.stringify(record, null, 2));
  return record;
}
