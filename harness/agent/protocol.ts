// The guest agent's protocol, harness side: the one place that knows the record grammar of the
// result channel (ttyS1) and the framing of the case on the console's input. Its other half is
// images/agent/agent.sh. Pure: no I/O.
// Everything on the channel comes from the guest (untrusted): lines are cut to 4096 characters
// (trust/channel.ts) before any parsing, section names are plain keys (no prototype), and any
// text gives a well-formed report, never an exception.
//
// Result channel, one record per line (docs/case-language.md: the agent protocol):
//   @@KR <type> [<word>] [key=value ...]        a record
//   @@KR begin <section>  ...raw lines...  @@KR end <section>    a section of raw text
// Record types:
//   hello kernel=<uname -r> uptime_ms=<n>       the agent started (boot phase)
//   ready uptime_ms=<n>                         waiting for the case (a snapshot may be saved here)
//   case bytes=<n> header_at=<n> read_ms=<n> unpack_ms=<n> uptime_ms=<n>   the case arrived
//   checkpoint uptime_ms=<n>                    the case is set up; waiting for the go (a case snapshot may be saved here)
//   go mode=independent|replay seed=<hex> jitter_us=<n> clock=<r> addentropy=<r> reseed=<r> uptime_ms=<n>
//                                               (r: ok, an errno name, skipped in replay, nohelper)
//                                               the go of one repeat was applied
//   step <label> rc=<n> ok=0|1 ms=<n> [at=<n>] [timedout=0|1]   a setup or exec step finished (ok: as expected)
//   probe <name> ns=<ns> rc=<n|none> pass=0|1 ms=<n> early=0|1 timedout=0|1 at=<n>
//   server <name> ns=<ns> port=<n> pid=<n>      a server was started
//   capture <name> ns=<ns> dev=<dev> packets=<n> pcap_bytes=<n>   a capture was stopped
//   warn <text>                                 something the run should mention
//   abort <text>                                the case stopped early (a setup step failed, ...)
//   fault crash|hang                            fault injection (the harness's own tests)
//   done uptime_ms=<n>                          the agent finished: every record is in
// Sections (names below): counters-before:<ns>, counters-probes:<ns>, counters-after:<ns>, trace, symbols,
// probe-output:<probe>, step-output:<label>, step-input:<label>, server-output:<name>,
// tc-stats:<ns>, links-at-start, proc-net-tcp:<ns>, capture-summary:<name>, capture-pcap:<name>,
// path (the function graph of a traced run: harness/observe/path.ts).
// Case input (console, ttyS0): "@@CASE <bytes>\n" followed by exactly <bytes> bytes of the bundle;
// for a case with a checkpoint, later "@@GO <seed hex> <epoch s> <jitter us> independent|replay\n".

import { boundedLines } from '../trust/channel.ts';

export const RECORD_PREFIX = '@@KR ';
/** At most this many warnings are kept (then one line says how many more came): the guest chooses how many it sends. */
export const MAX_WARNINGS = 100;
/** At most this many step, probe and capture records each (a case has at most 64 steps and 64 probes). */
export const MAX_RECORDS = 1000;
export const CASE_HEADER = '@@CASE';
export const GO_HEADER = '@@GO';

/** Section names, spelled here only. */
export const SECTION = {
  countersBefore: (ns: string) => `counters-before:${ns}`,
  countersAfter: (ns: string) => `counters-after:${ns}`,
  countersProbes: (ns: string) => `counters-probes:${ns}`,
  trace: 'trace',
  symbols: 'symbols',
  probeOutput: (probe: string) => `probe-output:${probe}`,
  stepOutput: (label: string) => `step-output:${label}`,
  stepInput: (label: string) => `step-input:${label}`,
  serverOutput: (name: string) => `server-output:${name}`,
  tcStats: (ns: string) => `tc-stats:${ns}`,
  linksAtStart: 'links-at-start',
  path: 'path',
  captureSummary: (name: string) => `capture-summary:${name}`,
  capturePcap: (name: string) => `capture-pcap:${name}`,
} as const;

export interface StepRecord {
  label: string;
  rc: number;
  /** the step ended as expected (a setup step with 0, an exec step with its expected code) */
  ok: boolean;
  ms: number;
}

export interface ProbeRecord {
  name: string;
  ns: string;
  /** exit status of the probe command; null when it was stopped (early or at its deadline) */
  rc: number | null;
  passed: boolean;
  durationMs: number;
  stoppedEarly: boolean;
  timedOut?: boolean;
  output: string;
}

export interface CaptureRecord {
  name: string;
  ns: string;
  dev: string;
  packets: number;
  pcapBytes: number;
}

export interface AgentReport {
  hello?: { kernel: string; uptimeMs: number };
  steps: StepRecord[];
  probes: ProbeRecord[];
  captures: CaptureRecord[];
  sections: Record<string, string>;
  warnings: string[];
  abort?: string;
  done: boolean;
  /** guest uptime when the agent finished */
  doneUptimeMs?: number;
  /** guest uptime when the agent waited for its case, and when it had received it */
  readyUptimeMs?: number;
  caseUptimeMs?: number;
  /** guest uptime when the case was set up (a case with a checkpoint) */
  checkpointUptimeMs?: number;
  /** what the guest did with the go of its repeat */
  go?: GoRecord;
  /** lines of the channel longer than 4096 characters, cut to that (trust/channel.ts) */
  longLines?: number;
}

export type RepeatMode = 'independent' | 'replay';

export interface GoRecord {
  mode: string;
  seed: string;
  jitterUs: number;
  /** setting the wall clock, RNDADDENTROPY and RNDRESEEDCRNG: "ok", an errno name, or "skipped" (replay) */
  clock: string;
  addEntropy: string;
  reseed: string;
  uptimeMs: number;
}

/** `key=value` words of a record (other words are ignored). */
export function fields(rest: string): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const tok of rest.split(/\s+/)) {
    const i = tok.indexOf('=');
    if (i > 0) out[tok.slice(0, i)] = tok.slice(i + 1);
  }
  return out;
}

/** A record line -> its type and the rest; null for other lines. */
export function recordOf(line: string): { type: string; rest: string } | null {
  if (!line.startsWith(RECORD_PREFIX)) return null;
  const m = /^(\S+)\s*(.*)$/.exec(line.slice(RECORD_PREFIX.length));
  return m ? { type: m[1]!, rest: m[2] ?? '' } : null;
}

export const isReady = (line: string): boolean => recordOf(line)?.type === 'ready';
export const isDone = (line: string): boolean => recordOf(line)?.type === 'done';
export const isCheckpoint = (line: string): boolean => recordOf(line)?.type === 'checkpoint';

/** Has the agent reported done anywhere in this text? */
export function reportsDone(text: string): boolean {
  return boundedLines(text).lines.some((l) => isDone(l.replace(/\r$/, '')));
}

/** The guest uptime (ms) of the agent's hello, from the boot-phase records. */
export function helloUptime(text: string): number | null {
  return parseAgentOutput(text).hello?.uptimeMs ?? null;
}

const num = (v: string | undefined): number => (v === undefined ? NaN : Number(v));
/** a number the guest sent, or `otherwise` when it is missing or not a finite number */
const finite = (v: string | undefined, otherwise: number): number => (Number.isFinite(num(v)) ? num(v) : otherwise);

export function parseAgentOutput(text: string): AgentReport {
  // sections are named by the guest: a map without a prototype, so "__proto__" is just a name
  const sections = Object.create(null) as Record<string, string>;
  const report: AgentReport = { steps: [], probes: [], captures: [], sections, warnings: [], done: false };
  const { lines, longLines } = boundedLines(text.replace(/\r/g, ''));
  if (longLines) report.longLines = longLines;
  let section: string | null = null;
  let buf: string[] = [];
  let moreWarnings = 0;
  for (const line of lines) {
    if (section !== null) {
      if (line === `${RECORD_PREFIX}end ${section}`) {
        report.sections[section] = buf.join('\n');
        section = null;
        buf = [];
      } else buf.push(line);
      continue;
    }
    const r = recordOf(line);
    if (!r) continue;
    if ((r.type === 'step' && report.steps.length >= MAX_RECORDS) || (r.type === 'probe' && report.probes.length >= MAX_RECORDS) || (r.type === 'capture' && report.captures.length >= MAX_RECORDS)) continue;
    const word = r.rest.split(/\s+/)[0] ?? '';
    const f = fields(r.rest);
    switch (r.type) {
      case 'begin':
        section = r.rest.trim();
        buf = [];
        break;
      case 'hello':
        report.hello = { kernel: f.kernel ?? '', uptimeMs: finite(f.uptime_ms, 0) };
        break;
      case 'step':
        report.steps.push({ label: word, rc: finite(f.rc, -1), ok: f.ok === undefined ? num(f.rc) === 0 : f.ok === '1', ms: finite(f.ms, 0) });
        break;
      case 'probe': {
        const rc = f.rc === 'none' || f.rc === undefined || !Number.isFinite(Number(f.rc)) ? null : Number(f.rc);
        report.probes.push({
          name: word,
          ns: f.ns ?? 'host',
          rc,
          passed: f.pass === '1',
          durationMs: finite(f.ms, 0),
          stoppedEarly: f.early === '1',
          output: '',
          ...(f.timedout === '1' ? { timedOut: true } : {}),
        });
        break;
      }
      case 'capture':
        report.captures.push({ name: word, ns: f.ns ?? 'host', dev: f.dev ?? '', packets: finite(f.packets, 0), pcapBytes: finite(f.pcap_bytes, 0) });
        break;
      case 'warn':
        if (report.warnings.length < MAX_WARNINGS) report.warnings.push(r.rest);
        else moreWarnings++;
        break;
      case 'abort':
        report.abort = r.rest;
        break;
      case 'ready':
      case 'case': {
        const up = num(f.uptime_ms);
        if (Number.isFinite(up)) report[r.type === 'ready' ? 'readyUptimeMs' : 'caseUptimeMs'] = up;
        break;
      }
      case 'checkpoint': {
        const up = num(f.uptime_ms);
        if (Number.isFinite(up)) report.checkpointUptimeMs = up;
        break;
      }
      case 'go':
        report.go = { mode: f.mode ?? '', seed: f.seed ?? '', jitterUs: finite(f.jitter_us, 0), clock: f.clock ?? 'none', addEntropy: f.addentropy ?? 'none', reseed: f.reseed ?? 'none', uptimeMs: finite(f.uptime_ms, 0) };
        break;
      case 'done': {
        report.done = true;
        const up = num(f.uptime_ms);
        if (Number.isFinite(up) && up > 0) report.doneUptimeMs = up;
        break;
      }
      default:
        break;
    }
  }
  if (section !== null) report.sections[section] = buf.join('\n'); // truncated (the guest died)
  if (moreWarnings) report.warnings.push(`... and ${moreWarnings} more warning(s) from the guest (the first ${MAX_WARNINGS} are kept)`);
  for (const p of report.probes) p.output = sections[SECTION.probeOutput(p.name)] ?? '';
  return report;
}

/** The sections whose name starts with `prefix`, keyed by the rest of the name (e.g. counters per namespace). */
export function sectionsByPrefix(report: Pick<AgentReport, 'sections'>, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, text] of Object.entries(report.sections)) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = text;
  return out;
}

/** The go of one repeat, for a guest waiting at its checkpoint. */
export function frameGo(go: { seed: string; epochS: number; jitterUs: number; mode: RepeatMode }): Buffer {
  if (!/^[0-9a-f]{64}$/.test(go.seed)) throw new Error(`internal: a repeat seed is 64 hex digits, got "${go.seed}"`);
  return Buffer.from(`${GO_HEADER} ${go.seed} ${Math.floor(go.epochS)} ${Math.max(0, Math.round(go.jitterUs))} ${go.mode}\n`);
}

/** The case framed for the agent's input. */
export function frameCase(bundle: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${CASE_HEADER} ${bundle.length}\n`), bundle]);
}
