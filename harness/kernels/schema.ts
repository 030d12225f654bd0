// Kernel definitions (kernels/*.yaml): where the source comes from, which patches to apply or
// reverse-apply, which config fragments to merge, and what the kernel is expected to show.
import { z } from 'zod';
import { SUITE_PATTERN } from '../host/aptSuite.ts';

const relPath = z
  .string()
  .min(1)
  .refine((p) => !p.split('/').includes('..') || p.startsWith('/'), 'must not climb out of kernels/ with ..');

/** A Debian package version: [epoch:]upstream[-revision] (Debian policy 5.6.12). */
const debianVersion = z
  .union([z.string(), z.number().transform(String)])
  .pipe(z.string().regex(/^(?:\d{1,4}:)?\d[A-Za-z0-9.+~-]{0,80}$/, 'must be a Debian package version like 6.1.192-1 (apt-cache madison <package> lists them)'));

export const sourceSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('debian-source'),
    /** Debian package holding /usr/src/<package>.tar.xz */
    package: z.string().regex(/^linux-source-[0-9.]+$/, 'must be a Debian package name like linux-source-6.1'),
    /** pin an exact Debian version (e.g. 6.1.192-1): fetched into the cache when it is not the installed one */
    version: debianVersion.optional(),
    /** fetch the package from this Debian suite (e.g. trixie) with a private apt in the cache, instead
     * of the host's installed package: the suite's candidate, or the pinned version */
    suite: z
      .string()
      .regex(SUITE_PATTERN, 'must be a Debian suite name like trixie, sid or trixie-security')
      .optional(),
  }),
  z.strictObject({
    type: z.literal('url'),
    /** a kernel.org-style tarball (linux-X.Y.Z.tar.xz), downloaded with resume and retries */
    url: z.string().regex(/^https?:\/\/\S+$/, 'must be an http(s) URL'),
    /** mandatory pin of the tarball's sha256 (from kernel.org's signed sha256sums.asc) */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the 64 hex digits of the sha256').nullable().default(null),
  }),
  z.strictObject({
    type: z.literal('debian-image'),
    /** a Debian kernel image package (or a metapackage such as linux-image-cloud-amd64), booted without building */
    package: z.string().regex(/^linux-image-[a-z0-9.+-]+$/, 'must be a Debian kernel package like linux-image-cloud-amd64'),
    /** pin an exact Debian version of the package (e.g. 6.1.192-1) */
    version: debianVersion.optional(),
  }),
  z.strictObject({
    type: z.literal('tarball'),
    /** local path to a kernel source tarball (.tar.xz / .tar.gz) */
    path: z.string().min(1),
  }),
  z.strictObject({
    type: z.literal('git'),
    /** a kernel git repository; built in a worktree owned by the harness, never in the user's checkout */
    repo: z.string().min(1),
    /** any revision git understands: a hash, tag or branch */
    rev: z.string().regex(/^[A-Za-z0-9_./^~@{}-]{1,200}$/, 'must be a git revision (hash, tag, branch)'),
  }),
  z.strictObject({
    type: z.literal('dir'),
    /** a kernel source tree, git or not, built or not: never written to (built out of tree, or from a
     * mirror in the cache when it was built in place); with `config: { file: <tree>/.config }` its own config */
    path: z.string().min(1),
  }),
  z.strictObject({
    type: z.literal('image'),
    /** a kernel built elsewhere: a bzImage, or a vmlinux (ELF, booted through PVH), booted as it is */
    path: z.string().min(1),
    /** its modules: a lib/modules/<release> directory, or a root holding one (default: looked for beside the image) */
    modules: z.string().min(1).optional(),
    /** its .config (default: the image's own IKCONFIG, else a .config or config-<release> beside the image) */
    config: z.string().min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('deb'),
    /** a local Debian kernel image package (linux-image-*.deb), unpacked like debian-image */
    path: z.string().min(1),
  }),
]);

const configSchema = z
  .strictObject({
    /** the starting config of a kernel the harness configures */
    base: z.enum(['tinyconfig', 'defconfig', 'allnoconfig']).optional(),
    /** a complete .config to start from instead (a tree's own), path relative to the definition */
    file: relPath.optional(),
    /** fragments merged in order, paths relative to kernels/ (default: config/base.config on a base, none on a file) */
    fragments: z.array(relPath).optional(),
  })
  .refine((c) => !(c.base && c.file), { message: 'give either base (a make target) or file (a .config), not both', path: ['file'] })
  .transform((c) => ({
    base: c.base ?? ('tinyconfig' as const),
    fragments: c.fragments ?? (c.file ? [] : ['config/base.config']),
    ...(c.file ? { file: c.file } : {}),
  }));

export const kernelSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a name: letters, digits, _ . or -'),
  description: z.string().default(''),
  source: sourceSchema,
  patches: z
    .array(
      z.strictObject({
        /** path relative to kernels/ (or absolute) */
        file: relPath,
        /** reverse-apply (patch -R): used to take a fix out of a tree that has it */
        reverse: z.boolean().default(false),
      }),
    )
    .default([]),
  config: configSchema.default({ base: 'tinyconfig', fragments: ['config/base.config'] }),
  /** what a reproduction case is expected to show on this kernel, if known */
  expect: z.enum(['bug-present', 'bug-absent', 'unknown']).default('unknown'),
});

export type KernelDef = z.output<typeof kernelSchema>;
export type SourceDef = KernelDef['source'];
export type SourceType = SourceDef['type'];
/** Source types whose kernels are booted as they are: no config is merged and no patch applied
 * (their providers are 'prebuilt'; the others the harness configures and builds). */
export const PREBUILT_SOURCES: ReadonlySet<SourceType> = new Set<SourceType>(['debian-image', 'deb', 'image']);

/** The source definition of one type. */
export type SourceOf<T extends SourceType> = Extract<SourceDef, { type: T }>;
