// A user's kernel source tree, git or not, built or not, never written to. Its identity is the
// state of its source files (paths, sizes, modification times; build outputs left out), so an edit
// makes a new kernel and make rebuilds what it touched. A clean tree is built out of tree from where
// it is; a tree built in place (make O= refuses it) from a mirror of its source files in the cache.
// With `config: { file: .config }` the tree's own config is the starting point.
import fs from 'node:fs';
import path from 'node:path';
import { hashOf } from '../../util/cache.ts';
import { HarnessError } from '../../util/errors.ts';
import { treeFingerprint, userTree, walkTree, type TreeEntry } from '../source.ts';
import { sourceProvider } from './types.ts';

/** The tree a definition names, checked to be a kernel source tree. */
export function treePath(p: string, defFile: string, field = 'source.path'): string {
  const dir = path.resolve(path.dirname(defFile), p);
  if (!fs.existsSync(path.join(dir, 'Makefile')) || !fs.existsSync(path.join(dir, 'Kconfig')))
    throw new HarnessError('bad-input', `not a kernel source tree (no Makefile/Kconfig): ${dir}`, { file: defFile, field });
  return dir;
}

/** A tree is walked once per process (a run asks for each kernel once per case). */
const walked = new Map<string, { entries: TreeEntry[]; fingerprint: string }>();

export const dir = sourceProvider('dir', async (src, k, opts) => {
  const tree = treePath(src.path, k.file);
  let w = walked.get(tree);
  if (!w) {
    const t0 = Date.now();
    const entries = walkTree(tree);
    w = { entries, fingerprint: treeFingerprint(entries) };
    walked.set(tree, w);
    opts.log.info(`${tree}: ${entries.length} source files, state ${w.fingerprint.slice(0, 12)} (read in ${Date.now() - t0} ms)`);
  }
  const { entries, fingerprint } = w;
  return {
    id: `dir-${fingerprint.slice(0, 16)}`,
    treeId: `dir-${hashOf(fs.realpathSync(tree)).slice(0, 16)}`,
    label: tree,
    patchable: false,
    prepareTree: userTree(tree, () => entries),
  };
});
