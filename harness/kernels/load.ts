import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { builtinNames, loadDataFile, parseData, resolveDataRef } from '../util/load.ts';
import { repoRoot } from '../util/paths.ts';
import { imageKind } from './ikconfig.ts';
import { LIMITS as FILE_LIMITS, statRegular } from '../trust/files.ts';
import { kernelSchema, PREBUILT_SOURCES, type KernelDef } from './schema.ts';

export const kernelsDir = path.join(repoRoot, 'kernels');

export interface LoadedKernel {
  def: KernelDef;
  file: string;
  /** directory the definition's relative paths resolve against */
  baseDir: string;
  /** a patch added to the definition to be tested (verify --patch): its not applying is a failed build
   * (exit 4), where a definition's own patch that does not apply is bad input (exit 2) */
  patchUnderTest?: string;
}

export function builtinKernels(): string[] {
  return builtinNames(kernelsDir);
}

/** What a `--kernel` value names. */
export type KernelRefKind = 'definition' | 'builtin' | 'debian-package' | 'image' | 'tree' | 'deb';

/** What is at a path, as far as telling kernel references apart needs. */
export interface PathProbe {
  exists: boolean;
  isDir: boolean;
  /** the first bytes of a file (0x210 are enough for a bzImage header) */
  head: Buffer | null;
}

const DEBIAN_PACKAGE_REF = /^(linux-image-[a-z0-9.+-]+)(?:=((?:\d{1,4}:)?\d[A-Za-z0-9.+~-]{0,80}))?$/;

/**
 * Tell a `--kernel` value apart (pure): a definition file (.yaml/.yml/.json), a built-in name, a
 * Debian kernel package (`linux-image-...[=version]`), or a path to a kernel image (bzImage or
 * vmlinux), a local .deb or a source tree. Null: a path that is none of them.
 */
export function classifyKernelRef(ref: string, probe: PathProbe, builtins: string[]): KernelRefKind | null {
  if (/\.(ya?ml|json)$/.test(ref)) return 'definition';
  if (!ref.includes('/') && builtins.includes(ref)) return 'builtin';
  if (!ref.includes('/') && !probe.exists && DEBIAN_PACKAGE_REF.test(ref)) return 'debian-package';
  if (!probe.exists) return ref.includes('/') ? null : 'builtin'; // an unknown name: the built-in lookup says so
  if (probe.isDir) return 'tree';
  if (!probe.head) return 'definition'; // not a regular file: refused as an input file, naming what it is
  if (ref.endsWith('.deb')) return 'deb';
  if (imageKind(probe.head)) return 'image';
  // a definition under another name is text; a binary that is no kernel image is refused
  return probe.head.includes(0) ? null : 'definition';
}

/** A kernel name made from a path or package: letters, digits, _ . - (at most 64). */
export function kernelNameFrom(s: string): string {
  const n = s.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return n || 'kernel';
}

function probePath(p: string): PathProbe {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return { exists: false, isDir: false, head: null };
  }
  if (!st.isFile()) return { exists: true, isDir: st.isDirectory(), head: null };
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const head = Buffer.alloc(0x210);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return { exists: true, isDir: false, head: head.subarray(0, n) };
  } finally {
    fs.closeSync(fd);
  }
}

/** The definition a path or package given on the command line stands for. */
function definitionFor(kind: 'debian-package' | 'image' | 'tree' | 'deb', ref: string, o: { modules?: string | undefined }): { def: unknown; file: string } {
  const abs = path.resolve(ref);
  switch (kind) {
    case 'debian-package': {
      const m = DEBIAN_PACKAGE_REF.exec(ref)!;
      return { def: { name: kernelNameFrom(ref.replace('=', '-')), source: { type: 'debian-image', package: m[1], ...(m[2] ? { version: m[2] } : {}) } }, file: ref };
    }
    case 'image':
      return { def: { name: kernelNameFrom(`${path.basename(path.dirname(abs))}-${path.basename(abs)}`), source: { type: 'image', path: abs, ...(o.modules ? { modules: path.resolve(o.modules) } : {}) } }, file: abs };
    case 'deb':
      return { def: { name: kernelNameFrom(path.basename(abs).split('_')[0] ?? 'deb'), source: { type: 'deb', path: abs } }, file: abs };
    case 'tree': {
      // the tree's own .config when it has one; else the harness's default config
      const own = path.join(abs, '.config');
      return {
        def: {
          name: kernelNameFrom(path.basename(abs)),
          source: { type: 'dir', path: abs },
          config: fs.existsSync(own) ? { file: own } : { base: 'tinyconfig', fragments: [path.join(kernelsDir, 'config/base.config')] },
        },
        file: abs,
      };
    }
  }
}

/**
 * Load a kernel by `--kernel` value: a built-in name, a definition file, a Debian kernel package
 * (`linux-image-cloud-amd64`, `linux-image-6.1.0-28-cloud-amd64=6.1.119-1`), or a path to a kernel
 * image (bzImage, vmlinux: with `modules`, its modules directory), a local .deb, or a source tree.
 */
export function loadKernel(ref: string, o: { modules?: string | undefined } = {}): LoadedKernel {
  const kind = classifyKernelRef(ref, probePath(ref), builtinKernels());
  if (kind === null)
    throw new HarnessError('bad-input', `${ref} is neither a kernel definition (.yaml), a kernel image (bzImage, vmlinux), a .deb nor a kernel source tree`, {
      file: path.resolve(ref),
      field: '--kernel',
      hint: 'see docs/kernels.md for every form --kernel takes',
    });
  if (o.modules && kind !== 'image')
    throw new HarnessError('bad-input', `--modules goes with a kernel image (bzImage, vmlinux), not with ${ref}`, { field: '--modules' });
  if (kind === 'definition' || kind === 'builtin') return loadDefinition(ref);
  const { def, file } = definitionFor(kind, ref, o);
  const parsed = parseData(JSON.stringify(def), file, kernelSchema);
  return checked({ def: parsed, file, baseDir: path.dirname(path.resolve(ref)) });
}

function loadDefinition(ref: string): LoadedKernel {
  const { file, isPath } = resolveDataRef(ref, kernelsDir, 'kernel', '--kernel');
  const def = loadDataFile(file, kernelSchema);
  const baseDir = isPath ? path.dirname(file) : kernelsDir;
  return checked({ def, file, baseDir });
}

/** The files a definition names exist (a prebuilt kernel is configured by nobody: its config section is not read). */
function checked(k: LoadedKernel): LoadedKernel {
  const { def, file } = k;
  if (PREBUILT_SOURCES.has(def.source.type)) {
    if (def.patches.length > 0)
      throw new HarnessError('bad-input', `a ${def.source.type} kernel is booted as it is: patches need a source the harness builds`, { file, field: 'patches' });
    return k;
  }
  // each must be a regular file of bounded size (a FIFO or /dev/zero is refused here, in milliseconds)
  def.patches.forEach((p, i) => {
    if (!fs.existsSync(resolveIn(k, p.file)))
      throw new HarnessError('bad-input', `patch file not found: ${resolveIn(k, p.file)}`, { file, field: `patches[${i}].file` });
    statRegular(resolveIn(k, p.file), FILE_LIMITS.patch, { def: file, field: `patches[${i}].file` });
  });
  def.config.fragments.forEach((f, i) => {
    if (!fs.existsSync(resolveIn(k, f)))
      throw new HarnessError('bad-input', `config fragment not found: ${resolveIn(k, f)}`, { file, field: `config.fragments[${i}]` });
    statRegular(resolveIn(k, f), FILE_LIMITS.config, { def: file, field: `config.fragments[${i}]` });
  });
  if (def.config.file !== undefined && !fs.existsSync(resolveIn(k, def.config.file)))
    throw new HarnessError('bad-input', `config file not found: ${resolveIn(k, def.config.file)}`, { file, field: 'config.file' });
  if (def.config.file !== undefined) statRegular(resolveIn(k, def.config.file), FILE_LIMITS.config, { def: file, field: 'config.file' });
  return k;
}

/** A regular file there? (false for any path stat refuses: ENOTDIR, ELOOP, a NUL byte, ...) */
export function resolveIn(k: LoadedKernel, p: string): string {
  return path.isAbsolute(p) ? p : path.join(k.baseDir, p);
}
