// The remote cache against a real nginx WebDAV share on 127.0.0.1: a machine with push on fills
// it, a machine with an empty cache downloads its kernels and guest image instead of building
// them, a missing entry is made locally, an entry corrupted on the server is rejected and rebuilt
// (and, with push on, replaced by a good one), and an unreachable server means local work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { davUnavailable, freePort, startDavServer, type DavServer } from '../../harness/cache/davserver.ts';
import { entryDirProblem } from '../../harness/util/remote.ts';
import { cacheRoot } from '../../harness/util/paths.ts';
import { cli, type CliResult } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const tmp = fileTempDir('kr-remote-e2e-');
const shared = cacheRoot();
const KEY = /^[0-9a-f]{64}$/;

interface Summary {
  runs: Array<{ kernel: string; case: string; verdict: string; vm: { snapshot: string } }>;
}

const verdicts = (r: CliResult): Record<string, string> =>
  Object.fromEntries((JSON.parse(r.stdout) as Summary).runs.map((x) => [`${x.kernel} x ${x.case}`, x.verdict]));

const DEFAULT_VERDICTS = {
  '6.1-vanilla x rp-filter-selftest': 'reproduced',
  '6.1-vanilla x rp-filter-mesos': 'reproduced',
  '6.1-fixed x rp-filter-selftest': 'not-reproduced',
  '6.1-fixed x rp-filter-mesos': 'not-reproduced',
};

/** A local cache directory of its own (and the remote settings) for one "machine". */
function machine(name: string, remote: string, push = false): { cache: string; env: Record<string, string> } {
  const cache = path.join(tmp, name);
  fs.mkdirSync(cache, { recursive: true });
  return { cache, env: { KERNEL_REPRO_CACHE: cache, KERNEL_REPRO_REMOTE_CACHE: remote, KERNEL_REPRO_REMOTE_CACHE_PUSH: push ? '1' : '', KERNEL_REPRO_REMOTE_CACHE_HEADER: '', KERNEL_REPRO_REMOTE_CACHE_SIGN: '' } };
}

function repro(env: Record<string, string>, results: string, extra: string[] = []): Promise<CliResult> {
  return cli(['repro', '--json', '--no-install', '--results', path.join(tmp, 'results', results), ...extra], { env, timeoutMs: 20 * 60_000 });
}

/** Keys of the kernel entries in a local cache, by the name they were built under. */
function kernelKeys(cache: string): Record<string, string> {
  const dir = path.join(cache, 'kernels');
  const out: Record<string, string> = {};
  for (const k of fs.readdirSync(dir).filter((n) => KEY.test(n))) {
    const m = JSON.parse(fs.readFileSync(path.join(dir, k, 'manifest.json'), 'utf8')) as { meta: { name: string; caseConfig?: string[] } };
    if (!m.meta.caseConfig) out[m.meta.name] = k;
  }
  return out;
}

const BUILT = /building 6\.1-|configuring 6\.1-|building the guest image|extracting linux-source/;

describe('remote cache (nginx WebDAV on 127.0.0.1)', () => {
  let dav: DavServer;
  beforeAll(async () => {
    const why = await davUnavailable();
    if (why) throw new Error(`${why}: npm run doctor -- --install --test-deps installs it`);
    dav = await startDavServer({ root: path.join(tmp, 'www'), dir: path.join(tmp, 'nginx') });
  });
  afterAll(async () => {
    await dav?.stop();
  });

  it('(a) a machine with push on fills the store with the kernels and the guest image it used', async () => {
    // the shared cache has the default kernels (01-repro built them): a warm run, then cache push
    // of what that run used
    const t0 = Date.now();
    const env = { KERNEL_REPRO_CACHE: shared, KERNEL_REPRO_REMOTE_CACHE: dav.url, KERNEL_REPRO_REMOTE_CACHE_PUSH: '1', KERNEL_REPRO_REMOTE_CACHE_HEADER: '', KERNEL_REPRO_REMOTE_CACHE_SIGN: '' };
    const warm = await repro(env, 'a');
    if (warm.exitCode !== 0) console.error(warm.stderr.slice(-3000));
    expect(warm.exitCode).toBe(0);
    expect(verdicts(warm)).toEqual(DEFAULT_VERDICTS);
    const since = `${Math.ceil((Date.now() - t0) / 1000) + 5}s`;
    // the booted-kernel snapshots too: a machine with the same cache entries and QEMU restores them
    const push = await cli(['cache', 'push', '--since', since, '--kind', 'kernels,images,snapshots'], { env });
    if (push.exitCode !== 0) console.error(push.stderr);
    expect(push.exitCode).toBe(0);
    // uploaded by cache push (or by the run itself, had it built them: push is on)
    const said = push.stdout + warm.stderr;
    expect(said).toMatch(/^uploaded kernels\/[0-9a-f]{64} \(6\.1-vanilla\) \d+ MB$|uploaded kernel 6\.1-vanilla to the remote cache/m);
    expect(said).toMatch(/^uploaded kernels\/[0-9a-f]{64} \(6\.1-fixed\) \d+ MB$|uploaded kernel 6\.1-fixed to the remote cache/m);
    expect(said).toMatch(/^uploaded images\/[0-9a-f]{64} |uploaded the guest image to the remote cache/m);
    expect(push.stdout).toMatch(/^uploaded kernels\/index\/[0-9a-f]{64} -> [0-9a-f]{12}$/m);
    const tars = (kind: string): string[] => fs.readdirSync(path.join(dav.root, kind)).filter((f) => f.endsWith('.tar'));
    expect(tars('kernels').length).toBeGreaterThanOrEqual(2);
    expect(tars('images').length).toBeGreaterThanOrEqual(1);
    expect(fs.readdirSync(path.join(dav.root, 'kernels', 'index')).length).toBeGreaterThanOrEqual(2);
    expect(tars('snapshots').length).toBeGreaterThanOrEqual(2);
    // a second push finds everything there
    const again = await cli(['cache', 'push', '--since', since, '--json', '--kind', 'kernels,images,snapshots'], { env });
    const rep = JSON.parse(again.stdout) as { uploaded: unknown[]; indexes: unknown[]; alreadyThere: number };
    expect(rep.uploaded).toEqual([]);
    expect(rep.indexes).toEqual([]);
    expect(rep.alreadyThere).toBeGreaterThanOrEqual(3);
  });

  it('(b) a machine with an empty cache downloads kernels and guest image instead of building', async () => {
    const m = machine('fresh', dav.url);
    const r = await repro(m.env, 'b');
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/downloaded kernel 6\.1-vanilla from the remote cache \(\d+(\.\d)? MB, \d+\.\d s\)/);
    expect(r.stderr).toMatch(/downloaded kernel 6\.1-fixed from the remote cache \(\d+(\.\d)? MB, \d+\.\d s\)/);
    expect(r.stderr).toMatch(/downloaded the guest image from the remote cache/);
    expect(r.stderr).not.toMatch(BUILT);
    expect(r.stderr).not.toMatch(/warning: remote cache/);
    expect(verdicts(r)).toEqual(DEFAULT_VERDICTS);
    // the booted guests came from the other machine's snapshots (same keys: cache-relative files, same QEMU)
    expect(r.stderr.match(/downloaded booted-kernel snapshot from the remote cache/g)?.length).toBe(2);
    expect((JSON.parse(r.stdout) as Summary).runs.map((x) => x.vm.snapshot)).toEqual(['restored', 'restored', 'restored', 'restored']);
    // what was downloaded is a complete local entry, indexed as if built here
    const keys = kernelKeys(m.cache);
    expect(Object.keys(keys).sort()).toEqual(['6.1-fixed', '6.1-vanilla']);
    for (const k of Object.values(keys)) expect(entryDirProblem(path.join(m.cache, 'kernels', k), k)).toBeNull();
    expect(fs.readdirSync(path.join(m.cache, 'kernels', 'index')).filter((n) => KEY.test(n)).length).toBeGreaterThanOrEqual(2);
    expect(fs.existsSync(path.join(m.cache, 'trees'))).toBe(false);
  });

  it('(c, d) a missing entry is made locally; an entry corrupted on the server is rejected, rebuilt, and (push on) replaced', async () => {
    const fixedKey = kernelKeys(path.join(tmp, 'fresh'))['6.1-fixed']!;
    // (c) the guest image is gone from the server
    for (const f of fs.readdirSync(path.join(dav.root, 'images'))) fs.rmSync(path.join(dav.root, 'images', f));
    // (d) 6.1-fixed's archive on the server: the same files, but another vmlinux
    const bad = path.join(tmp, 'bad');
    fs.mkdirSync(bad);
    execFileSync('tar', ['-xzf', path.join(dav.root, 'kernels', `${fixedKey}.tar`), '-C', bad]);
    fs.appendFileSync(path.join(bad, 'vmlinux'), 'tampered');
    execFileSync('sh', ['-c', `tar -cf - -C "${bad}" . | gzip -1 > "${path.join(dav.root, 'kernels', `${fixedKey}.tar`)}"`]);
    // this machine shares the kernel trees (so that the rebuild is incremental), not the kernels
    const m = machine('corrupt', dav.url, true);
    const trees = path.join(m.cache, 'trees');
    if (fs.existsSync(path.join(shared, 'trees'))) fs.symlinkSync(path.join(shared, 'trees'), trees);
    let r: CliResult;
    try {
      r = await repro(m.env, 'cd');
    } finally {
      fs.rmSync(trees, { force: true }); // the link, never the shared trees
    }
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/building the guest image/);
    expect(r.stderr).toMatch(new RegExp(`warning: remote cache: entry kernels/${fixedKey.slice(0, 12)} \\(kernel 6\\.1-fixed\\) rejected: file vmlinux does not match its manifest; building locally`));
    expect(r.stderr.match(/rejected:/g)).toHaveLength(1); // once: not downloaded again when the build looks by kernel key
    expect(r.stderr).toMatch(/built 6\.1-fixed/);
    expect(r.stderr).toMatch(/downloaded kernel 6\.1-vanilla from the remote cache/);
    expect(r.stderr).not.toMatch(/building 6\.1-vanilla/);
    expect(verdicts(r)).toEqual(DEFAULT_VERDICTS);
    // push on: the rebuilt kernel (the same inputs, the same key) and the image replaced what the server had
    expect(r.stderr).toMatch(/uploaded kernel 6\.1-fixed to the remote cache/);
    expect(r.stderr).toMatch(/uploaded the guest image to the remote cache/);
    const check = path.join(tmp, 'check');
    fs.mkdirSync(check);
    execFileSync('tar', ['-xzf', path.join(dav.root, 'kernels', `${fixedKey}.tar`), '-C', check]);
    expect(entryDirProblem(check, fixedKey)).toBeNull();
  });

  it('(e) an unreachable server is one warning, then local work', async () => {
    const closed = await freePort();
    const m = machine('offline', `http://127.0.0.1:${closed}/cache`);
    // this machine has the kernels, not the guest image: the image is asked of the remote, then made here
    fs.cpSync(path.join(tmp, 'fresh', 'kernels'), path.join(m.cache, 'kernels'), { recursive: true });
    const r = await repro(m.env, 'e', ['--kernel', '6.1-fixed', '--case', 'rp-filter-selftest']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('remote cache'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/warning: remote cache unreachable \(.*ECONNREFUSED.*\): building locally$/);
    expect(r.stderr).toMatch(/building the guest image/);
    expect(verdicts(r)).toEqual({ '6.1-fixed x rp-filter-selftest': 'not-reproduced' });
  });
});
