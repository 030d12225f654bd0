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
import type { HostPackage, KernelIdentity, KernelProvider, SourceFilesOptions } from './types.ts';
import { url } from './url.ts';

export type { HostPackage, KernelIdentity, KernelProvider } from './types.ts';

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

/** Files of the kernel's source tree (a case's sourceFiles), as that kernel sees them. */
export function readSourceFiles(k: LoadedKernel, paths: string[], opts: SourceFilesOptions): Promise<Record<string, string>> {
  if (paths.length === 0) return Promise.resolve({});
  return providerFor(k.def.source).sourceFiles(k.def.source, k, paths, opts);
}

/** The host packages these kernels need installed. */
export function hostPackagesFor(kernels: LoadedKernel[]): HostPackage[] {
  const seen = new Map<string, HostPackage>();
  for (const k of kernels) for (const p of providerFor(k.def.source).hostPackages(k.def.source)) seen.set(p.pkg, p);
  return [...seen.values()];
}
