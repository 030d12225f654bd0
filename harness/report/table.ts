// Terminal rendering of runs and diffs. Pure: returns strings, prints nothing.

import { probeStatus, type ProbeResult, type RunRecord, type Verdict } from '../observe/types.ts';
import { type CaseDiff, variantOf } from './diff.ts';
import { signalStateText } from './outcome.ts';
import { setupLines } from '../cases/display.ts';

export interface RenderOptions {
  /** colour verdicts with ANSI escapes */
  color?: boolean;
  /** list every counter that differs, not only the ones the case names */
  allCounters?: boolean;
}

const ANSI_RE = /\x1b\[[0-9;]*m/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, '');
}

/** Printable width: ANSI escapes removed, counted in code points. */
function width(s: string): number {
  return [...stripAnsi(s)].length;
}

function padEnd(s: string, w: number): string {
  return s + ' '.repeat(Math.max(0, w - width(s)));
}

function padStart(s: string, w: number): string {
  return ' '.repeat(Math.max(0, w - width(s))) + s;
}

const VERDICT_COLOR: Record<Verdict, string> = {
  reproduced: '31', // red
  'not-reproduced': '32', // green
  error: '33', // yellow
  timeout: '33', // yellow
  panic: '35', // magenta
};

export function colorVerdict(v: Verdict, color: boolean | undefined): string {
  return color ? `\x1b[${VERDICT_COLOR[v]}m${v}\x1b[0m` : v;
}

function probeCell(p: ProbeResult): string {
  if (p.skipped || p.xfail) return `${p.name}:${probeStatus(p)}`;
  if (p.passed) return `${p.name}:pass`;
  const tags: string[] = [];
  if (p.stoppedEarly) tags.push('early');
  if (p.timedOut) tags.push('timeout');
  return `${p.name}:FAIL${tags.length ? `(${tags.join(',')})` : ''}`;
}

/** The signals of a run, signature first: "martian:1 rp-drop:1 fib-lo:0" (how many times each fired). */
export function signalsCell(r: RunRecord): string {
  return r.signals.length ? r.signals.map((x) => `${x.name}:${x.count}`).join(' ') : '-';
}

function seconds(ms: number): string {
  return `${(Math.round(ms / 100) / 10).toFixed(1)}s`; // round half up on ms, not on binary floats
}

function caseLabel(c: string, variant: string): string {
  return variant ? `${c} [${variant}]` : c;
}

interface Column {
  header: string;
  align: 'left' | 'right';
}

function renderTable(cols: Column[], rows: string[][]): string {
  const widths = cols.map((c, i) => Math.max(width(c.header), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: string[]): string =>
    cols
      .map((c, i) => {
        const cell = cells[i] ?? '';
        const w = widths[i] ?? 0;
        return c.align === 'right' ? padStart(cell, w) : padEnd(cell, w);
      })
      .join('  ')
      .trimEnd();
  const out = [line(cols.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(r));
  return out.join('\n');
}

/** One row per run: kernel, case [variant], verdict, probes, signals, duration. */
export function renderRunsTable(runs: RunRecord[], opts: RenderOptions = {}): string {
  const cols: Column[] = [
    { header: 'KERNEL', align: 'left' },
    { header: 'CASE', align: 'left' },
    { header: 'VERDICT', align: 'left' },
    { header: 'PROBES', align: 'left' },
    { header: 'SIGNALS', align: 'left' },
    { header: 'TIME', align: 'right' },
  ];
  const rows = runs.map((r) => [
    r.kernel,
    caseLabel(r.case, variantOf(r.sysctls)),
    colorVerdict(r.verdict, opts.color),
    r.probes.length ? r.probes.map(probeCell).join(' ') : '-',
    signalsCell(r),
    seconds(r.durationMs),
  ]);
  return renderTable(cols, rows);
}

function kvLine(kernels: string[], value: (k: string) => string): string {
  return kernels.map((k) => `${k}=${value(k)}`).join('  ');
}

/** Per case/variant group: verdicts, then only the probe, signal and counter rows that differ, then each signal's evidence per kernel. */
export function renderDiff(diffs: CaseDiff[], opts: RenderOptions = {}): string {
  const blocks: string[] = [];
  for (const d of diffs) {
    const out: string[] = [`== ${caseLabel(d.case, d.variant)} ==`];
    const only = d.kernels[0];
    if (d.kernels.length === 1 && only !== undefined) {
      const v = d.verdicts[only];
      out.push(`only one kernel (${only}${v ? `: ${colorVerdict(v, opts.color)}` : ''}), nothing to compare`);
      blocks.push(out.join('\n'));
      continue;
    }

    const verdicts = kvLine(d.kernels, (k) => {
      const v = d.verdicts[k];
      return v ? colorVerdict(v, opts.color) : '?';
    });
    out.push(`verdicts: ${verdicts}${d.flips ? '  <- differs' : ''}`);

    const probes = d.probes.filter((p) => p.differs);
    if (probes.length) {
      out.push('probes (differing):');
      for (const p of probes) out.push(`  ${p.probe}: ${kvLine(d.kernels, (k) => p.results[k] ?? 'n/a')}`);
    } else {
      out.push('probes: no differences');
    }

    const sigDiff = d.signals.filter((x) => x.differs);
    if (sigDiff.length) {
      out.push('signals (differing):');
      for (const x of sigDiff) out.push(`  ${x.name}: ${kvLine(d.kernels, (k) => `${x.counts[k] ?? 0}`)}`);
    } else out.push(d.signals.length ? 'signals: no differences' : 'signals: none declared');

    const differing = d.counters.filter((c) => c.differs);
    // the counters the case names come first; other moved counters only with allCounters
    const counters = opts.allCounters ? differing : differing.filter((c) => c.named);
    if (counters.length) {
      out.push('counters (differing):');
      for (const c of counters) {
        out.push(`  ${c.name}: ${kvLine(d.kernels, (k) => String(c.values[k] ?? '-'))}`);
      }
    } else {
      out.push('counters: no differences');
    }
    const hidden = differing.length - counters.length;
    if (hidden > 0) out.push(`  (${hidden} other counters differ; all of them in report.txt)`);

    for (const x of d.signals) {
      out.push(`${x.name} (${x.role}: ${x.description}):`);
      for (const k of d.kernels) {
        const lines = x.evidence[k] ?? [];
        if (lines.length === 0) out.push(`  ${k}: (none)`);
        else if (lines.length === 1) out.push(`  ${k}: ${lines[0]}`);
        else {
          out.push(`  ${k}:`);
          for (const l of lines.slice(0, 3)) out.push(`    ${l}`);
          if (lines.length > 3) out.push(`    ... (${lines.length - 3} more)`);
        }
      }
    }
    blocks.push(out.join('\n'));
  }
  return blocks.join('\n\n');
}

function more(total: number, shown: number, indent: string): string[] {
  return total > shown ? [`${indent}... (${total - shown} more)`] : [];
}

/** Everything about one run, for `--verbose` or a failing case. */
export function renderRunDetails(r: RunRecord): string {
  const out: string[] = [];
  out.push(`${r.kernel} / ${caseLabel(r.case, variantOf(r.sysctls))}: ${r.verdict} (${seconds(r.durationMs)})`);
  out.push(`  reason: ${r.reason}`);
  const ki = r.kernelInfo;
  out.push(`  kernel: ${ki.release} config ${ki.configHash.slice(0, 12)} (${ki.source})`);
  if (ki.patches.length) out.push(`  patches: ${ki.patches.join(', ')}`);
  const vm = r.vm;
  const snap = vm.snapshot?.use === 'restored' ? ' (restored from the booted-kernel snapshot)' : vm.snapshot?.use === 'created' ? ' (snapshot saved)' : '';
  const boot = vm.bootMs !== undefined ? `, boot ${seconds(vm.bootMs)}${snap}` : snap;
  out.push(
    `  vm: ${vm.accel} ${vm.machine}${boot}, ${vm.stoppedAfterDone ? 'stopped by the harness after the agent was done' : `exit ${vm.exitCode ?? '-'}`}${vm.timedOut ? ', timed out' : ''}`,
  );

  out.push(`  probes (${r.probes.length}):`);
  for (const p of r.probes) {
    const flags = [p.stoppedEarly ? 'stopped early' : '', p.timedOut ? 'timed out' : ''].filter(Boolean);
    out.push(
      `    ${p.name} [${p.ns}]: ${probeStatus(p)} rc=${p.rc ?? '-'} ${seconds(p.durationMs)}` +
        (flags.length ? ` (${flags.join(', ')})` : ''),
    );
  }

  out.push(`  signals (${r.signals.length}):`);
  for (const x of r.signals) {
    out.push(`    ${x.name} [${x.role}, ${x.kind}]: ${signalStateText(x)} x${x.count} (${x.description})`);
    for (const m of x.matches.slice(0, 5)) {
      out.push(`      ${m.text}`);
      // a splat's header and call trace
      for (const l of m.excerpt ?? []) out.push(`        | ${l}`);
    }
    out.push(...more(x.matches.length, 5, '      '));
  }

  const counters = Object.entries(r.counters);
  const deltas = Object.entries(r.counterDeltas);
  out.push(`  counters (${counters.length}):`);
  for (const [k, v] of counters) out.push(`    ${k} = ${v}`);
  out.push(`  counter deltas (${deltas.length}):`);
  for (const [k, v] of deltas) out.push(`    ${k} ${v >= 0 ? '+' : ''}${v}`);

  for (const w of r.warnings) out.push(`  warning: ${w}`);
  out.push(`  trace events: ${r.traceEvents}`);
  for (const cap of r.captures) {
    out.push(`  capture ${cap.name} (${cap.ns}:${cap.dev}, ${cap.packets} packets, ${cap.file}):`);
    for (const l of cap.summary.slice(0, 20)) out.push(`    ${l}`);
    out.push(...more(cap.summary.length, 20, '    '));
  }

  if (r.panic) {
    out.push(`  ${r.panic.kind}: ${r.panic.title}`);
    const lines = r.panic.text.split(/\r?\n/);
    for (const l of lines.slice(0, 15)) out.push(`    ${l}`);
    out.push(...more(lines.length, 15, '    '));
  }

  if (r.setup?.length) {
    out.push(`  setup (${r.setup.reduce((n, s) => n + s.commands.length, 0)} commands, in the order the guest runs them${r.files.case ? `; the batch files in ${r.files.case}` : ''}):`);
    for (const l of setupLines(r.setup)) out.push(`    ${l}`);
  }

  out.push('  files:');
  out.push(`    console: ${r.files.console}`);
  out.push(`    results: ${r.files.results}`);
  if (r.files.record) out.push(`    record: ${r.files.record}`);
  return out.join('\n');
}
