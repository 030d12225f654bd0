// JUnit XML of a kernel x case matrix, for CI test reporters. Pure: returns a string.
//
// One <testsuite> per case, one <testcase> per cell (classname = kernel). A verdict that differs
// from the expectation is a <failure>; an error/timeout/panic verdict with no expectation is an
// <error>; everything else passes (report/outcome.ts). Valid against the Jenkins xunit plugin's
// JUnit schema (test/fixtures/junit-10.xsd): <testsuites> carries no timestamp, each <testsuite> does.

import { probeStatus, type RunRecord, type Verdict } from '../observe/types.ts';
import { distinctLines, variantOf } from './diff.ts';
import { judge, signalStateText, type Judgement } from './outcome.ts';
import { stripAnsi } from './table.ts';
import { describeKernel, kernelEntry } from './kernels.ts';

export interface JUnitCell {
  run: RunRecord;
  expected?: Verdict;
  /** the cell's kernel differs from the baseline's: how */
  kernelChange?: string;
}

export interface JUnitMeta {
  name: string;
  timestamp: string;
}

// Not allowed anywhere in an XML 1.0 document: C0 controls except tab/LF/CR, lone surrogates,
// U+FFFE and U+FFFF.
const INVALID_XML_RE = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Escape text for XML element content: ANSI escapes and XML-invalid characters removed. */
export function escapeXml(s: string): string {
  return stripAnsi(s)
    .replace(INVALID_XML_RE, '')
    .replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c);
}

/** Escape for a quoted attribute value; line breaks and tabs kept as character references so
 * attribute-value normalisation does not turn them into spaces. */
export function escapeXmlAttr(s: string): string {
  return escapeXml(s).replace(/\r/g, '&#13;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
}

function outcomeOf(c: JUnitCell): Judgement {
  return judge(c.run.verdict, c.expected, c.run.reason);
}

function secs(ms: number): string {
  return Number.isFinite(ms) && ms > 0 ? (ms / 1000).toFixed(3) : '0.000';
}

function testName(r: RunRecord): string {
  const variant = variantOf(r.sysctls);
  return variant ? `${r.case}[${variant}]` : r.case;
}

function signalLines(r: RunRecord): string[] {
  const lines: string[] = [];
  for (const x of r.signals) {
    lines.push(`signal ${x.name} (${x.role}): ${signalStateText(x).toLowerCase()} x${x.count} - ${x.description}`);
    for (const m of distinctLines(x.matches.map((y) => y.text)).slice(0, 5)) lines.push(`  ${m}`);
  }
  return lines;
}

function detailText(r: RunRecord): string {
  const lines = [`reason: ${r.reason}`, ...signalLines(r)];
  if (r.panic) lines.push(`${r.panic.kind}: ${r.panic.title}`, r.panic.text);
  return lines.join('\n');
}

function systemOut(r: RunRecord, kernelChange?: string): string {
  const lines = [`verdict: ${r.verdict}`, `reason: ${r.reason}`, `kernel: ${describeKernel(kernelEntry(r.kernel, r.kernelInfo))}`];
  if (kernelChange) lines.push(`kernel changed since the baseline: ${kernelChange}`);
  lines.push(...signalLines(r));
  for (const p of r.probes) lines.push(`probe ${p.name}: ${probeStatus(p)}`);
  lines.push(`console: ${r.files.console}`);
  return lines.join('\n');
}

function renderCase(c: JUnitCell): string {
  const r = c.run;
  const o = outcomeOf(c);
  const out = [
    `    <testcase classname="${escapeXmlAttr(r.kernel)}" name="${escapeXmlAttr(testName(r))}" time="${secs(r.durationMs)}">`,
  ];
  if (o.kind === 'failure') {
    out.push(
      `      <failure message="${escapeXmlAttr(o.message)}" type="unexpected-verdict">${escapeXml(detailText(r))}</failure>`,
    );
  } else if (o.kind === 'error') {
    out.push(`      <error message="${escapeXmlAttr(o.message)}" type="${escapeXmlAttr(r.verdict)}">${escapeXml(detailText(r))}</error>`);
  }
  out.push(`      <system-out>${escapeXml(systemOut(r, c.kernelChange))}</system-out>`);
  out.push('    </testcase>');
  return out.join('\n');
}

/** JUnit XML: <testsuites> with tests/failures/errors totals, one <testsuite> per case
 * (first-seen order), one <testcase> per cell. */
export function renderJUnit(cells: JUnitCell[], meta: JUnitMeta): string {
  const suites = new Map<string, JUnitCell[]>();
  for (const c of cells) {
    const list = suites.get(c.run.case);
    if (list) list.push(c);
    else suites.set(c.run.case, [c]);
  }

  let tests = 0;
  let failures = 0;
  let errors = 0;
  let totalMs = 0;
  const body: string[] = [];
  let suiteId = 0;
  for (const [name, list] of suites) {
    let f = 0;
    let e = 0;
    let ms = 0;
    for (const c of list) {
      const o = outcomeOf(c);
      if (o.kind === 'failure') f++;
      if (o.kind === 'error') e++;
      if (Number.isFinite(c.run.durationMs) && c.run.durationMs > 0) ms += c.run.durationMs;
    }
    tests += list.length;
    failures += f;
    errors += e;
    totalMs += ms;
    body.push(
      `  <testsuite id="${suiteId++}" name="${escapeXmlAttr(name)}" tests="${list.length}" failures="${f}" errors="${e}" skipped="0" time="${secs(ms)}" timestamp="${escapeXmlAttr(meta.timestamp)}">`,
    );
    for (const c of list) body.push(renderCase(c));
    body.push('  </testsuite>');
  }

  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${escapeXmlAttr(meta.name)}" tests="${tests}" failures="${failures}" errors="${errors}" time="${secs(totalMs)}">`,
    ...body,
    '</testsuites>',
    '',
  ].join('\n');
}
