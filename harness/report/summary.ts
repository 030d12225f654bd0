// The machine-readable summary (summary.json). Pure: builds a plain, JSON-serialisable object.

import type { CaptureResult, KernelInfo, PanicInfo, PathStats, RunRecord, SourceFileRecord, Verdict } from '../observe/types.ts';
import type { SignalResult } from '../observe/signals/index.ts';
import { kernelsOf, type KernelEntry } from './kernels.ts';
import { divergenceJson, type DivergenceEntry } from './divergence.ts';
import { signalState, type SignalState } from './outcome.ts';

export interface SummaryProbe {
  name: string;
  ns: string;
  passed: boolean;
  rc: number | null;
  durationMs: number;
  stoppedEarly: boolean;
  timedOut: boolean;
  /** a kselftest result: the exec probe it was read from */
  parent?: string;
  /** a kselftest [SKIP]: it did not run (neither passed nor failed) */
  skipped?: boolean;
  /** a kselftest [XFAIL]: failed as its test expected (passed: true) */
  xfail?: boolean;
}

export interface SummaryRun {
  kernel: string;
  case: string;
  /** "ns:key" -> value, as applied on top of the case */
  sysctls: Record<string, string>;
  verdict: Verdict;
  reason: string;
  /** absolute counters as recorded, plus "delta:<ns:Section.Name>" for every counter delta */
  counters: Record<string, number>;
  durationMs: number;
  probes: SummaryProbe[];
  /** the case's files from the kernel's tree and whether this kernel's tree had them (cases with sourceFiles only) */
  sourceFiles?: SourceFileRecord[];
  /** each declared signal: name, kind, role (signature | absent | evidence), description, fired, count,
   *  state (fired | not-fired | absent-as-expected | fired-must-be-absent | unobservable), matches[] ({text, fields, excerpt?}) */
  signals: Array<SignalResult & { state: SignalState }>;
  traceEvents: number;
  /** a traced run (--trace-path): the size of its recorded path */
  path?: PathStats;
  /** packet captures: the pcap file and one line per packet */
  captures: CaptureResult[];
  /** what the guest agent warned about */
  warnings: string[];
  panic: Pick<PanicInfo, 'kind' | 'title' | 'text'> | null;
  kernelInfo: KernelInfo;
  vm: {
    accel: string;
    machine: string;
    bootMs: number | null;
    guestMs: number | null;
    caseMs: number | null;
    wallMs: number | null;
    exitCode: number | null;
    timedOut: boolean;
    stoppedAfterDone: boolean;
    /** restored | created | cold (see README, "How it works") */
    snapshot: string;
  };
  /** the case's setup as the commands a person would type, in the order the guest ran them
   *  (`ip -n ns2 rule add pref 100 from 192.0.2.0/24 table 10`, `sysctl -w key=value`, ...); [] in a
   *  record written before it was kept */
  setup: string[];
  files: { console: string; results: string; record?: string; bootConsole?: string };
}

/** Version of the summary.json layout (and of `repro --json`); raised when a field changes meaning. */
export const SUMMARY_SCHEMA_VERSION = 2;

export interface Summary {
  schemaVersion: typeof SUMMARY_SCHEMA_VERSION;
  tool: 'kernel-repro';
  /** the same number as schemaVersion (its older name); 2: signals[] replaced martians[] and fibEvidence[] */
  version: typeof SUMMARY_SCHEMA_VERSION;
  runId: string;
  startedAt: string;
  host: { accel: string; qemu?: string };
  /** every kernel of the run, with its source version as resolved at run time */
  kernels: KernelEntry[];
  runs: SummaryRun[];
  /** --trace-path: per case, where the first kernel's packet path and each other kernel's split */
  divergences?: DivergenceEntry[];
}

export interface SummaryMeta {
  runId: string;
  startedAt: string;
  accel: string;
  qemu?: string;
}

export const DELTA_KEY_PREFIX = 'delta:';

function summarizeRun(r: RunRecord): SummaryRun {
  const counters: Record<string, number> = { ...r.counters };
  for (const [k, v] of Object.entries(r.counterDeltas)) counters[`${DELTA_KEY_PREFIX}${k}`] = v;
  const files: SummaryRun['files'] = { console: r.files.console, results: r.files.results };
  if (r.files.record !== undefined) files.record = r.files.record;
  if (r.files.bootConsole !== undefined) files.bootConsole = r.files.bootConsole;
  return {
    kernel: r.kernel,
    case: r.case,
    sysctls: { ...r.sysctls },
    verdict: r.verdict,
    reason: r.reason,
    counters,
    durationMs: r.durationMs,
    probes: r.probes.map((p) => ({
      name: p.name,
      ns: p.ns,
      passed: p.passed,
      rc: p.rc,
      durationMs: p.durationMs,
      stoppedEarly: p.stoppedEarly,
      timedOut: p.timedOut ?? false,
      ...(p.parent ? { parent: p.parent } : {}),
      ...(p.skipped ? { skipped: true } : {}),
      ...(p.xfail ? { xfail: true } : {}),
    })),
    ...(r.sourceFiles ? { sourceFiles: r.sourceFiles.map((f) => ({ ...f })) } : {}),
    signals: r.signals.map((x) => ({ ...x, state: signalState(x), matches: x.matches.map((m) => ({ ...m })) })),
    traceEvents: r.traceEvents,
    ...(r.path ? { path: { ...r.path } } : {}),
    captures: r.captures.map((c) => ({ ...c, summary: [...c.summary] })),
    warnings: [...r.warnings],
    panic: r.panic ? { kind: r.panic.kind, title: r.panic.title, text: r.panic.text } : null,
    kernelInfo: { ...r.kernelInfo, patches: [...r.kernelInfo.patches] },
    vm: {
      accel: r.vm.accel,
      machine: r.vm.machine,
      bootMs: r.vm.bootMs ?? null,
      guestMs: r.vm.guestMs ?? null,
      caseMs: r.vm.caseMs ?? null,
      wallMs: r.vm.wallMs ?? null,
      exitCode: r.vm.exitCode,
      timedOut: r.vm.timedOut,
      stoppedAfterDone: r.vm.stoppedAfterDone ?? false,
      snapshot: r.vm.snapshot?.use ?? 'cold',
    },
    setup: (r.setup ?? []).flatMap((s) => s.commands),
    files,
  };
}

export function buildSummary(meta: SummaryMeta, runs: RunRecord[], divergences?: DivergenceEntry[]): Summary {
  const host: Summary['host'] = { accel: meta.accel };
  if (meta.qemu !== undefined) host.qemu = meta.qemu;
  return {
    schemaVersion: SUMMARY_SCHEMA_VERSION,
    tool: 'kernel-repro',
    version: SUMMARY_SCHEMA_VERSION,
    runId: meta.runId,
    startedAt: meta.startedAt,
    host,
    kernels: kernelsOf(runs),
    runs: runs.map(summarizeRun),
    ...(divergences ? { divergences: divergences.map(divergenceJson) } : {}),
  };
}

/** Every run reached a verdict about the bug (reproduced or not-reproduced). True for no runs. */
export function allCompleted(runs: Array<Pick<RunRecord, 'verdict'>>): boolean {
  return runs.every((r) => r.verdict === 'reproduced' || r.verdict === 'not-reproduced');
}
