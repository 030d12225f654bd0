// The "divergence" section (--trace-path): where two kernels' packet paths split, for report.txt,
// verify.md, the HTML reports and bisect's culprit report. Pure: returns strings.
import type { Divergence, DivergenceSide, PathComparison } from '../observe/divergence.ts';

/** What summary.json, verify.json and bisect.json carry per compared pair. */
export interface DivergenceEntry extends PathComparison {
  case: string;
  /** the sysctl variant ("" for none) */
  variant: string;
  /** 2: a second pass recorded return values (kretprobes on `probed` functions around the split) */
  passes: number;
  probed: number;
}

function caseLabel(c: string, variant: string): string {
  return variant ? `${c} [${variant}]` : c;
}

function sideLine(s: DivergenceSide, fn: string, width: number): string {
  const ret = s.retText !== null ? `${fn} returned ${s.retText}` : `${fn}: return value not recorded`;
  const next = s.next ? `next: ${s.next}${s.nextIn ? ` (in ${s.nextIn})` : ''}${s.then.length ? `, then ${s.then.join(', ')}` : ''}` : 'no further call for this packet';
  return `  ${`${s.kernel}:`.padEnd(width + 1)} ${ret}; ${next}`;
}

/** The lines of one divergence (no heading). */
export function divergenceLines(d: Divergence): string[] {
  const w = Math.max(d.before.kernel.length, d.after.kernel.length);
  const out = [
    `packet: ${d.packet}`,
    `function: ${d.function}${d.via.length ? ` (called from ${d.via.slice(0, 4).join(' <- ')}${d.via.length > 4 ? ' <- ...' : ''})` : ''}`,
    d.how === 'return' ? `  its return value differs, and so does what follows:` : `  the kernels made different calls from here (no differing return value recorded):`,
    sideLine(d.before, d.function, w),
    sideLine(d.after, d.function, w),
  ];
  if (d.drop) out.push(`drop: ${d.drop.reason} in ${d.drop.at ?? '(unknown function)'} on ${d.drop.kernel}`);
  else out.push('drop: none after the split');
  for (const s of [d.before, d.after])
    if (s.events.length) {
      out.push(`events inside ${d.function} on ${s.kernel}:`);
      for (const e of s.events) out.push(`  ${e}`);
    }
  return out;
}

/** report.txt / terminal: one block per compared pair. */
export function renderDivergences(list: DivergenceEntry[]): string {
  if (list.length === 0) return '== divergence ==\nnothing to compare (--trace-path needs two kernels per case)';
  return list
    .map((e) => {
      const head = `== divergence: ${caseLabel(e.case, e.variant)}: ${e.before} vs ${e.after} ==`;
      const body = e.divergence ? divergenceLines(e.divergence) : ['no divergence: the packet paths are the same'];
      const how = `(${e.note}; ${e.passes === 2 ? `return values from a second pass with ${e.probed} return probes` : 'one pass, no return probes'})`;
      return [head, ...body, how].join('\n');
    })
    .join('\n\n');
}

/** verify.md: a sub-section per case. */
export function divergenceMarkdown(e: DivergenceEntry): string {
  const fence = (s: string): string => '```\n' + s.replace(/```/g, "'''") + '\n```';
  const title = e.divergence ? `Divergence: \`${e.divergence.function}\` (${e.before} vs ${e.after})` : `Divergence: none (${e.before} vs ${e.after})`;
  const body = e.divergence ? divergenceLines(e.divergence).join('\n') : 'the packet paths are the same';
  return [`#### ${title}`, '', fence(`${body}\n(${e.note})`)].join('\n');
}

/** The JSON form (summary.json `divergences[]`, verify.json, bisect.json): the entry's own fields (and the files compared, when known). */
export function divergenceJson(e: DivergenceEntry & { files?: { before: string; after: string } }): DivergenceEntry & { files?: { before: string; after: string } } {
  const { case: c, variant, before, after, divergence, note, passes, probed, files } = e;
  return JSON.parse(JSON.stringify({ case: c, variant, before, after, divergence, note, passes, probed, ...(files ? { files } : {}) })) as DivergenceEntry;
}
