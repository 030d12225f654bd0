// Issue 20, files, paths and archive members: what a hostile definition, kernel tree, modules
// directory or remote cache entry can make the harness read or write. Each defect below has a test
// that fails without its fix (checked against cb21cbe); the blocking ones (a FIFO, /dev/zero) run in
// a child process with a deadline, so that without the fix they fail instead of hanging the run.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { KernelArtifact } from '../../harness/kernels/artifact.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { modulesForCase } from '../../harness/kernels/modsource.ts';
import { ensureKernel, readSourceFiles } from '../../harness/kernels/providers/index.ts';
import { composeInitramfs } from '../../harness/images/initramfs.ts';
import { EntryStore, hashOf, sha256 } from '../../harness/util/cache.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { silentLogger } from '../../harness/util/log.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { extractEntry, RemoteCache, type RemoteStore } from '../../harness/util/remote.ts';
import { testTempDir } from '../tmp.ts';

/** The typed refusal `f` must end in (sync or async). */
async function refusal(f: () => unknown): Promise<HarnessError> {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof HarnessError)) throw new Error(`not a HarnessError: ${String(e)}`);
    expect(e.kind).toBe('bad-input');
    return e;
  }
  throw new Error('accepted');
}

/** Every file under `dir` (recursively), relative. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

const CONFIG = ['CONFIG_64BIT=y', 'CONFIG_NET=y', 'CONFIG_MODULES=y', 'CONFIG_DUMMY=m', 'CONFIG_PVH=y', ''].join('\n');

/** A bzImage by the x86 boot protocol: "HdrS" at 0x202, kernel_version pointing at the release. */
function bzImage(release: string): Buffer {
  const setup = Buffer.alloc(4 * 512);
  setup.writeUInt8(3, 0x1f1);
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x020f, 0x206);
  setup.writeUInt16LE(0x400 - 0x200, 0x20e);
  setup.write(`${release} (kr@host) #1 SMP\0`, 0x400, 'latin1');
  return Buffer.concat([setup, crypto.randomBytes(1024)]);
}

const SOURCE_TARBALL = '/usr/src/linux-source-6.1.tar.xz';

/** A kernel artifact with a modules directory, and the module map modsource reads, memoised (no tarball is read). */
function modularKernel(t: string, modulesDir: string, release = '6.1.0-kr'): { k: KernelArtifact; cacheDir: string } {
  const cacheDir = path.join(t, 'cache');
  const st = fs.statSync(SOURCE_TARBALL);
  const memo = path.join(cacheDir, 'modmap', `${hashOf({ tarball: SOURCE_TARBALL, size: st.size, mtime: st.mtimeMs }).slice(0, 24)}.json`);
  fs.mkdirSync(path.dirname(memo), { recursive: true });
  fs.writeFileSync(memo, JSON.stringify({ CONFIG_DUMMY: ['dummy'] }));
  const config = path.join(t, 'config');
  fs.writeFileSync(config, CONFIG);
  const meta = { name: 'k', release, configHash: '', source: 'test', sourceId: 'test', patches: [], compiler: '', buildMs: 0, builtAt: '' };
  return { k: { name: 'k', key: 'k', dir: t, bzImage: '', vmlinux: '', config, modules: { dir: modulesDir, release, sourcePackage: 'linux-source-6.1' }, meta, cached: true }, cacheDir };
}

describe('defect 1: a modules directory or a cache entry cannot make the harness read or write outside', () => {
  it.runIf(fs.existsSync(SOURCE_TARBALL))('modules.dep naming ../../../tmp/pwned, an absolute path, or a module behind a symlink out: bad input, nothing read from outside', async () => {
    const t = testTempDir('kr-hostile-mods-');
    const outside = path.join(t, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'dummy.ko'), 'host secret');
    const mods = path.join(t, 'lib/modules/6.1.0-kr');
    fs.mkdirSync(path.join(mods, 'kernel'), { recursive: true });
    const depOf = (line: string): void => fs.writeFileSync(path.join(mods, 'modules.dep'), line + '\n');
    const { k, cacheDir } = modularKernel(t, mods);
    // a relative path climbing out of the modules directory (on the host and in the initramfs)
    depOf('../../../outside/dummy.ko:');
    const e1 = await refusal(() => modulesForCase(k, ['CONFIG_DUMMY'], cacheDir));
    expect(e1.field).toBe('modules');
    expect(e1.file).toBe(path.join(mods, 'modules.dep'));
    expect(e1.message).toContain('../../../outside/dummy.ko');
    // an absolute one
    depOf(`${outside}/dummy.ko:`);
    await refusal(() => modulesForCase(k, ['CONFIG_DUMMY'], cacheDir));
    // a kernel/...ko path whose directory is a symlink out of the modules directory
    fs.rmSync(path.join(mods, 'kernel'), { recursive: true });
    fs.symlinkSync(outside, path.join(mods, 'kernel'));
    depOf('kernel/dummy.ko:');
    expect((await refusal(() => modulesForCase(k, ['CONFIG_DUMMY'], cacheDir))).message).toMatch(/leads out of .* through a symbolic link/);
    // modules.dep itself a FIFO: refused, not waited on
    fs.rmSync(path.join(mods, 'modules.dep'));
    execFileSync('mkfifo', [path.join(mods, 'modules.dep')]);
    expect((await refusal(() => modulesForCase(k, ['CONFIG_DUMMY'], cacheDir))).message).toMatch(/named pipe/);
    // a release that is a path
    const bad = modularKernel(t, mods, '../../../tmp');
    await refusal(() => modulesForCase(bad.k, ['CONFIG_DUMMY'], bad.cacheDir));
    // a good one is read
    fs.rmSync(path.join(mods, 'modules.dep'));
    fs.rmSync(path.join(mods, 'kernel'));
    fs.mkdirSync(path.join(mods, 'kernel/drivers/net'), { recursive: true });
    fs.writeFileSync(path.join(mods, 'kernel/drivers/net/dummy.ko'), 'module');
    depOf('kernel/drivers/net/dummy.ko:');
    const ok = await modulesForCase(k, ['CONFIG_DUMMY'], cacheDir);
    expect(ok.loaded).toEqual(['dummy']);
    expect(String(ok.files['/lib/modules/6.1.0-kr/kernel/drivers/net/dummy.ko'])).toBe('module');
  });

  it('composeInitramfs refuses a member path with .. (or a NUL) and writes nothing outside its staging directory', async () => {
    const t = testTempDir('kr-hostile-initrd-');
    const base = path.join(t, 'base.cpio');
    fs.writeFileSync(base, 'base');
    const victim = path.join(t, 'victim');
    fs.mkdirSync(victim);
    const climb = '../'.repeat(12) + path.relative('/', victim) + '/pwned';
    for (const p of [`/lib/modules/6.1/${climb}`, climb, `/lib/modules/x/../../../../pwned`, '/case/a\0b']) {
      const out = path.join(t, 'out', 'img.cpio');
      fs.mkdirSync(path.dirname(out), { recursive: true });
      const e = await refusal(() => composeInitramfs(base, { '/init': '#!/bin/sh\n', [p]: 'root-owned' }, out));
      expect(e.file).toBe(p);
      expect(filesUnder(victim)).toEqual([]);
      expect(fs.existsSync(path.join(t, 'pwned'))).toBe(false);
      expect(fs.existsSync(path.join(t, 'out', 'img.cpio.d'))).toBe(false);
    }
  });

  it("an image kernel's cache entry naming an absolute modulesDir (or a path release) is bad input, not a modules directory", async () => {
    const t = testTempDir('kr-hostile-entry-');
    const dir = path.join(t, 'img');
    fs.mkdirSync(path.join(dir, 'lib/modules/6.1.9'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'bzImage'), bzImage('6.1.9'));
    fs.writeFileSync(path.join(dir, '.config'), CONFIG);
    fs.writeFileSync(path.join(dir, 'lib/modules/6.1.9/modules.dep'), 'kernel/drivers/net/dummy.ko:\n');
    const opts = { cacheDir: path.join(t, 'cache'), log: silentLogger };
    const a = await ensureKernel(loadKernel(path.join(dir, 'bzImage')), opts);
    expect(a.modules?.dir).toBe(fs.realpathSync(path.join(dir, 'lib/modules/6.1.9')));
    // the entry as a remote cache could serve it: its manifest names another modules directory
    const victim = path.join(t, 'victim');
    fs.mkdirSync(victim);
    fs.writeFileSync(path.join(victim, 'modules.dep'), '../../../tmp/pwned.ko:\n');
    const mf = path.join(a.dir, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(mf, 'utf8')) as { meta: Record<string, unknown> };
    for (const [field, value] of [
      ['modulesDir', victim],
      ['modulesDir', '/'],
      ['modulesDir', 'relative/dir'],
      ['release', '../../../../tmp'],
    ] as const) {
      fs.writeFileSync(mf, JSON.stringify({ ...manifest, meta: { ...manifest.meta, [field]: value } }));
      const e = await refusal(() => ensureKernel(loadKernel(path.join(dir, 'bzImage')), opts));
      expect(e.file).toBe(mf);
      expect(e.field).toBe(`meta.${field}`);
    }
    fs.writeFileSync(mf, JSON.stringify(manifest));
    expect((await ensureKernel(loadKernel(path.join(dir, 'bzImage')), opts)).modules?.dir).toBe(a.modules?.dir);
  });
});

describe('defect 3: sourceFiles never follow a symlink out of the kernel tree', () => {
  function tree(t: string): string {
    const dir = path.join(t, 'linux');
    fs.mkdirSync(path.join(dir, 'tools/testing/selftests/net'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Makefile'), 'VERSION = 6\n');
    fs.writeFileSync(path.join(dir, 'Kconfig'), '');
    fs.writeFileSync(path.join(dir, 'tools/testing/selftests/net/lib.sh'), '# lib\n');
    return dir;
  }
  const defOf = (t: string, dir: string): string => {
    const f = path.join(t, 'k.yaml');
    fs.writeFileSync(f, `name: own\nsource: { type: dir, path: ${dir} }\nconfig: { base: tinyconfig, fragments: [] }\n`);
    return f;
  };

  it('a symlink to a host file is refused naming the field; a symlink inside the tree is read', async () => {
    const t = testTempDir('kr-hostile-src-');
    const secret = path.join(t, 'host-secret');
    fs.writeFileSync(secret, 'root:secret\n');
    const dir = tree(t);
    fs.symlinkSync(secret, path.join(dir, 'tools/testing/selftests/net/fib_tests.sh'));
    fs.symlinkSync('../../../../tools', path.join(dir, 'tools/testing/selftests/net/up')); // a directory link out... to the tree itself
    fs.symlinkSync('lib.sh', path.join(dir, 'tools/testing/selftests/net/inside.sh'));
    const k = loadKernel(defOf(t, dir));
    const opts = { cacheDir: path.join(t, 'cache'), log: silentLogger };
    const e = await refusal(() => readSourceFiles(k, ['tools/testing/selftests/net/inside.sh', 'tools/testing/selftests/net/fib_tests.sh'], opts));
    expect(e.field).toBe('sourceFiles[1]');
    expect(e.message).toMatch(/leads out of .* through a symbolic link/);
    expect(JSON.stringify(filesUnder(path.join(t, 'cache')))).not.toContain('fib_tests');
    // inside the tree (directly or through a directory link that stays inside): read
    const ok = await readSourceFiles(k, ['tools/testing/selftests/net/inside.sh', 'tools/testing/selftests/net/up/testing/selftests/net/lib.sh'], opts);
    expect(Object.values(ok)).toEqual(['# lib\n', '# lib\n']);
  });

  it('a FIFO, a directory or an oversized file in the tree is refused at once', async () => {
    const t = testTempDir('kr-hostile-src-');
    const dir = tree(t);
    execFileSync('mkfifo', [path.join(dir, 'tools/fifo.sh')]);
    fs.writeFileSync(path.join(dir, 'tools/big.sh'), Buffer.alloc(1024 * 1024 + 1, 0x61));
    const k = loadKernel(defOf(t, dir));
    const opts = { cacheDir: path.join(t, 'cache'), log: silentLogger };
    const t0 = Date.now();
    expect((await refusal(() => readSourceFiles(k, ['tools/fifo.sh'], opts))).message).toMatch(/named pipe/);
    expect((await refusal(() => readSourceFiles(k, ['tools/testing'], opts))).message).toMatch(/directory/);
    expect((await refusal(() => readSourceFiles(k, ['tools/big.sh'], opts))).message).toMatch(/more than the 1048576 bytes/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

/** Run `body` (a module body using the harness by absolute import) in a child process with a deadline; its stdout. */
function isolated(body: string, timeoutMs = 20_000): { out: string; timedOut: boolean; ms: number } {
  const t = testTempDir('kr-hostile-child-');
  const script = path.join(t, 'child.mts'); // ESM, wherever the temp dir is
  fs.writeFileSync(script, body.replace(/@harness\//g, `${repoRoot}/harness/`));
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, timeout: timeoutMs, encoding: 'utf8', killSignal: 'SIGKILL' });
  return { out: r.stdout + r.stderr, timedOut: r.signal === 'SIGKILL', ms: Date.now() - t0 };
}

describe('defect 5: a FIFO or a device named as a patch, fragment, config or image is refused, never waited on', () => {
  it('a definition naming a FIFO patch, /dev/zero or /dev/null as a fragment, a directory as its config: refused at load, naming file and field', async () => {
    const t = testTempDir('kr-hostile-def-');
    const fifo = path.join(t, 'fix.patch');
    execFileSync('mkfifo', [fifo]);
    fs.mkdirSync(path.join(t, 'conf.d'));
    fs.writeFileSync(path.join(t, 'ok.config'), 'CONFIG_NET=y\n');
    const cases: Array<[string, string, RegExp]> = [
      ['patches: [{ file: fix.patch }]', 'patches[0].file', /named pipe/],
      ['config: { base: tinyconfig, fragments: [/dev/zero] }', 'config.fragments[0]', /character device/],
      ['config: { base: tinyconfig, fragments: [ok.config, /dev/null] }', 'config.fragments[1]', /character device/],
      ['config: { file: conf.d }', 'config.file', /directory/],
    ];
    for (const [extra, field, why] of cases) {
      const def = path.join(t, 'k.yaml');
      fs.writeFileSync(def, `name: k\nsource: { type: tarball, path: linux.tar.xz }\n${extra}\n`);
      const t0 = Date.now();
      const e = await refusal(() => loadKernel(def));
      expect(Date.now() - t0).toBeLessThan(500);
      expect([e.file, e.field]).toEqual([def, field]);
      expect(e.message).toMatch(why);
    }
  });

  it('hashing a FIFO patch or /dev/zero as a tarball, and reading a FIFO fragment, end in a typed error within a second (child process, 20 s deadline)', () => {
    const t = testTempDir('kr-hostile-fifo-');
    const fifo = path.join(t, 'p.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = isolated(`
      import { patchId, cachedFileHash } from '@harness/kernels/source.ts';
      import { readInputFile } from '@harness/util/load.ts';
      const out = [];
      for (const f of [() => patchId(${JSON.stringify(fifo)}, false), () => cachedFileHash('/dev/zero', ${JSON.stringify(t)}), () => readInputFile(${JSON.stringify(fifo)}, 1 << 20, 'config.fragments[0]')]) {
        const t0 = Date.now();
        try { f(); out.push('accepted'); } catch (e) { out.push({ kind: e.kind, message: e.message, ms: Date.now() - t0 }); }
      }
      console.log(JSON.stringify(out));
    `);
    expect(r.timedOut).toBe(false);
    const res = JSON.parse(r.out.trim().split('\n').pop() ?? 'null') as Array<{ kind: string; message: string; ms: number }>;
    expect(res.map((x) => x.kind)).toEqual(['bad-input', 'bad-input', 'bad-input']);
    expect(res.map((x) => x.message)).toEqual([expect.stringMatching(/named pipe/), expect.stringMatching(/character device/), expect.stringMatching(/named pipe/)]);
    for (const x of res) expect(x.ms).toBeLessThan(1000);
  });

  it('a prebuilt image that is a FIFO or /dev/zero is refused naming source.path', async () => {
    const t = testTempDir('kr-hostile-img-');
    const fifo = path.join(t, 'bzImage');
    execFileSync('mkfifo', [fifo]);
    for (const p of [fifo, '/dev/zero']) {
      const def = path.join(t, 'k.yaml');
      fs.writeFileSync(def, `name: k\nsource: { type: image, path: ${p} }\n`);
      const e = await refusal(() => ensureKernel(loadKernel(def), { cacheDir: path.join(t, 'cache'), log: silentLogger }));
      expect([e.file, e.field]).toEqual([def, 'source.path']);
    }
  });
});

describe('defect 7: no set-id bit survives in a remote cache entry', () => {
  it('a real tar with a 04755 file, a 02775 and a 01777 directory: after the remote unpack, files 0755/0644, directories 0755', async () => {
    const t = testTempDir('kr-hostile-suid-');
    const key = 'c'.repeat(64);
    const src = path.join(t, 'src');
    fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(src, 'shared'));
    fs.writeFileSync(path.join(src, 'bin/tool'), '#!/bin/sh\nid\n');
    fs.writeFileSync(path.join(src, 'shared/data'), 'x');
    const manifest = { key, createdAt: '', files: { 'bin/tool': sha256('#!/bin/sh\nid\n'), 'shared/data': sha256('x') }, meta: {} };
    fs.writeFileSync(path.join(src, 'manifest.json'), JSON.stringify(manifest));
    fs.chmodSync(path.join(src, 'bin/tool'), 0o4755);
    fs.chmodSync(path.join(src, 'shared/data'), 0o6664);
    fs.chmodSync(path.join(src, 'bin'), 0o2775);
    fs.chmodSync(path.join(src, 'shared'), 0o1777);
    const tarFile = path.join(t, 'entry.tar');
    execFileSync('tar', ['-cf', tarFile, '-C', src, 'manifest.json', 'bin', 'shared']);
    expect(execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' })).toMatch(/^-rwsr-xr-x .* bin\/tool$/m);
    // the remote's transport as HttpRemoteStore.get does it after the download: extractEntry
    const store: RemoteStore = {
      where: 'test://',
      has: async () => true,
      get: async (_kind, _key, staging) => {
        await extractEntry(tarFile, staging);
        return { bytes: fs.statSync(tarFile).size };
      },
      put: async () => ({ bytes: 0 }),
      getIndex: async () => null,
      hasIndex: async () => false,
      putIndex: async () => undefined,
    };
    const entries = new EntryStore<Record<string, never>>(path.join(t, 'cache', 'kernels'), { remote: new RemoteCache(store, false) });
    expect(await entries.fetch(key, { log: silentLogger })).not.toBeNull();
    const dir = entries.entryDir(key);
    const mode = (rel: string): string => (fs.statSync(path.join(dir, rel)).mode & 0o7777).toString(8);
    expect([mode('.'), mode('bin'), mode('bin/tool'), mode('shared'), mode('shared/data'), mode('manifest.json')]).toEqual(['755', '755', '755', '755', '644', '644']);
  });

  it('a gzip tar served whole keeps its content while its modes are normalised (zlib)', async () => {
    const t = testTempDir('kr-hostile-gz-');
    const src = path.join(t, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f'), 'data');
    fs.chmodSync(path.join(src, 'f'), 0o2750);
    const tarFile = path.join(t, 'e.tar.gz');
    fs.writeFileSync(tarFile, zlib.gzipSync(execFileSync('tar', ['-cf', '-', '-C', src, 'f'])));
    const dest = path.join(t, 'dest');
    fs.mkdirSync(dest);
    await extractEntry(tarFile, dest);
    expect(fs.readFileSync(path.join(dest, 'f'), 'utf8')).toBe('data');
    expect(fs.statSync(path.join(dest, 'f')).mode & 0o7777).toBe(0o755);
  });
});
