// Build (or find in the cache) the kernel a definition describes.
//
// Cache layout under <cache>/:
//   kernels/<key>/            one complete kernel: bzImage, vmlinux, config, System.map, build.log, manifest.json
//   kernels/index/<input>     input key (source, patches, fragments, compiler) -> kernel key
//   trees/<source-id>/src     one extracted working tree per source, shared by its variants
//   trees/<source-id>/build-<config-input>/   kbuild output dir (O=), shared by variants of one config
//   ccache/                   compiler cache
// The kernel key hashes the source identity, the patches, the final .config and the compiler.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { ensureFree, extractedEstimate, GB, MB } from '../util/disk.ts';
import { EntryStore, hashOf, sha256, sha256File, withLock } from '../util/cache.ts';
import type { Logger } from '../util/log.ts';
import { run, tail } from '../util/proc.ts';
import { fragmentMismatches, missingRequired, parseKconfig } from './kconfig.ts';
import { resolveIn, type LoadedKernel } from './load.ts';
import { ensureDebianImage } from './debimage.ts';
import { checkoutWorktree, extractTarball, identifySource, type SourceIdentity } from './source.ts';
import { resolveDebianSource } from './debsource.ts';

const RECIPE = 2; // bump when the way kernels are configured or built changes

/** Kernel entries whose files this process has already checked against their manifest. */
const verifiedKeys = new Set<string>();

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
  /** options the cases needed that the kernel's own config lacked, merged into this build */
  caseConfig?: string[];
  /** options of the tracing variant (--trace-path) the kernel's own config lacked, merged into this build */
  traceConfig?: string[];
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
}

/**
 * What path tracing needs (--trace-path): function_graph, and kretprobe events for return values.
 * KPROBES depends on MODULES (tinyconfig has it off; nothing is built as a module: the harness
 * builds only bzImage). FUNCTION_TRACER turns ENABLE_DEFAULT_TRACERS off, which is expected.
 */
export const TRACE_KCONFIG = ['CONFIG_MODULES', 'CONFIG_FUNCTION_TRACER', 'CONFIG_FUNCTION_GRAPH_TRACER', 'CONFIG_DYNAMIC_FTRACE', 'CONFIG_KPROBES', 'CONFIG_KPROBE_EVENTS'];

async function compilerVersion(): Promise<string> {
  const r = await run('gcc', ['--version'], { timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new HarnessError('missing-prereq', 'gcc not found', { hint: 'apt-get install build-essential' });
  return r.stdout.split('\n')[0]!.trim();
}

async function hasCcache(): Promise<boolean> {
  const r = await run('ccache', ['--version'], { timeoutMs: 10_000 });
  return r.exitCode === 0;
}

function artifactFrom(store: EntryStore<KernelMeta>, key: string, meta: KernelMeta, cached: boolean): KernelArtifact {
  const dir = store.entryDir(key);
  return {
    name: meta.name,
    key,
    dir,
    bzImage: path.join(dir, 'bzImage'),
    vmlinux: path.join(dir, 'vmlinux'),
    config: path.join(dir, 'config'),
    meta,
    cached,
  };
}

interface TreeState {
  /** applied patches, in order; each kept as a copy so it can be reverted exactly */
  patches: Array<{ id: string; copy: string; reverse: boolean }>;
  dirty: boolean;
}

function patchId(file: string, reverse: boolean): string {
  return `${sha256File(file).slice(0, 16)}:${reverse ? 'R' : 'F'}`;
}

async function applyPatch(tree: string, file: string, reverse: boolean, logFile: string): Promise<{ ok: boolean; out: string }> {
  // rejects go next to the log, never into the tree; the messages name each failed hunk
  const rej = `${logFile}.${path.basename(file)}.rej`;
  const args = ['-p1', reverse ? '-R' : '--forward', '--batch', `--reject-file=${rej}`, '-i', file];
  const r = await run('patch', ['-d', tree, ...args], { timeoutMs: 120_000, logFile });
  let out = (r.stdout + r.stderr).trim();
  if (r.exitCode !== 0 && fs.existsSync(rej)) out += `\n--- rejected hunks (${rej}) ---\n` + fs.readFileSync(rej, 'utf8').trim();
  return { ok: r.exitCode === 0, out };
}

// Disk space a step needs (measured on linux-source-6.1 with the minimal config: tree 1.4 GB,
// first build 0.3 GB, kernel files in the cache 40 MB); generous so that a run never fills a disk
const BUILD_SPACE = 1 * GB;
const REBUILD_SPACE = 200 * MB;
const WORKTREE_SPACE = 1.6 * GB;

/** Bring the shared tree to exactly `want` patches: revert what is applied (or re-extract), then apply. */
async function switchPatches(
  treeRoot: string,
  tree: string,
  want: Array<{ file: string; reverse: boolean; id: string }>,
  src: SourceIdentity,
  logFile: string,
  log: Logger,
): Promise<void> {
  const statePath = path.join(treeRoot, 'state.json');
  const state: TreeState =
    fs.existsSync(statePath) && fs.existsSync(tree)
      ? (JSON.parse(fs.readFileSync(statePath, 'utf8')) as TreeState)
      : { patches: [], dirty: true };
  if (!state.dirty && JSON.stringify(state.patches.map((p) => p.id)) === JSON.stringify(want.map((w) => w.id))) return;
  const save = (s: TreeState): void => {
    fs.writeFileSync(statePath + '.tmp', JSON.stringify(s));
    fs.renameSync(statePath + '.tmp', statePath);
  };
  let extract = state.dirty;
  if (!extract) {
    save({ ...state, dirty: true }); // an interrupted switch leaves the tree marked unknown
    for (const p of [...state.patches].reverse()) {
      const r = await applyPatch(tree, p.copy, !p.reverse, logFile);
      if (!r.ok) {
        log.warn(`could not revert ${path.basename(p.copy)} in the shared tree (${r.out.split('\n')[0]}); re-extracting`);
        extract = true;
        break;
      }
    }
  }
  if (extract) {
    if (!src.tarball) throw new HarnessError('build-failed', `the tree at ${tree} is in an unknown state`);
    // the tree, plus a first build of it
    ensureFree(treeRoot, extractedEstimate(fs.statSync(src.tarball).size, src.tarball) + BUILD_SPACE, `extracting and building ${src.label}`);
    log.info(`extracting ${src.label} (${path.basename(src.tarball)}) into the shared tree`);
    await extractTarball(src.tarball, tree, logFile, src.untrusted ?? false);
  }
  save({ patches: [], dirty: true });
  const appliedDir = path.join(treeRoot, 'applied');
  fs.rmSync(appliedDir, { recursive: true, force: true });
  fs.mkdirSync(appliedDir, { recursive: true });
  const applied: TreeState['patches'] = [];
  for (const [i, w] of want.entries()) {
    const r = await applyPatch(tree, w.file, w.reverse, logFile);
    if (!r.ok) {
      // leave the tree marked dirty: the next run re-extracts it
      throw new HarnessError('build-failed', `patch ${path.basename(w.file)} does not ${w.reverse ? 'reverse-' : ''}apply to ${src.label}`, {
        excerpt: tail(r.out, 20),
        logPath: logFile,
        hint: 'the rejected hunks are listed above; regenerate the patch against this source',
      });
    }
    const copy = path.join(appliedDir, `${i}-${path.basename(w.file)}`);
    fs.copyFileSync(w.file, copy);
    applied.push({ id: w.id, copy, reverse: w.reverse });
  }
  save({ patches: applied, dirty: false });
}

/** Known reasons an old kernel does not build with today's toolchain, as hints. */
export function buildProblemHint(logText: string): string | undefined {
  if (/multiple definition of [`']yylloc'/.test(logText))
    return "kernels before v5.7 do not link scripts/dtc with GCC >= 10 (-fno-common); build with an older GCC or backport upstream commit e33a814e772c";
  if (/objtool: .*(unreachable instruction|call without frame pointer)/.test(logText) || /error: .* \[-Werror=/.test(logText))
    return 'this kernel version predates the host compiler; warnings that newer GCC raises are errors here. Try an older GCC (e.g. gcc-9/gcc-10 from an older Debian release) via CC';
  if (/No rule to make target 'debian\/canonical-certs.pem'|certs\/.*\.pem/.test(logText))
    return 'the kernel config names certificate files that are not in this tree (distribution config); unset CONFIG_SYSTEM_TRUSTED_KEYS';
  return undefined;
}

/** Lines of a build log worth showing when a build fails. */
export function buildErrorExcerpt(logText: string): string {
  const lines = logText.replace(/\r/g, '').split('\n');
  const idx = lines.findIndex((l) => /error:|Error \d|\*\*\*/.test(l));
  if (idx < 0) return lines.slice(-15).join('\n');
  return lines.slice(Math.max(0, idx - 3), idx + 12).join('\n');
}

type PatchSpec = { file: string; reverse: boolean; id: string };

function patchSpecs(k: LoadedKernel): PatchSpec[] {
  return k.def.patches.map((p) => {
    const file = resolveIn(k, p.file);
    return { file, reverse: p.reverse, id: patchId(file, p.reverse) };
  });
}

/** Bring the source tree of `src` to exactly these patches (call with the tree's lock held); its path. */
async function treeAt(src: SourceIdentity, treeRoot: string, patches: PatchSpec[], logFile: string, log: Logger): Promise<string> {
  const tree = src.dir ?? path.join(treeRoot, 'src');
  if (src.git) {
    if (!fs.existsSync(path.join(tree, '.git'))) ensureFree(treeRoot, WORKTREE_SPACE + BUILD_SPACE, `a worktree of ${src.git.repo} and its build`);
    await checkoutWorktree(src.git.repo, tree, src.git.commit, logFile);
    for (const p of patches) {
      const r = await applyPatch(tree, p.file, p.reverse, logFile);
      if (!r.ok)
        throw new HarnessError('build-failed', `patch ${path.basename(p.file)} does not ${p.reverse ? 'reverse-' : ''}apply to ${src.label}`, {
          excerpt: tail(r.out, 20),
          logPath: logFile,
        });
    }
  } else if (!src.dir) await switchPatches(treeRoot, tree, patches, src, logFile, log);
  return tree;
}

const SOURCE_FILE_MAX = 1024 * 1024;

/**
 * Files of the source tree a kernel is built from, as that kernel sees them (its patches applied):
 * what a case takes from the kernel under test (a kselftest script). Cached by kernel input and path.
 */
export async function readSourceFiles(k: LoadedKernel, paths: string[], opts: BuildOptions & { field?: string; artifact?: KernelArtifact }): Promise<Record<string, string>> {
  if (paths.length === 0) return {};
  if (k.def.source.type === 'debian-image') return readFromDebianSource(k, paths, opts);
  const src = await identifySource(k.def.source, opts.cacheDir, k.file, opts.log);
  const patches = patchSpecs(k);
  const memoDir = path.join(opts.cacheDir, 'srcfiles', hashOf({ source: src.id, patches: patches.map((p) => p.id) }).slice(0, 32));
  const out: Record<string, string> = {};
  const want = paths.filter((p) => {
    const f = path.join(memoDir, p);
    if (fs.existsSync(f)) out[p] = fs.readFileSync(f, 'utf8');
    return !fs.existsSync(f);
  });
  if (want.length === 0) return out;
  const treeRoot = path.join(opts.cacheDir, 'trees', src.treeId);
  fs.mkdirSync(treeRoot, { recursive: true });
  await withLock(path.join(treeRoot, '.lock'), async () => {
    const logsDir = path.join(treeRoot, 'logs');
    fs.mkdirSync(logsDir, { recursive: true });
    const tree = await treeAt(src, treeRoot, patches, path.join(logsDir, `${k.def.name}-source-files.log`), opts.log);
    for (const p of want) {
      const file = path.join(tree, p);
      const st = fs.existsSync(file) ? fs.statSync(file) : null;
      if (!st?.isFile())
        throw new HarnessError('bad-input', `${p} is not a file in the source tree of ${k.def.name} (${src.label})`, { field: opts.field ?? 'sourceFiles' });
      if (st.size > SOURCE_FILE_MAX) throw new HarnessError('bad-input', `${p} in ${src.label} is ${st.size} bytes; source files are limited to 1 MB`, { field: opts.field ?? 'sourceFiles' });
      out[p] = fs.readFileSync(file, 'utf8');
      fs.mkdirSync(path.dirname(path.join(memoDir, p)), { recursive: true });
      fs.writeFileSync(path.join(memoDir, p) + '.tmp', out[p]!);
      fs.renameSync(path.join(memoDir, p) + '.tmp', path.join(memoDir, p));
    }
  });
  return out;
}

/** A prebuilt Debian kernel's source files: from the linux-source package of the same version (fetched into the cache when it is not the installed one). */
async function readFromDebianSource(k: LoadedKernel, paths: string[], opts: BuildOptions & { field?: string; artifact?: KernelArtifact }): Promise<Record<string, string>> {
  const pkg = opts.artifact?.modules?.sourcePackage;
  if (!pkg) throw new HarnessError('bad-input', `no source package is known for ${k.def.name}, so its source files cannot be read`, { file: k.file, field: opts.field ?? 'sourceFiles' });
  const deb = await resolveDebianSource({ pkg, version: opts.artifact?.meta.sourceVersion, cacheDir: opts.cacheDir, file: k.file, log: opts.log });
  const out: Record<string, string> = {};
  for (const p of paths) {
    const r = await run('tar', ['-xJOf', deb.tarball, `${pkg}/${p}`], { timeoutMs: 5 * 60_000, maxBuffer: 2 * SOURCE_FILE_MAX });
    if (r.exitCode !== 0) throw new HarnessError('bad-input', `${p} is not in ${pkg} ${deb.version}`, { field: opts.field ?? 'sourceFiles', excerpt: tail(r.stderr, 3) });
    if (r.stdout.length > SOURCE_FILE_MAX) throw new HarnessError('bad-input', `${p} in ${pkg} is over 1 MB; source files are limited to 1 MB`, { field: opts.field ?? 'sourceFiles' });
    out[p] = r.stdout;
  }
  return out;
}

export async function ensureKernel(k: LoadedKernel, opts: BuildOptions): Promise<KernelArtifact> {
  const { cacheDir, log } = opts;
  const def = k.def;
  if (def.source.type === 'debian-image') return ensureDebianImage(k, def.source.package, def.source.version, opts);
  const src = await identifySource(def.source, cacheDir, k.file, log);
  if (src.dir && def.patches.length > 0)
    throw new HarnessError('bad-input', 'patches need a source the harness owns (a tarball or Debian source), not a directory used in place', {
      file: k.file,
      field: 'patches',
    });
  const compiler = await compilerVersion();
  const patches = patchSpecs(k);
  const fragments = def.config.fragments.map((f) => ({ name: f, text: fs.readFileSync(resolveIn(k, f), 'utf8') }));
  // fragments by content: the same config from another path (an absolute one, as verify passes) is the same build directory
  const configInput = hashOf({ RECIPE, base: def.config.base, fragments: fragments.map((f) => f.text) });
  // the options the cases to run need, merged into the config when the kernel's own config lacks them
  const needs = [...new Set(opts.needs?.options ?? [])].sort();
  const plainKey = hashOf({ RECIPE, source: src.id, patches: patches.map((p) => p.id), configInput, compiler });
  const inputKey =
    needs.length || opts.tracing
      ? hashOf({ RECIPE, source: src.id, patches: patches.map((p) => p.id), configInput, compiler, ...(needs.length ? { needs } : {}), ...(opts.tracing ? { tracing: TRACE_KCONFIG } : {}) })
      : plainKey;

  // who asks decides the name and how the source was resolved (a cached kernel may have been built
  // for another definition of the same source: pinned or not, under another name)
  const identity = { name: def.name, source: src.label, ...(src.version ? { sourceVersion: src.version, pinned: src.pinned ?? false } : {}) };
  const store = new EntryStore<KernelMeta>(path.join(cacheDir, 'kernels'));
  const indexDir = path.join(store.dir, 'index');
  fs.mkdirSync(indexDir, { recursive: true });
  const indexFile = path.join(indexDir, inputKey);
  const lookupIn = (file: string): KernelArtifact | null => {
    if (!fs.existsSync(file)) return null;
    const key = fs.readFileSync(file, 'utf8').trim();
    // a kernel's files are checked against its manifest once per process (vmlinux is tens of MB)
    const m = store.get(key, { verify: !verifiedKeys.has(key) });
    if (!m) {
      if (store.lastDiscard) log.warn(store.lastDiscard + ' (rebuilding)');
      return null;
    }
    verifiedKeys.add(key);
    return artifactFrom(store, key, { ...m.meta, ...identity, ...mergedFor(file) }, true);
  };
  // what an input merged into the config (the kernel it resolves to may have been built for another input)
  function mergedFor(file: string): Pick<KernelMeta, 'caseConfig' | 'traceConfig'> {
    try {
      return JSON.parse(fs.readFileSync(`${file}.merged`, 'utf8')) as Pick<KernelMeta, 'caseConfig' | 'traceConfig'>;
    } catch {
      return {};
    }
  }
  const lookup = (): KernelArtifact | null => lookupIn(indexFile);
  // the kernel as its definition builds it, when it has every option the case (and tracing) needs: no variant
  const required = [...needs, ...(opts.tracing ? TRACE_KCONFIG : [])];
  if (required.length) {
    const plain = lookupIn(path.join(indexDir, plainKey));
    if (plain && missingRequired(parseKconfig(fs.readFileSync(plain.config, 'utf8')), required).length === 0) return plain;
  }
  const hit = lookup();
  if (hit) return hit;

  const treeRoot = path.join(cacheDir, 'trees', src.treeId);
  fs.mkdirSync(treeRoot, { recursive: true });
  return withLock(
    path.join(treeRoot, '.lock'),
    async () => {
      const again = lookup();
      if (again) return again;
      fs.writeFileSync(path.join(treeRoot, '.last-used'), new Date().toISOString()); // for `cache gc`
      store.sweep();
      const logsDir = path.join(treeRoot, 'logs');
      fs.mkdirSync(logsDir, { recursive: true });
      const logFile = path.join(logsDir, `${def.name}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
      const tree = await treeAt(src, treeRoot, patches, logFile, log);

      let out = path.join(treeRoot, `build-${configInput.slice(0, 16)}`);
      const useCcache = await hasCcache();
      const env: Record<string, string> = {
        KBUILD_BUILD_USER: 'kernel-repro',
        KBUILD_BUILD_HOST: 'kernel-repro',
        KBUILD_BUILD_TIMESTAMP: '2019-07-17',
        CCACHE_DIR: path.join(cacheDir, 'ccache'),
        CCACHE_BASEDIR: treeRoot, // source and build dirs relative: hits across trees (repro -> bisect)
        CCACHE_NOHASHDIR: '1',
      };
      const jobs = opts.jobs ?? os.availableParallelism();
      const makeArgs = (dir: string): string[] => ['-C', tree, `O=${dir}`, `-j${jobs}`, ...(useCcache ? ['CC=ccache gcc'] : [])];
      const make = async (dir: string, targets: string[], label: string, timeoutMs: number, onLine?: (l: string) => void): Promise<void> => {
        const r = await run('make', [...makeArgs(dir), ...targets], { timeoutMs, env, logFile, ...(onLine ? { onLine } : {}) });
        if (r.interrupted) throw new HarnessError('interrupted', `interrupted during ${label}`);
        if (r.exitCode !== 0) {
          const logText = fs.readFileSync(logFile, 'utf8');
          throw new HarnessError(
            'build-failed',
            `${label} of ${def.name} failed${r.timedOut ? ` (timed out after ${Math.round(timeoutMs / 60000)} min)` : ''}`,
            { file: k.file, excerpt: buildErrorExcerpt(logText), logPath: logFile, ...(buildProblemHint(logText) ? { hint: buildProblemHint(logText)! } : {}) },
          );
        }
      };

      // configure a build directory (once per config input): base config, fragments, then the extra options
      const configure = async (dir: string, input: string, extra: string[], what = 'what the cases need'): Promise<string> => {
        fs.mkdirSync(dir, { recursive: true });
        const stamp = path.join(dir, '.kr-config-input');
        if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== input || !fs.existsSync(path.join(dir, '.config'))) {
          log.info(`configuring ${def.name}: ${def.config.base} + ${def.config.fragments.join(' + ')}${extra.length ? ` + ${what}` : ''}`);
          await make(dir, [def.config.base], 'configure', 10 * 60_000);
          const merged = [...fragments.map((f) => f.text), ...extra.map((o) => `${o}=y`)].join('\n');
          fs.writeFileSync(path.join(dir, '.kr-fragments.config'), merged);
          const r = await run(path.join(tree, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', dir, path.join(dir, '.config'), path.join(dir, '.kr-fragments.config')], {
            timeoutMs: 5 * 60_000,
            cwd: tree,
            logFile,
          });
          if (r.exitCode !== 0)
            throw new HarnessError('build-failed', `merging config fragments for ${def.name} failed`, { excerpt: tail(r.stdout + r.stderr, 15), logPath: logFile });
          await make(dir, ['olddefconfig'], 'configure', 10 * 60_000);
          fs.writeFileSync(stamp, input);
        }
        return fs.readFileSync(path.join(dir, '.config'), 'utf8');
      };
      let configText = await configure(out, configInput, []);
      const ownConfig = parseKconfig(configText);
      // the cases' needs the kernel's own config lacks go into a variant with its own build directory
      // (kselftest-style config fragments), so that switching between cases never rebuilds the kernel;
      // the tracing variant (--trace-path) the same way, beside the plain one
      const caseConfig = needs.length ? missingRequired(ownConfig, needs) : [];
      const traceConfig = opts.tracing ? missingRequired(ownConfig, TRACE_KCONFIG).filter((o) => !caseConfig.includes(o)) : [];
      // the index: these inputs -> this kernel (and the plain inputs too, when no option had to be
      // merged), with what these inputs merged in (the kernel may have been built for other inputs)
      const merged = { ...(caseConfig.length ? { caseConfig } : {}), ...(traceConfig.length ? { traceConfig } : {}) };
      const remember = (key: string): void => {
        fs.writeFileSync(`${indexFile}.merged`, JSON.stringify(merged));
        for (const f of new Set([indexFile, ...(caseConfig.length || traceConfig.length ? [] : [path.join(indexDir, plainKey)])])) {
          fs.writeFileSync(`${f}.tmp`, key);
          fs.renameSync(`${f}.tmp`, f);
        }
      };
      if (caseConfig.length || traceConfig.length) {
        // (a variant without tracing options keeps the directory it always had)
        const variantInput = hashOf({ configInput, needs: caseConfig, ...(traceConfig.length ? { trace: traceConfig } : {}) });
        out = path.join(treeRoot, `build-${variantInput.slice(0, 16)}`);
        const what = [caseConfig.length ? `what the cases need: ${caseConfig.join(' ')}` : '', traceConfig.length ? `the tracing variant: ${traceConfig.join(' ')}` : ''].filter(Boolean).join(' + ');
        configText = await configure(out, variantInput, [...caseConfig, ...traceConfig], what);
        const final = parseKconfig(configText);
        const still = missingRequired(final, caseConfig);
        if (still.length)
          throw new HarnessError('bad-input', `kernel ${def.name} cannot enable ${still.join(', ')}, which ${opts.needs?.by ?? 'the case'} needs: olddefconfig dropped it (an option it depends on is off)`, {
            ...(opts.needs?.file ? { file: opts.needs.file } : {}),
            field: 'kconfig',
            hint: `add the options ${still.join(', ')} depends on to the case's kconfig list (as kselftest config fragments do; \`make menuconfig\` and search shows them), or to a config fragment of ${def.name}`,
          });
        const noTrace = missingRequired(final, traceConfig);
        if (noTrace.length)
          throw new HarnessError('bad-input', `kernel ${def.name} cannot enable ${noTrace.join(', ')}, which path tracing (--trace-path) needs: olddefconfig dropped it (an option it depends on is off)`, {
            file: k.file,
            field: 'config.fragments',
            hint: `run without --trace-path, or add what ${noTrace.join(', ')} depends on to a config fragment of ${def.name}`,
          });
      }
      // what the definition's fragments ask for and did not get (the tracing options change some on
      // purpose, e.g. ENABLE_DEFAULT_TRACERS: only what the kernel's own config already lacked is said)
      const ownMismatch = new Set(fragmentMismatches(ownConfig, fragments).map((m) => m.option));
      for (const m of fragmentMismatches(parseKconfig(configText), fragments))
        if (!traceConfig.length || ownMismatch.has(m.option))
          log.warn(`${def.name}: ${m.fragment} asks for ${m.option}=${m.wanted} but the final .config has ${m.got} (unmet dependency?)`);
      // the kernel key hashes the final config (minus its generated header)
      const configBody = configText.split('\n').filter((l) => !l.startsWith('# Linux/') && !l.startsWith('# Compiler:')).join('\n');
      const configHash = sha256(configBody);
      const key = hashOf({ RECIPE, source: src.id, patches: patches.map((p) => p.id), configHash, compiler });
      const existing = store.get(key);
      if (existing) {
        remember(key);
        return artifactFrom(store, key, { ...existing.meta, ...identity, ...merged }, true);
      }

      // a first build in this output directory writes ~0.3 GB; an incremental one little
      ensureFree(out, fs.existsSync(path.join(out, 'vmlinux')) ? REBUILD_SPACE : BUILD_SPACE, `building ${def.name}`);
      const lastStepsFile = path.join(treeRoot, 'last-build-steps');
      const expected = fs.existsSync(lastStepsFile) ? Number(fs.readFileSync(lastStepsFile, 'utf8')) : 0;
      let steps = 0;
      let lastShown = 0;
      let lastObj = '';
      const t0 = Date.now();
      log.info(`building ${def.name} (${src.label}${patches.length ? ', ' + patches.map((p) => (p.reverse ? '-R ' : '') + path.basename(p.file)).join(', ') : ''}) with -j${jobs}${useCcache ? ' and ccache' : ''}; log: ${logFile}`);
      await make(out, ['bzImage'], 'build', opts.timeoutMs ?? 60 * 60_000, (line) => {
        const m = /^\s+(CC|LD|AR|AS|HOSTCC|GEN|CALL|OBJCOPY)\s+(\S+)/.exec(line);
        if (!m) return;
        steps++;
        lastObj = m[2]!;
        const now = Date.now();
        if (now - lastShown > 10_000) {
          lastShown = now;
          const pct = expected > 0 ? ` ~${Math.min(99, Math.round((100 * steps) / expected))}%` : '';
          log.progress(`building ${def.name}: ${steps} steps${pct}, ${Math.round((now - t0) / 1000)}s, at ${lastObj}`);
        }
      });
      const buildMs = Date.now() - t0;
      if (steps > 500) fs.writeFileSync(lastStepsFile, String(steps));
      const releaseFile = path.join(out, 'include/config/kernel.release');
      const release = fs.existsSync(releaseFile) ? fs.readFileSync(releaseFile, 'utf8').trim() : 'unknown';
      log.info(`built ${def.name} (${release}) in ${(buildMs / 1000).toFixed(1)}s, ${steps} build steps`);

      const staging = store.staging(key);
      fs.copyFileSync(path.join(out, 'arch/x86/boot/bzImage'), path.join(staging, 'bzImage'));
      fs.copyFileSync(path.join(out, 'vmlinux'), path.join(staging, 'vmlinux'));
      fs.copyFileSync(path.join(out, '.config'), path.join(staging, 'config'));
      if (fs.existsSync(path.join(out, 'System.map'))) fs.copyFileSync(path.join(out, 'System.map'), path.join(staging, 'System.map'));
      fs.copyFileSync(logFile, path.join(staging, 'build.log'));
      const meta: KernelMeta = {
        name: def.name,
        release,
        configHash,
        source: src.label,
        sourceId: src.id,
        ...(caseConfig.length ? { caseConfig } : {}),
        ...(traceConfig.length ? { traceConfig } : {}),
        ...(src.version ? { sourceVersion: src.version, pinned: src.pinned ?? false } : {}),
        patches: def.patches.map((p) => `${p.reverse ? 'reverse ' : ''}${p.file}`),
        compiler,
        buildMs,
        builtAt: new Date().toISOString(),
      };
      const m = store.publish(key, staging, meta);
      remember(key);
      return artifactFrom(store, key, m.meta, false);
    },
    () => log.info(`waiting for another run building in ${treeRoot}`),
  );
}
