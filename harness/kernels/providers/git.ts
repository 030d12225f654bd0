// A local git repository at a revision, built in a worktree owned by the harness (the user's
// checkout is never touched); every commit of one repository shares the worktree and build dirs.
import fs from 'node:fs';
import path from 'node:path';
import { hashOf } from '../../util/cache.ts';
import { gitTree, resolveCommit } from '../source.ts';
import { sourceProvider } from './types.ts';

export const git = sourceProvider('git', async (src, k) => {
  const repo = path.resolve(path.dirname(k.file), src.repo);
  const commit = await resolveCommit(repo, src.rev, k.file);
  const label = `${path.basename(repo)}@${commit.slice(0, 12)}`;
  return { id: `git-${commit}`, treeId: `git-${hashOf(fs.realpathSync(repo)).slice(0, 16)}`, label, patchable: true, prepareTree: gitTree(repo, commit, label) };
});
