// Self-contained HTML report of a kernel x case matrix. Pure: returns a string, reads nothing.
//
// One HTML5 document with inline CSS and a small inline script; no external resources (a CSP
// meta tag forbids any fetch). Every piece of run data is HTML-escaped; the script embeds no data
// and only wires the grid's cell buttons to their evidence sections by id.

import { probeStatus, type RunRecord, type Verdict } from '../observe/types.ts';
import { diffRuns, distinctLines, variantOf } from './diff.ts';
import { stripAnsi } from './table.ts';
import { signalStateText } from './outcome.ts';
import { describeKernel, kernelEntry, type KernelEntry } from './kernels.ts';
import type { KernelChange } from '../matrix/logic.ts';
import { divergenceLines, type DivergenceEntry } from './divergence.ts';
import { setupLines } from '../cases/display.ts';

export interface MatrixCell {
  run: RunRecord;
  expected?: Verdict;
  /** raw evidence to embed, already read by the caller */
  evidence: { console: string; trace: string };
  /** the cell's kernel differs from the baseline's: how */
  kernelChange?: string;
}

export interface HtmlReportMeta {
  title: string;
  runId: string;
  startedAt: string;
  accel: string;
  /** the kernels with their source versions */
  kernels?: KernelEntry[];
  /** compared with a baseline: which kernels changed since */
  baseline?: { runId: string; kernelChanges: KernelChange[] };
  /** --trace-path: where the kernels' packet paths split, per case */
  divergences?: DivergenceEntry[];
}

export const VERDICTS: readonly Verdict[] = ['reproduced', 'not-reproduced', 'error', 'timeout', 'panic'];

// C0 controls other than tab/LF/CR, DEL..C1 are left alone (valid in HTML text), lone surrogates
// and the non-characters U+FFFE/U+FFFF are dropped: they are parse errors or unrepresentable.
const INVALID_TEXT_RE = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Drop ANSI colour escapes and characters that are invalid in HTML/XML text. */
export function sanitizeText(s: string): string {
  return stripAnsi(s).replace(INVALID_TEXT_RE, '');
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escape text for HTML element content and (quoted) attribute values. */
export function escapeHtml(s: string): string {
  return sanitizeText(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** A fragment for an id: only [A-Za-z0-9_-], bounded length. */
function slug(s: string): string {
  const t = s
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return t || 'x';
}

function caseLabel(c: string, variant: string): string {
  return variant ? `${c} [${variant}]` : c;
}

function isUnexpected(cell: { run: RunRecord; expected?: Verdict }): boolean {
  return cell.expected !== undefined && cell.expected !== cell.run.verdict;
}

function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)}s` : '-';
}

const CSS = `
:root { --red:#c62828; --red-bg:#fdecea; --green:#2e7d32; --green-bg:#e8f5e9; --amber:#b26a00;
  --amber-bg:#fff4e0; --purple:#6a1b9a; --purple-bg:#f3e5f5; --line:#ccc; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.5em 0 .5em; }
h3 { font-size: 1em; margin: .8em 0 .3em; }
.meta { color: #555; margin: 0 0 .8em; }
.meta span { margin-right: 1.5em; }
.summary { font-weight: 600; margin: .5em 0 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
table.grid th { background: #f5f5f5; font-weight: 600; }
table.grid th.col { max-width: 16em; word-break: break-word; }
table.grid td.empty { color: #999; text-align: center; }
button.cell { display: block; width: 100%; min-width: 9em; margin: 2px 0; padding: 6px; cursor: pointer;
  border: 2px solid transparent; border-radius: 4px; font: inherit; text-align: left; }
button.cell:focus { outline: 2px solid #1565c0; outline-offset: 1px; }
button.cell .unexp { display: block; font-size: .85em; font-weight: 700; }
button.cell .kchg, section.evidence .kchg { display: block; font-size: .85em; font-style: italic; }
button.cell .ok { display: block; font-size: .85em; opacity: .75; }
.v-reproduced { background: var(--red-bg); color: var(--red); border-color: var(--red); }
.v-not-reproduced { background: var(--green-bg); color: var(--green); border-color: var(--green); }
.v-error, .v-timeout { background: var(--amber-bg); color: var(--amber); border-color: var(--amber); }
.v-panic { background: var(--purple-bg); color: var(--purple); border-color: var(--purple); }
button.cell.unexpected { border-width: 4px; border-style: double; box-shadow: 0 0 0 2px #000; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: .5em; border: 1px solid; border-radius: 4px; }
section.evidence { border: 1px solid var(--line); border-left-width: 6px; border-radius: 4px; padding: .5em 1em;
  margin: 1em 0; }
section.evidence.v-reproduced, section.evidence.v-not-reproduced, section.evidence.v-error,
section.evidence.v-timeout, section.evidence.v-panic { background: #fff; color: #222; }
section.evidence[hidden] { display: none; }
section.evidence .unexp { color: var(--red); font-weight: 700; }
pre { background: #f7f7f7; border: 1px solid #e0e0e0; padding: .5em; overflow: auto; max-height: 30em;
  white-space: pre-wrap; word-break: break-all; font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; }
ul.lines { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.none { color: #888; font-style: italic; }
#flips li { margin: .3em 0; }
`;

/** Loaded at the end of body; embeds no data. Cells point at their section via data-target. */
const SCRIPT = `
(function () {
  function toggle(btn) {
    var id = btn.getAttribute('data-target');
    if (!id) return;
    var sec = document.getElementById(id);
    if (!sec) return;
    sec.hidden = !sec.hidden;
    btn.setAttribute('aria-expanded', sec.hidden ? 'false' : 'true');
    if (!sec.hidden && typeof sec.scrollIntoView === 'function') sec.scrollIntoView({ block: 'nearest' });
  }
  function init() {
    var cells = document.querySelectorAll('button.cell');
    for (var i = 0; i < cells.length; i++) {
      (function (btn) {
        btn.addEventListener('click', function () { toggle(btn); });
      })(cells[i]);
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
`;

interface Column {
  case: string;
  variant: string;
}

interface Indexed {
  cell: MatrixCell;
  index: number;
  variant: string;
  id: string;
}

function list(items: string[], emptyText: string, cls = 'lines'): string {
  if (items.length === 0) return `<p class="none">${escapeHtml(emptyText)}</p>`;
  return `<ul class="${cls}">${items.map((i) => `<li>${escapeHtml(i)}</li>`).join('')}</ul>`;
}

function pre(text: string, emptyText: string): string {
  return text.length ? `<pre>${escapeHtml(text)}</pre>` : `<p class="none">${escapeHtml(emptyText)}</p>`;
}

function renderCellButton(x: Indexed): string {
  const r = x.cell.run;
  const unexpected = isUnexpected(x.cell);
  const classes = ['cell', `v-${r.verdict}`];
  if (unexpected) classes.push('unexpected');
  const title = `${r.kernel} / ${caseLabel(r.case, x.variant)}: ${r.verdict} - ${r.reason}`;
  const mark =
    x.cell.expected === undefined
      ? ''
      : unexpected
        ? `<span class="unexp">unexpected: wanted ${escapeHtml(x.cell.expected)}</span>`
        : '<span class="ok">as expected</span>';
  return (
    `<button type="button" class="${classes.join(' ')}" id="btn-${x.id}"` +
    ` data-kernel="${escapeHtml(r.kernel)}" data-case="${escapeHtml(r.case)}"` +
    ` data-variant="${escapeHtml(x.variant)}" data-target="${x.id}" aria-controls="${x.id}"` +
    ` aria-expanded="false" title="${escapeHtml(title)}">` +
    `<span class="verdict">${escapeHtml(r.verdict)}</span>${mark}` +
    `${x.cell.kernelChange ? '<span class="kchg">kernel changed</span>' : ''}</button>`
  );
}

function renderProbes(r: RunRecord): string {
  if (r.probes.length === 0) return '<p class="none">no probes</p>';
  const rows = r.probes.map((p) => {
    const flags = [p.stoppedEarly ? 'stopped early' : '', p.timedOut ? 'timed out' : ''].filter(Boolean);
    return (
      `<tr><td>${escapeHtml(p.name)}</td><td>${escapeHtml(p.ns)}</td>` +
      `<td>${probeStatus(p) === 'FAIL' ? '<strong>FAIL</strong>' : probeStatus(p)}</td><td>${escapeHtml(p.rc === null ? '-' : String(p.rc))}</td>` +
      `<td>${escapeHtml(seconds(p.durationMs))}</td><td>${escapeHtml(flags.join(', '))}</td>` +
      `<td>${p.output ? `<pre>${escapeHtml(p.output)}</pre>` : ''}</td></tr>`
    );
  });
  return (
    '<table class="probes"><thead><tr><th>probe</th><th>ns</th><th>result</th><th>rc</th><th>time</th>' +
    `<th>flags</th><th>output</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

function renderSignals(r: RunRecord): string {
  if (r.signals.length === 0) return '<p class="none">no signals declared</p>';
  const rows = r.signals.map(
    (x) =>
      `<tr data-signal="${escapeHtml(x.name)}"><td>${escapeHtml(x.name)}</td><td>${escapeHtml(x.role)}</td><td>${x.role === 'absent' ? escapeHtml(signalStateText(x)) : x.fired ? '<strong>fired</strong>' : 'no'}</td>` +
      `<td>${x.count}</td><td>${escapeHtml(x.description)}</td><td>${x.matches.length ? `<pre>${escapeHtml(distinctLines(x.matches.map((m) => m.text)).join('\n'))}</pre>` : ''}` +
      x.matches.filter((m) => m.excerpt?.length).map((m) => `<details class="splat"><summary>${escapeHtml(m.text)}</summary><pre>${escapeHtml(m.excerpt!.join('\n'))}</pre></details>`).join('') +
      '</td></tr>',
  );
  return (
    '<table class="signals"><thead><tr><th>signal</th><th>role</th><th>fired</th><th>count</th><th>looks for</th><th>evidence</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function renderCounters(r: RunRecord): string {
  const names: string[] = [];
  for (const n of Object.keys(r.counters)) if (!names.includes(n)) names.push(n);
  for (const n of Object.keys(r.counterDeltas)) if (!names.includes(n)) names.push(n);
  if (names.length === 0) return '<p class="none">no counters recorded</p>';
  const rows = names.map((n) => {
    const abs = r.counters[n];
    const d = r.counterDeltas[n];
    const delta = d === undefined ? '-' : `${d >= 0 ? '+' : ''}${d}`;
    return (
      `<tr><td>${escapeHtml(n)}</td><td>${escapeHtml(abs === undefined ? '-' : String(abs))}</td>` +
      `<td>${escapeHtml(delta)}</td></tr>`
    );
  });
  return (
    '<table class="counters"><thead><tr><th>counter</th><th>absolute</th><th>delta</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function renderEvidence(x: Indexed): string {
  const { run: r, expected, evidence } = x.cell;
  const unexpected = isUnexpected(x.cell);
  const ki = r.kernelInfo;
  const vm = r.vm;
  const out: string[] = [];
  out.push(
    `<section class="evidence v-${r.verdict}" id="${x.id}" hidden aria-labelledby="h-${x.id}"` +
      ` data-kernel="${escapeHtml(r.kernel)}" data-case="${escapeHtml(r.case)}" data-variant="${escapeHtml(x.variant)}">`,
  );
  out.push(
    `<h3 id="h-${x.id}">${escapeHtml(r.kernel)} / ${escapeHtml(caseLabel(r.case, x.variant))}: ` +
      `${escapeHtml(r.verdict)} (${escapeHtml(seconds(r.durationMs))})</h3>`,
  );
  if (expected !== undefined) {
    out.push(
      unexpected
        ? `<p class="unexp">unexpected: wanted ${escapeHtml(expected)}, got ${escapeHtml(r.verdict)}</p>`
        : `<p>expected: ${escapeHtml(expected)} (matches)</p>`,
    );
  }
  out.push(`<p><strong>reason:</strong> ${escapeHtml(r.reason)}</p>`);
  if (x.cell.kernelChange) out.push(`<p class="kchg">kernel changed since the baseline: ${escapeHtml(x.cell.kernelChange)}</p>`);
  out.push(
    `<p><strong>kernel:</strong> ${escapeHtml(describeKernel(kernelEntry(r.kernel, ki)))}` +
      `<br><strong>vm:</strong> ${escapeHtml(vm.accel)} ${escapeHtml(vm.machine)}` +
      `${vm.bootMs !== undefined ? `, boot ${escapeHtml(seconds(vm.bootMs))}` : ''}` +
      `${vm.snapshot?.use === 'restored' ? ' (restored from the booted-kernel snapshot)' : ''}` +
      `${vm.stoppedAfterDone ? ', stopped by the harness after the agent was done' : `, exit ${escapeHtml(vm.exitCode === null ? '-' : String(vm.exitCode))}`}${vm.timedOut ? ', timed out' : ''}</p>`,
  );
  out.push('<h4>Probes</h4>', renderProbes(r));
  out.push('<h4>Signals</h4>', renderSignals(r));
  out.push('<h4>Counters</h4>', renderCounters(r));
  for (const cap of r.captures)
    out.push(
      `<h4>Capture ${escapeHtml(cap.name)} (${escapeHtml(cap.ns)}:${escapeHtml(cap.dev)}, ${cap.packets} packets)</h4>`,
      `<p class="file">${escapeHtml(cap.file)}</p>`,
      pre(cap.summary.join('\n'), 'no packets'),
    );
  if (r.panic) {
    out.push(`<h4>${escapeHtml(r.panic.kind)}: ${escapeHtml(r.panic.title)}</h4>`, pre(r.panic.text, ''));
  }
  if (r.setup?.length)
    out.push(
      `<details class="setup"><summary>setup (${r.setup.reduce((n, s) => n + s.commands.length, 0)} commands, in the order the guest runs them)</summary>` +
        `${pre(setupLines(r.setup).join('\n'), 'none')}</details>`,
    );
  out.push(
    `<details class="console"><summary>console log (${escapeHtml(r.files.console)})</summary>` +
      `${pre(evidence.console, 'empty')}</details>`,
  );
  out.push(`<details class="trace"><summary>trace (${r.traceEvents} events)</summary>${pre(evidence.trace, 'empty')}</details>`);
  out.push('</section>');
  return out.join('\n');
}

function renderFlips(cells: MatrixCell[]): string {
  const flips = diffRuns(cells.map((c) => c.run)).filter((d) => d.flips);
  const out: string[] = ['<section id="flips">', '<h2>Flips</h2>'];
  if (flips.length === 0) {
    out.push('<p class="none">No flips</p>');
  } else {
    out.push('<ul>');
    for (const d of flips) {
      const pairs = d.kernels.map((k) => {
        const v = d.verdicts[k];
        return `<span class="pair${v ? ` v-${v}` : ''}">${escapeHtml(k)}=${escapeHtml(v ?? '?')}</span>`;
      });
      out.push(
        `<li data-case="${escapeHtml(d.case)}" data-variant="${escapeHtml(d.variant)}">` +
          `<strong class="case">${escapeHtml(d.case)}</strong>` +
          `${d.variant ? ` <span class="variant">[${escapeHtml(d.variant)}]</span>` : ''}: ${pairs.join(', ')}</li>`,
      );
    }
    out.push('</ul>');
  }
  out.push('</section>');
  return out.join('\n');
}

/** --trace-path: one block per compared pair, as report.txt words it. */
export function renderDivergenceSection(list: DivergenceEntry[] | undefined): string {
  if (!list) return '';
  const out = ['<section id="divergence">', '<h2>Divergence</h2>'];
  if (list.length === 0) out.push('<p class="none">Nothing to compare (one kernel per case)</p>');
  for (const e of list) {
    const fn = e.divergence ? `<code>${escapeHtml(e.divergence.function)}</code>` : 'none';
    out.push(
      `<h3 data-case="${escapeHtml(e.case)}" data-variant="${escapeHtml(e.variant)}">${escapeHtml(caseLabel(e.case, e.variant))}: ${escapeHtml(e.before)} vs ${escapeHtml(e.after)}: ${fn}</h3>`,
      pre([...(e.divergence ? divergenceLines(e.divergence) : ['no divergence: the packet paths are the same']), `(${e.note})`].join('\n'), ''),
    );
  }
  out.push('</section>');
  return out.join('\n');
}

function renderKernelSection(meta: HtmlReportMeta): string {
  const out: string[] = [];
  if (meta.kernels?.length) {
    out.push('<section id="kernels">', '<h2>Kernels</h2>', '<ul>');
    for (const k of meta.kernels)
      out.push(`<li data-kernel="${escapeHtml(k.name)}"><strong>${escapeHtml(k.name)}</strong>: ${escapeHtml(describeKernel(k))}</li>`);
    out.push('</ul>', '</section>');
  }
  if (meta.baseline) {
    const ch = meta.baseline.kernelChanges;
    out.push('<section id="kernel-changes">', `<h2>Kernel changed since the baseline <code>${escapeHtml(meta.baseline.runId)}</code></h2>`);
    if (ch.length === 0) out.push('<p class="none">No kernel changed</p>');
    else {
      out.push('<ul>');
      for (const k of ch)
        out.push(
          `<li data-kernel="${escapeHtml(k.kernel)}"><strong>${escapeHtml(k.kernel)}</strong>: ${escapeHtml(k.change)}` +
            ` (${k.cells.length} cell${k.cells.length === 1 ? '' : 's'}, ${k.verdictChanges} with another verdict)</li>`,
        );
      out.push('</ul>');
    }
    out.push('</section>');
  }
  return out.join('\n');
}

function renderSummary(cells: MatrixCell[]): string {
  const counts: Record<Verdict, number> = { reproduced: 0, 'not-reproduced': 0, error: 0, timeout: 0, panic: 0 };
  for (const c of cells) counts[c.run.verdict]++;
  const unexpected = cells.filter(isUnexpected).length;
  const parts = VERDICTS.map((v) => `${v}: ${counts[v]}`).join(', ');
  return (
    `<p class="summary" id="summary">${cells.length} cell${cells.length === 1 ? '' : 's'} - ${escapeHtml(parts)}` +
    ` - unexpected: ${unexpected}</p>`
  );
}

/** One self-contained HTML5 document: meta, verdict grid (kernels x case/variant), per-cell
 * evidence sections toggled by the grid's buttons, and the verdict flips between kernels. */
export function renderHtmlReport(cells: MatrixCell[], meta: HtmlReportMeta): string {
  const indexed: Indexed[] = cells.map((cell, index) => ({
    cell,
    index,
    variant: variantOf(cell.run.sysctls),
    id: `ev-${index}-${slug(cell.run.kernel)}-${slug(cell.run.case)}`,
  }));

  const kernels: string[] = [];
  const columns: Column[] = [];
  const colKey = (c: string, v: string): string => JSON.stringify([c, v]);
  const colKeys = new Set<string>();
  for (const x of indexed) {
    if (!kernels.includes(x.cell.run.kernel)) kernels.push(x.cell.run.kernel);
    const k = colKey(x.cell.run.case, x.variant);
    if (!colKeys.has(k)) {
      colKeys.add(k);
      columns.push({ case: x.cell.run.case, variant: x.variant });
    }
  }

  const grid: string[] = ['<table class="grid"><thead><tr><th>kernel</th>'];
  for (const c of columns) grid.push(`<th class="col" scope="col">${escapeHtml(caseLabel(c.case, c.variant))}</th>`);
  grid.push('</tr></thead><tbody>');
  for (const k of kernels) {
    grid.push(`<tr><th scope="row">${escapeHtml(k)}</th>`);
    for (const c of columns) {
      const here = indexed.filter(
        (x) => x.cell.run.kernel === k && x.cell.run.case === c.case && x.variant === c.variant,
      );
      grid.push(here.length ? `<td>${here.map(renderCellButton).join('')}</td>` : '<td class="empty">-</td>');
    }
    grid.push('</tr>');
  }
  grid.push('</tbody></table>');

  const legend =
    '<p class="legend">' +
    VERDICTS.map((v) => `<span class="v-${v}">${escapeHtml(v)}</span>`).join('') +
    '<span class="unexp-legend">thick double border = unexpected verdict</span></p>';

  const doc = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">`,
    `<title>${escapeHtml(meta.title)}</title>`,
    `<style>${CSS}</style>`,
    '<noscript><style>section.evidence[hidden] { display: block; }</style></noscript>',
    '</head>',
    '<body>',
    `<h1>${escapeHtml(meta.title)}</h1>`,
    `<p class="meta"><span>run: <code>${escapeHtml(meta.runId)}</code></span>` +
      `<span>started: ${escapeHtml(meta.startedAt)}</span><span>accel: ${escapeHtml(meta.accel)}</span></p>`,
    renderSummary(cells),
    renderKernelSection(meta),
    legend,
    cells.length ? grid.join('\n') : '<p class="none">no runs</p>',
    renderFlips(cells),
    renderDivergenceSection(meta.divergences),
    '<h2>Evidence</h2>',
    '<p class="hint">Click a cell in the grid to show or hide its evidence.</p>',
    '<div class="evidence-list">',
    ...indexed.map(renderEvidence),
    '</div>',
    `<script>${SCRIPT}</script>`,
    '</body>',
    '</html>',
    '',
  ];
  return doc.join('\n');
}
