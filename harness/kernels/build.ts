// The build engine every source-built provider (Debian source, tarball, URL, git, a user's tree)
// hands its SourceIdentity to: configure, make (ccache, logs, progress), publish into the cache.
//
// Cache layout under <cache>/:
//   kernels/<key>/            one complete kernel: bzImage, vmlinux, config, System.map, build.log, manifest.json
//   kernels/index/<input>     input key (source, patches, fragments, compiler) -> kernel key
//   trees/<source-id>/src     one working tree per source, shared by its variants (a user's tree: a mirror, when it needs one)
//   trees/<source-id>/build-<config-input>/   kbuild output dir (O=), shared by variants of one config
//   ccache/                   compiler cache
// The kernel key hashes the source identity, the patches, the final .config and the compiler.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { LIMITS as FILE_LIMITS, readInputFile } from '../trust/files.ts';
import { absentUnder, confine, readUnder } from '../trust/paths.ts';
import { ensureFree, MB } from '../util/disk.ts';
import { EntryStore, hashOf, sha256, withLock } from '../util/cache.ts';
import type { Logger } from '../util/log.ts';
import { indexText, parseIndexText } from '../util/remote.ts';
import { run, tail } from '../util/proc.ts';
import type { BuildOptions, KernelArtifact, KernelMeta } from './artifact.ts';
import { fragmentMismatches, notBuiltIn, parseKconfig, TRACE_KCONFIG } from './kconfig.ts';
import { resolveIn, type LoadedKernel } from './load.ts';
import { BUILD_SPACE, patchId, type PatchSpec, type SourceIdentity } from './source.ts';
import type { SourceFileWant } from './source.ts';

const RECIPE = 2; // bump when the way kernels are configured or built changes

/** Kernel entries whose files this process has already checked against their manifest. */
const verifiedKeys = new Set<string>();

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

const REBUILD_SPACE = 200 * MB;

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

export function patchSpecs(k: LoadedKernel): PatchSpec[] {
  return k.def.patches.map((p, i) => {
    const file = resolveIn(k, p.file);
    const id = patchId(file, p.reverse, { def: k.file, field: `patches[${i}].file` });
    return file === k.patchUnderTest ? { file, reverse: p.reverse, id } : { file, reverse: p.reverse, id, def: k.file, field: `patches[${i}]` };
  });
}

const SOURCE_FILE_MAX = FILE_LIMITS.sourceFile;

/**
 * Files of the source tree a kernel is built from, as that kernel sees them (its patches applied):
 * what a case takes from the kernel under test (a kselftest script). Cached by kernel input and
 * path; an optional file the tree lacks is left out (its absence cached too, as a marker under
 * .absent/, a name no tree path has: they begin with a letter, digit or _).
 */
export async function readTreeFiles(k: LoadedKernel, src: SourceIdentity, wants: SourceFileWant[], opts: BuildOptions & { field?: string }): Promise<Record<string, string>> {
  if (wants.length === 0) return {};
  const patches = patchSpecs(k);
  // (v2: memos from before files were confined to the tree are not trusted)
  const memoDir = path.join(opts.cacheDir, 'srcfiles', hashOf({ v: 2, source: src.id, patches: patches.map((p) => p.id) }).slice(0, 32));
  const absentDir = path.join(memoDir, '.absent');
  const out: Record<string, string> = {};
  const field = (i: number): string => `${opts.field ?? 'sourceFiles'}[${i}]`;
  const want = wants
    .map((w, i) => ({ ...w, i }))
    .filter((w) => {
      const f = confine(memoDir, w.path, field(w.i));
      if (fs.existsSync(f)) {
        out[w.path] = readInputFile(f, SOURCE_FILE_MAX, field(w.i));
        return false;
      }
      return !(w.optional && fs.existsSync(confine(absentDir, w.path, field(w.i))));
    });
  if (want.length === 0) return out;
  const names = want.map((w) => w.path).join(', ');
  const treeRoot = path.join(opts.cacheDir, 'trees', src.treeId);
  fs.mkdirSync(treeRoot, { recursive: true });
  await withLock(path.join(treeRoot, '.lock'), async () => {
    const logsDir = path.join(treeRoot, 'logs');
    fs.mkdirSync(logsDir, { recursive: true });
    const tree = await src.prepareTree(treeRoot, patches, path.join(logsDir, `${k.def.name}-source-files.log`), opts.log);
    const memo = (dir: string, p: string, i: number, text: string): void => {
      const f = confine(dir, p, field(i));
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f + '.tmp', text);
      fs.renameSync(f + '.tmp', f);
    };
    for (const w of want) {
      // a regular file of at most 1 MB inside the tree: a symlink may point elsewhere in the tree
      // (kselftest trees have some), never out of it (trust/paths.ts); "absent" only for a path
      // with nothing at it inside the tree (one leading out is refused, optional or not)
      if (absentUnder(tree, w.path, field(w.i))) {
        if (!w.optional) throw new HarnessError('bad-input', `${w.path} is not a file in the source tree of ${k.def.name} (${src.label})`, { field: field(w.i) });
        memo(absentDir, w.path, w.i, '');
        continue;
      }
      out[w.path] = readUnder(tree, w.path, SOURCE_FILE_MAX, field(w.i)).toString('utf8');
      memo(memoDir, w.path, w.i, out[w.path]!);
    }
  }, { what: `reading ${names} from the source of ${k.def.name}`, waitingFor: `the kernel tree ${src.treeId} (to read ${names} for ${k.def.name})`, log: opts.log });
  return out;
}

/** The kernel `src` (a source-built provider's identity) gives with the definition's patches and
 * config, and the cases' needs merged in: from the cache, or configured and built. */
export async function buildFromSource(k: LoadedKernel, src: SourceIdentity, opts: BuildOptions): Promise<KernelArtifact> {
  const { cacheDir, log } = opts;
  const def = k.def;
  if (!src.patchable && def.patches.length > 0)
    throw new HarnessError('bad-input', `patches need a source the harness owns (a tarball, Debian source or git revision), not ${src.label} used as it is`, {
      file: k.file,
      field: 'patches',
    });
  const compiler = await compilerVersion();
  const patches = patchSpecs(k);
  const fragments = def.config.fragments.map((f, i) => ({ name: f, text: readInputFile(resolveIn(k, f), FILE_LIMITS.config, { def: k.file, field: `config.fragments[${i}]` }) }));
  // a complete .config to start from (a tree's own), read once: its content is part of the config input
  const ownFile = def.config.file ? resolveIn(k, def.config.file) : undefined;
  const ownText = ownFile ? readInputFile(ownFile, FILE_LIMITS.config, { def: k.file, field: 'config.file' }) : undefined;
  // fragments by content: the same config from another path (an absolute one, as verify passes) is the same build directory
  const configInput =
    ownText === undefined
      ? hashOf({ RECIPE, base: def.config.base, fragments: fragments.map((f) => f.text) })
      : hashOf({ RECIPE, file: sha256(ownText), fragments: fragments.map((f) => f.text) });
  // the options the cases to run need, merged into the config when the kernel's own config lacks them
  const needs = [...new Set(opts.needs?.options ?? [])].sort();
  const plainKey = hashOf({ RECIPE, source: src.id, patches: patches.map((p) => p.id), configInput, compiler });
  const inputKey =
    needs.length || opts.tracing
      ? hashOf({ RECIPE, source: src.id, patches: patches.map((p) => p.id), configInput, compiler, ...(needs.length ? { needs } : {}), ...(opts.tracing ? { tracing: TRACE_KCONFIG } : {}) })
      : plainKey;

  // who asks decides the name and how the source was resolved (a cached kernel may have been built
  // for another definition of the same source: pinned or not, under another name)
  const identity = { name: def.name, source: src.label, ...(src.version ? { sourceVersion: src.version, pinned: src.pinned ?? false, ...(src.origin ? { origin: src.origin } : {}) } : {}) };
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
    // what was merged is this input's (mergedFor), never what the kernel's first builder merged: the
    // same kernel is reached from a definition that has those options in its own config
    const { caseConfig: _built, traceConfig: _traced, ...meta } = m.meta;
    return artifactFrom(store, key, { ...meta, ...identity, ...mergedFor(file) }, true);
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
  const writeIndex = (file: string, key: string, merged?: Record<string, unknown>): void => {
    if (merged) fs.writeFileSync(`${file}.merged`, JSON.stringify(merged));
    fs.writeFileSync(`${file}.tmp`, key);
    fs.renameSync(`${file}.tmp`, file);
  };
  const label = `kernel ${def.name}`;
  // the remote cache (another machine built it): its index maps these inputs to a kernel key, whose
  // entry is downloaded, checked, and indexed here as if it had been built here
  const remoteLookup = async (name: string): Promise<KernelArtifact | null> => {
    if (!store.remote?.available) return null;
    const text = await store.remote.getIndex('kernels', name, log);
    const idx = text === null ? null : parseIndexText(text);
    if (!idx) return null;
    const m = await store.fetch(idx.key, { label, log });
    if (!m) return null;
    verifiedKeys.add(idx.key); // checked on download
    writeIndex(path.join(indexDir, name), idx.key, idx.merged);
    return lookupIn(path.join(indexDir, name));
  };
  /** With push on: these inputs -> `key` on the remote, so that other machines skip the configure step too. */
  const pushIndex = async (names: string[], key: string): Promise<void> => {
    if (!store.remote?.push) return;
    for (const name of names) await store.remote.putIndex('kernels', name, indexText(key, mergedFor(path.join(indexDir, name))), { log });
  };
  // the kernel as its definition builds it, when it has every option the case (and tracing) needs: no variant
  const required = [...needs, ...(opts.tracing ? TRACE_KCONFIG : [])];
  const hasRequired = (a: KernelArtifact | null): a is KernelArtifact => !!a && notBuiltIn(parseKconfig(fs.readFileSync(a.config, 'utf8')), required).length === 0;
  if (required.length) {
    const plain = lookupIn(path.join(indexDir, plainKey));
    if (hasRequired(plain)) return plain;
  }
  const hit = lookup() ?? (await remoteLookup(inputKey));
  if (hit) return hit;
  if (required.length) {
    const plain = await remoteLookup(plainKey);
    if (hasRequired(plain)) return plain;
  }

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
      const tree = await src.prepareTree(treeRoot, patches, logFile, log);

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
          const start = ownFile ?? def.config.base;
          log.info(`configuring ${def.name}: ${[start, ...def.config.fragments].join(' + ')}${extra.length ? ` + ${what}` : ''}`);
          if (ownText !== undefined) fs.writeFileSync(path.join(dir, '.config'), ownText);
          else await make(dir, [def.config.base], 'configure', 10 * 60_000);
          const merged = [...fragments.map((f) => f.text), ...extra.map((o) => `${o}=y`)].join('\n');
          if (merged.trim()) {
            fs.writeFileSync(path.join(dir, '.kr-fragments.config'), merged);
            const r = await run(path.join(tree, 'scripts/kconfig/merge_config.sh'), ['-m', '-O', dir, path.join(dir, '.config'), path.join(dir, '.kr-fragments.config')], {
              timeoutMs: 5 * 60_000,
              cwd: tree,
              logFile,
            });
            if (r.exitCode !== 0)
              throw new HarnessError('build-failed', `merging config fragments for ${def.name} failed`, { excerpt: tail(r.stdout + r.stderr, 15), logPath: logFile });
          }
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
      const caseConfig = needs.length ? notBuiltIn(ownConfig, needs) : [];
      const traceConfig = opts.tracing ? notBuiltIn(ownConfig, TRACE_KCONFIG).filter((o) => !caseConfig.includes(o)) : [];
      // the index: these inputs -> this kernel (and the plain inputs too, when no option had to be
      // merged), with what these inputs merged in (the kernel may have been built for other inputs)
      const merged = { ...(caseConfig.length ? { caseConfig } : {}), ...(traceConfig.length ? { traceConfig } : {}) };
      const indexed = [...new Set([inputKey, ...(caseConfig.length || traceConfig.length ? [] : [plainKey])])];
      const remember = (key: string): void => {
        fs.writeFileSync(`${indexFile}.merged`, JSON.stringify(merged));
        for (const name of indexed) writeIndex(path.join(indexDir, name), key);
      };
      if (caseConfig.length || traceConfig.length) {
        // (a variant without tracing options keeps the directory it always had)
        const variantInput = hashOf({ configInput, needs: caseConfig, ...(traceConfig.length ? { trace: traceConfig } : {}) });
        out = path.join(treeRoot, `build-${variantInput.slice(0, 16)}`);
        const what = [caseConfig.length ? `what the cases need: ${caseConfig.join(' ')}` : '', traceConfig.length ? `the tracing variant: ${traceConfig.join(' ')}` : ''].filter(Boolean).join(' + ');
        configText = await configure(out, variantInput, [...caseConfig, ...traceConfig], what);
        const final = parseKconfig(configText);
        const still = notBuiltIn(final, caseConfig);
        if (still.length)
          throw new HarnessError('bad-input', `kernel ${def.name} cannot enable ${still.join(', ')}, which ${opts.needs?.by ?? 'the case'} needs: olddefconfig dropped it (an option it depends on is off)`, {
            ...(opts.needs?.file ? { file: opts.needs.file } : {}),
            field: 'kconfig',
            hint: `add the options ${still.join(', ')} depends on to the case's kconfig list (as kselftest config fragments do; \`make menuconfig\` and search shows them), or to a config fragment of ${def.name}`,
          });
        const noTrace = notBuiltIn(final, traceConfig);
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
      // built here before for other inputs, or by another machine (the remote cache, by kernel key)
      const existing = await store.fetch(key, { label, log });
      if (existing) {
        remember(key);
        if (await store.push(key, { label, log, ifMissing: true })) await pushIndex(indexed, key);
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
        ...(src.version ? { sourceVersion: src.version, pinned: src.pinned ?? false, ...(src.origin ? { origin: src.origin } : {}) } : {}),
        patches: def.patches.map((p) => `${p.reverse ? 'reverse ' : ''}${p.file}`),
        compiler,
        buildMs,
        builtAt: new Date().toISOString(),
      };
      const m = store.publish(key, staging, meta);
      remember(key);
      // with push on: the kernel, then the index that leads to it (a reader never finds an index without its entry)
      if (await store.push(key, { label, log })) await pushIndex(indexed, key);
      return artifactFrom(store, key, m.meta, false);
    },
    { what: `building ${def.name}`, waitingFor: `the kernel tree ${src.treeId} (to build ${def.name})`, log },
  );
}
