// Bring your own kernel (issue 15), without QEMU: a kernel image's identity and its IKCONFIG read
// from the file (synthetic bzImages with gzip and xz payloads laid out as the x86 boot protocol
// says), telling --kernel values apart, a user's tree walked, mirrored and never written to, the
// prebuilt-image provider on real files, the kconfig check naming option, case and config source,
// one provider per source type, and no import cycle anywhere in harness/.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { loadCase } from '../../harness/cases/load.ts';
import type { KernelArtifact } from '../../harness/kernels/artifact.ts';
import { bannerRelease, bzImagePayload, bzImageRelease, findIkconfig, imageKind, readImageConfig } from '../../harness/kernels/ikconfig.ts';
import { notBuiltIn, parseKconfig } from '../../harness/kernels/kconfig.ts';
import { classifyKernelRef, kernelNameFrom, loadKernel, type PathProbe } from '../../harness/kernels/load.ts';
import { ensureKernel, hostPackagesFor, isPrebuilt, providerFor, readSourceFiles } from '../../harness/kernels/providers/index.ts';
import { kernelSchema, PREBUILT_SOURCES, sourceSchema } from '../../harness/kernels/schema.ts';
import { isBuildOutput, syncMirror, treeFingerprint, uncleanMarks, walkTree } from '../../harness/kernels/source.ts';
import { checkCaseKconfig } from '../../harness/pipeline/prepare.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';
import { silentLogger } from '../../harness/util/log.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { fileTempDir } from '../tmp.ts';

const tmp = fileTempDir('kr-providers-');

const CONFIG = ['#', '# Automatically generated file; DO NOT EDIT.', '#', 'CONFIG_64BIT=y', 'CONFIG_NET=y', 'CONFIG_VETH=y', 'CONFIG_DUMMY=m', '# CONFIG_NF_TABLES is not set', 'CONFIG_PVH=y', ''].join('\n');

/** What CONFIG_IKCONFIG puts into a kernel (kernel/configs.c): the markers around the gzipped .config. */
function ikconfigBlob(config: string): Buffer {
  return Buffer.concat([Buffer.from('IKCFG_ST', 'latin1'), zlib.gzipSync(config), Buffer.from('IKCFG_ED', 'latin1')]);
}

/** A vmlinux-like body: code bytes, the banner, the IKCONFIG blob. */
function kernelBody(config: string | null, release = '6.1.192-kr'): Buffer {
  return Buffer.concat([
    crypto.randomBytes(4096),
    Buffer.from(`Linux version ${release} (kr@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP\0`, 'latin1'),
    crypto.randomBytes(2048),
    ...(config === null ? [] : [ikconfigBlob(config)]),
    crypto.randomBytes(1024),
  ]);
}

/** A bzImage laid out by the x86 boot protocol 2.15: setup sectors, "HdrS", kernel_version, payload_offset/length. */
function bzImage(payload: Buffer, release = '6.1.192-kr'): Buffer {
  const setupSects = 3;
  const setup = Buffer.alloc((setupSects + 1) * 512);
  setup.writeUInt8(setupSects, 0x1f1);
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x020f, 0x206);
  const versionAt = 0x400; // kernel_version is an offset from 0x200
  setup.writeUInt16LE(versionAt - 0x200, 0x20e);
  setup.write(`${release} (kr@host) #1 SMP PREEMPT_DYNAMIC\0`, versionAt, 'latin1');
  const decompressor = crypto.randomBytes(700);
  setup.writeUInt32LE(decompressor.length, 0x248);
  setup.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([setup, decompressor, payload, crypto.randomBytes(300)]);
}

const xz = (b: Buffer): Buffer => execFileSync('xz', ['-c', '--check=crc32'], { input: b });

describe('a kernel image read from the file', () => {
  it('tells a bzImage from a vmlinux from anything else, and reads the release of each', () => {
    const bz = bzImage(zlib.gzipSync(kernelBody(CONFIG)));
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), kernelBody(CONFIG, '6.1.99')]);
    expect(imageKind(bz)).toBe('bzImage');
    expect(imageKind(elf)).toBe('vmlinux');
    expect(imageKind(Buffer.from('name: x\n'))).toBeNull();
    expect(bzImageRelease(bz)).toBe('6.1.192-kr');
    expect(bannerRelease(elf)).toBe('6.1.99');
    expect(bzImageRelease(elf)).toBeNull();
  });

  it('finds the IKCONFIG in an uncompressed kernel, and inside a gzip or an xz bzImage payload (scripts/extract-ikconfig)', async () => {
    expect(findIkconfig(kernelBody(CONFIG))).toBe(CONFIG);
    expect(findIkconfig(kernelBody(null))).toBeNull();
    const gz = bzImage(zlib.gzipSync(kernelBody(CONFIG)));
    expect(bzImagePayload(gz)?.method).toBe('gzip');
    expect(await readImageConfig(gz, path.join(tmp, 'w1'))).toBe(CONFIG);
    // the kernel's xz payload ends with the 4-byte uncompressed size (size_append): ignored, as extract-ikconfig does
    const sizeAppended = Buffer.concat([xz(kernelBody(CONFIG)), Buffer.from([1, 2, 3, 4])]);
    const x = bzImage(sizeAppended);
    expect(bzImagePayload(x)?.method).toBe('xz');
    expect(await readImageConfig(x, path.join(tmp, 'w2'))).toBe(CONFIG);
    expect(await readImageConfig(bzImage(zlib.gzipSync(kernelBody(null))), path.join(tmp, 'w3'))).toBeNull();
    // an uncompressed vmlinux without IKCONFIG: none, whatever bytes in it look like a compression magic
    const lzoMagic = Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]);
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), lzoMagic, kernelBody(null)]);
    expect(await readImageConfig(elf, path.join(tmp, 'w4'))).toBeNull();
  });
});

describe('what --kernel names', () => {
  const file = (head: Buffer): PathProbe => ({ exists: true, isDir: false, head });
  const none: PathProbe = { exists: false, isDir: false, head: null };
  const builtins = ['6.1-vanilla', '6.1-fixed', 'debian-cloud'];
  it.each<[string, PathProbe, string | null]>([
    ['6.1-vanilla', none, 'builtin'],
    ['nope', none, 'builtin'], // the built-in lookup says it does not exist, with the list
    ['kernels/mine.yaml', none, 'definition'],
    ['linux-image-cloud-amd64', none, 'debian-package'],
    ['linux-image-6.1.0-28-cloud-amd64=6.1.119-1', none, 'debian-package'],
    ['/src/linux', { exists: true, isDir: true, head: null }, 'tree'],
    ['/boot/vmlinuz-6.1', file(bzImage(Buffer.alloc(16))), 'image'],
    ['./vmlinux', file(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2])), 'image'],
    ['./linux-image-6.1.0-28-cloud-amd64_6.1.119-1_amd64.deb', file(Buffer.from('!<arch>\n')), 'deb'],
    ['./my-kernel', file(Buffer.from('name: mine\n')), 'definition'],
    ['/dev/zero', { exists: true, isDir: false, head: null }, 'definition'], // refused as an input file, naming it
    ['./garbage.bin', file(Buffer.from([0, 1, 2, 3])), null],
    ['./missing/bzImage', none, null],
  ])('%s', (ref, probe, kind) => {
    expect(classifyKernelRef(ref, probe, builtins)).toBe(kind);
  });

  it('names a kernel after its path or package', () => {
    expect(kernelNameFrom('vanilla-bzImage')).toBe('vanilla-bzImage');
    expect(kernelNameFrom('my tree (copy)')).toBe('my_tree_copy_');
    expect(kernelNameFrom('--x')).toBe('x');
    expect(kernelNameFrom('a'.repeat(100))).toHaveLength(64);
  });

  it('refuses a binary that is no kernel image, and --modules with anything but an image, naming file and option', () => {
    const bin = path.join(tmp, 'garbage.bin');
    fs.writeFileSync(bin, Buffer.from([0, 1, 2, 3, 0, 0]));
    expect(() => loadKernel(bin)).toThrow(expect.objectContaining({ file: bin, field: '--kernel', message: expect.stringMatching(/is neither a kernel definition/) }));
    const tree = path.join(tmp, 'tree-for-modules');
    fs.mkdirSync(tree);
    expect(() => loadKernel(tree, { modules: tmp })).toThrow(expect.objectContaining({ field: '--modules' }));
  });

  it('a tree without .config is built with the default config; with one, from it (config: { file })', () => {
    const tree = path.join(tmp, 'tree-config');
    fs.mkdirSync(tree);
    expect(loadKernel(tree).def.config).toEqual({ base: 'tinyconfig', fragments: [path.join(repoRoot, 'kernels/config/base.config')] });
    fs.writeFileSync(path.join(tree, '.config'), CONFIG);
    const k = loadKernel(tree);
    expect(k.def.source).toEqual({ type: 'dir', path: tree });
    expect(k.def.config).toEqual({ base: 'tinyconfig', fragments: [], file: path.join(tree, '.config') });
  });
});

describe('kernel definitions: the new source types and config: { file }', () => {
  const parse = (yaml: string): unknown => parseData(yaml, 'k.yaml', kernelSchema);
  const err = (yaml: string): HarnessError => {
    try {
      parse(yaml);
    } catch (e) {
      return e as HarnessError;
    }
    throw new Error('accepted');
  };
  it('accepts every form', () => {
    expect(parse('name: a\nsource: { type: image, path: ./bzImage, modules: ./lib/modules/6.1.0, config: ./.config }\n')).toBeTruthy();
    expect(parse('name: a\nsource: { type: deb, path: ./linux-image.deb }\n')).toBeTruthy();
    expect(parse('name: a\nsource: { type: dir, path: ~/linux }\nconfig: { file: .config }\n')).toMatchObject({ config: { file: '.config', fragments: [], base: 'tinyconfig' } });
    expect(parse('name: a\nsource: { type: dir, path: ~/linux }\nconfig: { file: .config, fragments: [config/base.config] }\n')).toMatchObject({ config: { fragments: ['config/base.config'] } });
    // the old forms mean what they meant
    expect(parse('name: a\nsource: { type: dir, path: x }\n')).toMatchObject({ config: { base: 'tinyconfig', fragments: ['config/base.config'] } });
    expect(parse('name: a\nsource: { type: dir, path: x }\nconfig: { base: defconfig }\n')).toMatchObject({ config: { base: 'defconfig', fragments: ['config/base.config'] } });
  });
  it('names the file and the field at fault', () => {
    expect(err('name: a\nsource: { type: dir, path: x }\nconfig: { base: tinyconfig, file: .config }\n')).toMatchObject({ file: 'k.yaml', field: 'config.file', message: expect.stringMatching(/either base .* or file/) });
    expect(err('name: a\nsource: { type: image }\n')).toMatchObject({ file: 'k.yaml', field: 'source.path' });
    expect(err('name: a\nsource: { type: deb, path: x, version: 1 }\n')).toMatchObject({ field: expect.stringMatching(/^source/) });
    expect(err('name: a\nsource: { type: dir, path: x }\nconfig: { file: ../../etc/passwd }\n')).toMatchObject({ field: 'config.file' });
  });
  it('a config file that does not exist is refused on load', () => {
    const def = path.join(tmp, 'nofile.yaml');
    fs.writeFileSync(def, 'name: a\nsource: { type: dir, path: . }\nconfig: { file: missing.config }\n');
    expect(() => loadKernel(def)).toThrow(expect.objectContaining({ file: def, field: 'config.file', message: expect.stringContaining(path.join(tmp, 'missing.config')) }));
  });
});

describe('one provider per source type', () => {
  const types = sourceSchema.options.map((o) => o.shape.type.value);
  it('every source type of the schema has its provider, built or prebuilt', () => {
    expect(types.sort()).toEqual(['deb', 'debian-image', 'debian-source', 'dir', 'git', 'image', 'tarball', 'url']);
    const kinds = Object.fromEntries(types.map((t) => [t, providerFor({ type: t } as never).kind]));
    expect(kinds).toEqual({ deb: 'prebuilt', 'debian-image': 'prebuilt', image: 'prebuilt', 'debian-source': 'source', dir: 'source', git: 'source', tarball: 'source', url: 'source' });
    for (const t of types) {
      expect(providerFor({ type: t } as never).type).toBe(t);
      expect(providerFor({ type: t } as never).kind === 'prebuilt', t).toBe(PREBUILT_SOURCES.has(t));
    }
  });
  it('the host packages come from the providers: an unpinned Debian source only', () => {
    const k = (source: unknown): ReturnType<typeof loadKernel> => ({ def: parseData(JSON.stringify({ name: 'k', source }), 'k.yaml', kernelSchema), file: 'k.yaml', baseDir: '.' });
    expect(hostPackagesFor([k({ type: 'debian-source', package: 'linux-source-6.1' }), k({ type: 'debian-source', package: 'linux-source-6.1' }), k({ type: 'debian-source', package: 'linux-source-6.6', version: '6.6.1-1' }), k({ type: 'image', path: '/x' })])).toEqual([
      { file: '/usr/src/linux-source-6.1.tar.xz', pkg: 'linux-source-6.1' },
    ]);
    expect(isPrebuilt(k({ type: 'image', path: '/x' }))).toBe(true);
    expect(isPrebuilt(k({ type: 'git', repo: '/x', rev: 'HEAD' }))).toBe(false);
  });
});

describe('a prebuilt image (provider "image") on real files', () => {
  const cacheDir = path.join(tmp, 'cache');
  const opts = { cacheDir, log: silentLogger };
  const write = (dir: string, name: string, data: Buffer | string): string => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
    return path.join(dir, name);
  };

  it('its identity is the file hash; its config is its own IKCONFIG', async () => {
    const img = write(path.join(tmp, 'ik'), 'bzImage', bzImage(zlib.gzipSync(kernelBody(CONFIG))));
    const a = await ensureKernel(loadKernel(img), opts);
    const sha = crypto.createHash('sha256').update(fs.readFileSync(img)).digest('hex');
    expect(a.name).toBe('ik-bzImage');
    expect(a.meta.source).toContain(`sha256 ${sha.slice(0, 12)}`);
    expect(a.meta.sourceId).toBe(`image-${sha.slice(0, 16)}`);
    expect(a.meta.release).toBe('6.1.192-kr');
    expect(a.meta.configFrom).toBe(`the IKCONFIG of ${img}`);
    expect(fs.readFileSync(a.config, 'utf8')).toBe(CONFIG);
    expect(fs.existsSync(a.bzImage) && !fs.existsSync(a.vmlinux)).toBe(true);
    expect(a.cached).toBe(false);
    const again = await ensureKernel(loadKernel(img), opts);
    expect([again.key, again.cached]).toEqual([a.key, true]);
    // another file, another kernel
    const other = write(path.join(tmp, 'ik2'), 'bzImage', bzImage(zlib.gzipSync(kernelBody(CONFIG))));
    expect((await ensureKernel(loadKernel(other), opts)).key).not.toBe(a.key);
    await expect(readSourceFiles(loadKernel(img), ['tools/x.sh'], opts)).rejects.toMatchObject({ field: 'source', message: expect.stringMatching(/prebuilt image .* without a source tree/) });
  });

  it('without IKCONFIG: the .config or config-<release> beside it; with neither: an error naming the file', async () => {
    const dir = path.join(tmp, 'beside');
    const img = write(dir, 'bzImage', bzImage(zlib.gzipSync(kernelBody(null)), '6.1.7'));
    await expect(ensureKernel(loadKernel(img), opts)).rejects.toMatchObject({
      kind: 'bad-input',
      file: img,
      field: 'source.path',
      message: expect.stringMatching(/no kernel config for .*bzImage: the image carries none \(CONFIG_IKCONFIG\) and there is no \.config or config-6\.1\.7 beside it/),
    });
    write(dir, 'config-6.1.7', CONFIG);
    expect((await ensureKernel(loadKernel(img), opts)).meta.configFrom).toBe(path.join(dir, 'config-6.1.7'));
    write(dir, '.config', CONFIG.replace('CONFIG_VETH=y', '# CONFIG_VETH is not set'));
    const a = await ensureKernel(loadKernel(img), opts);
    expect(a.meta.configFrom).toBe(path.join(dir, '.config'));
    expect(parseKconfig(fs.readFileSync(a.config, 'utf8')).get('CONFIG_VETH')).toBe('n');
  });

  it('a vmlinux boots only through PVH; a file that is no kernel is refused', async () => {
    const elfOf = (cfg: string): Buffer => Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), kernelBody(cfg)]);
    const ok = write(path.join(tmp, 'elf'), 'vmlinux', elfOf(CONFIG));
    const a = await ensureKernel(loadKernel(ok), opts);
    expect(fs.existsSync(a.vmlinux) && !fs.existsSync(a.bzImage)).toBe(true);
    const noPvh = write(path.join(tmp, 'elf2'), 'vmlinux', elfOf(CONFIG.replace('CONFIG_PVH=y', '')));
    await expect(ensureKernel(loadKernel(noPvh), opts)).rejects.toMatchObject({ field: 'source.path', message: expect.stringMatching(/vmlinux without CONFIG_PVH/) });
    const def = write(path.join(tmp, 'defs'), 'img.yaml', 'name: img\nsource: { type: image, path: ../garbage.bin }\n');
    fs.writeFileSync(path.join(tmp, 'garbage.bin'), Buffer.from([0, 1, 2]));
    await expect(ensureKernel(loadKernel(def), opts)).rejects.toMatchObject({ file: def, field: 'source.path', message: expect.stringMatching(/is not a kernel image/) });
  });

  it('modules: the directory given must hold modules.dep for the release', async () => {
    const img = write(path.join(tmp, 'mods'), 'bzImage', bzImage(zlib.gzipSync(kernelBody(CONFIG + 'CONFIG_MODULES=y\n')), '6.1.8'));
    const mods = path.join(tmp, 'mods', 'root');
    await expect(ensureKernel(loadKernel(img, { modules: mods }), opts)).rejects.toMatchObject({ field: 'source.modules', message: expect.stringMatching(/no modules for 6\.1\.8 in/) });
    write(path.join(mods, 'lib/modules/6.1.8'), 'modules.dep', 'kernel/drivers/net/dummy.ko:\n');
    const a = await ensureKernel(loadKernel(img, { modules: mods }), opts);
    expect(a.modules).toEqual({ dir: fs.realpathSync(path.join(mods, 'lib/modules/6.1.8')), release: '6.1.8', sourcePackage: 'linux-source-6.1' });
    // beside the image (the layout of make modules_install INSTALL_MOD_PATH=<image dir>)
    fs.renameSync(path.join(mods, 'lib'), path.join(tmp, 'mods', 'lib'));
    expect((await ensureKernel(loadKernel(img), opts)).modules?.dir).toBe(fs.realpathSync(path.join(tmp, 'mods', 'lib/modules/6.1.8')));
  });
});

describe("the cases' kconfig needs against a prebuilt kernel's config, before boot", () => {
  const artifact = (config: string, extra: Partial<KernelArtifact> = {}): KernelArtifact => {
    const f = path.join(tmp, `cfg-${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(f, config);
    return { name: 'mine', key: 'k', dir: tmp, bzImage: '', vmlinux: '', config: f, cached: true, meta: { name: 'mine', release: 'r', configHash: '', source: '', sourceId: '', patches: [], compiler: '', buildMs: 0, builtAt: '', configFrom: 'the IKCONFIG of /x/bzImage' }, ...extra };
  };
  const nft = loadCase('rp-filter-mesos-nft');
  it('a missing option: the option, the case, where the config came from', () => {
    const a = artifact(CONFIG);
    expect(() => checkCaseKconfig(a, [nft])).toThrow(
      expect.objectContaining({ kind: 'bad-input', file: nft.file, field: 'kconfig', message: expect.stringMatching(/^kernel mine lacks CONFIG_NET_NS, .*CONFIG_NF_TABLES, .*which case rp-filter-mesos-nft needs \(its config: the IKCONFIG of \/x\/bzImage\)$/) }),
    );
  });
  it('an option built as a module needs the modules', () => {
    const c = loadCase('rp-filter-selftest');
    const all = c.def.kconfig.map((o) => `${o}=y`).join('\n').replace('CONFIG_DUMMY=y', 'CONFIG_DUMMY=m');
    expect(() => checkCaseKconfig(artifact(all), [c])).toThrow(expect.objectContaining({ field: 'kconfig', message: expect.stringMatching(/has CONFIG_DUMMY as module\(s\), which case rp-filter-selftest needs, but no modules came with it/) }));
    expect(() => checkCaseKconfig(artifact(all, { modules: { dir: tmp, release: 'r', sourcePackage: null } }), [c])).not.toThrow();
    // a kernel the harness builds ships no modules: =m is merged as =y
    expect(notBuiltIn(parseKconfig(all), ['CONFIG_DUMMY', 'CONFIG_VETH'])).toEqual(['CONFIG_DUMMY']);
  });
});

describe("a user's tree: walked, mirrored, never written to", () => {
  const mk = (root: string, rel: string, text: string, mtime = 1_700_000_000): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
    fs.utimesSync(path.join(root, rel), mtime, mtime);
  };
  it('tells build outputs from sources', () => {
    for (const f of ['kernel/fork.o', 'kernel/.fork.o.cmd', 'vmlinux', 'vmlinux.a', '.config', '.config.old', 'arch/x86/boot/bzImage', 'modules.order', 'drivers/net/veth.ko', 'drivers/net/veth.mod.c', 'System.map', 'Module.symvers', '.tmp_vmlinux.kallsyms1'])
      expect(isBuildOutput(f, false), f).toBe(true);
    for (const f of ['kernel/fork.c', 'Makefile', 'Kconfig', '.gitignore', 'scripts/config', 'arch/x86/Kconfig', 'include/linux/module.h', 'tools/testing/selftests/net/fib_tests.sh', 'arch/x86/boot/header.S'])
      expect(isBuildOutput(f, false), f).toBe(false);
    for (const d of ['.git', 'include/config', 'include/generated', 'arch/x86/include/generated']) expect(isBuildOutput(d, true), d).toBe(true);
    expect(isBuildOutput('include/linux', true)).toBe(false);
  });

  it('a tree built in place is not clean for make O=; its mirror is, with the sources and their times, and follows edits and removals', () => {
    const tree = path.join(tmp, 'user-tree');
    mk(tree, 'Makefile', 'all:\n');
    mk(tree, 'Kconfig', 'mainmenu "x"\n');
    mk(tree, 'kernel/fork.c', 'int fork;\n');
    mk(tree, 'net/ipv4/fib_frontend.c', 'int fib;\n');
    mk(tree, 'kernel/fork.o', 'ELF');
    mk(tree, 'kernel/.fork.o.cmd', 'cmd');
    mk(tree, '.config', CONFIG);
    mk(tree, 'include/config/auto.conf', 'x');
    mk(tree, 'arch/x86/include/generated/asm/x.h', 'x');
    mk(tree, 'arch/x86/Kconfig', 'config X86\n');
    fs.symlinkSync('fork.c', path.join(tree, 'kernel/link.c'));
    expect(uncleanMarks(tree)).toEqual(['.config', 'include/config', 'arch/x86/include/generated']);
    const before = fs.readdirSync(tree, { recursive: true }).map(String).sort();
    const entries = walkTree(tree);
    expect(entries.map((e) => e.rel)).toEqual(['Kconfig', 'Makefile', 'arch/x86/Kconfig', 'kernel/fork.c', 'kernel/link.c', 'net/ipv4/fib_frontend.c']);
    const mirror = path.join(tmp, 'mirror');
    expect(syncMirror(tree, entries, mirror)).toBe(6);
    expect(uncleanMarks(mirror)).toEqual([]);
    expect(fs.statSync(path.join(mirror, 'kernel/fork.c')).mtimeMs).toBe(fs.statSync(path.join(tree, 'kernel/fork.c')).mtimeMs);
    expect(fs.readlinkSync(path.join(mirror, 'kernel/link.c'))).toBe('fork.c');
    expect(syncMirror(tree, walkTree(tree), mirror)).toBe(0); // nothing changed: nothing copied
    const fp = treeFingerprint(entries);
    // an edit and a removal: a new state; only the edited file is copied; the removed one leaves the mirror
    mk(tree, 'net/ipv4/fib_frontend.c', 'int fib2;\n', 1_700_000_100);
    fs.rmSync(path.join(tree, 'kernel/fork.c'));
    const after = walkTree(tree);
    expect(treeFingerprint(after)).not.toBe(fp);
    expect(syncMirror(tree, after, mirror)).toBe(1);
    expect(fs.existsSync(path.join(mirror, 'kernel/fork.c'))).toBe(false);
    expect(fs.readFileSync(path.join(mirror, 'net/ipv4/fib_frontend.c'), 'utf8')).toBe('int fib2;\n');
    // the tree itself: the same files as before, less the one removed by hand
    expect(fs.readdirSync(tree, { recursive: true }).map(String).sort()).toEqual(before.filter((f) => f !== 'kernel/fork.c'));
  });
});

describe('imports', () => {
  it('harness/ has no import cycle (build.ts and debimage.ts imported each other)', () => {
    const root = path.join(repoRoot, 'harness');
    const files = (fs.readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, f));
    const graph = new Map<string, string[]>();
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      // type-only imports too: a cycle of types is still a cycle of modules for a reader
      const deps = [...text.matchAll(/^(?:import|export)\b[^'"]*?from '(\.[^']+)'/gm)].map((m) => path.resolve(path.dirname(f), m[1]!));
      graph.set(f, deps.filter((d) => files.includes(d)));
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push(stack.slice(stack.indexOf(d)).concat(d).map((x) => path.relative(root, x)).join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
