// Controlling a guest session: QMP (QEMU's JSON control protocol over a unix socket QEMU creates at
// start-up, one command at a time), and watching the agent's result channel (a file QEMU appends to).
import fs from 'node:fs';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { LineSplitter } from '../trust/channel.ts';

/** Connect to a unix socket QEMU is about to create; retry until it exists or `giveUp()` says stop. */
export async function connectUnix(path: string, giveUp: () => boolean, timeoutMs = 10_000): Promise<net.Socket> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (giveUp()) throw new Error(`QEMU ended before ${path} could be opened`);
    if (fs.existsSync(path)) {
      const sock = await new Promise<net.Socket | null>((resolve) => {
        const s = net.connect(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(null));
      });
      if (sock) return sock;
    }
    if (Date.now() > until) throw new Error(`cannot connect to ${path} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

type Json = Record<string, unknown>;

export class QmpError extends Error {}

/** A minimal QMP client: greeting, capabilities negotiation, then sequential commands. */
export class Qmp {
  private buf = '';
  private queue: Array<{ resolve: (v: Json) => void; reject: (e: Error) => void }> = [];
  private greeting: Promise<Json>;
  private closed = false;
  readonly events: Json[] = [];

  private constructor(private readonly sock: net.Socket) {
    let onGreeting!: (v: Json) => void;
    this.greeting = new Promise((r) => (onGreeting = r));
    let greeted = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        let msg: Json;
        try {
          msg = JSON.parse(line) as Json;
        } catch {
          continue;
        }
        if (!greeted && 'QMP' in msg) {
          greeted = true;
          onGreeting(msg);
        } else if ('event' in msg) this.events.push(msg);
        else if ('return' in msg || 'error' in msg) {
          const w = this.queue.shift();
          if (!w) continue;
          if ('error' in msg) {
            const e = msg.error as { class?: string; desc?: string };
            w.reject(new QmpError(`${e.class ?? 'Error'}: ${e.desc ?? JSON.stringify(e)}`));
          } else w.resolve(msg.return as Json);
        }
      }
    });
    const fail = (): void => {
      this.closed = true;
      for (const w of this.queue.splice(0)) w.reject(new QmpError('QMP connection closed (QEMU exited)'));
    };
    sock.on('close', fail);
    sock.on('error', fail);
  }

  static async open(path: string, giveUp: () => boolean): Promise<Qmp> {
    const q = new Qmp(await connectUnix(path, giveUp));
    await q.greeting;
    await q.execute('qmp_capabilities');
    return q;
  }

  execute(command: string, args?: Json): Promise<Json> {
    if (this.closed) return Promise.reject(new QmpError('QMP connection closed (QEMU exited)'));
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  async status(): Promise<string> {
    const r = await this.execute('query-status');
    return String(r.status);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Wait for a line matching `re` in a file QEMU appends to (the result channel); null when `stop()`. */
export async function waitForLine(file: string, matches: (line: string) => boolean, stop: () => boolean): Promise<string | null> {
  let offset = 0;
  // the guest writes this file: lines are cut at 4096 characters, an endless line never accumulates
  const splitter = new LineSplitter();
  const decoder = new StringDecoder('utf8');
  for (;;) {
    const done = stop(); // read once more after QEMU has exited
    let fd: number | null = null;
    let atEnd = true;
    try {
      fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(64 * 1024);
      // at most 1 MiB per turn, then yield: a guest writing faster than this reads must not keep
      // the event loop (the deadline, the channel's cap, SIGINT) from running
      for (let i = 0; ; i++) {
        if (i === 16) {
          atEnd = false;
          break;
        }
        const n = fs.readSync(fd, buf, 0, buf.length, offset);
        if (n <= 0) break;
        offset += n;
        for (const line of splitter.push(decoder.write(buf.subarray(0, n)))) if (matches(line)) return line;
      }
    } catch {
      /* not created yet */
    } finally {
      if (fd !== null) fs.closeSync(fd);
    }
    if (done && atEnd) return null;
    await new Promise((r) => setTimeout(r, atEnd ? 5 : 0));
  }
}
