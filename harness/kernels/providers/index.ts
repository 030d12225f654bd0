// The registry of kernel providers, one per source type (../schema.ts), and the three things the
// stages ask of a kernel definition whatever its source: the kernel, its source files, the host
// packages it needs. TypeScript checks that every source type of the schema has its provider.
import type { BuildOptions, KernelArtifact } from '../artifact.ts';
import type { LoadedKernel } from '../load.ts';
import type { SourceDef, SourceType } from '../schema.ts';
import { deb } from './deb.ts';
import { debianImage } from './debianImage.ts';
import { debianSource } from './debianSource.ts';
import { dir } from './dir.ts';
import { git } from './git.ts';
import { image } from './image.ts';
import { tarball } from './tarball.ts';
import type { HostPackage, KernelIdentity, KernelProvider, SourceFilesOptions, SourceFileWant } from './types.ts';
import { url } from './url.ts';

export type { HostPackage, KernelIdentity, KernelProvider, SourceFileWant } from './types.ts';

const PROVIDERS: { readonly [T in SourceType]: KernelProvider<T> } = {
  'debian-source': debianSource,
  url,
  tarball,
  git,
  dir,
  'debian-image': debianImage,
  deb,
  image,
};

/** The provider of a source type. */
export function providerFor(src: SourceDef): KernelProvider<SourceType> {
  return PROVIDERS[src.type] as KernelProvider<SourceType>;
}

/** Is this definition's kernel built by the harness (config merged, patches applied) or booted as it is? */
export function isPrebuilt(k: LoadedKernel): boolean {
  return providerFor(k.def.source).kind === 'prebuilt';
}

/** What the kernel of a definition is (may resolve a version or a commit). */
export function identifyKernel(k: LoadedKernel, opts: BuildOptions): Promise<KernelIdentity> {
  return providerFor(k.def.source).identify(k.def.source, k, opts);
}

/** The kernel a definition describes, from the cache or obtained (fetched, unpacked, built) into it. */
export function ensureKernel(k: LoadedKernel, opts: BuildOptions): Promise<KernelArtifact> {
  return providerFor(k.def.source).obtain(k.def.source, k, opts);
}

/** Files of the kernel's source tree (a case's sourceFiles), as that kernel sees them: path ->
 * content, for the files the tree has (a mandatory file it lacks is an error, an optional one is
 * left out). A plain path is mandatory. */
export function readSourceFiles(k: LoadedKernel, files: ReadonlyArray<string | SourceFileWant>, opts: SourceFilesOptions): Promise<Record<string, string>> {
  if (files.length === 0) return Promise.resolve({});
  const wants = files.map((f) => (typeof f === 'string' ? { path: f, optional: false } : { path: f.path, optional: f.optional }));
  return providerFor(k.def.source).sourceFiles(k.def.source, k, wants, opts);
}

/** The host packages these kernels need installed. */
export function hostPackagesFor(kernels: LoadedKernel[]): HostPackage[] {
  const seen = new Map<string, HostPackage>();
  for (const k of kernels) for (const p of providerFor(k.def.source).hostPackages(k.def.source)) seen.set(p.pkg, p);
  return [...seen.values()];
}
