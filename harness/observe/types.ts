// Data types shared by the pure stages (observe, report, bisect). No I/O here.
import type { SignalResult } from './signals/types.ts';
import type { ProbeRecord } from '../agent/protocol.ts';

/** `IPv4: martian source <src> from <dst>, on dev <dev>` as the kernel prints it.
 * Note the kernel's wording: "martian source DST from SRC" (ip_handle_martian_source prints
 * daddr first, then saddr). We store both as printed and name them by what they are. */
export interface MartianEvent {
  /** the packet's source address (the `from` field) */
  src: string;
  /** the packet's destination address (the `martian source` field) */
  dst: string;
  dev: string;
  /** kernel timestamp in seconds when CONFIG_PRINTK_TIME is on */
  time?: number;
  /** the `ll header:` line that follows, if printed */
  llHeader?: string;
  raw: string;
}

/** One fib_table_lookup tracepoint event (v4.18+ one-line format, or pre-4.18 lookup + _nh pair). */
export interface FibLookupEvent {
  format: 'v4.18+' | 'pre-4.18';
  table: number;
  oif: number;
  iif: number;
  proto?: number;
  src: string;
  sport?: number;
  dst: string;
  dport?: number;
  tos?: number;
  scope?: number;
  flags?: number;
  /** result: nexthop device (v4.18+: `==> dev X`; pre-4.18: from fib_table_lookup_nh) */
  nhDev?: string;
  nhOif?: number;
  gw?: string;
  err?: number;
  raw: string;
}

export type { Counters } from './counters.ts';

export interface PanicInfo {
  kind: 'panic' | 'oops' | 'bug' | 'warning';
  /** first line naming the problem, e.g. "Kernel panic - not syncing: sysrq triggered crash" */
  title: string;
  /** the text from the first marker on (bounded) */
  text: string;
}

export type Verdict = 'reproduced' | 'not-reproduced' | 'error' | 'timeout' | 'panic';

/** A probe as the agent reported it, or a kselftest result read from an exec probe's output. */
export interface ProbeResult extends ProbeRecord {
  /** a kselftest result read from this exec probe's output */
  parent?: string;
  /** a kselftest result that was skipped ([SKIP]): it did not run, so it neither passed nor failed */
  skipped?: boolean;
  /** a kselftest result that failed as its test expected ([XFAIL]): counted as passed, shown as XFAIL */
  xfail?: boolean;
}

/** How a probe ended, as a person reads it: a kselftest SKIP and XFAIL are outcomes of their own. */
export type ProbeStatus = 'pass' | 'FAIL' | 'SKIP' | 'XFAIL';
export function probeStatus(p: Pick<ProbeResult, 'passed' | 'skipped' | 'xfail'>): ProbeStatus {
  if (p.skipped) return 'SKIP';
  if (p.xfail) return 'XFAIL';
  return p.passed ? 'pass' : 'FAIL';
}

/** A packet capture of the run: the pcap file in the run's folder and tcpdump's one-line-per-packet summary. */
export interface CaptureResult {
  name: string;
  ns: string;
  dev: string;
  packets: number;
  /** the pcap file, in the run's folder */
  file: string;
  summary: string[];
}

/** Which kernel a run used: enough to tell a kernel update apart from a change in behaviour. */
export interface KernelInfo {
  /** `uname -r` in the guest (the build's kernel.release when the guest never reported) */
  release: string;
  /** sha256 of the final .config */
  configHash: string;
  /** the kernel's cache key */
  key: string;
  /** human label of the source with its version, e.g. "linux-source-6.1 6.1.192-1" */
  source: string;
  /** the source's version as resolved for this run (Debian packages), e.g. "6.1.192-1" */
  sourceVersion?: string;
  /** the definition pinned that version (false: the installed package, whatever version it was) */
  pinned?: boolean;
  /** the Debian suite the version was fetched from (absent: the host's own packages) */
  origin?: string;
  /** kconfig options the case needed that the kernel's own config lacked, merged into this build */
  caseConfig?: string[];
  /** kconfig options of the tracing variant (--trace-path) the kernel's own config lacked, merged into this build */
  traceConfig?: string[];
  patches: string[];
}

/** The size of a traced run's path: lines the agent sent, calls, events, return values, packet units; lost or cut lines. */
export interface PathStats {
  lines: number;
  calls: number;
  events: number;
  returns: number;
  units: number;
  lost: number;
  truncated: number;
  /** functions given a return probe */
  probed: number;
}

/** One kernel x case run: everything the report and the JSON need. */
export interface SourceFileRecord {
  path: string;
  optional: boolean;
  present: boolean;
}

export interface RunRecord {
  kernel: string;
  case: string;
  /** sysctl variant applied on top of the case, "ns:key" -> value */
  sysctls: Record<string, string>;
  verdict: Verdict;
  /** one line: why this verdict */
  reason: string;
  /** counters named by the case or its signals, per namespace, after the probes ("ns:Section.Name") */
  counters: Record<string, number>;
  /** the change of every counter that moved during the probes, "ns:Section.Name" -> delta */
  counterDeltas: Record<string, number>;
  probes: ProbeResult[];
  /** the case's files from the kernel's source tree and whether this kernel's tree has them (an
   *  optional one it lacks ran without it; a mandatory one is always present, else no run) */
  sourceFiles?: SourceFileRecord[];
  /** what each declared signal showed (signature signals first) */
  signals: SignalResult[];
  /** tracepoint events recorded during the probes */
  traceEvents: number;
  /** a traced run (--trace-path): what the function graph of the signature probe holds */
  path?: PathStats;
  captures: CaptureResult[];
  /** what the agent warned about (a tracepoint the kernel lacks, a server not listening, a capture that did not start) */
  warnings: string[];
  panic?: PanicInfo;
  kernelInfo: KernelInfo;
  /** bootMs: guest uptime when the agent started; guestMs: when it finished; wallMs: QEMU start to exit */
  vm: {
    accel: string;
    machine: string;
    /** guest uptime when the agent started (the kernel's boot) */
    bootMs?: number;
    /** guest uptime at the end of the run */
    guestMs?: number;
    /** guest time spent on the case itself (received to done) */
    caseMs?: number;
    wallMs?: number;
    exitCode: number | null;
    timedOut: boolean;
    /** the harness ended QEMU once the agent had reported done (exitCode is then null) */
    stoppedAfterDone?: boolean;
    /** restored: the booted guest came from a snapshot (its boot console is files.bootConsole);
     *  created: this run booted cold and saved the snapshot; cold: no snapshot involved */
    snapshot?: { use: 'restored' | 'created' | 'cold'; key?: string; restoreMs?: number; note?: string };
    /** one of a series of repeats (--repeat) */
    repeat?: RepeatInfo;
    /** the result channel, when it was cut at its cap or the guest flooded it (trust/channel.ts) */
    resultsChannel?: { bytes: number; capBytes: number; truncated: boolean; flooded: boolean; floodedAtMs?: number };
  };
  durationMs: number;
  /** the case's setup as the commands a person would type, step by step in the order the guest ran
   *  them (harness/cases/display.ts); absent in records written before it was kept */
  setup?: Array<{ label: string; ns: string; commands: string[] }>;
  /** where the raw evidence is kept (case: the rendered case bundle, its batch files) */
  files: { console: string; results: string; record?: string; bootConsole?: string; case?: string };
}

/** A repeat of a series: its seed and what the guest did with it, and whether it started from the case snapshot. */
export interface RepeatInfo {
  /** 1-based */
  index: number;
  mode: 'independent' | 'replay';
  /** the seed the guest's CRNG was reseeded with (64 hex) */
  seed: string;
  /** the seeded delay before the probes, µs */
  jitterUs: number;
  /** setting the clock, RNDADDENTROPY and RNDRESEEDCRNG in the guest: "ok", an errno name, or "skipped" (replay); null: the case stopped before its checkpoint */
  applied: { clock: string; addEntropy: string; reseed: string } | null;
  /** guest time from the go to done: the repeat's own cost */
  guestMs?: number;
  /** restored: the setup was skipped; created: this repeat set the case up and saved it; none */
  caseSnapshot: 'restored' | 'created' | 'none';
  caseSnapshotKey?: string;
  note?: string;
}
