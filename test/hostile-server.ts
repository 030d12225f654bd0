// A misbehaving HTTP server on 127.0.0.1, for the tests of trust/http.ts (in-process) and of the CLI
// against a hostile remote cache (as a process of its own: `tsx test/hostile-server.ts` prints
// "port <n>" and serves until killed).
//
// The first path segment says how to misbehave, optionally only on objects whose path contains a
// string: /<behaviour>[@<part>]/rest. Objects not matched, and HEAD requests, are 404 (PUT and MKCOL:
// 201). GET /__stats answers what happened so far (JSON: one record per misbehaving answer).
//   endless        200 without a length, 64 KiB chunks as fast as the client reads, until it hangs
//                  up (or `endlessCap` bytes: a bound, so that a test of old code cannot eat the host)
//   trickle        200 with a Content-Length of 1000 (within every cap), one byte every `trickleMs`
//   trickle-big    the same, declaring a Content-Length of 1 GiB (a deadline sized by it would be long)
//   stall          200 with a Content-Length, then nothing
//   short          Content-Length 1000, 10 bytes, then the connection closes
//   long           Content-Length 10, then 100000 bytes
//   redirect-file  302 to file:///etc/passwd;  redirect-ftp: 302 to ftp://127.0.0.1/x
//   redirect-http  302 to /ok/<rest> on this server (served: 200 "ok\n")
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HostileRecord {
  behaviour: string;
  path: string;
  /** bytes of body written to the socket */
  sent: number;
  /** the client hung up before the end */
  clientClosed: boolean;
  startedAt: number;
  endedAt?: number;
}

export interface HostileOptions {
  endlessCap?: number;
  trickleMs?: number;
}

export interface Hostile {
  url: string;
  records: HostileRecord[];
  hits: string[];
  close(): Promise<void>;
}

export async function startHostile(o: HostileOptions = {}, port = 0): Promise<Hostile> {
  const endlessCap = o.endlessCap ?? 200 * 1024 * 1024;
  const trickleMs = o.trickleMs ?? 200;
  const records: HostileRecord[] = [];
  const hits: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/__stats') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(records));
    const [, mode = '', ...rest] = url.pathname.split('/');
    const [behaviour = '', part = ''] = mode.split('@');
    const object = rest.join('/');
    if (behaviour === 'ok') return void res.writeHead(200, { 'content-length': 3 }).end('ok\n');
    if (req.method === 'PUT' || req.method === 'MKCOL') {
      req.resume();
      return void res.writeHead(201).end();
    }
    if (req.method !== 'GET' || !object.includes(part)) return void res.writeHead(404).end();
    const rec: HostileRecord = { behaviour, path: url.pathname, sent: 0, clientClosed: false, startedAt: Date.now() };
    records.push(rec);
    const done = (): void => void (rec.endedAt ??= Date.now());
    res.on('close', () => {
      if (!res.writableFinished) rec.clientClosed = true;
      done();
    });
    const sock = req.socket;
    switch (behaviour) {
      case 'endless': {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const pump = (): void => {
          while (!res.destroyed) {
            if (rec.sent >= endlessCap) return void res.end(done);
            rec.sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
        };
        pump();
        return;
      }
      case 'trickle':
      case 'trickle-big':
      case 'stall': {
        res.writeHead(200, { 'content-length': behaviour === 'trickle' ? 1000 : behaviour === 'trickle-big' ? 1024 ** 3 : 1024 * 1024 });
        if (behaviour === 'stall') return void res.flushHeaders();
        const t = setInterval(() => {
          if (res.destroyed) return void clearInterval(t);
          rec.sent += 1;
          res.write('x');
        }, trickleMs);
        timers.add(t);
        res.on('close', () => clearInterval(t));
        return;
      }
      case 'short':
        rec.sent = 10;
        return void sock.end('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n' + 'x'.repeat(10));
      case 'long':
        rec.sent = 100_000;
        return void sock.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n' + 'x'.repeat(100_000));
      case 'redirect-file':
        return void res.writeHead(302, { location: 'file:///etc/passwd' }).end();
      case 'redirect-ftp':
        return void res.writeHead(302, { location: 'ftp://127.0.0.1/x' }).end();
      case 'redirect-http':
        return void res.writeHead(302, { location: `/ok/${object}` }).end();
      default:
        return void res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    records,
    hits,
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearInterval(t);
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// as a process of its own
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const h = await startHostile({
    ...(process.env.HOSTILE_ENDLESS_CAP ? { endlessCap: Number(process.env.HOSTILE_ENDLESS_CAP) } : {}),
    ...(process.env.HOSTILE_TRICKLE_MS ? { trickleMs: Number(process.env.HOSTILE_TRICKLE_MS) } : {}),
  });
  process.stdout.write(`port ${new URL(h.url).port}\n`);
}
