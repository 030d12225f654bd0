// A local Debian kernel image package (a linux-image-*.deb file, e.g. from `apt-get download`),
// identified by its content, unpacked into the cache like debian-image (../debunpack.ts).
import fs from 'node:fs';
import path from 'node:path';
import { EntryStore, hashOf } from '../../util/cache.ts';
import { HarnessError } from '../../util/errors.ts';
import { LIMITS as FILE_LIMITS, statRegular } from '../../trust/files.ts';
import { debImageArtifact, debImageMeta, unpackKernelDeb, type DebImageMeta } from '../debunpack.ts';
import { readFromDebianSource } from '../debsource.ts';
import { debFields } from '../../util/extract.ts';
import type { LoadedKernel } from '../load.ts';
import type { SourceOf } from '../schema.ts';
import { cachedFileHash } from '../source.ts';
import type { KernelIdentity, KernelProvider } from './types.ts';

async function identifyDeb(src: SourceOf<'deb'>, k: LoadedKernel, cacheDir: string): Promise<KernelIdentity & { file: string; pkg: string }> {
  const file = path.resolve(path.dirname(k.file), src.path);
  if (!fs.existsSync(file)) throw new HarnessError('bad-input', `no such .deb file: ${file}`, { file: k.file, field: 'source.path' });
  statRegular(file, FILE_LIMITS.archive, { def: k.file, field: 'source.path' }); // before dpkg-deb reads it
  const f = await debFields(file, 'source.path');
  const pkg = f.Package ?? '';
  const version = f.Version ?? '';
  if (!/^linux-image-\d/.test(pkg))
    throw new HarnessError('bad-input', `${path.basename(file)} is the package ${pkg || '(unnamed)'}, not a kernel image package (linux-image-<release>)`, {
      file: k.file,
      field: 'source.path',
      hint: 'a metapackage such as linux-image-cloud-amd64 holds no kernel: apt-cache depends names the linux-image-<release> package to download',
    });
  return { id: `deb-${cachedFileHash(file, cacheDir, { def: k.file, field: 'source.path' }).slice(0, 16)}`, label: `${pkg} ${version} (local .deb ${path.basename(file)}, prebuilt)`, version, pinned: true, file, pkg };
}

export const deb: KernelProvider<'deb'> = {
  type: 'deb',
  kind: 'prebuilt',
  hostPackages: () => [],
  identify: (src, k, opts) => identifyDeb(src, k, opts.cacheDir),
  async obtain(src, k, opts) {
    const id = await identifyDeb(src, k, opts.cacheDir);
    const key = hashOf({ kind: 'deb', id: id.id });
    const pinned = { version: id.version ?? '', pinned: true };
    const store = new EntryStore<DebImageMeta>(path.join(opts.cacheDir, 'kernels'));
    const { manifest, cached } = await store.getOrFill(
      key,
      async (staging) => {
        const t0 = Date.now();
        const { release, configText } = await unpackKernelDeb(id.file, staging, path.basename(id.file));
        const meta = debImageMeta({ name: k.def.name, release, configText, source: id.label, sourceId: id.id, version: pinned.version, pinned: true, t0 });
        opts.log.info(`unpacked ${path.basename(id.file)} (${release}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
        return meta;
      },
      { verify: false, label: `kernel ${k.def.name}`, log: opts.log },
    );
    return debImageArtifact(store, key, k.def.name, manifest.meta, cached, pinned);
  },
  sourceFiles: (_src, k, wants, opts) => readFromDebianSource(k, wants, opts),
};
