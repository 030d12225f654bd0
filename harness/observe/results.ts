// Parse the guest agent's result channel (ttyS1): "@@KR ..." records and raw sections.
import type { ProbeResult } from './types.ts';

export interface StepRecord {
  label: string;
  rc: number;
  ms: number;
}

export interface AgentReport {
  hello?: { kernel: string; uptimeMs: number };
  steps: StepRecord[];
  probes: ProbeResult[];
  sections: Record<string, string>;
  warnings: string[];
  abort?: string;
  done: boolean;
  /** guest uptime when the agent finished */
  doneUptimeMs?: number;
  /** guest uptime when the agent waited for its case, and when it had received it */
  readyUptimeMs?: number;
  caseUptimeMs?: number;
}

function kv(rest: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tok of rest.split(/\s+/)) {
    const i = tok.indexOf('=');
    if (i > 0) out[tok.slice(0, i)] = tok.slice(i + 1);
  }
  return out;
}

export function parseAgentOutput(text: string): AgentReport {
  const report: AgentReport = { steps: [], probes: [], sections: {}, warnings: [], done: false };
  const lines = text.replace(/\r/g, '').split('\n');
  let section: string | null = null;
  let buf: string[] = [];
  const probeOutputs: Record<string, string> = {};
  for (const line of lines) {
    if (section !== null) {
      if (line === `@@KR end ${section}`) {
        report.sections[section] = buf.join('\n');
        const m = /^probe-output:(.+)$/.exec(section);
        if (m?.[1]) probeOutputs[m[1]] = report.sections[section]!;
        section = null;
        buf = [];
      } else buf.push(line);
      continue;
    }
    const m = /^@@KR (\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, type, rest = ''] = m;
    switch (type) {
      case 'begin':
        section = rest.trim();
        buf = [];
        break;
      case 'hello': {
        const f = kv(rest);
        report.hello = { kernel: f.kernel ?? '', uptimeMs: Number(f.uptime_ms ?? 0) };
        break;
      }
      case 'step': {
        const [label = '', ...more] = rest.split(/\s+/);
        const f = kv(more.join(' '));
        report.steps.push({ label, rc: Number(f.rc), ms: Number(f.ms) });
        break;
      }
      case 'probe': {
        const [name = '', ...more] = rest.split(/\s+/);
        const f = kv(more.join(' '));
        const rc = f.rc === 'none' || f.rc === undefined ? null : Number(f.rc);
        report.probes.push({
          name,
          ns: f.ns ?? 'host',
          rc,
          passed: f.pass === '1',
          durationMs: Number(f.ms ?? 0),
          stoppedEarly: f.early === '1',
          output: '',
          ...(f.timedout === '1' ? { timedOut: true } : {}),
        });
        break;
      }
      case 'warn':
        report.warnings.push(rest);
        break;
      case 'abort':
        report.abort = rest;
        break;
      case 'ready':
      case 'case': {
        const up = Number(kv(rest).uptime_ms);
        if (Number.isFinite(up)) report[type === 'ready' ? 'readyUptimeMs' : 'caseUptimeMs'] = up;
        break;
      }
      case 'done': {
        report.done = true;
        const up = Number(kv(rest).uptime_ms);
        if (Number.isFinite(up) && up > 0) report.doneUptimeMs = up;
        break;
      }
      default:
        break;
    }
  }
  if (section !== null) report.sections[section] = buf.join('\n'); // truncated (guest died)
  for (const p of report.probes) p.output = probeOutputs[p.name] ?? '';
  return report;
}
