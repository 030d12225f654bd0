// Kernel sources: a persistent working tree per source identity, kept in the cache and reused
// between variants (patches are switched in place so make only rebuilds what the patches touch).
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { hashOf, sha256File } from '../util/cache.ts';
import { run, tail } from '../util/proc.ts';
import type { SourceDef } from './schema.ts';
import { downloadVerified, extractTarballSafe } from './download.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { isNoSpace, noSpace } from '../util/disk.ts';
import { resolveDebianSource } from './debsource.ts';

export interface SourceIdentity {
  /** stable id used in cache keys */
  id: string;
  /** which shared working tree (and build dirs) this source uses: variants and commits of one
   * source share it, so switching between them rebuilds only what changed */
  treeId: string;
  /** downloaded: extract with the checks against path traversal and escaping links */
  untrusted?: boolean;
  /** git sources: the repository and the resolved commit */
  git?: { repo: string; commit: string };
  /** human label, e.g. "linux-source-6.1 6.1.192-2" */
  label: string;
  /** the source's own version where it has one (a Debian package's version), as resolved at run time */
  version?: string;
  /** the definition pinned that version */
  pinned?: boolean;
  /** tarball to extract, or a directory used in place */
  tarball?: string;
  dir?: string;
}

/** sha256 of big tarballs, remembered per (path, size, mtime) so warm runs do not re-hash 140 MB. */
function cachedFileHash(file: string, cacheDir: string): string {
  const st = fs.statSync(file);
  const memo = path.join(cacheDir, 'hashes', hashOf({ file, size: st.size, mtime: st.mtimeMs }));
  if (fs.existsSync(memo)) return fs.readFileSync(memo, 'utf8').trim();
  const h = sha256File(file);
  fs.mkdirSync(path.dirname(memo), { recursive: true });
  fs.writeFileSync(memo + '.tmp', h);
  fs.renameSync(memo + '.tmp', memo);
  return h;
}

export async function identifySource(src: SourceDef, cacheDir: string, defFile: string, log?: Logger): Promise<SourceIdentity> {
  switch (src.type) {
    case 'debian-source': {
      const deb = await resolveDebianSource({ pkg: src.package, version: src.version, cacheDir, file: defFile, log: log ?? silentLogger });
      const id = `debian-${src.package}-${cachedFileHash(deb.tarball, cacheDir).slice(0, 16)}`;
      return { id, treeId: id, label: `${src.package} ${deb.version}`, tarball: deb.tarball, version: deb.version, pinned: deb.pinned };
    }
    case 'tarball': {
      const tarball = path.resolve(path.dirname(defFile), src.path);
      if (!fs.existsSync(tarball))
        throw new HarnessError('bad-input', `tarball not found: ${tarball}`, { file: defFile, field: 'source.path' });
      const id = `tarball-${cachedFileHash(tarball, cacheDir).slice(0, 16)}`;
      return { id, treeId: id, label: path.basename(tarball), tarball };
    }
    case 'dir': {
      const dir = path.resolve(path.dirname(defFile), src.path);
      if (!fs.existsSync(path.join(dir, 'Makefile')) || !fs.existsSync(path.join(dir, 'Kconfig')))
        throw new HarnessError('bad-input', `not a kernel source tree (no Makefile/Kconfig): ${dir}`, { file: defFile, field: 'source.path' });
      const id = `dir-${hashOf(dir).slice(0, 16)}`;
      return { id, treeId: id, label: dir, dir };
    }
    case 'url': {
      if (!src.sha256)
        throw new HarnessError('bad-input', `no sha256 pin for ${src.url}: remote sources must be pinned`, {
          file: defFile,
          field: 'source.sha256',
          hint: "take the tarball's sha256 from kernel.org's signed sha256sums.asc (verify it with gpg) and add it as source.sha256",
        });
      const tarball = await downloadVerified({ url: src.url, sha256: src.sha256, cacheDir: path.join(cacheDir, 'downloads'), log: log ?? silentLogger, file: defFile, field: 'source.url' });
      const id = `url-${src.sha256.slice(0, 16)}`;
      return { id, treeId: id, label: path.basename(new URL(src.url).pathname), tarball, untrusted: true };
    }
    case 'debian-image':
      throw new HarnessError('internal', 'debian-image sources are not built');
    case 'git': {
      const repo = path.resolve(path.dirname(defFile), src.repo);
      const commit = await resolveCommit(repo, src.rev, defFile);
      return {
        id: `git-${commit}`,
        treeId: `git-${hashOf(fs.realpathSync(repo)).slice(0, 16)}`,
        label: `${path.basename(repo)}@${commit.slice(0, 12)}`,
        git: { repo, commit },
      };
    }
  }
}

/** Extract a tarball into `dest` atomically (staging dir + rename); the tree's top directory is stripped. */
export async function extractTarball(tarball: string, dest: string, logFile: string, untrusted = false): Promise<void> {
  if (untrusted) return extractTarballSafe(tarball, dest);
  const staging = `${dest}.staging-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  try {
    const r = await run('tar', ['-xf', tarball, '-C', staging, '--strip-components=1', '--no-same-owner'], {
      timeoutMs: 15 * 60_000,
      logFile,
      killWhen: (l) => isNoSpace(l), // GNU tar would go on failing through the whole archive
    });
    if (r.killedOnLine) throw noSpace(path.dirname(dest), `extracting ${path.basename(tarball)}`);
    if (r.exitCode !== 0)
      throw new HarnessError('build-failed', `cannot extract ${tarball}${r.timedOut ? ' (timed out)' : ''}`, {
        excerpt: tail(r.stderr, 10),
        logPath: logFile,
      });
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(staging, dest);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true }); // gone after the rename; else a partial tree
  }
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
