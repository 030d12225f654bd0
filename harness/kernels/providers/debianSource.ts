// Debian's kernel source packages (linux-source-X.Y): the installed one, or a pinned version
// fetched into the cache (../debsource.ts); a tree in the cache shared by the source's variants.
import { resolveDebianSource } from '../debsource.ts';
import { cachedFileHash, tarballTree } from '../source.ts';
import { sourceProvider } from './types.ts';

export const debianSource = sourceProvider(
  'debian-source',
  async (src, k, opts) => {
    const deb = await resolveDebianSource({ pkg: src.package, version: src.version, cacheDir: opts.cacheDir, file: k.file, log: opts.log });
    const id = `debian-${src.package}-${cachedFileHash(deb.tarball, opts.cacheDir).slice(0, 16)}`;
    const label = `${src.package} ${deb.version}`;
    return { id, treeId: id, label, version: deb.version, pinned: deb.pinned, patchable: true, prepareTree: tarballTree(deb.tarball, label, false) };
  },
  // an unpinned source is the installed package; a pinned one is fetched into the cache
  (src) => (src.version ? [] : [{ file: `/usr/src/${src.package}.tar.xz`, pkg: src.package }]),
);
