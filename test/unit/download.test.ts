import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { downloadVerified, type DownloadOptions } from '../../harness/kernels/download.ts';
import { extractTarballSafe } from '../../harness/util/extract.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import type { Logger } from '../../harness/util/log.ts';

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

// ---- a local HTTP server (127.0.0.1, random port) -------------------------------------------

interface Hit {
  url: string;
  range: string | undefined;
}
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

let server: http.Server;
let base = '';
let hits: Hit[] = [];
let handler: Handler = (_req, res) => {
  res.writeHead(500);
  res.end();
};

/** Serve `body`, honouring `Range: bytes=N-` (206 / 416). */
function serve(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d+)-$/.exec(range);
    const start = Number(m?.[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` });
      res.end();
      return;
    }
    res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    res.end(body.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': body.length });
  res.end(body);
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits.push({ url: req.url ?? '', range: req.headers.range });
    handler(req, res, hits.length);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

// ---- fixtures -------------------------------------------------------------------------------

let tmp: string;
let tarball: Buffer; // linux-9.9.tar.gz
let sha: string;

beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'download-test-'));
  hits = [];
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'linux-9.9', 'net'), { recursive: true });
  fs.mkdirSync(path.join(src, 'linux-9.9', 'include'), { recursive: true });
  fs.writeFileSync(path.join(src, 'linux-9.9', 'Makefile'), 'VERSION = 9\nPATCHLEVEL = 9\n');
  // pseudo-random text so the gzip stays a few KB
  fs.writeFileSync(path.join(src, 'linux-9.9', 'net', 'x.c'), crypto.randomBytes(2500).toString('hex'));
  fs.symlinkSync('../Makefile', path.join(src, 'linux-9.9', 'include', 'mk'));
  const file = path.join(tmp, 'linux-9.9.tar.gz');
  await tar.c({ gzip: true, cwd: src, file, portable: true }, ['linux-9.9']);
  tarball = fs.readFileSync(file);
  sha = sha256(tarball);
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Captured extends Logger {
  lines: { kind: 'info' | 'warn' | 'progress'; msg: string }[];
}
function captureLog(): Captured {
  const lines: Captured['lines'] = [];
  return {
    lines,
    info: (msg) => lines.push({ kind: 'info', msg }),
    warn: (msg) => lines.push({ kind: 'warn', msg }),
    progress: (msg) => lines.push({ kind: 'progress', msg }),
  };
}

function opts(over: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    url: `${base}/pub/linux-9.9.tar.gz`,
    sha256: sha,
    cacheDir: path.join(tmp, 'cache'),
    log: captureLog(),
    backoffMs: 10,
    file: 'kernels/net-next.yaml',
    field: 'source.url',
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<HarnessError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(HarnessError);
    return err as HarnessError;
  }
  throw new Error('expected a rejection');
}

const partFile = (o: DownloadOptions): string => path.join(o.cacheDir, 'partial', `${o.sha256}.part`);
const partsLeft = (o: DownloadOptions): string[] =>
  fs.existsSync(path.join(o.cacheDir, 'partial')) ? fs.readdirSync(path.join(o.cacheDir, 'partial')).filter((f) => f.endsWith('.part')) : [];

// ---- download -------------------------------------------------------------------------------

describe('downloadVerified', () => {
  it('downloads, verifies and caches; a second call makes no request', async () => {
    handler = (req, res) => serve(req, res, tarball);
    const o = opts();
    const got = await downloadVerified(o);
    expect(got).toBe(path.join(o.cacheDir, sha, 'linux-9.9.tar.gz'));
    expect(sha256(fs.readFileSync(got))).toBe(sha);
    expect(hits).toEqual([{ url: '/pub/linux-9.9.tar.gz', range: undefined }]);
    expect(partsLeft(o)).toEqual([]);

    const again = await downloadVerified(opts());
    expect(again).toBe(got);
    expect(hits.length).toBe(1);
  });

  it('accepts an upper-case sha256 and caches under the lower-case one', async () => {
    handler = (req, res) => serve(req, res, tarball);
    const o = opts({ sha256: sha.toUpperCase() });
    expect(await downloadVerified(o)).toBe(path.join(o.cacheDir, sha, 'linux-9.9.tar.gz'));
  });

  it('resumes an interrupted transfer with a Range request', async () => {
    const half = Math.floor(tarball.length / 2);
    handler = (req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-length': tarball.length });
        res.write(tarball.subarray(0, half), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      serve(req, res, tarball);
    };
    const o = opts();
    const got = await downloadVerified(o);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.map((h) => h.range)).toEqual([undefined, `bytes=${half}-`]);
    const log = o.log as Captured;
    expect(log.lines.filter((l) => l.kind === 'warn').length).toBe(1);
    expect(log.lines.some((l) => l.msg === `resuming linux-9.9.tar.gz at ${(half / 1e6).toFixed(1)} MB`)).toBe(true);
  });

  it('retries a stalled transfer after the inactivity timeout and resumes', async () => {
    const half = Math.floor(tarball.length / 2);
    handler = (req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-length': tarball.length });
        res.write(tarball.subarray(0, half)); // ...and never more
        return;
      }
      serve(req, res, tarball);
    };
    const o = opts({ timeoutMs: 300 });
    const got = await downloadVerified(o);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.map((h) => h.range)).toEqual([undefined, `bytes=${half}-`]);
  });

  it('rejects corrupted content: sha256 error, nothing cached, no .part left', async () => {
    const bad = Buffer.from(tarball);
    bad[100] = (bad[100] ?? 0) ^ 0xff;
    handler = (req, res) => serve(req, res, bad);
    const o = opts();
    const err = await rejection(downloadVerified(o));
    expect(err.kind).toBe('bad-input');
    expect(err.message).toBe(`sha256 mismatch for ${o.url}: expected ${sha}, got ${sha256(bad)}`);
    expect(err.file).toBe('kernels/net-next.yaml');
    expect(err.field).toBe('source.url');
    expect(fs.existsSync(path.join(o.cacheDir, sha, 'linux-9.9.tar.gz'))).toBe(false);
    expect(fs.existsSync(path.join(o.cacheDir, sha))).toBe(false);
    expect(partsLeft(o)).toEqual([]);
    expect(hits.length).toBe(1);
  });

  it('a bad leftover .part is discarded and the file fetched again from the start', async () => {
    const half = Math.floor(tarball.length / 2);
    const o = opts();
    fs.mkdirSync(path.dirname(partFile(o)), { recursive: true });
    fs.writeFileSync(partFile(o), Buffer.alloc(half, 0x55));
    handler = (req, res) => serve(req, res, tarball);
    const got = await downloadVerified(o);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.map((h) => h.range)).toEqual([`bytes=${half}-`, undefined]);
  });

  it('416 on a complete .part: verified without fetching again', async () => {
    const o = opts();
    fs.mkdirSync(path.dirname(partFile(o)), { recursive: true });
    fs.writeFileSync(partFile(o), tarball);
    handler = (req, res) => serve(req, res, tarball);
    const got = await downloadVerified(o);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.map((h) => h.range)).toEqual([`bytes=${tarball.length}-`]);
  });

  it('a server ignoring Range (200) restarts the file instead of appending', async () => {
    const half = Math.floor(tarball.length / 2);
    const o = opts();
    fs.mkdirSync(path.dirname(partFile(o)), { recursive: true });
    fs.writeFileSync(partFile(o), tarball.subarray(0, half));
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': tarball.length });
      res.end(tarball);
    };
    const got = await downloadVerified(o);
    expect(fs.statSync(got).size).toBe(tarball.length);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.map((h) => h.range)).toEqual([`bytes=${half}-`]);
  });

  it('404 is bad-input naming the URL and field, without retries', async () => {
    handler = (_req, res) => {
      res.writeHead(404);
      res.end('not found');
    };
    const o = opts();
    const err = await rejection(downloadVerified(o));
    expect(err.kind).toBe('bad-input');
    expect(err.message).toBe(`cannot download ${o.url}: HTTP 404`);
    expect(err.field).toBe('source.url');
    expect(err.file).toBe('kernels/net-next.yaml');
    expect(hits.length).toBe(1);
    expect(partsLeft(o)).toEqual([]);
  });

  it('a file larger than the free space is refused before a byte is written: no-space, no retry, nothing cached', async () => {
    handler = (_req, res) => {
      // announces 1 PB; the client must stop at the header
      res.writeHead(200, { 'content-length': String(1024 ** 5) });
      res.write(Buffer.alloc(1024));
    };
    const o = opts();
    const err = await rejection(downloadVerified(o));
    expect(err.kind).toBe('no-space');
    expect(err.message).toMatch(/^not enough disk space in .*partial for downloading linux-9\.9\.tar\.gz: it needs about \d+.*GB, .* free$/);
    expect(err.exitCode).toBe(5);
    expect(hits.length).toBe(1);
    expect(fs.existsSync(path.join(o.cacheDir, sha))).toBe(false);
  });

  it('403 is bad-input without retries', async () => {
    handler = (_req, res) => {
      res.writeHead(403);
      res.end();
    };
    const err = await rejection(downloadVerified(opts()));
    expect(err.kind).toBe('bad-input');
    expect(err.message).toMatch(/HTTP 403$/);
    expect(hits.length).toBe(1);
  });

  it('500 twice then OK: succeeds after two retries', async () => {
    handler = (req, res, n) => {
      if (n <= 2) {
        res.writeHead(500);
        res.end('oops');
        return;
      }
      serve(req, res, tarball);
    };
    const o = opts();
    const got = await downloadVerified(o);
    expect(fs.readFileSync(got).equals(tarball)).toBe(true);
    expect(hits.length).toBe(3);
    const warns = (o.log as Captured).lines.filter((l) => l.kind === 'warn').map((l) => l.msg);
    expect(warns).toEqual([
      `download of linux-9.9.tar.gz failed: HTTP 500 for ${o.url}; retry 1/4 in 0.0 s`,
      `download of linux-9.9.tar.gz failed: HTTP 500 for ${o.url}; retry 2/4 in 0.0 s`,
    ]);
  });

  it('gives up after `retries` retries', async () => {
    handler = (_req, res) => {
      res.writeHead(503);
      res.end();
    };
    const o = opts({ retries: 2 });
    const err = await rejection(downloadVerified(o));
    expect(err.kind).toBe('missing-prereq');
    expect(err.message).toBe(`cannot download ${o.url}: HTTP 503 for ${o.url} (gave up after 3 attempts)`);
    expect(hits.length).toBe(3);
  });

  it('reports progress at most every 2 s', async () => {
    const chunks = 26;
    const size = Math.ceil(tarball.length / chunks);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': tarball.length });
      let i = 0;
      const timer = setInterval(() => {
        res.write(tarball.subarray(i * size, (i + 1) * size));
        if (++i === chunks) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
    };
    const o = opts();
    await downloadVerified(o);
    const progress = (o.log as Captured).lines.filter((l) => l.kind === 'progress').map((l) => l.msg);
    expect(progress.length).toBe(1);
    expect(progress[0]).toMatch(/^linux-9\.9\.tar\.gz: \d+\.\d MB of \d+\.\d MB \((7\d|8\d)%\), \d+\.\d MB\/s$/);
  }, 10_000);

  it('rejects a malformed sha256, naming the sha256 field', async () => {
    const e1 = await rejection(downloadVerified(opts({ sha256: 'abc123' })));
    expect(e1.kind).toBe('bad-input');
    expect(e1.field).toBe('source.sha256');
    expect(e1.message).toBe('sha256 must be 64 hexadecimal digits, got "abc123"');
    const { field: _f, ...noField } = opts({ sha256: 'z'.repeat(64) });
    const e2 = await rejection(downloadVerified(noField));
    expect(e2.field).toBe('sha256');
    expect(hits.length).toBe(0);
  });

  it('rejects URLs that are not http: or https:', async () => {
    const e1 = await rejection(downloadVerified(opts({ url: 'ftp://127.0.0.1/pub/linux-9.9.tar.gz' })));
    expect(e1.kind).toBe('bad-input');
    expect(e1.field).toBe('source.url');
    expect(e1.message).toBe('unsupported URL scheme "ftp:" in ftp://127.0.0.1/pub/linux-9.9.tar.gz: only http: and https: are supported');
    const e2 = await rejection(downloadVerified(opts({ url: 'file:///etc/passwd' })));
    expect(e2.kind).toBe('bad-input');
    const e3 = await rejection(downloadVerified(opts({ url: 'not a url' })));
    expect(e3.kind).toBe('bad-input');
    const e4 = await rejection(downloadVerified(opts({ url: `${base}/` })));
    expect(e4.message).toBe(`URL does not end in a file name: ${base}/`);
    expect(hits.length).toBe(0);
  });
});

// ---- extraction -----------------------------------------------------------------------------

interface RawEntry {
  path: string;
  type: 'File' | 'Directory' | 'SymbolicLink' | 'Link';
  linkpath?: string;
  data?: string;
}

/** A tar archive written header by header, so hostile entries are kept verbatim. */
function rawTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = new tar.Header({
      path: e.path,
      type: e.type,
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
      size: data.length,
      mode: e.type === 'Directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (data.length > 0) blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const okEntries: RawEntry[] = [
  { path: 'linux-9.9/', type: 'Directory' },
  { path: 'linux-9.9/Makefile', type: 'File', data: 'VERSION = 9\n' },
];

describe('extractTarballSafe', () => {
  const outDir = (): string => path.join(tmp, 'out');
  const dest = (): string => path.join(outDir(), 'linux-9.9');

  async function expectRejected(entries: RawEntry[], naming: string): Promise<HarnessError> {
    const file = path.join(tmp, 'hostile.tar');
    fs.writeFileSync(file, rawTar(entries));
    fs.mkdirSync(outDir(), { recursive: true });
    const err = await rejection(extractTarballSafe(file, dest()));
    expect(err.kind).toBe('bad-input');
    expect(err.message).toContain(naming);
    expect(fs.existsSync(dest())).toBe(false);
    expect(fs.readdirSync(outDir())).toEqual([]); // no staging left either
    expect(fs.existsSync(path.join(tmp, 'evil'))).toBe(false);
    return err;
  }

  it('extracts with the top directory stripped, symlinks inside the tree kept', async () => {
    const file = path.join(tmp, 'linux-9.9.tar.gz');
    await extractTarballSafe(file, dest());
    expect(fs.readFileSync(path.join(dest(), 'Makefile'), 'utf8')).toBe('VERSION = 9\nPATCHLEVEL = 9\n');
    expect(fs.readFileSync(path.join(dest(), 'net', 'x.c'), 'utf8')).toBe(
      fs.readFileSync(path.join(tmp, 'src', 'linux-9.9', 'net', 'x.c'), 'utf8'),
    );
    expect(fs.readlinkSync(path.join(dest(), 'include', 'mk'))).toBe('../Makefile');
    expect(fs.readdirSync(dest()).sort()).toEqual(['Makefile', 'include', 'net']);
    expect(fs.readdirSync(outDir())).toEqual(['linux-9.9']);
  });

  it('replaces an existing tree', async () => {
    fs.mkdirSync(dest(), { recursive: true });
    fs.writeFileSync(path.join(dest(), 'stale'), 'x');
    await extractTarballSafe(path.join(tmp, 'linux-9.9.tar.gz'), dest());
    expect(fs.existsSync(path.join(dest(), 'stale'))).toBe(false);
    expect(fs.existsSync(path.join(dest(), 'Makefile'))).toBe(true);
    expect(fs.readdirSync(outDir())).toEqual(['linux-9.9']);
  });

  it('extracts an xz tarball through the host xz', async () => {
    const plain = path.join(tmp, 'linux-9.9.tar');
    fs.writeFileSync(plain, rawTar(okEntries));
    const r = spawnSync('xz', ['-z', plain]);
    if (r.error) return; // no xz on this host: nothing to test
    expect(r.status).toBe(0);
    await extractTarballSafe(`${plain}.xz`, dest());
    expect(fs.readFileSync(path.join(dest(), 'Makefile'), 'utf8')).toBe('VERSION = 9\n');
  });

  it('rejects an entry climbing out with ..', async () => {
    await expectRejected([...okEntries, { path: '../evil', type: 'File', data: 'pwned' }], '../evil');
  });

  it('rejects a deeper .. entry', async () => {
    await expectRejected([...okEntries, { path: 'linux-9.9/../../evil', type: 'File', data: 'pwned' }], 'linux-9.9/../../evil');
  });

  it('rejects an absolute entry', async () => {
    await expectRejected([...okEntries, { path: '/tmp/evil', type: 'File', data: 'pwned' }], '/tmp/evil');
  });

  it('rejects a symlink to /etc/passwd', async () => {
    const err = await expectRejected(
      [...okEntries, { path: 'linux-9.9/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
      'linux-9.9/passwd',
    );
    expect(err.message).toContain('/etc/passwd');
  });

  it('rejects a relative symlink leaving the tree', async () => {
    await expectRejected(
      [...okEntries, { path: 'linux-9.9/net/up', type: 'SymbolicLink', linkpath: '../../x' }],
      'linux-9.9/net/up',
    );
  });

  it('rejects a chain of symlinks that leaves the tree', async () => {
    // d/l -> ..  (the tree root), d/l2 -> l/..  (lexically "d", really the root's parent)
    await expectRejected(
      [
        ...okEntries,
        { path: 'linux-9.9/d/', type: 'Directory' },
        { path: 'linux-9.9/d/l', type: 'SymbolicLink', linkpath: '..' },
        { path: 'linux-9.9/d/l2', type: 'SymbolicLink', linkpath: 'l/..' },
      ],
      'd/l2',
    );
  });

  it('rejects a hardlink to an absolute path', async () => {
    await expectRejected([...okEntries, { path: 'linux-9.9/h', type: 'Link', linkpath: '/etc/passwd' }], 'linux-9.9/h');
  });

  it('rejects a file that is not a tarball', async () => {
    const file = path.join(tmp, 'junk.tar.gz');
    fs.writeFileSync(file, crypto.randomBytes(4096));
    fs.mkdirSync(outDir(), { recursive: true });
    const err = await rejection(extractTarballSafe(file, dest()));
    expect(err.kind).toBe('bad-input');
    expect(err.message).toMatch(/^cannot extract /);
    expect(fs.readdirSync(outDir())).toEqual([]);
  });
});
