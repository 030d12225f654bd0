// Pure logic of patch verification: read a patch (git format-patch / mbox or a plain diff),
// conclude per case from before/after verdict counts and evidence, render Markdown.
import { describeRepeats, type RepeatsSummary } from '../pipeline/repeats.ts';
import type { RunRecord } from '../observe/types.ts';
import type { SignalRole } from '../observe/signals/types.ts';
import { describeKernel, type KernelEntry } from '../report/kernels.ts';
import { ExitCode, type ExitCodeValue } from '../util/errors.ts';

/** Version of verify.json (and `verify --json`); raised when a field changes meaning. */
export const VERIFY_SCHEMA_VERSION = 2;
import { divergenceMarkdown, type DivergenceEntry } from '../report/divergence.ts';

export interface PatchInfo {
  subject: string;
  author: string | null;
  date: string | null;
  files: Array<{ path: string; added: number; removed: number }>;
}

export function parsePatch(text: string, fallbackName: string): PatchInfo {
  const lines = text.replace(/\r/g, '').split('\n');
  let subject: string | null = null;
  let author: string | null = null;
  let date: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('diff --git ') || l.startsWith('--- ')) break;
    if (subject === null && /^Subject: /.test(l)) {
      let s = l.slice(9);
      while (lines[i + 1] !== undefined && /^\s+\S/.test(lines[i + 1]!)) s += ' ' + lines[++i]!.trim(); // folded header
      subject = s.replace(/^\[PATCH[^\]]*\]\s*/, '').trim();
    } else if (author === null && /^From: /.test(l)) author = l.slice(6).trim();
    else if (date === null && /^Date: /.test(l)) date = l.slice(6).trim();
  }
  const files: PatchInfo['files'] = [];
  let cur: PatchInfo['files'][number] | null = null;
  let inHunk = false;
  for (const l of lines) {
    const m = /^\+\+\+ (?:b\/)?(\S+)/.exec(l);
    if (m && !inHunk) {
      cur = { path: m[1]!, added: 0, removed: 0 };
      files.push(cur);
      continue;
    }
    if (l.startsWith('diff --git ') || l.startsWith('--- ')) {
      inHunk = false;
      continue;
    }
    if (l.startsWith('@@')) {
      inHunk = true;
      continue;
    }
    if (!cur || !inHunk) continue;
    if (l === '-- ') inHunk = false; // format-patch signature separator
    else if (l.startsWith('+')) cur.added++;
    else if (l.startsWith('-')) cur.removed++;
  }
  return { subject: subject ?? fallbackName, author, date, files };
}

export function diffstat(p: PatchInfo): string {
  const w = Math.max(0, ...p.files.map((f) => f.path.length));
  const rows = p.files.map((f) => ` ${f.path.padEnd(w)} | ${String(f.added + f.removed).padStart(3)} ${'+'.repeat(Math.min(f.added, 40))}${'-'.repeat(Math.min(f.removed, 40))}`);
  const add = p.files.reduce((s, f) => s + f.added, 0);
  const del = p.files.reduce((s, f) => s + f.removed, 0);
  rows.push(` ${p.files.length} file${p.files.length === 1 ? '' : 's'} changed, ${add} insertion${add === 1 ? '' : 's'}(+), ${del} deletion${del === 1 ? '' : 's'}(-)`);
  return rows.join('\n');
}

export type Conclusion = 'fixed' | 'still reproduces' | 'newly broken' | 'unchanged' | 'inconclusive' | 'build failed' | 'boot failed';

export interface SideSignal {
  name: string;
  role: SignalRole;
  description: string;
  /** how many times it fired, per run */
  counts: number[];
  /** its distinct evidence lines over the runs */
  evidence: string[];
}

export interface SideSummary {
  reproduced: number;
  runs: number;
  /** runs that ended in error / timeout / panic */
  failed: number;
  signals: SideSignal[];
}

export function summarizeSide(records: RunRecord[]): SideSummary {
  const signals: SideSignal[] = [];
  for (const r of records)
    for (const x of r.signals) {
      let s = signals.find((y) => y.name === x.name);
      if (!s) {
        s = { name: x.name, role: x.role, description: x.description, counts: [], evidence: [] };
        signals.push(s);
      }
      s.counts.push(x.count);
      for (const m of x.matches) if (!s.evidence.includes(m.text)) s.evidence.push(m.text);
    }
  return {
    reproduced: records.filter((r) => r.verdict === 'reproduced').length,
    runs: records.length,
    failed: records.filter((r) => r.verdict !== 'reproduced' && r.verdict !== 'not-reproduced').length,
    signals,
  };
}

/** The signature signals' evidence, for "did the kernel say the same thing": sorted distinct lines. */
function signatureEvidence(s: SideSummary): string {
  return JSON.stringify(s.signals.filter((x) => x.role === 'signature').flatMap((x) => x.evidence.map((e) => `${x.name}: ${e}`)).sort());
}

/**
 * fixed: reproduced in every run before, in none after. newly broken: the reverse. unchanged: the
 * same all-or-nothing outcome on both sides with the same kernel evidence.
 * still reproduces: reproduced in every run on both sides but the evidence changed (the signature
 * signals' lines). Anything
 * else (a mix of outcomes on one side, or runs that errored) is inconclusive.
 */
export function conclude(before: SideSummary, after: SideSummary, afterProblem?: 'build failed' | 'boot failed'): Conclusion {
  if (afterProblem) return afterProblem;
  if (after.runs > 0 && after.failed === after.runs) return 'boot failed';
  if (before.failed > 0 || after.failed > 0) return 'inconclusive';
  const all = (s: SideSummary): boolean => s.reproduced === s.runs && s.runs > 0;
  const none = (s: SideSummary): boolean => s.reproduced === 0 && s.runs > 0;
  if (all(before) && none(after)) return 'fixed';
  if (none(before) && all(after)) return 'newly broken';
  const sameEvidence = signatureEvidence(before) === signatureEvidence(after);
  if ((all(before) && all(after)) || (none(before) && none(after))) return sameEvidence || none(before) ? 'unchanged' : 'still reproduces';
  return 'inconclusive';
}

export interface VerifyCaseResult {
  case: string;
  before: SideSummary;
  after: SideSummary;
  conclusion: Conclusion;
  /** --trace-path: where the base kernel's packet path and the patched kernel's split (null: they did not) */
  path?: DivergenceEntry;
}

export interface VerifyReport {
  patch: PatchInfo & { file: string; diffstat: string };
  base: KernelEntry;
  patched: KernelEntry | null;
  problem?: { kind: 'build failed' | 'boot failed'; message: string; excerpt: string };
  repeat: number;
  /** --repeat 2 or more: how the repeats were made */
  repeats?: RepeatsSummary;
  cases: VerifyCaseResult[];
}

const fence = (s: string): string => '```\n' + s.replace(/```/g, "'''") + '\n```';

export function renderMarkdown(r: VerifyReport): string {
  const out: string[] = [];
  out.push(`## kernel-repro: ${r.patch.subject}`, '');
  if (r.patch.author) out.push(`Author: ${r.patch.author}${r.patch.date ? `, ${r.patch.date}` : ''}`);
  out.push('', fence(r.patch.diffstat), '');
  out.push(`Base: ${r.base.name}: ${describeKernel(r.base)}`);
  if (r.patched) out.push(`Patched: ${r.patched.name}: ${describeKernel(r.patched)}`);
  out.push(`Runs per kernel and case: ${r.repeat}`, '');
  if (r.repeats) out.push(describeRepeats(r.repeats), '');
  if (r.problem) out.push(`**The patched kernel: ${r.problem.kind}.** ${r.problem.message}`, '', fence(r.problem.excerpt), '');
  out.push('| case | before (reproduced) | after (reproduced) | conclusion |', '|---|---|---|---|');
  for (const c of r.cases)
    out.push(`| ${c.case} | ${c.before.reproduced}/${c.before.runs} | ${c.after.runs ? `${c.after.reproduced}/${c.after.runs}` : '-'} | **${c.conclusion}** |`);
  for (const c of r.cases) {
    out.push('', `### ${c.case}: ${c.conclusion}`, '');
    const side = (label: string, s: SideSummary): void => {
      out.push(`${label}: ${s.reproduced}/${s.runs} reproduced${s.failed ? `, ${s.failed} errored` : ''}`);
      for (const x of s.signals) {
        out.push(`- ${x.name} (${x.role}: ${x.description}): fired ${x.counts.join(', ')} time(s) per run`);
        if (x.evidence.length) out.push(fence(x.evidence.slice(0, 6).join('\n')));
      }
    };
    side('Before', c.before);
    side('After', c.after);
    if (c.path) out.push('', divergenceMarkdown(c.path));
  }
  return out.join('\n') + '\n';
}

/** 4 when the patched kernel did not build; 1 when a case has no clear answer (inconclusive, boot
 * failed); else 0 (fixed, newly broken, unchanged and still reproduces are answers). */
export function verifyExitCode(r: Pick<VerifyReport, 'problem' | 'cases'>): ExitCodeValue {
  if (r.problem?.kind === 'build failed') return ExitCode.buildFailed;
  if (r.cases.some((c) => c.conclusion === 'inconclusive' || c.conclusion === 'boot failed' || c.conclusion === 'build failed')) return ExitCode.runFailed;
  return ExitCode.ok;
}
