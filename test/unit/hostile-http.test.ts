// trust/http.ts and its users (the remote cache, downloads) against a real misbehaving server on
// 127.0.0.1: an endless body stops at the cap (memory bounded), a trickle trips the total deadline,
// a wrong Content-Length is an error, redirects go to http(s) only, a signal ends a request at once;
// and the SIGINT backstop ends a process whose body does not unwind, its cleanups run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { httpRequest, HttpError, deadlineMs, type HttpLimits } from '../../harness/trust/http.ts';
import { downloadVerified } from '../../harness/kernels/download.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { HttpRemoteStore, parseRemoteConfig, RemoteCache, RemoteRejected, RemoteUnavailable, type RemoteConfig } from '../../harness/util/remote.ts';
import { onExitCleanup, runExitCleanups } from '../../harness/util/proc.ts';
import { abortRun } from '../../harness/util/cancel.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { silentLogger, type Logger } from '../../harness/util/log.ts';
import { startHostile, type Hostile } from '../hostile-server.ts';
import { fileTempDir, testTempDir } from '../tmp.ts';

const KEY = 'c'.repeat(64);
const MiB = 1024 * 1024;
const tmp = fileTempDir('kr-hostile-http-');

const limits = (o: Partial<HttpLimits> = {}): HttpLimits => ({ maxBytes: 64 * 1024, idleMs: 2_000, floorMs: 5_000, perMiBMs: 0, ceilingMs: 10_000, ...o });

/** Run `fn`, sampling this process's RSS: the largest growth over the start, in bytes. */
async function peakRssGrowth<T>(fn: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; growth: number; ms: number }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const t = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const t0 = Date.now();
  const [result] = await Promise.allSettled([fn()]);
  clearInterval(t);
  peak = Math.max(peak, process.memoryUsage.rss());
  return { result, growth: peak - before, ms: Date.now() - t0 };
}

function rejection(r: PromiseSettledResult<unknown>): unknown {
  if (r.status === 'fulfilled') throw new Error(`expected an error, got ${JSON.stringify(r.value)?.slice(0, 200)}`);
  return r.reason;
}

const warnings = (): Logger & { lines: string[] } => {
  const lines: string[] = [];
  return { lines, info() {}, progress() {}, warn: (m: string) => void lines.push(m) };
};

let h: Hostile;
beforeAll(async () => {
  h = await startHostile({ endlessCap: 200 * MiB, trickleMs: 50 });
});
afterAll(async () => {
  await h.close();
});

describe('trust/http.ts against a misbehaving server', () => {
  it('an endless body stops at the byte cap: a typed error naming the object, memory bounded', async () => {
    const object = 'kernels/index/' + KEY;
    const { result, growth, ms } = await peakRssGrowth(async () => (await httpRequest({ url: `${h.url}/endless/${object}`, object, limits: limits({ maxBytes: 1 * MiB }) })).text());
    const e = rejection(result);
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).problem).toBe('too-large');
    expect((e as HttpError).file).toBe(object);
    expect((e as HttpError).message).toMatch(/more than the limit of 1048576 bytes/);
    expect(ms).toBeLessThan(2_000);
    expect(growth).toBeLessThan(64 * MiB);
    await waitFor(() => h.records.at(-1)?.endedAt !== undefined);
    const rec = h.records.at(-1)!;
    expect(rec.clientClosed).toBe(true);
    expect(rec.sent).toBeLessThan(32 * MiB); // the cap plus what the sockets' buffers hold
  });

  it('a declared length over the cap is refused before its body is read', async () => {
    const r = await httpRequest({ url: `${h.url}/stall/x`, object: 'x', limits: limits({ maxBytes: 1000 }) });
    expect(r.declared).toBe(MiB);
    const e = await r.text().catch((x: unknown) => x);
    expect((e as HttpError).problem).toBe('too-large');
    expect((e as HttpError).message).toBe('x is 1048576 bytes, more than the limit of 1000');
  });

  it('a trickle (a byte every 50 ms) trips the total deadline, not only the idle timeout', async () => {
    const t0 = Date.now();
    const r = await httpRequest({ url: `${h.url}/trickle/obj`, object: 'obj', limits: limits({ maxBytes: 2 * MiB, floorMs: 400, idleMs: 5_000 }) });
    const e = await r.text().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).problem).toBe('deadline');
    expect((e as HttpError).message).toMatch(/^obj: no complete answer within 0\.4 s \(\d+ bytes received\)$/);
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('a trickle that declares 1 GiB gets no more time: the deadline grows with the bytes received, not the ones promised', async () => {
    const t0 = Date.now();
    const r = await httpRequest({ url: `${h.url}/trickle-big/obj`, object: 'obj', limits: limits({ maxBytes: 2 * 1024 * MiB, floorMs: 400, perMiBMs: 2_000, idleMs: 5_000 }) });
    const e = await r.text().catch((x: unknown) => x);
    expect((e as HttpError).problem).toBe('deadline');
    expect((e as HttpError).message).toMatch(/^obj: no complete answer within 0\.4 s \(\d+ bytes received\)$/);
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('the deadline grows with the size: floor plus an allowance per MiB, at most the ceiling', () => {
    const l = limits({ floorMs: 60_000, perMiBMs: 2_000, ceilingMs: 30 * 60_000 });
    expect(deadlineMs(l, 0)).toBe(60_000);
    expect(deadlineMs(l, 10 * MiB)).toBe(80_000);
    expect(deadlineMs(l, 4096 * MiB)).toBe(30 * 60_000);
  });

  it('a stalled body trips the idle timeout', async () => {
    const r = await httpRequest({ url: `${h.url}/stall/obj`, object: 'obj', limits: limits({ maxBytes: 2 * MiB, idleMs: 300 }) });
    const e = await r.text().catch((x: unknown) => x);
    expect((e as HttpError).problem).toBe('idle');
  });

  it('a short body (Content-Length 1000, 10 bytes) is an error; a long one never yields more than its length', async () => {
    const short = await httpRequest({ url: `${h.url}/short/obj`, object: 'obj', limits: limits() });
    const e = await short.text().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).problem).toBe('length');
    expect((e as HttpError).message).toMatch(/^obj: 10 bytes received, its Content-Length says 1000/);
    const long = await httpRequest({ url: `${h.url}/long/obj`, object: 'obj', limits: limits() });
    const text = await long.text().catch((x: unknown) => x);
    // HTTP/1.1 framing ends the body at its length: the rest is never the body's
    if (typeof text === 'string') expect(text).toBe('x'.repeat(10));
    else expect((text as HttpError).problem).toBe('length');
  });

  it('redirects: followed to http(s) only when allowed; file:// and other schemes are errors', async () => {
    for (const [mode, scheme] of [
      ['redirect-file', 'file'],
      ['redirect-ftp', 'ftp'],
    ] as const) {
      const e = await httpRequest({ url: `${h.url}/${mode}/obj`, object: 'obj', limits: limits(), maxRedirects: 5 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HttpError);
      expect((e as HttpError).problem).toBe('redirect');
      expect((e as HttpError).message).toBe(`obj redirects to a ${scheme}: URL; only http: and https: are followed`);
    }
    const followed = await httpRequest({ url: `${h.url}/redirect-http/obj`, object: 'obj', limits: limits(), maxRedirects: 5 });
    expect(await followed.text()).toBe('ok\n');
    const notFollowed = await httpRequest({ url: `${h.url}/redirect-file/obj`, object: 'obj', limits: limits() });
    expect(notFollowed.status).toBe(302);
    await notFollowed.discard();
  });

  it("the caller's signal ends a request mid-body at once", async () => {
    const ac = new AbortController();
    const r = await httpRequest({ url: `${h.url}/trickle/obj`, object: 'obj', limits: limits({ maxBytes: 2 * MiB }), signal: ac.signal });
    setTimeout(() => ac.abort(), 150);
    const t0 = Date.now();
    const e = await r.text().catch((x: unknown) => x);
    expect((e as HttpError).problem).toBe('interrupted');
    expect((e as HttpError).kind).toBe('interrupted');
    expect(Date.now() - t0).toBeLessThan(500);
  });
});

describe('the remote cache through trust/http.ts (defects 2 and 6)', () => {
  const cfg = (mode: string, limits: RemoteConfig['limits'] = {}): RemoteConfig => ({ base: `${h.url}/${mode}`, push: false, limits });

  it('defect 2: an endless kernels/index/<key> is rejected at 64 KiB, promptly, memory bounded (old code read it whole)', async () => {
    const store = new HttpRemoteStore({ config: cfg('endless@index') });
    const { result, growth, ms } = await peakRssGrowth(() => store.getIndex('kernels', KEY));
    const e = rejection(result);
    expect(e).toBeInstanceOf(RemoteRejected);
    expect((e as RemoteRejected).file).toBe(`kernels/index/${KEY}`);
    expect((e as RemoteRejected).why).toBe('it is more than the limit of 65536 bytes');
    expect(ms).toBeLessThan(2_000);
    expect(growth).toBeLessThan(64 * MiB);
    await waitFor(() => h.records.at(-1)?.endedAt !== undefined);
    expect(h.records.at(-1)!.sent).toBeLessThan(32 * MiB);
    // the cache: one warning, then local work (the remote stays usable for other objects)
    const remote = new RemoteCache(store, false);
    const log = warnings();
    expect(await remote.getIndex('kernels', KEY, log)).toBeNull();
    expect(log.lines).toEqual([`remote cache: index kernels/index/${KEY.slice(0, 12)} rejected: it is more than the limit of 65536 bytes; building locally`]);
    expect(remote.available).toBe(true);
  });

  it('defect 6: a trickling entry trips the size-aware total deadline; the remote is then unreachable for this process', async () => {
    const store = new HttpRemoteStore({ config: cfg('trickle', { deadlineFloorMs: 500, deadlinePerMiBMs: 100_000 }) });
    const staging = path.join(testTempDir('kr-hostile-'), 'staging');
    fs.mkdirSync(staging);
    const t0 = Date.now();
    const e = await store.get('kernels', KEY, staging).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteUnavailable);
    // 500 ms + 100 s per MiB of the bytes received (a few: the 1000 declared give no more time)
    expect((e as RemoteUnavailable).why).toMatch(new RegExp(`^kernels/${KEY}\\.tar: no complete answer within 0\\.5 s \\(\\d+ bytes received\\)$`));
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(fs.existsSync(`${staging}.download`)).toBe(false);
    const remote = new RemoteCache(store, false);
    const log = warnings();
    expect(await remote.fetchInto('kernels', KEY, staging, { log })).toBe(false);
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatch(/^remote cache unreachable \(kernels\/c{64}\.tar: no complete answer within 0\.5 s .*\): building locally$/);
    expect(remote.available).toBe(false);
  });

  it('a wrong Content-Length or a redirect from the remote is an unreachable server, never followed', async () => {
    const staging = path.join(testTempDir('kr-hostile-'), 'staging');
    fs.mkdirSync(staging);
    const short = await new HttpRemoteStore({ config: cfg('short') }).get('kernels', KEY, staging).catch((x: unknown) => x);
    expect(short).toBeInstanceOf(RemoteUnavailable);
    expect((short as RemoteUnavailable).why).toMatch(/10 bytes received, its Content-Length says 1000/);
    h.hits.length = 0;
    for (const mode of ['redirect-file', 'redirect-http']) {
      const e = await new HttpRemoteStore({ config: cfg(mode) }).getIndex('kernels', KEY).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RemoteUnavailable);
      expect((e as RemoteUnavailable).why).toBe(`HTTP 302 for GET kernels/index/${KEY}`);
    }
    expect(h.hits.filter((x) => x.startsWith('GET /ok/'))).toEqual([]);
  });

  it('a download (kernel.org style) redirected to file:// is a typed error naming the file and field', async () => {
    const e = await downloadVerified({ url: `${h.url}/redirect-file/linux-9.9.tar.gz`, sha256: 'a'.repeat(64), cacheDir: path.join(tmp, 'dl'), log: silentLogger, file: 'kernels/k.yaml', field: 'source.url', retries: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HarnessError);
    expect((e as HarnessError).kind).toBe('bad-input');
    expect((e as HarnessError).file).toBe('kernels/k.yaml');
    expect((e as HarnessError).message).toMatch(/redirects to a file: URL; only http: and https: are followed$/);
  });

  it('an endless download stops at its cap, as a typed error', async () => {
    const e = await downloadVerified({ url: `${h.url}/endless/linux-9.9.tar.gz`, sha256: 'a'.repeat(64), cacheDir: path.join(tmp, 'dl2'), log: silentLogger, maxBytes: 2 * MiB, retries: 0 }).catch((x: unknown) => x);
    expect((e as HarnessError).kind).toBe('bad-input');
    expect((e as HarnessError).message).toMatch(/more than the limit of 2097152 bytes/);
  });

  it('SIGINT (the run signal) ends a remote download at once as `interrupted`, not as an unreachable server (last: it aborts this file\'s run signal)', async () => {
    const store = new HttpRemoteStore({ config: cfg('trickle') });
    const remote = new RemoteCache(store, false);
    const staging = path.join(testTempDir('kr-hostile-'), 'staging');
    fs.mkdirSync(staging);
    const log = warnings();
    setTimeout(() => abortRun(), 200);
    const t0 = Date.now();
    const e = await remote.fetchInto('kernels', KEY, staging, { log }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HarnessError);
    expect((e as HarnessError).kind).toBe('interrupted');
    expect((e as HarnessError).exitCode).toBe(130);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(log.lines).toEqual([]);
    expect(fs.existsSync(`${staging}.download`)).toBe(false);
  });
});

describe('KERNEL_REPRO_REMOTE_CACHE_LIMITS', () => {
  const env = (limits: string): NodeJS.ProcessEnv => ({ KERNEL_REPRO_REMOTE_CACHE: 'http://127.0.0.1:9/kr', KERNEL_REPRO_REMOTE_CACHE_LIMITS: limits });
  it('sets the bounds of the remote cache; a bad value is an error naming the variable', () => {
    expect(parseRemoteConfig(env('{"bodyIdleMs": 1000, "deadlineFloorMs": 2000}'))?.limits).toEqual({ bodyIdleMs: 1000, deadlineFloorMs: 2000 });
    for (const [raw, why] of [
      ['nope', /is not JSON/],
      ['[1]', /is not a JSON object/],
      ['{"speed": 1}', /unknown limit "speed"/],
      ['{"bodyIdleMs": -1}', /bodyIdleMs must be a positive integer, got -1/],
      ['{"bodyIdleMs": "1"}', /bodyIdleMs must be a positive integer/],
    ] as const) {
      const e = (() => {
        try {
          parseRemoteConfig(env(raw));
        } catch (x) {
          return x;
        }
      })();
      expect(e).toBeInstanceOf(HarnessError);
      expect((e as HarnessError).field).toBe('KERNEL_REPRO_REMOTE_CACHE_LIMITS');
      expect((e as HarnessError).message).toMatch(why);
    }
  });
});

describe('exit cleanups and the SIGINT backstop', () => {
  it('cleanups run once, newest first; an unregistered one does not run; a throwing one does not stop the others', () => {
    const ran: string[] = [];
    onExitCleanup(() => ran.push('a'));
    const forget = onExitCleanup(() => ran.push('b'));
    onExitCleanup(() => {
      throw new Error('x');
    });
    onExitCleanup(() => ran.push('c'));
    forget();
    runExitCleanups();
    runExitCleanups();
    expect(ran).toEqual(['c', 'a']);
  });

  it('a body that ignores SIGINT is ended by the backstop: exit 130 within 2 s, its staging directory removed', async () => {
    const dir = testTempDir('kr-backstop-');
    const staging = path.join(dir, '.staging-x');
    fs.mkdirSync(staging);
    const script = path.join(dir, 'stuck.mts'); // (.mts: an ES module outside the package)
    fs.writeFileSync(
      script,
      `import { guarded } from ${JSON.stringify(path.join(repoRoot, 'harness/cli/common.ts'))};
import { onExitCleanup } from ${JSON.stringify(path.join(repoRoot, 'harness/util/proc.ts'))};
import fs from 'node:fs';
onExitCleanup(() => fs.rmSync(${JSON.stringify(staging)}, { recursive: true, force: true }));
void guarded(async () => {
  process.stdout.write('ready\\n');
  await new Promise(() => setInterval(() => undefined, 1000)); // never unwinds
  return 0;
});
`,
    );
    const child = spawn(path.join(repoRoot, 'node_modules/.bin/tsx'), [script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      child.on('exit', () => reject(new Error('exited before ready')));
      setTimeout(() => reject(new Error('not ready in 30 s')), 30_000);
    });
    const t0 = Date.now();
    process.kill(-child.pid!, 'SIGINT'); // as a terminal's Ctrl-C: the whole foreground group
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => {
        process.kill(-child.pid!, 'SIGKILL');
        resolve(null);
      }, 5_000);
      child.on('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    expect(code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(fs.existsSync(staging)).toBe(false);
  }, 60_000);
});

async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
}
