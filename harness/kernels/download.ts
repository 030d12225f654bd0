// Kernel sources fetched by URL (kernel.org-style tarballs): a resumable, retrying, sha256-verified
// download into the download cache (extraction: extract.ts).
//
// Cache layout (under `cacheDir`, e.g. <cache>/downloads):
//   partial/<sha256>.part     bytes received so far (kept across runs, resumed with a Range request)
//   partial/<sha256>.lock     lock target: one process downloads a given file at a time
//   <sha256>/<basename>       the verified file, renamed into place only after its sha256 matched
import fs from 'node:fs';
import path from 'node:path';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import { HttpError, httpRequest, type HttpLimits } from '../trust/http.ts';
import { sha256File, withLock } from '../util/cache.ts';
import { sleep } from '../util/cancel.ts';
import { HarnessError } from '../util/errors.ts';
import { ensureFree, isNoSpace, MB, noSpace } from '../util/disk.ts';
import type { Logger } from '../util/log.ts';

export interface DownloadOptions {
  url: string;
  /** mandatory for remote sources: expected sha256 (hex) of the file */
  sha256: string;
  /** directory of the download cache, e.g. <cache>/downloads */
  cacheDir: string;
  log: Logger;
  retries?: number; // default 4
  backoffMs?: number; // initial backoff, doubled each retry, default 1000
  timeoutMs?: number; // per attempt, inactivity (no bytes) timeout, default 60_000
  /** the most bytes accepted (default DOWNLOAD_LIMITS.maxBytes) */
  maxBytes?: number;
  /** per attempt, the whole transfer's deadline: floorMs plus perMiBMs per MiB (default DOWNLOAD_LIMITS) */
  deadline?: { floorMs: number; perMiBMs: number };
  /** for error messages: the definition file and field holding the URL */
  file?: string;
  field?: string;
}

const PROGRESS_EVERY_MS = 2000;
const MAX_REDIRECTIONS = 5;

/** Bounds on a download (the rules: trust/http.ts); an attempt cut short resumes where it stopped. */
export const DOWNLOAD_LIMITS = {
  maxBytes: 4 * 1024 ** 3,
  /** per attempt: 2 min, plus 2 s per MiB (at least 0.5 MiB/s on average) */
  floorMs: 120_000,
  perMiBMs: 2_000,
  ceilingMs: 3 * 3600_000,
};

/** A failed attempt; `retryable` says whether another attempt may help. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

interface Ctx {
  o: DownloadOptions;
  url: URL;
  sha: string;
  name: string;
  part: string;
  dispatcher: Dispatcher;
  timeoutMs: number;
  /** the part file holds bytes kept from an earlier response (206 append or 416) */
  resumed: boolean;
}

function where(o: DownloadOptions): { file?: string; field?: string } {
  return { ...(o.file !== undefined ? { file: o.file } : {}), ...(o.field !== undefined ? { field: o.field } : {}) };
}

/** The field holding the sha256, next to the URL field: "source.url" -> "source.sha256". */
function shaField(o: DownloadOptions): string {
  return o.field && o.field.includes('.') ? o.field.replace(/[^.]*$/, 'sha256') : 'sha256';
}

function parseUrl(o: DownloadOptions): URL {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new HarnessError('bad-input', `not a valid URL: ${JSON.stringify(o.url)}`, where(o));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new HarnessError('bad-input', `unsupported URL scheme "${url.protocol}" in ${o.url}: only http: and https: are supported`, where(o));
  return url;
}

function fileNameOf(url: URL, o: DownloadOptions): string {
  let name = '';
  try {
    name = path.posix.basename(decodeURIComponent(url.pathname));
  } catch {
    /* malformed escape: rejected below */
  }
  if (!name || name === '.' || name === '..' || /[/\\\0]/.test(name))
    throw new HarnessError('bad-input', `URL does not end in a file name: ${o.url}`, where(o));
  return name;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

function fileSize(f: string): number {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

function makeDispatcher(url: URL, timeoutMs: number): { dispatcher: Dispatcher; close: () => Promise<void> } {
  const env = process.env;
  const proxied = !isLoopback(url.hostname) && [env.HTTPS_PROXY, env.https_proxy, env.HTTP_PROXY, env.http_proxy].some((v) => !!v);
  const base: Dispatcher = proxied ? new EnvHttpProxyAgent({ connectTimeout: timeoutMs }) : new Agent({ connectTimeout: timeoutMs });
  // (redirects: followed by trust/http.ts, http: and https: only)
  return { dispatcher: base, close: () => base.destroy().catch(() => undefined) };
}

/** Download `o.url` into the cache, verify its sha256, return the verified file's path. */
export async function downloadVerified(o: DownloadOptions): Promise<string> {
  const url = parseUrl(o);
  if (!/^[0-9a-fA-F]{64}$/.test(o.sha256))
    throw new HarnessError('bad-input', `sha256 must be 64 hexadecimal digits, got ${JSON.stringify(o.sha256)}`, {
      ...(o.file !== undefined ? { file: o.file } : {}),
      field: shaField(o),
      hint: 'remote sources must be pinned: put the sha256 of the file (sha256sum <file>) next to the URL',
    });
  const sha = o.sha256.toLowerCase();
  const name = fileNameOf(url, o);
  const finalDir = path.join(o.cacheDir, sha);
  const final = path.join(finalDir, name);
  if (fs.existsSync(final)) return final;

  const partialDir = path.join(o.cacheDir, 'partial');
  fs.mkdirSync(partialDir, { recursive: true });
  return withLock(
    path.join(partialDir, `${sha}.lock`),
    async () => {
      if (fs.existsSync(final)) return final; // another process finished it while we waited
      const timeoutMs = o.timeoutMs ?? 60_000;
      const { dispatcher, close } = makeDispatcher(url, timeoutMs);
      const ctx: Ctx = { o, url, sha, name, part: path.join(partialDir, `${sha}.part`), dispatcher, timeoutMs, resumed: false };
      try {
        return await downloadLoop(ctx, finalDir, final);
      } finally {
        await close();
      }
    },
    { what: `downloading ${name}`, waitingFor: `the download of ${name}`, log: o.log },
  );
}

async function downloadLoop(ctx: Ctx, finalDir: string, final: string): Promise<string> {
  const { o, part } = ctx;
  const retries = o.retries ?? 4;
  const backoffMs = o.backoffMs ?? 1000;
  let failures = 0;
  let refetched = false;
  for (;;) {
    try {
      await transferOnce(ctx);
    } catch (err) {
      if (err instanceof HarnessError) throw err;
      const retryable = err instanceof AttemptError ? err.retryable : isRetryableNetworkError(err);
      const reason = describe(err);
      if (!retryable)
        throw new HarnessError('internal', `cannot download ${o.url}: ${reason}`, { ...where(o), cause: err });
      if (failures >= retries)
        throw new HarnessError('missing-prereq', `cannot download ${o.url}: ${reason} (gave up after ${failures + 1} attempts)`, {
          ...where(o),
          hint: `check the network connection; the ${mb(fileSize(part))} received so far are kept in ${part} and the next run resumes`,
          cause: err,
        });
      const wait = backoffMs * 2 ** failures;
      failures++;
      o.log.warn(`download of ${ctx.name} failed: ${reason}; retry ${failures}/${retries} in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait);
      continue;
    }

    const got = sha256File(part);
    if (got === ctx.sha) {
      fs.mkdirSync(finalDir, { recursive: true });
      fs.renameSync(part, final);
      return final;
    }
    fs.rmSync(part, { force: true });
    if (ctx.resumed && !refetched) {
      // the bytes kept from an earlier transfer may be what is wrong: fetch the whole file once more
      refetched = true;
      ctx.resumed = false;
      o.log.warn(`${ctx.name}: resumed download does not match its sha256; downloading it again from the start`);
      continue;
    }
    throw new HarnessError('bad-input', `sha256 mismatch for ${o.url}: expected ${ctx.sha}, got ${got}`, {
      ...where(o),
      hint: 'the file at this URL is not the one pinned; check the URL and the sha256 (a changed upstream file needs a new sha256)',
    });
  }
}

/** One HTTP request; returns when the part file is believed complete (to be verified). */
async function transferOnce(ctx: Ctx): Promise<void> {
  const { o, part } = ctx;
  const have = fileSize(part);
  const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'kernel-repro-harness' };
  if (have > 0) headers.range = `bytes=${have}-`;
  const limits: HttpLimits = {
    maxBytes: o.maxBytes ?? DOWNLOAD_LIMITS.maxBytes,
    idleMs: ctx.timeoutMs,
    floorMs: o.deadline?.floorMs ?? DOWNLOAD_LIMITS.floorMs,
    perMiBMs: o.deadline?.perMiBMs ?? DOWNLOAD_LIMITS.perMiBMs,
    ceilingMs: DOWNLOAD_LIMITS.ceilingMs,
  };
  let res;
  try {
    res = await httpRequest({ url: ctx.url.toString(), object: o.url, method: 'GET', headers, dispatcher: ctx.dispatcher, limits, maxRedirects: MAX_REDIRECTIONS });
  } catch (err) {
    throw attemptError(err, ctx);
  }
  const status = res.status;
  const drain = (): Promise<void> => res.discard();

  let append: boolean;
  let total: number | undefined;
  if (status === 206) {
    const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(String(res.headers['content-range'] ?? '').trim());
    if (!m || Number(m[1]) !== have) {
      await drain();
      fs.rmSync(part, { force: true }); // restart from byte 0 on the next attempt
      throw new AttemptError(`server answered the range request with content-range "${String(res.headers['content-range'] ?? '')}"`, true);
    }
    append = true;
    total = m[3] === '*' ? undefined : Number(m[3]);
    if (have > 0) {
      ctx.resumed = true;
      o.log.info(`resuming ${ctx.name} at ${mb(have)}`);
    }
  } else if (status === 200) {
    append = false;
    ctx.resumed = false;
    total = res.declared;
    o.log.info(`downloading ${o.url}${total !== undefined ? ` (${mb(total)})` : ''}`);
  } else if (status === 416 && have > 0) {
    await drain();
    ctx.resumed = true; // nothing left to fetch: the part is complete (verified by the caller)
    return;
  } else {
    await drain();
    const what = `HTTP ${status} for ${o.url}`;
    if (status >= 500 || status === 408 || status === 429) throw new AttemptError(what, true);
    const hint =
      status === 404 || status === 410
        ? 'the URL does not exist (any more): check it, kernel.org moves old releases'
        : status === 401 || status === 403
          ? 'the server refuses access to this URL'
          : undefined;
    throw new HarnessError('bad-input', `cannot download ${o.url}: HTTP ${status}`, { ...where(o), ...(hint ? { hint } : {}) });
  }

  if (total !== undefined) {
    try {
      ensureFree(path.dirname(part), total - (append ? have : 0) + 64 * MB, `downloading ${ctx.name}`);
    } catch (err) {
      await drain();
      throw err;
    }
  }
  const start = append ? have : 0;
  const t0 = Date.now();
  let lastReport = t0;
  let got: number;
  try {
    got = await res.toFile(part, {
      append,
      onProgress: (n) => {
        const now = Date.now();
        if (now - lastReport < PROGRESS_EVERY_MS) return;
        lastReport = now;
        const written = start + n;
        const rate = n / 1e6 / Math.max((now - t0) / 1000, 0.001);
        const of = total !== undefined ? ` of ${mb(total)} (${Math.floor((written / total) * 100)}%)` : '';
        o.log.progress(`${ctx.name}: ${mb(written)}${of}, ${rate.toFixed(1)} MB/s`);
      },
    });
  } catch (err) {
    // the part file stays: the next attempt (or run) resumes it
    if (err instanceof HttpError) throw attemptError(err, ctx);
    if (isNoSpace(err)) throw noSpace(path.dirname(part), `downloading ${ctx.name}`);
    throw new HarnessError('internal', `cannot write ${part}: ${describe(err)}`, { cause: err });
  }
  if (total !== undefined && start + got < total)
    throw new AttemptError(`connection closed after ${start + got} of ${total} bytes`, true);
  const secs = (Date.now() - t0) / 1000;
  o.log.info(`${ctx.name}: received ${mb(got)} in ${secs.toFixed(1)} s`);
}

/** A failed request as the download loop sees it: interrupted and refused ones end it, the rest may be retried. */
function attemptError(err: unknown, ctx: Ctx): Error {
  if (!(err instanceof HttpError)) return err instanceof Error ? err : new Error(String(err));
  const { o } = ctx;
  switch (err.problem) {
    case 'interrupted':
      return err;
    case 'redirect':
    case 'too-large':
      return new HarnessError('bad-input', `cannot download ${o.url}: ${err.message}`, where(o));
    case 'network':
      return new AttemptError(err.message, isRetryableNetworkError(err.cause));
    default: // deadline, idle, length: another attempt resumes
      return new AttemptError(err.message, true);
  }
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
]);

function isRetryableNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'UND_ERR_ABORTED') return false;
    if (code.startsWith('UND_ERR_') || RETRYABLE_CODES.has(code)) return true;
  }
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause && cause !== err) return isRetryableNetworkError(cause);
  // undici reports early socket closes and timeouts with a code; an error without one is unexpected
  return err instanceof Error && /other side closed|socket|terminated|timeout/i.test(err.message);
}

function describe(err: unknown): string {
  if (err instanceof AttemptError || err instanceof HarnessError) return err.message;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
