// What every kernel provider hands back (a built, fetched or given kernel), and what a run records
// about it. Both the providers and the stages that boot kernels import this module; it imports none
// of them. Pure.
import type { KernelInfo } from '../observe/types.ts';
import type { Logger } from '../util/log.ts';

export interface KernelMeta {
  name: string;
  release: string;
  configHash: string;
  source: string;
  sourceId: string;
  /** the source's version as resolved for this run (a Debian package's version); absent for other sources */
  sourceVersion?: string;
  /** the definition pinned that version */
  pinned?: boolean;
  /** where the source's version came from when the definition did not pin it and it is not the installed package: the Debian suite whose candidate it is */
  origin?: string;
  /** options the cases needed that the kernel's own config lacked, merged into this build */
  caseConfig?: string[];
  /** options of the tracing variant (--trace-path) the kernel's own config lacked, merged into this build */
  traceConfig?: string[];
  /** where a prebuilt kernel's config was read from (the image's IKCONFIG, a file beside it) */
  configFrom?: string;
  patches: string[];
  compiler: string;
  buildMs: number;
  builtAt: string;
}

export interface KernelArtifact {
  name: string;
  key: string;
  dir: string;
  bzImage: string;
  /** uncompressed ELF kernel for direct PVH entry; absent for distribution images */
  vmlinux: string;
  /** loadable modules (distribution kernels): /lib/modules/<release> tree with modules.dep */
  modules?: { dir: string; release: string; sourcePackage: string | null };
  config: string;
  meta: KernelMeta;
  cached: boolean;
}

/** What every provider's `obtain` takes. */
export interface BuildOptions {
  cacheDir: string;
  log: Logger;
  jobs?: number;
  /** per-make deadline (default 60 min) */
  timeoutMs?: number;
  /** kconfig options the cases to run need (merged into the config when it lacks them): which cases, from which file */
  needs?: { options: string[]; by: string; file?: string };
  /** the tracing variant (--trace-path): TRACE_KCONFIG merged in, with its own build directory beside the plain one */
  tracing?: boolean;
  /** false (--no-install): no apt at all; a source package not in the cache is exit 3 with the command */
  install?: boolean;
}

/** What a run records about its kernel (the guest's own `uname -r` replaces the release once it has run). */
export function artifactInfo(k: KernelArtifact): KernelInfo {
  return {
    release: k.meta.release,
    configHash: k.meta.configHash,
    key: k.key,
    source: k.meta.source,
    ...(k.meta.sourceVersion ? { sourceVersion: k.meta.sourceVersion, pinned: k.meta.pinned ?? false, ...(k.meta.origin ? { origin: k.meta.origin } : {}) } : {}),
    ...(k.meta.caseConfig?.length ? { caseConfig: k.meta.caseConfig } : {}),
    ...(k.meta.traceConfig?.length ? { traceConfig: k.meta.traceConfig } : {}),
    patches: k.meta.patches,
  };
}
