// A kernel.org-style tarball by URL: a mandatory sha256 pin, a resumable verified download
// (../download.ts), a safe extraction (../extract.ts).
import path from 'node:path';
import { HarnessError } from '../../util/errors.ts';
import { downloadVerified } from '../download.ts';
import { tarballTree } from '../source.ts';
import { sourceProvider } from './types.ts';

export const url = sourceProvider('url', async (src, k, opts) => {
  if (!src.sha256)
    throw new HarnessError('bad-input', `no sha256 pin for ${src.url}: remote sources must be pinned`, {
      file: k.file,
      field: 'source.sha256',
      hint: "take the tarball's sha256 from kernel.org's signed sha256sums.asc (verify it with gpg) and add it as source.sha256",
    });
  const file = await downloadVerified({ url: src.url, sha256: src.sha256, cacheDir: path.join(opts.cacheDir, 'downloads'), log: opts.log, file: k.file, field: 'source.url' });
  const id = `url-${src.sha256.slice(0, 16)}`;
  const label = path.basename(new URL(src.url).pathname);
  return { id, treeId: id, label, patchable: true, prepareTree: tarballTree(file, label, true) };
});
