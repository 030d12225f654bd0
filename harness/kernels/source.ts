// Kernel source trees: what a source-built provider identifies (SourceIdentity), and the working
// trees the build engine compiles: a tarball's tree kept in the cache with patches switched in place,
// a git worktree owned by the harness, or a user's own tree (built out of tree, or from a mirror when
// it is not clean). Nothing here ever writes into a user's tree.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { hashOf } from '../util/cache.ts';
import { copyInput, LIMITS as FILE_LIMITS, readHostBytes, sha256Input, statRegular, type WhereLike } from '../trust/files.ts';
import { run, tail } from '../util/proc.ts';
import type { Logger } from '../util/log.ts';
import { ensureFree, extractedEstimate, GB } from '../util/disk.ts';
import { extractTarball } from '../util/extract.ts';

/** A patch to apply (or reverse-apply), with its content id. */
export interface PatchSpec {
  file: string;
  reverse: boolean;
  id: string;
  /** the kernel definition and its field naming the patch (e.g. "patches[0]"), for errors */
  def?: string;
  field?: string;
}

export interface SourceIdentity {
  /** stable id used in cache keys */
  id: string;
  /** which shared working tree (and build dirs) this source uses: variants and commits of one
   * source share it, so switching between them rebuilds only what changed */
  treeId: string;
  /** human label, e.g. "linux-source-6.1 6.1.192-2" */
  label: string;
  /** the source's own version where it has one (a Debian package's version), as resolved at run time */
  version?: string;
  /** the definition pinned that version */
  pinned?: boolean;
  /** where the source's version came from when the definition did not pin it and it is not the installed package: the Debian suite whose candidate it is */
  origin?: string;
  /** the source takes the definition's patches (a user's tree used as it is does not) */
  patchable: boolean;
  /** bring the working tree to this source with these patches (the tree's lock is held); its path */
  prepareTree(treeRoot: string, patches: PatchSpec[], logFile: string, log: Logger): Promise<string>;
}

// Disk space a step needs (measured on linux-source-6.1 with the minimal config: tree 1.4 GB,
// first build 0.3 GB, kernel files in the cache 40 MB); generous so that a run never fills a disk
export const BUILD_SPACE = 1 * GB;
const WORKTREE_SPACE = 1.6 * GB;

/** A patch's content id; the file is read through trust/files.ts (a regular file of bounded size). */
export function patchId(file: string, reverse: boolean, where: WhereLike = 'patches'): string {
  return `${sha256Input(file, FILE_LIMITS.patch, where).slice(0, 16)}:${reverse ? 'R' : 'F'}`;
}

/** sha256 of big files, remembered per (path, size, mtime) so warm runs do not re-hash 140 MB. */
export function cachedFileHash(file: string, cacheDir: string, where: WhereLike = '(file)'): string {
  const st = statRegular(file, FILE_LIMITS.archive, where);
  const memo = path.join(cacheDir, 'hashes', hashOf({ file, size: st.size, mtime: st.mtimeMs }));
  if (fs.existsSync(memo)) return fs.readFileSync(memo, 'utf8').trim();
  const h = sha256Input(file, FILE_LIMITS.archive, where);
  fs.mkdirSync(path.dirname(memo), { recursive: true });
  fs.writeFileSync(memo + '.tmp', h);
  fs.renameSync(memo + '.tmp', memo);
  return h;
}

/** A file a case wants from the kernel's tree (`sourceFiles`): an optional one may be missing. */
export interface SourceFileWant {
  path: string;
  optional: boolean;
}

export async function applyPatch(tree: string, file: string, reverse: boolean, logFile: string): Promise<{ ok: boolean; out: string; rej: string }> {
  // rejects go next to the log, never into the tree; the messages name each failed hunk
  const rej = `${logFile}.${path.basename(file)}.rej`;
  // --forward in both directions: with -R alone, --batch makes patch apply a patch it finds not
  // applied *forward* ("Unreversed patch detected!  Ignoring -R.") and succeed, so a revert of a fix
  // the source lacks would silently give the fixed kernel; with --forward it fails, naming the file
  const args = ['-p1', ...(reverse ? ['-R'] : []), '--forward', '--batch', `--reject-file=${rej}`, '-i', file];
  const r = await run('patch', ['-d', tree, ...args], { timeoutMs: 120_000, logFile });
  let out = (r.stdout + r.stderr).trim();
  // the rejects come from an untrusted patch: their first 64 KiB are enough to name the hunks
  const rejected = r.exitCode !== 0 && fs.existsSync(rej) ? readHostBytes(rej, 64 * 1024).toString('utf8').trim() : '';
  if (rejected) out += `\n--- rejected hunks (${rej}) ---\n` + rejected;
  return { ok: r.exitCode === 0, out, rej: rejected };
}

/** A hunk `patch` could not apply: its file, its number in that file, its header (from the reject file) and where it was tried. */
export interface FailedHunk {
  file: string;
  /** the hunk's number within its file (as patch counts them); null: the whole file (missing, or already in that state) */
  hunk: number | null;
  /** the hunk's @@ header, when the reject file has it */
  header?: string;
  /** the line patch last tried it at */
  at?: number;
  /** why the whole file failed */
  why?: string;
}

/** The reject file's @@ headers per file ("--- <file>" sections), in order. */
function rejectHeaders(rej: string): Map<string, string[]> {
  const byFile = new Map<string, string[]>();
  let file = '';
  for (const l of rej.split('\n')) {
    const f = /^--- (?:[ab]\/)?(\S+)/.exec(l);
    if (f?.[1]) file = f[1];
    else if (l.startsWith('@@ ')) byFile.set(file, [...(byFile.get(file) ?? []), l.replace(/^(@@ [^@]* @@).*$/, '$1')]);
  }
  return byFile;
}

/**
 * The hunks a failed `patch` run names: "Hunk #N FAILED at L." under its "patching file F" line,
 * paired in order with the @@ headers of F in the reject file (patch writes the rejects in the order
 * it fails them); a file that is missing, or whose patch patch takes for already applied (or, with
 * -R, not applied), is reported as a whole with its hunks' headers. Pure.
 */
export function failedHunks(out: string, rej = ''): FailedHunk[] {
  const headers = rejectHeaders(rej);
  const taken = new Map<string, number>();
  const next = (f: string): string | undefined => {
    const i = taken.get(f) ?? 0;
    taken.set(f, i + 1);
    return headers.get(f)?.[i];
  };
  const all = (f: string): { header?: string } => (headers.get(f)?.length ? { header: headers.get(f)!.join(' ') } : {});
  const found: FailedHunk[] = [];
  let file = '';
  let missing = '';
  for (const line of out.split('\n')) {
    const f = /^(?:patching|checking) file (?:'([^']+)'|(\S.*))$/.exec(line);
    if (f) {
      file = (f[1] ?? f[2] ?? '').trim();
      continue;
    }
    const want = /^\|(?:\+\+\+|---) (?:[ab]\/)?(\S+)/.exec(line);
    if (want?.[1] && want[1] !== '/dev/null') missing = want[1];
    const m = /^Hunk #(\d+) FAILED at (\d+)/.exec(line);
    if (m) {
      const header = next(file);
      found.push({ file, hunk: Number(m[1]), at: Number(m[2]), ...(header ? { header } : {}) });
      continue;
    }
    if (/^No file to patch\./.test(line)) found.push({ file: missing || file || '(unknown file)', hunk: null, why: 'the file is not in the tree' });
    else if (/^Unreversed patch detected/.test(line))
      found.push({ file: file || '(unknown file)', hunk: null, ...all(file), why: 'the source does not have what it reverts (the patch would apply forward: the fix is absent or was changed)' });
    else if (/^Reversed \(or previously applied\) patch detected/.test(line)) found.push({ file: file || '(unknown file)', hunk: null, ...all(file), why: 'it is already in the tree' });
  }
  return found;
}

/** "net/ipv4/fib_frontend.c hunk #1 (@@ -383,6 +383,11 @@) failed at line 383" and the like, joined. */
export function describeHunks(hunks: FailedHunk[]): string {
  return hunks
    .map((x) => (x.hunk === null ? `${x.file}${x.header ? ` (${x.header})` : ''}: ${x.why ?? 'failed'}` : `${x.file} hunk #${x.hunk}${x.header ? ` (${x.header})` : ''} failed at line ${x.at}`))
    .join('; ');
}

export function patchFailed(p: PatchSpec, label: string, out: string, logFile: string, rej = ''): HarnessError {
  const hunks = failedHunks(out, rej);
  const which = hunks.length ? `: ${describeHunks(hunks)}` : '';
  // a kernel definition's patch that does not fit its source is an invalid definition (exit 2, naming
  // the definition and the patch's field); a patch under test (verify --patch) is a failed build (exit 4)
  return new HarnessError(p.def ? 'bad-input' : 'build-failed', `patch ${path.basename(p.file)} does not ${p.reverse ? 'reverse-' : ''}apply to ${label}${which}`, {
    ...(p.def ? { file: p.def } : {}),
    ...(p.field ? { field: p.field } : {}),
    excerpt: tail(out, 20),
    logPath: logFile,
    hint: hunks.length ? 'the rejected hunks are listed above; the source changed there: regenerate the patch against this source (or write a patch for it beside this one)' : 'regenerate the patch against this source',
  });
}

interface TreeState {
  /** applied patches, in order; each kept as a copy so it can be reverted exactly */
  patches: Array<{ id: string; copy: string; reverse: boolean }>;
  dirty: boolean;
}

/** A tarball's tree, kept in the cache (`<treeRoot>/src`) and shared by the source's variants:
 * patches are switched in place (reverted, or the tree re-extracted), so make rebuilds only what they touch. */
export function tarballTree(tarball: string, label: string, untrusted: boolean): SourceIdentity['prepareTree'] {
  return async (treeRoot, want, logFile, log) => {
    const tree = path.join(treeRoot, 'src');
    const statePath = path.join(treeRoot, 'state.json');
    const state: TreeState =
      fs.existsSync(statePath) && fs.existsSync(tree) ? (JSON.parse(fs.readFileSync(statePath, 'utf8')) as TreeState) : { patches: [], dirty: true };
    if (!state.dirty && JSON.stringify(state.patches.map((p) => p.id)) === JSON.stringify(want.map((w) => w.id))) return tree;
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
      // the tree, plus a first build of it
      ensureFree(treeRoot, extractedEstimate(fs.statSync(tarball).size, tarball) + BUILD_SPACE, `extracting and building ${label}`);
      log.info(`extracting ${label} (${path.basename(tarball)}) into the shared tree`);
      await extractTarball(tarball, tree, logFile, untrusted);
    }
    save({ patches: [], dirty: true });
    const appliedDir = path.join(treeRoot, 'applied');
    fs.rmSync(appliedDir, { recursive: true, force: true });
    fs.mkdirSync(appliedDir, { recursive: true });
    const applied: TreeState['patches'] = [];
    for (const [i, w] of want.entries()) {
      const r = await applyPatch(tree, w.file, w.reverse, logFile);
      if (!r.ok) throw patchFailed(w, label, r.out, logFile, r.rej); // the tree stays marked dirty: the next run re-extracts it
      const copy = path.join(appliedDir, `${i}-${path.basename(w.file)}`);
      copyInput(w.file, copy, FILE_LIMITS.patch, 'patches');
      applied.push({ id: w.id, copy, reverse: w.reverse });
    }
    save({ patches: applied, dirty: false });
    return tree;
  };
}

export async function resolveCommit(repo: string, rev: string, defFile?: string): Promise<string> {
  if (!fs.existsSync(repo))
    throw new HarnessError('bad-input', `git repository not found: ${repo}`, { ...(defFile ? { file: defFile } : {}), field: 'source.repo' });
  const r = await run('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { timeoutMs: 30_000 });
  if (r.exitCode !== 0)
    throw new HarnessError('bad-input', `"${rev}" is not a commit in ${repo}`, { ...(defFile ? { file: defFile } : {}), field: 'source.rev' });
  return r.stdout.trim();
}

/** Check `commit` out in the harness's own worktree of `repo` (created on first use). Only files
 * that differ are rewritten, so make rebuilds only what the checkout changed. */
export async function checkoutWorktree(repo: string, worktree: string, commit: string, logFile: string): Promise<void> {
  const git = async (args: string[], cwd: string): Promise<void> => {
    const r = await run('git', ['-C', cwd, ...args], { timeoutMs: 30 * 60_000, logFile });
    if (r.exitCode !== 0)
      throw new HarnessError('build-failed', `git ${args.join(' ')} failed in ${cwd}`, { excerpt: tail(r.stderr || r.stdout, 10), logPath: logFile });
  };
  const valid = fs.existsSync(path.join(worktree, '.git'));
  if (!valid) {
    fs.rmSync(worktree, { recursive: true, force: true });
    await git(['worktree', 'prune'], repo);
    await git(['worktree', 'add', '--force', '--detach', worktree, commit], repo);
    return;
  }
  await git(['checkout', '--quiet', '--force', '--detach', commit], worktree);
  await git(['clean', '-fdq'], worktree); // files a previous patch added
}

/** A commit of a git repository, checked out in the harness's worktree (`<treeRoot>/src`), patches applied on top. */
export function gitTree(repo: string, commit: string, label: string): SourceIdentity['prepareTree'] {
  return async (treeRoot, patches, logFile) => {
    const tree = path.join(treeRoot, 'src');
    if (!fs.existsSync(path.join(tree, '.git'))) ensureFree(treeRoot, WORKTREE_SPACE + BUILD_SPACE, `a worktree of ${repo} and its build`);
    await checkoutWorktree(repo, tree, commit, logFile);
    for (const p of patches) {
      const r = await applyPatch(tree, p.file, p.reverse, logFile);
      if (!r.ok) throw patchFailed(p, label, r.out, logFile, r.rej);
    }
    return tree;
  };
}

// ---- a user's own tree ----------------------------------------------------------------------

/**
 * What kbuild leaves in a tree built in place (`make` without O=), as paths relative to the tree.
 * None of it is source: the fingerprint ignores it and the mirror does not copy it. A tree built in
 * place holds `.config`, `include/config/` and `arch/<arch>/include/generated/`, which make `make O=`
 * refuse the tree ("The source tree is not clean, please run 'make mrproper'").
 */
export function isBuildOutput(rel: string, isDir: boolean): boolean {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  if (isDir) return rel === '.git' || rel === 'include/config' || rel === 'include/generated' || /^arch\/[^/]+\/include\/generated$/.test(rel) || base === '.tmp_versions';
  if (rel === '.config' || rel === '.config.old' || rel === 'vmlinux' || rel === 'System.map' || rel === 'Module.symvers' || rel === 'modules.order' || rel === 'modules.builtin' || rel === 'modules.builtin.modinfo') return true;
  if (/^vmlinux\.|^\.vmlinux|^\.tmp_|^\.version$|^\.missing-syscalls/.test(rel)) return true;
  return /\.(o|a|ko|mod|mod\.c|cmd|order|symvers|dwo|su|gcno|lst)$/.test(base) || base === 'bzImage' || /^\..*\.cmd$/.test(base) || /^\..*\.d$/.test(base);
}

/** Why `make O=` would refuse this tree (the kernel Makefile's own test), or null when it is clean. */
export function uncleanMarks(tree: string): string[] {
  const marks = ['.config', 'include/config'].filter((p) => fs.existsSync(path.join(tree, p)));
  const arch = path.join(tree, 'arch');
  if (fs.existsSync(arch))
    for (const a of fs.readdirSync(arch)) if (fs.existsSync(path.join(arch, a, 'include/generated'))) marks.push(`arch/${a}/include/generated`);
  return marks;
}

export interface TreeEntry {
  rel: string;
  size: number;
  mtimeMs: number;
  mode: number;
  link?: string;
}

/** Every source file of a tree (build outputs left out), sorted: the tree's state as make sees it. */
export function walkTree(tree: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const walk = (relDir: string): void => {
    const abs = relDir ? path.join(tree, relDir) : tree;
    for (const ent of fs.readdirSync(abs, { withFileTypes: true })) {
      const rel = relDir ? `${relDir}/${ent.name}` : ent.name;
      if (ent.isDirectory()) {
        if (!isBuildOutput(rel, true)) walk(rel);
        continue;
      }
      if (isBuildOutput(rel, false)) continue;
      const st = fs.lstatSync(path.join(tree, rel));
      if (st.isSymbolicLink()) out.push({ rel, size: 0, mtimeMs: 0, mode: 0o777, link: fs.readlinkSync(path.join(tree, rel)) });
      else if (st.isFile()) out.push({ rel, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o777 });
    }
  };
  walk('');
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** The tree's content identity: its source files' paths, sizes and modification times. */
export function treeFingerprint(entries: TreeEntry[]): string {
  return hashOf(entries.map((e) => [e.rel, e.size, Math.round(e.mtimeMs), e.mode, e.link ?? '']));
}

/**
 * Bring `mirror` to the source files of `tree` (build outputs left out): new and changed files are
 * copied with their modification times, files gone from the tree are removed. make then rebuilds
 * only what changed in the tree. Returns how many files were copied.
 */
export function syncMirror(tree: string, entries: TreeEntry[], mirror: string): number {
  const want = new Map(entries.map((e) => [e.rel, e]));
  let copied = 0;
  fs.mkdirSync(mirror, { recursive: true });
  // remove what the tree no longer has (and anything else the mirror holds that is not a source file)
  const prune = (relDir: string): void => {
    for (const ent of fs.readdirSync(relDir ? path.join(mirror, relDir) : mirror, { withFileTypes: true })) {
      const rel = relDir ? `${relDir}/${ent.name}` : ent.name;
      if (ent.isDirectory()) {
        prune(rel);
        if (fs.readdirSync(path.join(mirror, rel)).length === 0) fs.rmdirSync(path.join(mirror, rel));
      } else if (!want.has(rel)) fs.rmSync(path.join(mirror, rel), { force: true });
    }
  };
  prune('');
  for (const e of entries) {
    const dst = path.join(mirror, e.rel);
    const st = fs.existsSync(dst) || isLink(dst) ? fs.lstatSync(dst) : null;
    if (e.link !== undefined) {
      if (st?.isSymbolicLink() && fs.readlinkSync(dst) === e.link) continue;
      if (st) fs.rmSync(dst, { force: true });
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.symlinkSync(e.link, dst);
      copied++;
      continue;
    }
    if (st?.isFile() && st.size === e.size && Math.round(st.mtimeMs) === Math.round(e.mtimeMs) && (st.mode & 0o777) === e.mode) continue;
    if (st) fs.rmSync(dst, { force: true });
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.copyFileSync(path.join(tree, e.rel), dst);
    fs.chmodSync(dst, e.mode | 0o200); // writable by the harness: the next sync replaces it
    fs.utimesSync(dst, new Date(e.mtimeMs), new Date(e.mtimeMs));
    copied++;
  }
  return copied;
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * A user's tree, never written to: a clean tree is built out of tree from where it is; a tree that
 * was built in place (make O= refuses it) is first mirrored into `<treeRoot>/src` (source files only,
 * with their modification times), and the mirror is built. Patches are refused by the provider.
 */
export function userTree(dir: string, entries: () => TreeEntry[]): SourceIdentity['prepareTree'] {
  return async (treeRoot, _patches, _logFile, log) => {
    const marks = uncleanMarks(dir);
    if (marks.length === 0) return dir;
    const mirror = path.join(treeRoot, 'src');
    const first = !fs.existsSync(mirror);
    if (first) ensureFree(treeRoot, 1.6 * GB + BUILD_SPACE, `a mirror of ${dir} and its build`);
    const t0 = Date.now();
    const n = syncMirror(dir, entries(), mirror);
    log.info(`${dir} was built in place (${marks.join(', ')}): make O= refuses such a tree, so it is built from a mirror of its source files in ${mirror} (${n} file(s) copied in ${((Date.now() - t0) / 1000).toFixed(1)}s); the tree itself is not touched`);
    const still = uncleanMarks(mirror);
    if (still.length) throw new HarnessError('internal', `the mirror of ${dir} is not clean (${still.join(', ')})`);
    return mirror;
  };
}
