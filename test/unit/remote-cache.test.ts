// The remote cache: configuration, the checks on a downloaded entry, EntryStore's use of it (with a
// fake RemoteStore), and the HTTP transport against an in-process WebDAV-like server (node:http).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { EntryStore, sha256 } from '../../harness/util/cache.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import type { Logger } from '../../harness/util/log.ts';
import {
  entryDirProblem,
  HttpRemoteStore,
  indexText,
  memberProblem,
  parentCollections,
  parseIndexText,
  parseRemoteConfig,
  RemoteCache,
  RemoteUnavailable,
  type RemoteConfig,
  type RemoteStore,
} from '../../harness/util/remote.ts';
import { freePort } from '../../harness/cache/davserver.ts';
import { testTempDir } from '../tmp.ts';

const KEY_A = 'a'.repeat(64);
const KEY_B = 'b'.repeat(64);

function captureLog(): Logger & { lines: string[]; warnings: () => string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => void lines.push(m),
    progress: (m) => void lines.push(m),
    warn: (m) => void lines.push(`warning: ${m}`),
    warnings: () => lines.filter((l) => l.startsWith('warning: ')),
  };
}

function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}

/** A remote in memory: entries as directories under a temp dir; `tamper` changes what is served. */
class FakeRemote implements RemoteStore {
  readonly where = 'fake://remote';
  readonly entries = new Map<string, string>();
  readonly index = new Map<string, string>();
  down: string | null = null;
  gets = 0;
  puts = 0;
  tamper?: (dir: string) => void;
  constructor(private readonly root: string) {}
  private check(): void {
    if (this.down) throw new RemoteUnavailable(this.down);
  }
  async has(kind: string, key: string): Promise<boolean> {
    this.check();
    return this.entries.has(`${kind}/${key}`);
  }
  async get(kind: string, key: string, staging: string): Promise<{ bytes: number } | null> {
    this.check();
    this.gets++;
    const src = this.entries.get(`${kind}/${key}`);
    if (!src) return null;
    copyDir(src, staging);
    this.tamper?.(staging);
    return { bytes: 1234 };
  }
  async put(kind: string, key: string, entryDir: string): Promise<{ bytes: number }> {
    this.check();
    this.puts++;
    const dest = path.join(this.root, kind, key);
    fs.rmSync(dest, { recursive: true, force: true });
    copyDir(entryDir, dest);
    this.entries.set(`${kind}/${key}`, dest);
    return { bytes: 1234 };
  }
  async getIndex(kind: string, name: string): Promise<string | null> {
    this.check();
    return this.index.get(`${kind}/${name}`) ?? null;
  }
  async hasIndex(kind: string, name: string): Promise<boolean> {
    this.check();
    return this.index.has(`${kind}/${name}`);
  }
  async putIndex(kind: string, name: string, text: string): Promise<void> {
    this.check();
    this.index.set(`${kind}/${name}`, text);
  }
}

interface Meta {
  n: number;
}

/** An entry published by "another machine" and put on the remote. */
async function seed(remote: FakeRemote, dir: string, key: string, content = 'kernel bytes'): Promise<void> {
  const other = new EntryStore<Meta>(path.join(dir, 'other', 'kernels'), { remote: null });
  const staging = other.staging(key);
  fs.writeFileSync(path.join(staging, 'vmlinux'), content);
  fs.mkdirSync(path.join(staging, 'sub'));
  fs.writeFileSync(path.join(staging, 'sub', 'config'), 'CONFIG_X=y\n');
  other.publish(key, staging, { n: 1 });
  await remote.put('kernels', key, other.entryDir(key));
  remote.puts = 0;
}

const filler = (calls: { n: number }) => async (staging: string): Promise<Meta> => {
  calls.n++;
  fs.writeFileSync(path.join(staging, 'vmlinux'), 'built here');
  return { n: 2 };
};

describe('remote cache configuration', () => {
  it('reads the URL, push, header and sign command, and names the variable at fault', () => {
    expect(parseRemoteConfig({})).toBeNull();
    expect(parseRemoteConfig({ KERNEL_REPRO_REMOTE_CACHE: 'http://127.0.0.1:8080/kr/' })).toEqual({ base: 'http://127.0.0.1:8080/kr', push: false });
    const full = parseRemoteConfig({
      KERNEL_REPRO_REMOTE_CACHE: 'https://cache.example',
      KERNEL_REPRO_REMOTE_CACHE_PUSH: '1',
      KERNEL_REPRO_REMOTE_CACHE_HEADER: 'Authorization: Bearer abc def',
      KERNEL_REPRO_REMOTE_CACHE_SIGN: './sign.sh',
    });
    expect(full).toEqual({ base: 'https://cache.example', push: true, header: { name: 'Authorization', value: 'Bearer abc def' }, sign: './sign.sh' });
    const fails = (env: NodeJS.ProcessEnv): HarnessError => {
      try {
        parseRemoteConfig(env);
      } catch (e) {
        return e as HarnessError;
      }
      throw new Error('no error');
    };
    const e1 = fails({ KERNEL_REPRO_REMOTE_CACHE: 'ftp://x/y' });
    expect(e1).toBeInstanceOf(HarnessError);
    expect(e1.kind).toBe('bad-input');
    expect(e1.field).toBe('KERNEL_REPRO_REMOTE_CACHE');
    expect(e1.message).toContain('not an http:// or https:// URL');
    expect(fails({ KERNEL_REPRO_REMOTE_CACHE: 'not a url' }).message).toContain('is not a URL');
    expect(fails({ KERNEL_REPRO_REMOTE_CACHE: 'http://x', KERNEL_REPRO_REMOTE_CACHE_PUSH: 'sometimes' }).field).toBe('KERNEL_REPRO_REMOTE_CACHE_PUSH');
    const h = fails({ KERNEL_REPRO_REMOTE_CACHE: 'http://x', KERNEL_REPRO_REMOTE_CACHE_HEADER: 'Bearer secret-token' });
    expect(h.field).toBe('KERNEL_REPRO_REMOTE_CACHE_HEADER');
    expect(h.message).not.toContain('secret-token');
    expect(fails({ KERNEL_REPRO_REMOTE_CACHE_PUSH: '1' }).field).toBe('KERNEL_REPRO_REMOTE_CACHE_PUSH');
  });

  it('lays objects out by kind and key, with the collections above them and index texts', () => {
    expect(parentCollections('kernels/index/abc')).toEqual(['kernels/', 'kernels/index/']);
    expect(parseIndexText(indexText(KEY_A, { caseConfig: ['CONFIG_X'] }))).toEqual({ key: KEY_A, merged: { caseConfig: ['CONFIG_X'] } });
    expect(parseIndexText(`${KEY_B}\n`)).toEqual({ key: KEY_B, merged: {} });
    expect(parseIndexText('<html>not found</html>')).toBeNull();
    expect(memberProblem('../x', 'File')).toMatch(/climbs out/);
    expect(memberProblem('/etc/passwd', 'File')).toMatch(/absolute/);
    expect(memberProblem('dev', 'CharacterDevice')).toMatch(/not a plain file/);
    expect(memberProblem('link', 'SymbolicLink')).toMatch(/not a plain file/);
    expect(memberProblem('sub/vmlinux', 'File')).toBeNull();
  });
});

describe('EntryStore with a remote cache (fake transport)', () => {
  it('downloads a hit instead of filling, checked and published whole', async () => {
    const dir = testTempDir('kr-remote-');
    const fake = new FakeRemote(path.join(dir, 'remote'));
    await seed(fake, dir, KEY_A);
    const store = new EntryStore<Meta>(path.join(dir, 'here', 'kernels'), { remote: new RemoteCache(fake, false) });
    const log = captureLog();
    const calls = { n: 0 };
    const r = await store.getOrFill(KEY_A, filler(calls), { label: 'kernel 6.1-test', log });
    expect(calls.n).toBe(0);
    expect(r.downloaded).toBe(true);
    expect(r.manifest.meta).toEqual({ n: 1 });
    expect(fs.readFileSync(path.join(store.entryDir(KEY_A), 'vmlinux'), 'utf8')).toBe('kernel bytes');
    expect(log.lines.some((l) => /^downloaded kernel 6\.1-test from the remote cache \(0\.0 MB, \d+\.\d s\)$/.test(l))).toBe(true);
    expect(fs.readdirSync(store.dir).filter((f) => f.startsWith('.staging'))).toEqual([]);
    // a second look is local
    await store.getOrFill(KEY_A, filler(calls), { log });
    expect(fake.gets).toBe(1);
  });

  it('fills a miss locally; with push on, uploads what it made; read-only uploads nothing', async () => {
    const dir = testTempDir('kr-remote-');
    const fake = new FakeRemote(path.join(dir, 'remote'));
    const calls = { n: 0 };
    const ro = new EntryStore<Meta>(path.join(dir, 'ro', 'kernels'), { remote: new RemoteCache(fake, false) });
    await ro.getOrFill(KEY_A, filler(calls), { log: captureLog() });
    expect(calls.n).toBe(1);
    expect(fake.puts).toBe(0);
    const rw = new EntryStore<Meta>(path.join(dir, 'rw', 'kernels'), { remote: new RemoteCache(fake, true) });
    const log = captureLog();
    await rw.getOrFill(KEY_B, filler(calls), { log, label: 'kernel x' });
    expect(calls.n).toBe(2);
    expect(fake.puts).toBe(1);
    expect(fake.entries.has(`kernels/${KEY_B}`)).toBe(true);
    expect(log.lines.some((l) => l.startsWith('uploaded kernel x to the remote cache'))).toBe(true);
    expect(entryDirProblem(fake.entries.get(`kernels/${KEY_B}`)!, KEY_B)).toBeNull();
  });

  const corruptions: Array<[string, (d: string) => void, RegExp]> = [
    ['a file that does not match its sha256', (d) => fs.writeFileSync(path.join(d, 'vmlinux'), 'evil'), /file vmlinux does not match its manifest/],
    ['a manifest of another key', (d) => {
      const mf = path.join(d, 'manifest.json');
      fs.writeFileSync(mf, JSON.stringify({ ...JSON.parse(fs.readFileSync(mf, 'utf8')), key: KEY_B }));
    }, /its manifest is for the key bbbbbbbbbbbb, not aaaaaaaaaaaa/],
    ['a file not in the manifest', (d) => fs.writeFileSync(path.join(d, 'extra'), 'x'), /file extra is not in its manifest/],
    ['a manifest naming a path outside the entry', (d) => {
      const mf = path.join(d, 'manifest.json');
      const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
      m.files['../../outside'] = sha256('x');
      fs.writeFileSync(mf, JSON.stringify(m));
    }, /its manifest names path \.\.\/\.\.\/outside climbs out with '\.\.'/],
    ['no manifest', (d) => fs.rmSync(path.join(d, 'manifest.json')), /it has no manifest\.json/],
  ];
  for (const [what, tamper, why] of corruptions)
    it(`rejects an entry with ${what}, says why, fills locally and (push on) uploads a good one`, async () => {
      const dir = testTempDir('kr-remote-');
      const fake = new FakeRemote(path.join(dir, 'remote'));
      await seed(fake, dir, KEY_A);
      fake.tamper = tamper;
      const store = new EntryStore<Meta>(path.join(dir, 'here', 'kernels'), { remote: new RemoteCache(fake, true) });
      const log = captureLog();
      const calls = { n: 0 };
      const r = await store.getOrFill(KEY_A, filler(calls), { label: 'kernel k', log });
      expect(calls.n).toBe(1);
      expect(r.manifest.meta).toEqual({ n: 2 });
      expect(fs.readFileSync(path.join(store.entryDir(KEY_A), 'vmlinux'), 'utf8')).toBe('built here');
      const w = log.warnings();
      expect(w).toHaveLength(1);
      expect(w[0]).toMatch(new RegExp(`^warning: remote cache: entry kernels/aaaaaaaaaaaa \\(kernel k\\) rejected: ${why.source}; building locally$`));
      expect(fake.puts).toBe(1); // the good one replaces it
      fake.tamper = undefined;
      expect(entryDirProblem(fake.entries.get(`kernels/${KEY_A}`)!, KEY_A)).toBeNull();
      // no staging, download or lock left behind (.checked: the stamps of checked entries)
      expect(fs.readdirSync(store.dir).filter((f) => f.startsWith('.') && f !== '.checked')).toEqual([]);
    });

  it('an unreachable remote is one warning per process, then local work without asking it again', async () => {
    const dir = testTempDir('kr-remote-');
    const fake = new FakeRemote(path.join(dir, 'remote'));
    fake.down = 'connect ECONNREFUSED 127.0.0.1:9';
    const remote = new RemoteCache(fake, true);
    const log = captureLog();
    const calls = { n: 0 };
    const kernels = new EntryStore<Meta>(path.join(dir, 'here', 'kernels'), { remote });
    const images = new EntryStore<Meta>(path.join(dir, 'here', 'images'), { remote });
    await kernels.getOrFill(KEY_A, filler(calls), { log });
    await images.getOrFill(KEY_B, filler(calls), { log });
    expect(calls.n).toBe(2);
    expect(log.warnings()).toEqual(['warning: remote cache unreachable (connect ECONNREFUSED 127.0.0.1:9): building locally']);
    expect(remote.available).toBe(false);
    fake.down = null; // it comes back: this process has given up on it
    expect(await kernels.fetch(KEY_B, { log })).toBeNull();
    expect(fake.gets).toBe(0);
    expect(fake.puts).toBe(0);
  });

  it('sweep() removes the downloads and uploads of dead processes, not those of live ones', () => {
    const dir = testTempDir('kr-remote-');
    const store = new EntryStore<Meta>(path.join(dir, 'kernels'), { remote: null });
    const dead = 2 ** 22 + 12345; // above pid_max's default: no such process
    const names = [`.staging-aaaa-${dead}-deadbeef.download`, `.upload-aaaa-${dead}-deadbeef.tar`, `.staging-bbbb-${process.pid}-deadbeef.download`, `.upload-bbbb-${process.pid}-deadbeef.tar`];
    for (const n of names) fs.writeFileSync(path.join(store.dir, n), 'partial');
    store.sweep();
    expect(fs.readdirSync(store.dir).sort()).toEqual(names.slice(2).sort());
  });

  it('fetch() for callers that publish by hand: the local entry, else the remote one, else null', async () => {
    const dir = testTempDir('kr-remote-');
    const fake = new FakeRemote(path.join(dir, 'remote'));
    await seed(fake, dir, KEY_A);
    const store = new EntryStore<Meta>(path.join(dir, 'here', 'images'), { remote: new RemoteCache(fake, false), kind: 'kernels' });
    expect(await store.fetch(KEY_B, { log: captureLog() })).toBeNull();
    const m = await store.fetch(KEY_A, { log: captureLog() });
    expect(m?.key).toBe(KEY_A);
    expect(store.get(KEY_A)).not.toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP: an in-process server with WebDAV's rules (PUT into a missing collection is 409; MKCOL)

interface Served {
  url: string;
  root: string;
  requests: string[];
  fail5xx: boolean;
  needAuth?: string;
  needSig?: boolean;
  close: () => Promise<void>;
}

async function serve(root: string): Promise<Served> {
  const port = await freePort();
  const s: Served = { url: `http://127.0.0.1:${port}/base`, root, requests: [], fail5xx: false, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    s.requests.push(`${req.method} ${u.pathname}${u.search}`);
    if (s.fail5xx) return void res.writeHead(503).end();
    if (s.needAuth && req.headers.authorization !== s.needAuth) return void res.writeHead(401).end();
    if (s.needSig && u.searchParams.get('sig') !== `${req.method}:${u.pathname.replace(/^\/base\//, '')}`) return void res.writeHead(403).end();
    const file = path.join(root, decodeURIComponent(u.pathname));
    if (!file.startsWith(root + '/')) return void res.writeHead(400).end();
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': fs.statSync(file).size });
      if (req.method === 'HEAD') return void res.end();
      return void fs.createReadStream(file).pipe(res);
    }
    if (req.method === 'MKCOL') {
      if (fs.existsSync(file)) return void res.writeHead(405).end();
      if (!fs.existsSync(path.dirname(file))) return void res.writeHead(409).end();
      fs.mkdirSync(file);
      return void res.writeHead(201).end();
    }
    if (req.method === 'PUT') {
      if (!fs.existsSync(path.dirname(file))) {
        req.resume();
        return void res.writeHead(409).end();
      }
      const out = fs.createWriteStream(file);
      req.pipe(out);
      out.on('finish', () => res.writeHead(201).end());
      return;
    }
    res.writeHead(405).end();
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  fs.mkdirSync(path.join(root, 'base'), { recursive: true });
  s.close = () => new Promise((r) => server.close(() => r()));
  return s;
}

describe('HttpRemoteStore against a WebDAV-like server', () => {
  let srv: Served;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync('/tmp/kr-remote-http-');
    srv = await serve(path.join(dir, 'www'));
  });
  afterAll(async () => {
    await srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const cfg = (extra: Partial<RemoteConfig> = {}): RemoteConfig => ({ base: srv.url, push: true, ...extra });

  it('uploads (MKCOL on 409), downloads and checks an entry and an index, round trip through EntryStore', async () => {
    srv.requests.length = 0;
    const t = testTempDir('kr-remote-');
    const remote = new RemoteCache(new HttpRemoteStore({ config: cfg() }), true);
    const a = new EntryStore<Meta>(path.join(t, 'a', 'kernels'), { remote });
    const calls = { n: 0 };
    await a.getOrFill(KEY_A, filler(calls), { log: captureLog() });
    expect(srv.requests).toEqual([`GET /base/kernels/${KEY_A}.tar`, `PUT /base/kernels/${KEY_A}.tar`, 'MKCOL /base/kernels/', `PUT /base/kernels/${KEY_A}.tar`]);
    // gzip -1 tar
    expect(fs.readFileSync(path.join(srv.root, 'base/kernels', `${KEY_A}.tar`)).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    await remote.putIndex('kernels', KEY_B, indexText(KEY_A, {}));
    expect(srv.requests.slice(-4)).toEqual([`PUT /base/kernels/index/${KEY_B}`, 'MKCOL /base/kernels/', 'MKCOL /base/kernels/index/', `PUT /base/kernels/index/${KEY_B}`]);
    expect(parseIndexText((await remote.getIndex('kernels', KEY_B))!)?.key).toBe(KEY_A);

    const b = new EntryStore<Meta>(path.join(t, 'b', 'kernels'), { remote });
    const log = captureLog();
    const r = await b.getOrFill(KEY_A, filler(calls), { log, label: 'kernel http' });
    expect(calls.n).toBe(1);
    expect(r.downloaded).toBe(true);
    expect(fs.readFileSync(path.join(b.entryDir(KEY_A), 'vmlinux'), 'utf8')).toBe('built here');
    expect(log.lines.some((l) => l.startsWith('downloaded kernel http from the remote cache'))).toBe(true);
    expect(await remote.has('kernels', KEY_A)).toBe(true);
    expect(await remote.has('kernels', KEY_B)).toBe(false);
  });

  it('rejects archives with paths outside the entry, links and devices', async () => {
    const t = testTempDir('kr-remote-');
    const remote = new RemoteCache(new HttpRemoteStore({ config: cfg({ push: false }) }), false);
    const kernels = path.join(srv.root, 'base', 'kernels');
    fs.mkdirSync(kernels, { recursive: true });
    const src = path.join(t, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f'), 'x');
    fs.symlinkSync('/etc/passwd', path.join(src, 'link'));
    const cases: Array<[string, string[], RegExp]> = [
      ['1', ['-cPf', '-', '--transform=s,^f,../escape,', 'f'], /path \.\.\/escape climbs out/],
      ['2', ['-cPf', '-', path.join(src, 'f')], /absolute path \/.*\/f/],
      ['3', ['-cf', '-', 'link'], /link is a SymbolicLink, not a plain file/],
      ['4', ['-cf', '-', '/dev/null'], /is a CharacterDevice, not a plain file/],
    ];
    for (const [c, args, why] of cases) {
      const key = c.repeat(64);
      fs.writeFileSync(path.join(kernels, `${key}.tar`), execFileSync('tar', args, { cwd: src, stdio: ['ignore', 'pipe', 'ignore'] }));
      const store = new EntryStore<Meta>(path.join(t, `s${c}`, 'kernels'), { remote });
      const log = captureLog();
      const calls = { n: 0 };
      await store.getOrFill(key, filler(calls), { log });
      expect(calls.n).toBe(1);
      expect(log.warnings()[0]).toMatch(why);
      expect(fs.existsSync(path.join(t, 'escape'))).toBe(false);
      expect(fs.existsSync(path.join(t, `s${c}`, 'escape'))).toBe(false);
    }
  });

  it('a server answering 5xx, and a closed port, are one warning and local work', async () => {
    const t = testTempDir('kr-remote-');
    srv.fail5xx = true;
    try {
      const remote = new RemoteCache(new HttpRemoteStore({ config: cfg() }), true);
      const log = captureLog();
      const calls = { n: 0 };
      await new EntryStore<Meta>(path.join(t, 'a', 'kernels'), { remote }).getOrFill('c'.repeat(64), filler(calls), { log });
      await new EntryStore<Meta>(path.join(t, 'a', 'images'), { remote }).getOrFill('d'.repeat(64), filler(calls), { log });
      expect(calls.n).toBe(2);
      expect(log.warnings()).toEqual([`warning: remote cache unreachable (HTTP 503 for GET kernels/${'c'.repeat(64)}.tar): building locally`]);
    } finally {
      srv.fail5xx = false;
    }
    const closed = await freePort();
    const remote = new RemoteCache(new HttpRemoteStore({ config: { base: `http://127.0.0.1:${closed}`, push: false } }), false);
    const log = captureLog();
    const calls = { n: 0 };
    await new EntryStore<Meta>(path.join(t, 'b', 'kernels'), { remote }).getOrFill('e'.repeat(64), filler(calls), { log });
    expect(calls.n).toBe(1);
    expect(log.warnings()).toEqual([expect.stringMatching(/^warning: remote cache unreachable \(.*ECONNREFUSED.*\): building locally$/)]);
  });

  it('sends the configured header, and asks the sign command for each URL', async () => {
    const t = testTempDir('kr-remote-');
    srv.needAuth = 'Bearer s3cret';
    srv.needSig = true;
    try {
      const sign = path.join(t, 'sign.sh');
      fs.writeFileSync(sign, `#!/bin/sh\necho "${srv.url}/$2?sig=$1:$2"\n`, { mode: 0o755 });
      const remote = new RemoteCache(new HttpRemoteStore({ config: cfg({ header: { name: 'Authorization', value: 'Bearer s3cret' }, sign }) }), true);
      const calls = { n: 0 };
      const log = captureLog();
      await new EntryStore<Meta>(path.join(t, 'a', 'images'), { remote }).getOrFill('f'.repeat(64), filler(calls), { log });
      expect(log.warnings()).toEqual([]);
      expect(srv.requests.at(-1)).toBe(`PUT /base/images/${'f'.repeat(64)}.tar?sig=PUT:images/${'f'.repeat(64)}.tar`);
      const r = await new EntryStore<Meta>(path.join(t, 'b', 'images'), { remote }).getOrFill('f'.repeat(64), filler(calls), { log });
      expect(r.downloaded).toBe(true);
      expect(calls.n).toBe(1);
      // without the header the server refuses: said once, local work
      const noAuth = new RemoteCache(new HttpRemoteStore({ config: cfg({ sign }) }), false);
      const log2 = captureLog();
      await new EntryStore<Meta>(path.join(t, 'c', 'images'), { remote: noAuth }).getOrFill('f'.repeat(64), filler(calls), { log: log2 });
      expect(log2.warnings()).toEqual([expect.stringContaining('remote cache unreachable (HTTP 401 for GET images/')]);
      // a sign command that fails
      const broken = new RemoteCache(new HttpRemoteStore({ config: cfg({ sign: 'false' }) }), false);
      const log3 = captureLog();
      await new EntryStore<Meta>(path.join(t, 'd', 'images'), { remote: broken }).getOrFill('f'.repeat(64), filler(calls), { log: log3 });
      expect(log3.warnings()).toEqual([expect.stringContaining('the sign command (KERNEL_REPRO_REMOTE_CACHE_SIGN) exited 1')]);
    } finally {
      srv.needAuth = undefined;
      srv.needSig = false;
    }
  });
});
