// A local kernel source tarball (.tar.xz / .tar.gz), identified by its content.
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../../util/errors.ts';
import { cachedFileHash, tarballTree } from '../source.ts';
import { sourceProvider } from './types.ts';

export const tarball = sourceProvider('tarball', async (src, k, opts) => {
  const file = path.resolve(path.dirname(k.file), src.path);
  if (!fs.existsSync(file)) throw new HarnessError('bad-input', `tarball not found: ${file}`, { file: k.file, field: 'source.path' });
  const id = `tarball-${cachedFileHash(file, opts.cacheDir, { def: k.file, field: 'source.path' }).slice(0, 16)}`;
  const label = path.basename(file);
  return { id, treeId: id, label, patchable: true, prepareTree: tarballTree(file, label, false) };
});
