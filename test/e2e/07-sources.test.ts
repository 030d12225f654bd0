// Kernel sources end to end: Debian's own prebuilt cloud kernel (no compiler), a kernel tarball
// served over HTTP on 127.0.0.1 (pinned, cached, built), and a local git tree at a revision.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { cacheRoot, repoRoot } from '../../harness/util/paths.ts';
import { ensureKernel } from '../../harness/kernels/providers/index.ts';
import { parseKconfig } from '../../harness/kernels/kconfig.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { silentLogger } from '../../harness/util/log.ts';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const work = fileTempDir('kr-src-');
const base = path.join(repoRoot, 'kernels/config/base.config');
const tarball = '/usr/src/linux-source-6.1.tar.xz';
let server: http.Server;
let hits = 0;
let port = 0;

interface CacheLs { units: Array<{ area: string; id: string; orphan?: boolean }> }
interface Summary { runs: Array<{ kernel: string; case: string; verdict: string; signals: Array<{ name: string; fired: boolean }>; kernelInfo: { release: string; source: string } }> }

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits++;
    if (req.url !== '/pub/linux-6.1.tar.xz') {
      res.writeHead(404).end();
      return;
    }
    const size = fs.statSync(tarball).size;
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/x-xz' });
    fs.createReadStream(tarball).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('kernel sources', () => {
  it("Debian's prebuilt cloud kernel boots without compiling anything and has the fix", async () => {
    const r = await cli(['repro', '--kernel', 'debian-cloud', '--json']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toMatch(/building |configuring /);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.runs.map((x) => `${x.case}:${x.verdict}`).sort()).toEqual(['rp-filter-mesos:not-reproduced', 'rp-filter-selftest:not-reproduced']);
    for (const x of s.runs) {
      expect(x.kernelInfo.release).toMatch(/^6\.1\.0-\d+-cloud-amd64$/);
      expect(x.kernelInfo.source).toMatch(/Debian, prebuilt/);
      expect(x.signals.find((s) => s.name === 'martian')?.fired).toBe(false);
    }
  });

  it("a prebuilt kernel that lacks a case's option fails before boot, naming the option and the case", async () => {
    // an option this kernel's own config leaves unset (read from the kernel the harness fetched, not assumed)
    const k = await ensureKernel(loadKernel('debian-cloud'), { cacheDir: cacheRoot(), log: silentLogger });
    const unset = [...parseKconfig(fs.readFileSync(k.config, 'utf8'))].find(([o, v]) => v === 'n' && /^CONFIG_NET_|^CONFIG_ATM$|^CONFIG_HAMRADIO$/.test(o))?.[0];
    expect(unset).toBeDefined();
    const needy = path.join(work, 'needy.yaml');
    fs.writeFileSync(needy, `name: needy\ndescription: needs ${unset}\nkconfig: [${unset}]\nprobes:\n  - { name: p, ping: 127.0.0.1 }\nsignature: { probe: p }\n`);
    const r = await cli(['repro', '--kernel', 'debian-cloud', '--case', needy, '--no-install']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`error (bad-input): ${needy}: kconfig: kernel debian-cloud lacks ${unset}, which case needy needs`);
    expect(r.stderr).not.toMatch(/accelerator:/); // nothing booted
  });

  it('a tarball by URL (127.0.0.1): an unpinned definition is refused, a pinned one is downloaded, cached and built', async () => {
    const url = `http://127.0.0.1:${port}/pub/linux-6.1.tar.xz`;
    const unpinned = path.join(work, 'unpinned.yaml');
    fs.writeFileSync(unpinned, `name: from-url\nsource: { type: url, url: "${url}" }\nconfig: { fragments: [${base}] }\n`);
    const r0 = await cli(['repro', '--kernel', unpinned, '--case', 'rp-filter-selftest', '--no-install']);
    expect(r0.exitCode).toBe(2);
    expect(r0.stderr).toContain(`${unpinned}: source.sha256: no sha256 pin`);

    const sha = crypto.createHash('sha256').update(fs.readFileSync(tarball)).digest('hex');
    const def = path.join(work, 'from-url.yaml');
    fs.writeFileSync(def, `name: from-url\nsource: { type: url, url: "${url}", sha256: ${sha} }\nconfig: { fragments: [${base}] }\n`);
    hits = 0;
    // a download another run of this cache made would hide this one: start without it
    fs.rmSync(path.join(cacheRoot(), 'downloads', sha), { recursive: true, force: true });
    const r1 = await cli(['repro', '--kernel', def, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    if (r1.exitCode !== 0) console.error(r1.stderr.slice(-3000));
    expect(r1.exitCode).toBe(0);
    expect(hits).toBe(1);
    expect((JSON.parse(r1.stdout) as Summary).runs[0]!.verdict).toBe('not-reproduced');
    const r2 = await cli(['repro', '--kernel', def, '--case', 'rp-filter-selftest', '--json', '--no-install']);
    expect(r2.exitCode).toBe(0);
    expect(hits).toBe(1); // the download and the kernel both came from the cache
    expect(r2.stderr).toMatch(/kernel from-url: .*\(cached\)/);
  });

  it('a local git tree at a revision builds in a worktree of the harness and runs; the checkout is untouched', async () => {
    const repo = path.join(work, 'linux');
    fs.mkdirSync(repo);
    execFileSync('tar', ['-xf', tarball, '-C', repo, '--strip-components=1']);
    const git = (...a: string[]): string => execFileSync('git', ['-C', repo, '-c', 'gc.auto=0', '-c', 'user.name=t', '-c', 'user.email=t@kernel-repro.invalid', ...a], { maxBuffer: 64 << 20 }).toString().trim();
    git('init', '-q');
    git('add', '-f', '-A');
    git('commit', '-q', '-m', 'linux-source-6.1 as shipped');
    git('tag', 'v-shipped');
    const def = path.join(work, 'from-git.yaml');
    fs.writeFileSync(def, `name: from-git\nsource: { type: git, repo: ${repo}, rev: v-shipped }\nconfig: { fragments: [${base}] }\n`);
    const r = await cli(['repro', '--kernel', def, '--case', 'rp-filter-mesos', '--json', '--no-install']);
    if (r.exitCode !== 0) console.error(r.stderr.slice(-3000));
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout) as Summary).runs[0]!.verdict).toBe('not-reproduced');
    expect(git('status', '--porcelain')).toBe('');

    // the harness's worktree (~1.5 GB in the cache) is removed by `cache gc` once its repository is
    // gone, at once, although it was just used; nothing else that was just used goes with it
    const ls = async (): Promise<CacheLs> => JSON.parse((await cli(['cache', 'ls', '--json'])).stdout) as CacheLs;
    const ours = (await ls()).units.filter((u) => u.area === 'trees' && u.id.startsWith('trees/git-') && !u.orphan);
    expect(ours.length).toBeGreaterThanOrEqual(1);
    fs.rmSync(repo, { recursive: true, force: true, maxRetries: 5 });
    const orphans = (await ls()).units.filter((u) => u.orphan).map((u) => u.id);
    expect(orphans).toEqual(expect.arrayContaining(ours.map((u) => u.id)));
    const g = await cli(['cache', 'gc', '--older-than', '36500d', '--json']);
    expect(g.exitCode).toBe(0);
    const removed = (JSON.parse(g.stdout) as { removed: Array<{ id: string }> }).removed.map((u) => u.id);
    expect(removed.sort()).toEqual(orphans.sort());
    const left = (await ls()).units.map((u) => u.id);
    for (const id of orphans) expect(left).not.toContain(id);
    expect(left.some((id) => id.startsWith('trees/debian-linux-source-6.1-'))).toBe(true);
  });
});
