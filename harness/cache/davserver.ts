// A throwaway WebDAV share (nginx with its dav module) on 127.0.0.1: what `bench` and the tests
// fill and read as a remote cache. The README's example configuration is the same server block.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { run } from '../util/proc.ts';

export interface DavServer {
  url: string;
  root: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Why nginx cannot serve WebDAV here (absent, or built without the dav module), or null. */
export async function davUnavailable(): Promise<string | null> {
  const r = await run('nginx', ['-V'], { timeoutMs: 10_000 }).catch(() => null);
  if (!r || r.exitCode !== 0) return 'nginx is not installed (apt-get install nginx)';
  if (!/--with-http_dav_module/.test(r.stderr + r.stdout)) return 'this nginx has no WebDAV module (--with-http_dav_module)';
  return null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The nginx configuration of a WebDAV share of `root` on 127.0.0.1:`port` (state files under `dir`). */
export function davConfig(o: { root: string; port: number; dir: string; asRoot: boolean }): string {
  return `${o.asRoot ? 'user root root;\n' : ''}daemon off;
worker_processes 1;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log ${o.dir}/access.log;
  client_body_temp_path ${o.dir}/body;
  proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fastcgi;
  uwsgi_temp_path ${o.dir}/uwsgi;
  scgi_temp_path ${o.dir}/scgi;
  server {
    listen 127.0.0.1:${o.port};
    root ${o.root};
    client_max_body_size 0;
    location / {
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
`;
}

/** Start nginx serving `root` over WebDAV on a free port; `stop()` ends it. */
export async function startDavServer(o: { root: string; dir: string }): Promise<DavServer> {
  const why = await davUnavailable();
  if (why) throw new HarnessError('missing-prereq', why, { hint: 'apt-get install nginx (npm run doctor -- --install --test-deps)' });
  fs.mkdirSync(o.root, { recursive: true });
  fs.mkdirSync(o.dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = path.join(o.dir, 'nginx.conf');
    fs.writeFileSync(conf, davConfig({ root: o.root, port, dir: o.dir, asRoot: process.getuid?.() === 0 }));
    const child: ChildProcess = spawn('nginx', ['-c', conf, '-p', o.dir, '-e', path.join(o.dir, 'error.log')], { stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    const url = `http://127.0.0.1:${port}`;
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    // ready when it answers
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000 && child.exitCode === null) {
      const ok = await fetch(url + '/', { method: 'HEAD', signal: AbortSignal.timeout(1000) }).then(
        () => true,
        () => false,
      );
      if (ok) return { url, root: o.root, port, pid: child.pid!, stop };
      await new Promise((r) => setTimeout(r, 100));
    }
    await stop();
    const log = fs.existsSync(path.join(o.dir, 'error.log')) ? fs.readFileSync(path.join(o.dir, 'error.log'), 'utf8') : '';
    if (attempt < 2 && /Address already in use/.test(log)) continue; // the free port was taken meanwhile
    throw new HarnessError('missing-prereq', `nginx did not start on 127.0.0.1:${port}`, { excerpt: log.split('\n').slice(-8).join('\n') });
  }
}
