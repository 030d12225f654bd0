// Kernel identity in reports: which exact source (and version), patches and config a run's kernel
// was built from, and what changed between two runs of "the same" kernel. Pure.
import type { KernelInfo, RunRecord } from '../observe/types.ts';

export interface KernelEntry {
  name: string;
  source: string;
  /** the source's version as resolved at run time (Debian packages), null for other sources */
  sourceVersion: string | null;
  /** true: the definition pinned the version; false: whatever was installed; null: not applicable */
  pinned: boolean | null;
  /** the Debian suite the version was fetched from (its candidate when not pinned); absent: the host's own packages */
  origin?: string;
  release: string;
  configHash: string;
  patches: string[];
  /** kconfig options merged in for the cases (absent: the kernel's own config had them all) */
  caseConfig?: string[];
  /** kconfig options merged in for path tracing (the tracing variant, --trace-path) */
  traceConfig?: string[];
  key: string;
}

export function kernelEntry(name: string, ki: KernelInfo): KernelEntry {
  return {
    name,
    source: ki.source,
    sourceVersion: ki.sourceVersion ?? null,
    pinned: ki.sourceVersion !== undefined ? (ki.pinned ?? false) : null,
    ...(ki.origin ? { origin: ki.origin } : {}),
    release: ki.release,
    configHash: ki.configHash,
    patches: [...ki.patches],
    ...(ki.caseConfig?.length ? { caseConfig: [...ki.caseConfig] } : {}),
    ...(ki.traceConfig?.length ? { traceConfig: [...ki.traceConfig] } : {}),
    key: ki.key,
  };
}

/** The distinct kernels of some runs, in first-seen order (one entry per name and identity). */
export function kernelsOf(runs: Array<Pick<RunRecord, 'kernel' | 'kernelInfo'>>): KernelEntry[] {
  const out: KernelEntry[] = [];
  const seen = new Set<string>();
  for (const r of runs) {
    const id = JSON.stringify([r.kernel, identityKey(r.kernelInfo)]);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(kernelEntry(r.kernel, r.kernelInfo));
  }
  return out;
}

function patchName(p: string): string {
  const reverse = p.startsWith('reverse ');
  const file = reverse ? p.slice('reverse '.length) : p;
  return `${reverse ? '-R ' : ''}${file.split('/').pop() ?? file}`;
}

/** One line: source and version (pinned or as installed), patches, release, config hash. */
export function describeKernel(e: Pick<KernelEntry, 'source' | 'sourceVersion' | 'pinned' | 'origin' | 'release' | 'configHash' | 'patches' | 'caseConfig' | 'traceConfig'>): string {
  const how = e.pinned === true ? ' (pinned)' : e.pinned === false ? (e.origin ? " (the suite's candidate, not pinned)" : ' (installed, not pinned)') : '';
  const parts = [`${e.source}${how}`];
  if (e.patches.length) parts.push(e.patches.map(patchName).join(', '));
  if (e.caseConfig?.length) parts.push(`+ ${e.caseConfig.join(' ')} (for the case)`);
  if (e.traceConfig?.length) parts.push(`+ ${e.traceConfig.join(' ')} (tracing variant)`);
  parts.push(`release ${e.release}`, `config ${e.configHash.slice(0, 12)}`);
  return parts.join(', ');
}

/** "kernels:" then one line per kernel, for the head of a table or report. */
export function renderKernels(entries: KernelEntry[]): string {
  if (entries.length === 0) return 'kernels: (none)';
  const w = Math.max(...entries.map((e) => e.name.length));
  return ['kernels:', ...entries.map((e) => `  ${e.name.padEnd(w)}  ${describeKernel(e)}`)].join('\n');
}

/** What makes two kernels the same kernel: the source with its version, the patches, the final config. */
export function identityKey(ki: Pick<KernelInfo, 'source' | 'sourceVersion' | 'patches' | 'configHash'>): string {
  return JSON.stringify([ki.source, ki.sourceVersion ?? null, [...ki.patches], ki.configHash]);
}

/** How a kernel's identity changed, in words; null when it did not. */
export function identityChange(
  before: Pick<KernelInfo, 'source' | 'sourceVersion' | 'patches' | 'configHash'>,
  after: Pick<KernelInfo, 'source' | 'sourceVersion' | 'patches' | 'configHash'>,
): string | null {
  if (identityKey(before) === identityKey(after)) return null;
  const parts: string[] = [];
  if (before.source !== after.source || (before.sourceVersion ?? null) !== (after.sourceVersion ?? null))
    parts.push(`source ${before.source} -> ${after.source}`);
  if (JSON.stringify(before.patches) !== JSON.stringify(after.patches))
    parts.push(`patches [${before.patches.map(patchName).join(', ')}] -> [${after.patches.map(patchName).join(', ')}]`);
  if (before.configHash !== after.configHash) parts.push(`config ${before.configHash.slice(0, 12)} -> ${after.configHash.slice(0, 12)}`);
  return parts.join('; ');
}
