// HTTP from servers we do not trust (the remote cache, kernel.org-style downloads): every request
// and every body read goes through here. The rules:
//   - a byte cap: a declared Content-Length over the cap is refused before reading; a body that
//     passes the cap is aborted at the chunk that passes it (never buffered beyond it);
//   - a TOTAL deadline per object, size-aware: floorMs + perMiBMs per MiB of the bytes received
//     (or sent, for an upload), at most ceilingMs; never per MiB declared, which the server
//     chooses. So a server trickling a byte every few seconds cannot hold a request for long,
//     whatever length it promises; plus an idle timeout between chunks;
//   - the Content-Length, when declared, must be the number of bytes received (short or long);
//   - the run's signal (SIGINT/SIGTERM) and the caller's signal abort the request at once;
//   - redirects: followed only when the caller allows them (at most maxRedirects), only for GET and
//     HEAD, only to http: or https:; anything else is an error (a 3xx the caller does not follow
//     is returned as a status, and its body discarded with the same limits);
//   - every failure is an HttpError (a HarnessError naming the object as its file), with a
//     `problem` saying which rule, never a stack trace.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { runSignal } from '../util/cancel.ts';
import { HarnessError } from '../util/errors.ts';

export type HttpProblem = 'too-large' | 'deadline' | 'idle' | 'length' | 'redirect' | 'network' | 'interrupted';

/** A request that broke one of the rules (or the network, or the run was interrupted). */
export class HttpError extends HarnessError {
  constructor(
    readonly problem: HttpProblem,
    /** what was asked for, for messages: an object key or a URL without credentials */
    readonly object: string,
    message: string,
    cause?: unknown,
  ) {
    super(problem === 'interrupted' ? 'interrupted' : 'internal', message, { file: object, ...(cause !== undefined ? { cause } : {}) });
  }
}

export interface HttpLimits {
  /** most body bytes accepted */
  maxBytes: number;
  /** longest pause between two chunks */
  idleMs: number;
  /** longest wait for the answer's headers (default idleMs) */
  headersMs?: number;
  /** the total deadline: floorMs + perMiBMs per MiB (of the declared or received size), at most ceilingMs */
  floorMs: number;
  perMiBMs: number;
  ceilingMs: number;
}

const MiB = 1024 * 1024;

/** The whole-request deadline for an object of `bytes` bytes. */
export function deadlineMs(l: HttpLimits, bytes: number): number {
  return Math.min(l.ceilingMs, l.floorMs + Math.ceil((Math.max(0, bytes) / MiB) * l.perMiBMs));
}

export interface HttpRequest {
  url: string;
  /** for messages (no credentials): the object key, or the URL */
  object: string;
  method?: 'GET' | 'HEAD' | 'PUT' | 'MKCOL';
  headers?: Record<string, string>;
  /** a request body, and its size (for the deadline) */
  body?: { data: string | Readable; bytes: number };
  dispatcher?: Dispatcher;
  limits: HttpLimits;
  /** redirects followed (GET/HEAD only); 0: a 3xx is returned to the caller */
  maxRedirects?: number;
  /** another reason to give up (the run's signal always is one) */
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** the URL that answered (after redirects) */
  url: string;
  /** the declared Content-Length, if any */
  declared: number | undefined;
  /** the body, whole, as text (at most limits.maxBytes) */
  text(): Promise<string>;
  /** the body into `file` (appended with `append`), chunk by chunk; returns the bytes written */
  toFile(file: string, o?: { append?: boolean; onProgress?: (bytes: number) => void }): Promise<number>;
  /** read and drop the body (with the same limits); never throws */
  discard(): Promise<void>;
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** Send one request (following redirects as allowed); the body is read through the response's methods. */
export async function httpRequest(r: HttpRequest): Promise<HttpResponse> {
  const method = r.method ?? 'GET';
  let url = r.url;
  for (let hops = 0; ; hops++) {
    const res = await once({ ...r, method, url });
    const location = res.headers.location;
    if (!REDIRECT.has(res.status) || (r.maxRedirects ?? 0) === 0 || (method !== 'GET' && method !== 'HEAD') || typeof location !== 'string') return res;
    await res.discard();
    if (hops >= (r.maxRedirects ?? 0)) throw new HttpError('redirect', r.object, `more than ${r.maxRedirects} redirects for ${r.object}`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw new HttpError('redirect', r.object, `${r.object} redirects to something that is not a URL: ${JSON.stringify(location.slice(0, 200))}`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:')
      throw new HttpError('redirect', r.object, `${r.object} redirects to a ${next.protocol.replace(/:$/, '')}: URL; only http: and https: are followed`);
    url = next.toString();
  }
}

/** One request, no redirects: the clock (deadline, idle) starts now and runs until the body is read. */
async function once(r: HttpRequest & { method: NonNullable<HttpRequest['method']>; url: string }): Promise<HttpResponse> {
  const { limits: l, object } = r;
  const ac = new AbortController();
  const signal = AbortSignal.any([runSignal, ac.signal, ...(r.signal ? [r.signal] : [])]);
  const t0 = Date.now();
  let received = 0;
  let declared: number | undefined;
  const fail = (e: HttpError): void => {
    if (!ac.signal.aborted) ac.abort(e);
  };
  // the total deadline, re-armed as the size it allows grows with the bytes RECEIVED (or sent):
  // never with the declared length, or a server declaring 4 GiB and trickling a byte a minute
  // would hold the request for the whole ceiling. So past floorMs a transfer must keep an average
  // of at least 1 MiB per perMiBMs.
  let deadlineTimer: NodeJS.Timeout | undefined;
  const armDeadline = (): void => {
    const allowed = deadlineMs(l, Math.max(received, r.body?.bytes ?? 0));
    const left = t0 + allowed - Date.now();
    if (left <= 0) fail(new HttpError('deadline', object, `${object}: no complete answer within ${secs(allowed)} (${received} bytes received)`));
    else deadlineTimer = setTimeout(armDeadline, left).unref();
  };
  armDeadline();
  let idleTimer: NodeJS.Timeout | undefined;
  const touch = (ms = l.idleMs): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => fail(new HttpError('idle', object, `${object}: nothing received for ${secs(ms)} (${received} bytes received)`)), ms).unref();
  };
  // (while a request body is sent, only the deadline, sized for it, runs: an upload is not idle)
  if (!r.body) touch(l.headersMs ?? l.idleMs);
  const stop = (): void => {
    clearTimeout(deadlineTimer);
    clearTimeout(idleTimer);
  };
  const why = (e: unknown): HttpError => {
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof HttpError) return reason;
      if (reason instanceof HarnessError) return new HttpError('interrupted', object, reason.message, reason);
      return new HttpError('interrupted', object, `${object}: interrupted`);
    }
    if (e instanceof HttpError) return e;
    return new HttpError('network', object, `${object}: ${describeNetError(e)}`, e);
  };

  let res: Dispatcher.ResponseData;
  try {
    res = await request(r.url, {
      method: r.method,
      ...(r.headers ? { headers: r.headers } : {}),
      ...(r.body ? { body: r.body.data } : {}),
      ...(r.dispatcher ? { dispatcher: r.dispatcher } : {}),
      signal,
      headersTimeout: l.headersMs ?? l.idleMs,
      bodyTimeout: l.idleMs,
    });
  } catch (e) {
    stop();
    throw why(e);
  }
  const len = Number(res.headers['content-length']);
  declared = res.headers['content-length'] !== undefined && Number.isSafeInteger(len) && len >= 0 ? len : undefined;
  const noBody = r.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304;
  touch();

  /** Read the body chunk by chunk into `sink`, enforcing every rule. */
  const read = async (sink: (chunk: Buffer) => void): Promise<number> => {
    let local: { e: unknown } | undefined;
    try {
      if (noBody) {
        await res.body.dump().catch(() => undefined);
        return 0;
      }
      if (declared !== undefined && declared > l.maxBytes)
        throw new HttpError('too-large', object, `${object} is ${declared} bytes, more than the limit of ${l.maxBytes}`);
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        touch();
        received += chunk.length;
        if (received > l.maxBytes) throw new HttpError('too-large', object, `${object} is more than the limit of ${l.maxBytes} bytes`);
        if (declared !== undefined && received > declared)
          throw new HttpError('length', object, `${object}: more bytes than its Content-Length of ${declared}`);
        try {
          sink(chunk);
        } catch (e) {
          local = { e };
          throw e;
        }
      }
      if (signal.aborted) throw why(undefined);
      if (declared !== undefined && received !== declared)
        throw new HttpError('length', object, `${object}: ${received} bytes received, its Content-Length says ${declared}`);
      return received;
    } catch (e) {
      res.body.destroy();
      // a local failure of the sink (ENOSPC writing the file, say) is the caller's, unchanged
      if (local && !signal.aborted) throw local.e;
      // the connection closed before the declared length: say so (undici says "other side closed")
      if (!signal.aborted && !(e instanceof HttpError) && declared !== undefined && received < declared)
        throw new HttpError('length', object, `${object}: ${received} bytes received, its Content-Length says ${declared} (${describeNetError(e)})`, e);
      throw why(e);
    } finally {
      stop();
    }
  };

  return {
    status: res.statusCode,
    headers: res.headers,
    url: r.url,
    declared,
    async text() {
      const chunks: Buffer[] = [];
      await read((c) => chunks.push(c));
      return Buffer.concat(chunks).toString('utf8');
    },
    async toFile(file, o = {}) {
      const fd = fs.openSync(file, o.append ? 'a' : 'w');
      try {
        let n = 0;
        await read((c) => {
          fs.writeSync(fd, c);
          n += c.length;
          o.onProgress?.(n);
        });
        return n;
      } finally {
        fs.closeSync(fd);
      }
    },
    async discard() {
      await read(() => undefined).catch(() => undefined);
    },
  };
}

const secs = (ms: number): string => (ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);

/** A network error as one line (undici's codes in words). */
export function describeNetError(e: unknown): string {
  const err = e as (NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }) | null;
  const code = err?.cause?.code ?? err?.code;
  const msg = err?.cause?.message ?? err?.message ?? String(e);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return 'no connection within the connect timeout';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return 'no answer within the timeout';
  if (code === 'UND_ERR_BODY_TIMEOUT') return 'the transfer stalled';
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
