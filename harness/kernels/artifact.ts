// What a run records about the kernel it booted. Pure.
import type { KernelInfo } from '../observe/types.ts';
import type { KernelArtifact } from './build.ts';

/** What a run records about its kernel (the guest's own `uname -r` replaces the release once it has run). */
export function artifactInfo(k: KernelArtifact): KernelInfo {
  return {
    release: k.meta.release,
    configHash: k.meta.configHash,
    key: k.key,
    source: k.meta.source,
    ...(k.meta.sourceVersion ? { sourceVersion: k.meta.sourceVersion, pinned: k.meta.pinned ?? false } : {}),
    ...(k.meta.caseConfig?.length ? { caseConfig: k.meta.caseConfig } : {}),
    ...(k.meta.traceConfig?.length ? { traceConfig: k.meta.traceConfig } : {}),
    patches: k.meta.patches,
  };
}

