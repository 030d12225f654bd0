// The one interface every kernel source type implements: what the kernel is (identity), how to
// obtain or build it (artifact, with its modules and its config), and the files of its source tree
// a case may take. A new source type is one module here, its entry in ../schema.ts and one line
// in ./index.ts's registry.
import type { BuildOptions, KernelArtifact } from '../artifact.ts';
import { buildFromSource, readTreeFiles } from '../build.ts';
import type { LoadedKernel } from '../load.ts';
import type { SourceOf, SourceType } from '../schema.ts';
import type { SourceFileWant, SourceIdentity } from '../source.ts';

export interface KernelIdentity {
  /** stable id used in cache keys */
  id: string;
  /** human label, e.g. "linux-source-6.1 6.1.192-2" */
  label: string;
  /** the source's own version where it has one, as resolved at run time */
  version?: string;
  /** the definition pinned that version */
  pinned?: boolean;
  /** where the source's version came from when the definition did not pin it and it is not the installed package: the Debian suite whose candidate it is */
  origin?: string;
}

export interface HostPackage {
  file: string;
  pkg: string;
}

export type SourceFilesOptions = BuildOptions & { field?: string; artifact?: KernelArtifact };

/** A file a case wants from the kernel's source tree: a mandatory one missing from the tree is an
 * error; an optional one is then left out (the files read are the ones the tree has). */
// a file a case wants from the kernel's tree: defined beside the source trees (no import cycle)
export type { SourceFileWant } from '../source.ts';

export interface KernelProvider<T extends SourceType> {
  readonly type: T;
  /** 'source': configured (the definition's config, the cases' needs merged in) and built by the
   * harness; 'prebuilt': booted as it is, its config only checked against the cases' needs */
  readonly kind: 'source' | 'prebuilt';
  /** host packages the source needs installed (the prerequisites check installs them) */
  hostPackages(src: SourceOf<T>): HostPackage[];
  /** what the kernel is; may resolve (apt, git) or fetch (a URL) */
  identify(src: SourceOf<T>, k: LoadedKernel, opts: BuildOptions): Promise<KernelIdentity>;
  /** the kernel: from the cache, or fetched / unpacked / built into it */
  obtain(src: SourceOf<T>, k: LoadedKernel, opts: BuildOptions): Promise<KernelArtifact>;
  /** files of the kernel's source tree, as the kernel saw them (what a case's sourceFiles asks for) */
  sourceFiles(src: SourceOf<T>, k: LoadedKernel, wants: SourceFileWant[], opts: SourceFilesOptions): Promise<Record<string, string>>;
}

/** A provider whose kernels the harness builds: it only says what the source is and how to bring
 * its working tree up (SourceIdentity); configure, build and cache are the build engine's (../build.ts). */
export function sourceProvider<T extends SourceType>(
  type: T,
  identify: (src: SourceOf<T>, k: LoadedKernel, opts: BuildOptions) => Promise<SourceIdentity>,
  hostPackages: (src: SourceOf<T>) => HostPackage[] = () => [],
): KernelProvider<T> {
  return {
    type,
    kind: 'source',
    hostPackages,
    identify,
    async obtain(src, k, opts) {
      return buildFromSource(k, await identify(src, k, opts), opts);
    },
    async sourceFiles(src, k, wants, opts) {
      if (wants.length === 0) return {};
      return readTreeFiles(k, await identify(src, k, opts), wants, opts);
    },
  };
}
