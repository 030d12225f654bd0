// What `reduce` reports: reduce.json (schemaVersion 1) and reduce.md, from the search's result and
// its trials. Pure.
import type { KernelEntry } from '../report/kernels.ts';
import type { Verdict } from '../observe/types.ts';
import type { CaseElements } from './elements.ts';
import type { SearchResult } from './search.ts';
import type { Role } from './trial.ts';

export const REDUCE_SCHEMA_VERSION = 1;

export interface TrialRecord {
  id: string;
  /** elements the candidate kept */
  elements: number;
  kept: string[];
  outcome: 'bug' | 'not-bug' | 'invalid';
  flaky: boolean;
  confirmed: boolean;
  why: string;
  runs: Array<{ role: Role; attempt: 1 | 2; kernel: string; verdict: Verdict; reason: string; ms: number; dir: string }>;
  /** the candidate's case file */
  file: string;
  ms: number;
}

export type ElementStatus = 'necessary' | 'unnecessary' | 'required' | 'simplified';

export interface ElementReport {
  id: string;
  kind: string;
  label: string;
  status: ElementStatus;
  /** the trial that showed it (absent for required elements) */
  trial: string | null;
  note: string;
}

export interface ReduceReport {
  schemaVersion: number;
  case: { name: string; file: string };
  /** with --against: reproduced on buggy and not-reproduced on fixed; without: reproduced on buggy (weaker) */
  mode: 'difference' | 'reproduces';
  kernels: { buggy: KernelEntry; fixed: KernelEntry | null };
  original: { elements: Array<{ id: string; label: string }>; required: Array<{ id: string; label: string; why: string }> };
  reduced: { name: string; file: string; elements: Array<{ id: string; label: string }> };
  elements: ElementReport[];
  simplifications: SearchResult['simplifications'];
  oneMinimal: true;
  trialCount: number;
  runCount: number;
  flakyTrials: number;
  invalidTrials: number;
  wallMs: number;
  /** wall time per trial (a trial: up to two attempts on one or both kernels) */
  secondsPerTrial: number;
  /** the original case's first run on the buggy kernel (a full case run, setting it up) */
  originalRunMs: number | null;
  /** the mean guest run of the trials: first attempts (set up + case snapshot) and repeats (restored) */
  meanRunMs: { firstAttempt: number | null; repeat: number | null };
  trials: TrialRecord[];
}

export function elementReports(ce: CaseElements, r: SearchResult, trials: ReadonlyMap<string, TrialRecord>): ElementReport[] {
  const out: ElementReport[] = [];
  const adoptedFor = new Map(r.simplifications.filter((s) => s.adopted).map((s) => [s.element, s]));
  const describe = (trial: string | undefined): string => (trial && trials.get(trial) ? `${trial}: ${trials.get(trial)!.why}` : (trial ?? ''));
  for (const e of ce.elements) {
    const simp = adoptedFor.get(e.id);
    if (simp) {
      const v = ce.byId.get(simp.adopted!)!;
      const t = simp.tried.find((x) => x.variant === simp.adopted)!.trial;
      const after = r.necessary.has(v.id) ? 'and needed' : r.removed.has(v.id) ? `then unnecessary (${r.removed.get(v.id)})` : '';
      out.push({ id: e.id, kind: e.kind, label: e.label, status: 'simplified', trial: t, note: `replaced by ${v.label} (${v.id}) ${after}; ${describe(t)}`.trim() });
      if (r.necessary.has(v.id)) out.push({ id: v.id, kind: v.kind, label: v.label, status: 'necessary', trial: r.necessary.get(v.id)!, note: `without it: ${describe(r.necessary.get(v.id))}` });
      continue;
    }
    if (r.necessary.has(e.id)) out.push({ id: e.id, kind: e.kind, label: e.label, status: 'necessary', trial: r.necessary.get(e.id)!, note: `without it: ${describe(r.necessary.get(e.id))}` });
    else {
      const t = r.removed.get(e.id) ?? null;
      out.push({ id: e.id, kind: e.kind, label: e.label, status: 'unnecessary', trial: t, note: t ? `removed in ${describe(t)}` : '' });
    }
  }
  for (const q of ce.required) out.push({ id: q.id, kind: ce.byId.get(q.id)?.kind ?? 'element', label: q.label, status: 'required', trial: null, note: q.why });
  return out;
}

function secs(ms: number): string {
  return ms >= 60_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

export function renderReduceMarkdown(rep: ReduceReport): string {
  const necessary = rep.elements.filter((e) => e.status === 'necessary');
  const required = rep.elements.filter((e) => e.status === 'required');
  const simplified = rep.elements.filter((e) => e.status === 'simplified');
  const unnecessary = rep.elements.filter((e) => e.status === 'unnecessary');
  const against = rep.kernels.fixed;
  const lines = [
    `# reduce: ${rep.case.name}`,
    '',
    against
      ? `Kept: the smallest case found that is still \`reproduced\` on ${rep.kernels.buggy.name} and \`not-reproduced\` on ${against.name} (the bug is still the difference).`
      : `Kept: the smallest case found that is still \`reproduced\` on ${rep.kernels.buggy.name}. **Weaker than a reduction against a fixed kernel**: nothing checked that the reduced case tells a fixed kernel apart (give \`--against FIXED\`).`,
    '',
    `- original: ${rep.case.file}, ${rep.original.elements.length} removable elements (${rep.original.required.length} more the signature needs)`,
    `- reduced: ${rep.reduced.file}, ${rep.reduced.elements.length} elements kept`,
    `- 1-minimal: removing any one of the kept elements (with what depends on it) loses the ${against ? 'difference' : 'reproduction'}; the trial that showed it is named for each`,
    `- ${rep.trialCount} trials (${rep.runCount} guest runs; ${rep.flakyTrials} flaky, ${rep.invalidTrials} invalid candidates), ${secs(rep.wallMs)} wall, ${rep.secondsPerTrial.toFixed(2)} s per trial` +
      (rep.originalRunMs !== null ? `; a full run of the original case: ${(rep.originalRunMs / 1000).toFixed(2)} s` : ''),
    `- kernels: ${rep.kernels.buggy.name} (${rep.kernels.buggy.release}, config ${rep.kernels.buggy.configHash})${against ? `, against ${against.name} (${against.release}, config ${against.configHash})` : ''}`,
    '',
    '## Necessary',
    '',
    '| element | what | trial without it |',
    '|---|---|---|',
    ...necessary.map((e) => `| \`${e.id}\` | ${esc(e.label)} | ${esc(e.note.replace(/^without it: /, ''))} |`),
    ...required.map((e) => `| \`${e.id}\` | ${esc(e.label)} | required: ${esc(e.note)} (not tried) |`),
  ];
  if (simplified.length) lines.push('', '## Simplified', '', ...simplified.map((e) => `- \`${e.id}\` ${e.label}: ${e.note}`));
  const rejected = rep.simplifications.filter((s) => !s.adopted);
  if (rejected.length) lines.push('', 'Simplifications tried and rejected:', '', ...rejected.map((s) => `- \`${s.element}\`: ${s.tried.map((t) => `${t.variant} (${t.trial})`).join(', ')}`));
  lines.push('', '## Not necessary', '', '| element | what | removed by |', '|---|---|---|', ...unnecessary.map((e) => `| \`${e.id}\` | ${esc(e.label)} | ${e.trial ?? ''} |`));
  lines.push('', '## Trials', '', '| trial | elements | outcome | runs |', '|---|---|---|---|');
  for (const t of rep.trials) lines.push(`| ${t.id} | ${t.elements} | ${t.outcome}${t.flaky ? ' (flaky)' : ''}${t.outcome !== 'invalid' && !t.confirmed && !t.flaky ? ' (not repeated)' : ''} | ${t.runs.map((r) => `${r.kernel}#${r.attempt} ${r.verdict}`).join(', ') || esc(t.why)} |`);
  return lines.join('\n') + '\n';
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
