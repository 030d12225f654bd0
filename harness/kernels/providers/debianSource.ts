// Debian's kernel source packages (linux-source-X.Y): the installed one, a pinned version fetched
// into the cache, or the package of a named suite (e.g. trixie) fetched with a private apt
// (../debsource.ts); a tree in the cache shared by the source's variants.
import { resolveDebianSource } from '../debsource.ts';
import { cachedFileHash, tarballTree } from '../source.ts';
import { sourceProvider } from './types.ts';

export const debianSource = sourceProvider(
  'debian-source',
  async (src, k, opts) => {
    const deb = await resolveDebianSource({ pkg: src.package, version: src.version, suite: src.suite, cacheDir: opts.cacheDir, file: k.file, log: opts.log, install: opts.install });
    const hash = cachedFileHash(deb.tarball, opts.cacheDir).slice(0, 16);
    // the suite is part of what the kernel is (its id and its label); the tarball's hash pins the exact version
    const id = src.suite ? `debian-${src.package}-${src.suite}-${hash}` : `debian-${src.package}-${hash}`;
    const label = `${src.package} ${deb.version}${src.suite ? ` (${src.suite})` : ''}`;
    return { id, treeId: id, label, version: deb.version, pinned: deb.pinned, ...(src.suite ? { origin: src.suite } : {}), patchable: true, prepareTree: tarballTree(deb.tarball, label, false) };
  },
  // an unpinned source without a suite is the installed package; the others are fetched into the cache
  (src) => (src.version || src.suite ? [] : [{ file: `/usr/src/${src.package}.tar.xz`, pkg: src.package }]),
);
