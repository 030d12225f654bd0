// The remote cache: cache entries shared between machines by content key, over plain HTTP(S) GET
// and PUT (an nginx or Apache WebDAV share, or S3-style presigned URLs from a sign command).
//
// Object layout under the base URL:
//   <kind>/<key>.tar            one entry (all its files and its manifest.json), a gzip -1 tar
//   kernels/index/<inputKey>    tiny text: the kernel key these inputs built (line 1), and what the
//                               inputs merged into the config (line 2, JSON)
//
// Three layers: the configuration (pure: parsed from the environment, typed errors naming the
// variable), the transport (RemoteStore: an interface, so tests can fake it; HttpRemoteStore is
// the real one), and RemoteCache, which EntryStore uses: it checks every downloaded entry as the
// local cache checks its own (manifest key, every file's sha256, nothing outside the entry) and
// turns an unreachable server into one warning per process and local work.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as tar from 'tar';
import { Agent, type Dispatcher } from 'undici';
import { HttpError, httpRequest, type HttpLimits, type HttpResponse } from '../trust/http.ts';
import { runSignal, throwIfAborted } from './cancel.ts';
import { HarnessError } from './errors.ts';
import { memberProblem as archiveMemberProblem, normaliseTree, tarMemberFilter } from '../trust/archive.ts';
import { readInputFile } from '../trust/files.ts';
import { sha256File } from './hash.ts';
import { makeLogger, type Logger } from './log.ts';
import { onExitCleanup, run } from './proc.ts';

// ---------------------------------------------------------------------------------------------
// Configuration (pure)

export const REMOTE_ENV = {
  url: 'KERNEL_REPRO_REMOTE_CACHE',
  push: 'KERNEL_REPRO_REMOTE_CACHE_PUSH',
  header: 'KERNEL_REPRO_REMOTE_CACHE_HEADER',
  sign: 'KERNEL_REPRO_REMOTE_CACHE_SIGN',
  limits: 'KERNEL_REPRO_REMOTE_CACHE_LIMITS',
} as const;

export interface RemoteConfig {
  /** base URL without a trailing slash */
  base: string;
  push: boolean;
  header?: { name: string; value: string };
  /** a command run as `<sign> METHOD <object path>` that prints the URL to use */
  sign?: string;
  /** other bounds than LIMITS' (KERNEL_REPRO_REMOTE_CACHE_LIMITS, JSON: {"bodyIdleMs": 5000, ...}) */
  limits?: Partial<RemoteLimits>;
}

const bad = (variable: string, message: string, hint?: string): HarnessError =>
  new HarnessError('bad-input', message, { field: variable, ...(hint ? { hint } : {}) });

/** The remote cache the environment configures, or null when KERNEL_REPRO_REMOTE_CACHE is unset. */
export function parseRemoteConfig(env: NodeJS.ProcessEnv): RemoteConfig | null {
  const raw = env[REMOTE_ENV.url]?.trim();
  const pushRaw = env[REMOTE_ENV.push]?.trim() ?? '';
  const headerRaw = env[REMOTE_ENV.header]?.trim() ?? '';
  const signRaw = env[REMOTE_ENV.sign]?.trim() ?? '';
  const limitsRaw = env[REMOTE_ENV.limits]?.trim() ?? '';
  if (!raw) {
    for (const v of [REMOTE_ENV.push, REMOTE_ENV.header, REMOTE_ENV.sign, REMOTE_ENV.limits])
      if (env[v]?.trim()) throw bad(v, `${v} is set but ${REMOTE_ENV.url} is not`, `set ${REMOTE_ENV.url} to the remote cache's base URL (http:// or https://)`);
    return null;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad(REMOTE_ENV.url, `"${raw}" is not a URL`, 'e.g. http://cache.example:8080/kernel-repro');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(REMOTE_ENV.url, `"${raw}" is not an http:// or https:// URL (${url.protocol.replace(/:$/, '')})`);
  if (url.search || url.hash) throw bad(REMOTE_ENV.url, `"${redact(raw)}" has a query or fragment; give the base URL only`, `for presigned URLs set ${REMOTE_ENV.sign}`);
  if (!['', '0', '1', 'true', 'false', 'yes', 'no'].includes(pushRaw.toLowerCase()))
    throw bad(REMOTE_ENV.push, `"${pushRaw}" is not 1 or 0`, '1 publishes what this machine builds; unset (or 0) only reads');
  let header: RemoteConfig['header'];
  if (headerRaw) {
    const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+):\s*(.+)$/.exec(headerRaw);
    // (its value is a secret: never printed)
    if (!m) throw bad(REMOTE_ENV.header, `${REMOTE_ENV.header} is not "Name: value"`, 'e.g. "Authorization: Bearer <token>"');
    header = { name: m[1]!, value: m[2]! };
  }
  const limits = limitsRaw ? parseLimits(limitsRaw) : undefined;
  return {
    base: url.toString().replace(/\/+$/, ''),
    push: ['1', 'true', 'yes'].includes(pushRaw.toLowerCase()),
    ...(header ? { header } : {}),
    ...(signRaw ? { sign: signRaw } : {}),
    ...(limits ? { limits } : {}),
  };
}

/** KERNEL_REPRO_REMOTE_CACHE_LIMITS: a JSON object of LIMITS' names and positive integers. */
function parseLimits(raw: string): Partial<RemoteLimits> {
  const v = REMOTE_ENV.limits;
  const hint = `a JSON object of ${Object.keys(LIMITS).join(', ')} (positive integers), e.g. {"bodyIdleMs": 10000}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad(v, `${v} is not JSON`, hint);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad(v, `${v} is not a JSON object`, hint);
  const out: Partial<RemoteLimits> = {};
  for (const [k, n] of Object.entries(parsed)) {
    if (!Object.hasOwn(LIMITS, k)) throw bad(v, `${v}: unknown limit "${k}"`, hint);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw bad(v, `${v}: ${k} must be a positive integer, got ${JSON.stringify(n)}`, hint);
    out[k as keyof RemoteLimits] = n;
  }
  return out;
}

/** A URL as it may be printed: without user and password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString().replace(/\/+$/, '');
  } catch {
    return url;
  }
}

const KEY = /^[0-9a-f]{64}$/;
const KIND = /^[a-z][a-z0-9-]*$/;

export function entryObject(kind: string, key: string): string {
  if (!KIND.test(kind) || !KEY.test(key)) throw new HarnessError('internal', `not a cache entry: ${kind}/${key}`);
  return `${kind}/${key}.tar`;
}

export function indexObject(kind: string, name: string): string {
  if (!KIND.test(kind) || !KEY.test(name)) throw new HarnessError('internal', `not a cache index name: ${kind}/index/${name}`);
  return `${kind}/index/${name}`;
}

/** The collections (directories) above an object, outermost first: a/b/c.tar -> [a/, a/b/]. */
export function parentCollections(object: string): string[] {
  const parts = object.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/') + '/');
}

// ---------------------------------------------------------------------------------------------
// Errors the transport reports

/** The server cannot be used now (connection refused, timeout, 5xx, refused credentials, a failing sign command). */
export class RemoteUnavailable extends HarnessError {
  constructor(
    readonly why: string,
    object?: string,
  ) {
    super('internal', `remote cache unreachable (${why})`, object !== undefined ? { file: object } : {});
  }
}

/** A downloaded entry that fails a check. */
export class RemoteRejected extends HarnessError {
  constructor(
    readonly why: string,
    object?: string,
  ) {
    super('internal', why, object !== undefined ? { file: object } : {});
  }
}

// ---------------------------------------------------------------------------------------------
// Transport

export interface RemoteStore {
  /** where, for messages (no credentials) */
  readonly where: string;
  has(kind: string, key: string): Promise<boolean>;
  /** The entry's files, unchecked but with safe paths only, extracted into `staging` (empty); null when the remote lacks it. */
  get(kind: string, key: string, staging: string): Promise<{ bytes: number } | null>;
  /** Upload the complete local entry in `entryDir`. */
  put(kind: string, key: string, entryDir: string): Promise<{ bytes: number }>;
  getIndex(kind: string, name: string): Promise<string | null>;
  hasIndex(kind: string, name: string): Promise<boolean>;
  putIndex(kind: string, name: string, text: string): Promise<void>;
}

/** Bounds on every request (the rules: trust/http.ts). */
export const LIMITS = {
  connectMs: 5_000,
  headersMs: 30_000,
  /** longest pause between two chunks of a body */
  bodyIdleMs: 60_000,
  /** the whole request's deadline: this floor, plus deadlinePerMiBMs per MiB of the object (at least 0.5 MiB/s on average) */
  deadlineFloorMs: 60_000,
  deadlinePerMiBMs: 2_000,
  /** longest whole request, whatever its size (a large entry on a slow link) */
  requestMs: 30 * 60_000,
  maxEntryBytes: 4 * 1024 ** 3,
  maxIndexBytes: 64 * 1024,
};
export type RemoteLimits = typeof LIMITS;

/** The most bytes read of an answer whose body means nothing (HEAD, PUT, MKCOL, errors). */
const SMALL_BODY = 64 * 1024;

/** Why a tar member may not be written into a cache entry, or null. Entries hold plain files and
 * directories only (the rules are trust/archive.ts's). */
export function memberProblem(p: string, type: string): string | null {
  return archiveMemberProblem({ path: p, type });
}

/** Extract an entry archive (gzip or not) into `dest`, refusing anything but plain files and
 * directories inside it; modes are normalised as the members are written (trust/archive.ts). */
export async function extractEntry(file: string, dest: string, maxBytes = LIMITS.maxEntryBytes): Promise<void> {
  let problem: string | null = null;
  let total = 0;
  const members = tarMemberFilter({ links: 'none' }, (_p, why) => (problem ??= why));
  await tar.x({
    file,
    cwd: dest,
    preserveOwner: false,
    strict: true,
    filter: (p, entry) => {
      const ok = members(p, entry);
      total += 'size' in entry && typeof entry.size === 'number' ? entry.size : 0;
      problem ??= total > maxBytes ? `it unpacks to more than ${maxBytes} bytes` : null;
      return ok && problem === null;
    },
  }).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw e;
    problem ??= `not a readable tar archive (${(e as Error).message})`;
  });
  if (problem) throw new RemoteRejected(problem);
}

/** Pack the entry in `dir` (a flat or nested tree of plain files) as a gzip -1 tar at `out`. */
export async function packEntry(dir: string, out: string): Promise<void> {
  const files = fs.readdirSync(dir).sort();
  await tar.c({ file: out, cwd: dir, gzip: { level: 1 }, portable: true, noDirRecurse: false }, files);
}

interface HttpOptions {
  config: RemoteConfig;
  /** for tests: another dispatcher */
  dispatcher?: Dispatcher;
}

type Method = 'GET' | 'HEAD' | 'PUT' | 'MKCOL';

/** A failed request as the remote cache sees it: an entry too large is rejected, an interrupt ends the run, anything else is an unreachable server. */
function remoteError(e: HttpError): HarnessError {
  if (e.problem === 'interrupted') return e;
  if (e.problem === 'too-large') return new RemoteRejected(e.message.replace(`${e.object} is`, 'it is'), e.object);
  return new RemoteUnavailable(e.message, e.object);
}

export class HttpRemoteStore implements RemoteStore {
  readonly where: string;
  private readonly dispatcher: Dispatcher;
  private readonly limits: RemoteLimits;

  constructor(private readonly o: HttpOptions) {
    this.where = redact(o.config.base);
    this.limits = { ...LIMITS, ...o.config.limits };
    const l = this.limits;
    this.dispatcher = o.dispatcher ?? new Agent({ connect: { timeout: l.connectMs }, headersTimeout: l.headersMs, bodyTimeout: l.bodyIdleMs, keepAliveTimeout: 4_000 });
  }

  /** The rules of trust/http.ts for an answer of at most `maxBytes`. */
  private httpLimits(maxBytes: number): HttpLimits {
    const l = this.limits;
    return { maxBytes, idleMs: l.bodyIdleMs, headersMs: l.headersMs, floorMs: l.deadlineFloorMs, perMiBMs: l.deadlinePerMiBMs, ceilingMs: l.requestMs };
  }

  private async urlFor(method: Method, object: string): Promise<string> {
    const sign = this.o.config.sign;
    if (!sign) return `${this.o.config.base}/${object}`;
    const r = await run('sh', ['-c', `${sign} "$@"`, 'sign', method, object], { timeoutMs: 30_000, abort: runSignal });
    throwIfAborted(runSignal);
    const url = r.stdout.trim().split('\n')[0]?.trim() ?? '';
    if (r.exitCode !== 0 || !/^https?:\/\//.test(url))
      throw new RemoteUnavailable(`the sign command (${REMOTE_ENV.sign}) ${r.exitCode !== 0 ? `exited ${r.exitCode}${r.stderr.trim() ? ': ' + r.stderr.trim().split('\n')[0] : ''}` : `printed no http(s) URL for ${method} ${object}`}`);
    return url;
  }

  /** One request (redirects are not followed: a 3xx is an unusable answer); 5xx, 401 and 403 mean unavailable. */
  private async send(method: Method, object: string, maxBytes: number, body?: { file: string; bytes: number } | string): Promise<HttpResponse> {
    const url = await this.urlFor(method, object);
    const headers: Record<string, string> = {};
    const h = this.o.config.header;
    if (h) headers[h.name] = h.value;
    let payload: { data: fs.ReadStream | string; bytes: number } | undefined;
    if (typeof body === 'string') {
      payload = { data: body, bytes: Buffer.byteLength(body) };
      headers['content-length'] = String(payload.bytes);
    } else if (body) {
      payload = { data: fs.createReadStream(body.file), bytes: body.bytes };
      headers['content-length'] = String(body.bytes);
    }
    try {
      const res = await httpRequest({ url, object, method, headers, ...(payload ? { body: payload } : {}), dispatcher: this.dispatcher, limits: this.httpLimits(maxBytes), maxRedirects: 0 });
      if (res.status >= 500) {
        await res.discard();
        throw new RemoteUnavailable(`HTTP ${res.status} for ${method} ${object}`, object);
      }
      if (res.status === 401 || res.status === 403) {
        await res.discard();
        throw new RemoteUnavailable(`HTTP ${res.status} for ${method} ${object}: check ${REMOTE_ENV.header} or ${REMOTE_ENV.sign}`, object);
      }
      return res;
    } catch (e) {
      if (e instanceof HttpError) throw remoteError(e);
      throw e;
    } finally {
      if (payload?.data instanceof fs.ReadStream) payload.data.destroy();
    }
  }

  /** Read a body through the rules; their failures as the remote cache sees them. */
  private async body<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (e) {
      if (e instanceof HttpError) throw remoteError(e);
      throw e;
    }
  }

  private async exists(object: string): Promise<boolean> {
    const res = await this.send('HEAD', object, SMALL_BODY);
    await res.discard();
    if (res.status === 404) return false;
    if (res.status >= 200 && res.status < 300) return true;
    throw new RemoteUnavailable(`HTTP ${res.status} for HEAD ${object}`, object);
  }

  has(kind: string, key: string): Promise<boolean> {
    return this.exists(entryObject(kind, key));
  }

  hasIndex(kind: string, name: string): Promise<boolean> {
    return this.exists(indexObject(kind, name));
  }

  /** GET `object` into `file`, streamed, at most `max` bytes; null on 404. */
  private async download(object: string, file: string, max: number): Promise<number | null> {
    const res = await this.send('GET', object, max);
    if (res.status === 404) {
      await res.discard();
      return null;
    }
    if (res.status !== 200) {
      await res.discard();
      throw new RemoteUnavailable(`HTTP ${res.status} for GET ${object}`, object);
    }
    return this.body(() => res.toFile(file));
  }

  async get(kind: string, key: string, staging: string): Promise<{ bytes: number } | null> {
    const object = entryObject(kind, key);
    const tmp = `${staging}.download`;
    const forget = onExitCleanup(() => fs.rmSync(tmp, { force: true }));
    try {
      const bytes = await this.download(object, tmp, this.limits.maxEntryBytes);
      if (bytes === null) return null;
      await extractEntry(tmp, staging);
      return { bytes };
    } finally {
      fs.rmSync(tmp, { force: true });
      forget();
    }
  }

  /** PUT, and on 409 (a WebDAV share without the parent collections) MKCOL them and PUT again. */
  private async upload(object: string, body: { file: string; bytes: number } | string): Promise<void> {
    let res = await this.send('PUT', object, SMALL_BODY, body);
    await res.discard();
    if (res.status === 409) {
      for (const col of parentCollections(object)) {
        const m = await this.send('MKCOL', col, SMALL_BODY);
        await m.discard();
        // 201 made; 405 already there; anything else is seen by the PUT again
      }
      res = await this.send('PUT', object, SMALL_BODY, body);
      await res.discard();
    }
    if (res.status < 200 || res.status >= 300) throw new RemoteUnavailable(`HTTP ${res.status} for PUT ${object}`, object);
  }

  async put(kind: string, key: string, entryDir: string): Promise<{ bytes: number }> {
    const object = entryObject(kind, key);
    const tmp = path.join(path.dirname(entryDir), `.upload-${key.slice(0, 16)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.tar`);
    const forget = onExitCleanup(() => fs.rmSync(tmp, { force: true }));
    try {
      await packEntry(entryDir, tmp);
      const bytes = fs.statSync(tmp).size;
      await this.upload(object, { file: tmp, bytes });
      return { bytes };
    } finally {
      fs.rmSync(tmp, { force: true });
      forget();
    }
  }

  /** The index object's text, null when the server lacks it; one larger than maxIndexBytes is rejected (RemoteRejected) at that byte. */
  async getIndex(kind: string, name: string): Promise<string | null> {
    const object = indexObject(kind, name);
    const res = await this.send('GET', object, this.limits.maxIndexBytes);
    if (res.status === 404) {
      await res.discard();
      return null;
    }
    if (res.status !== 200) {
      await res.discard();
      throw new RemoteUnavailable(`HTTP ${res.status} for GET ${object}`, object);
    }
    return this.body(() => res.text());
  }

  putIndex(kind: string, name: string, text: string): Promise<void> {
    return this.upload(indexObject(kind, name), text);
  }
}

// ---------------------------------------------------------------------------------------------
// Checks on a downloaded entry (the local cache's own, plus: nothing but what the manifest lists)

/** A manifest lists an entry's files: a few KB (a bound, so that a hostile one cannot take the memory). */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

interface ManifestShape {
  key: string;
  files: Record<string, string>;
}

/** Why the entry extracted in `dir` is not the entry `key`, or null when it is. */
export function entryDirProblem(dir: string, key: string): string | null {
  const mf = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mf)) return 'it has no manifest.json';
  let m: ManifestShape;
  try {
    m = JSON.parse(readInputFile(mf, MAX_MANIFEST_BYTES, 'manifest.json', { noFollow: true })) as ManifestShape;
  } catch (e) {
    return e instanceof HarnessError ? `its manifest.json ${e.message}` : 'its manifest.json is not JSON';
  }
  if (typeof m !== 'object' || m === null || typeof m.files !== 'object' || m.files === null) return 'its manifest.json has no file list';
  if (m.key !== key) return `its manifest is for the key ${String(m.key).slice(0, 12)}, not ${key.slice(0, 12)}`;
  const listed = new Set<string>();
  for (const [rel, digest] of Object.entries(m.files)) {
    const problem = memberProblem(rel, 'File');
    if (problem) return `its manifest names ${problem}`;
    const f = path.join(dir, rel);
    const st = fs.lstatSync(f, { throwIfNoEntry: false });
    if (!st?.isFile()) return `file ${rel} is missing`;
    if (sha256File(f) !== digest) return `file ${rel} does not match its manifest`;
    listed.add(rel);
  }
  const walk = (d: string): string | null => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      const rel = path.relative(dir, p);
      if (ent.isDirectory()) {
        const w = walk(p);
        if (w) return w;
      } else if (rel !== 'manifest.json' && !listed.has(rel)) return `file ${rel} is not in its manifest`;
    }
    return null;
  };
  return walk(dir);
}

// ---------------------------------------------------------------------------------------------
// What the caches use

export interface FetchOptions {
  /** what the entry is, for a user: "kernel 6.1-vanilla", "guest image" */
  label?: string;
  log?: Logger;
}

const fallbackLog = makeLogger();
const mb = (b: number): string => `${(b / 1e6).toFixed(b < 10e6 ? 1 : 0)} MB`;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * A remote store with this process's policy: every download checked, an unreachable server said
 * once and then left alone (local work as if there were no remote), uploads only with push on.
 */
export class RemoteCache {
  private down: string | null = null;
  /** entries this process rejected: not downloaded again */
  private readonly rejected = new Set<string>();

  constructor(
    readonly store: RemoteStore,
    readonly push: boolean,
  ) {}

  get available(): boolean {
    return this.down === null;
  }

  /** Run `op`; an unreachable server turns into one warning per process and `fallback`. */
  private async guard<T>(op: () => Promise<T>, fallback: T, log: Logger, doing: string): Promise<T> {
    if (this.down !== null) return fallback;
    try {
      return await op();
    } catch (e) {
      if (!(e instanceof RemoteUnavailable)) throw e;
      this.down = e.why;
      log.warn(`remote cache unreachable (${e.why}): ${doing}`);
      return fallback;
    }
  }

  /**
   * Fill `staging` (an empty directory) with the entry `kind/key` from the remote, checked; true
   * when it holds the entry. A rejected entry is said (with why) and leaves `staging` empty.
   */
  async fetchInto(kind: string, key: string, staging: string, o: FetchOptions = {}): Promise<boolean> {
    const log = o.log ?? fallbackLog;
    const what = o.label ?? `${kind} entry ${key.slice(0, 12)}`;
    const t0 = Date.now();
    if (this.rejected.has(`${kind}/${key}`)) return false;
    return this.guard(
      async () => {
        let got: { bytes: number } | null;
        try {
          got = await this.store.get(kind, key, staging);
          if (!got) return false;
          const problem = entryDirProblem(staging, key);
          if (problem) throw new RemoteRejected(problem);
          // whatever unpacked it: directories 0755, files 0644/0755, no set-id bit (trust/archive.ts)
          const odd = normaliseTree(staging);
          if (odd.length) throw new RemoteRejected(`${odd[0]} (entries hold plain files and directories only)`);
        } catch (e) {
          if (!(e instanceof RemoteRejected)) throw e;
          for (const f of fs.readdirSync(staging)) fs.rmSync(path.join(staging, f), { recursive: true, force: true });
          this.rejected.add(`${kind}/${key}`);
          log.warn(`remote cache: entry ${kind}/${key.slice(0, 12)} (${what}) rejected: ${e.why}; building locally`);
          return false;
        }
        log.info(`downloaded ${what} from the remote cache (${mb(got.bytes)}, ${secs(Date.now() - t0)})`);
        return true;
      },
      false,
      log,
      'building locally',
    );
  }

  /** Upload the local entry in `dir` (push on only); an unreachable server is a warning. */
  async upload(kind: string, key: string, dir: string, o: FetchOptions & { force?: boolean } = {}): Promise<{ bytes: number } | null> {
    if (!this.push && !o.force) return null;
    const log = o.log ?? fallbackLog;
    const t0 = Date.now();
    return this.guard(
      async () => {
        try {
          const r = await this.store.put(kind, key, dir);
          log.info(`uploaded ${o.label ?? `${kind} entry ${key.slice(0, 12)}`} to the remote cache (${mb(r.bytes)}, ${secs(Date.now() - t0)})`);
          return r;
        } catch (e) {
          if (e instanceof RemoteUnavailable) throw e;
          // a local problem packing the entry: the run goes on, the entry stays local
          log.warn(`remote cache: cannot upload ${kind}/${key.slice(0, 12)}: ${(e as Error).message}`);
          return null;
        }
      },
      null,
      log,
      'not uploading',
    );
  }

  has(kind: string, key: string, log: Logger = fallbackLog): Promise<boolean | null> {
    return this.guard(() => this.store.has(kind, key), null, log, 'not uploading');
  }

  hasIndex(kind: string, name: string, log: Logger = fallbackLog): Promise<boolean | null> {
    return this.guard(() => this.store.hasIndex(kind, name), null, log, 'not uploading');
  }

  /** The index object's text, or null (missing, unreachable, or rejected: said with why). */
  getIndex(kind: string, name: string, log: Logger = fallbackLog): Promise<string | null> {
    return this.guard(
      async () => {
        try {
          return await this.store.getIndex(kind, name);
        } catch (e) {
          if (!(e instanceof RemoteRejected)) throw e;
          log.warn(`remote cache: index ${kind}/index/${name.slice(0, 12)} rejected: ${e.why}; building locally`);
          return null;
        }
      },
      null,
      log,
      'building locally',
    );
  }

  async putIndex(kind: string, name: string, text: string, o: { log?: Logger; force?: boolean } = {}): Promise<boolean> {
    if (!this.push && !o.force) return false;
    return this.guard(
      async () => {
        await this.store.putIndex(kind, name, text);
        return true;
      },
      false,
      o.log ?? fallbackLog,
      'not uploading',
    );
  }
}

let memo: { env: string; remote: RemoteCache | null } | undefined;

/** The remote cache this process's environment configures (one per process: it remembers an unreachable server), or null. */
export function remoteFromEnv(env: NodeJS.ProcessEnv = process.env): RemoteCache | null {
  const id = JSON.stringify(Object.values(REMOTE_ENV).map((v) => env[v] ?? ''));
  if (memo?.env === id) return memo.remote;
  const config = parseRemoteConfig(env);
  const remote = config ? new RemoteCache(new HttpRemoteStore({ config }), config.push) : null;
  memo = { env: id, remote };
  return remote;
}

/** A kernel index object's text: the kernel key, then what the inputs merged into the config. */
export function indexText(key: string, merged: unknown): string {
  return `${key}\n${JSON.stringify(merged ?? {})}\n`;
}

export function parseIndexText(text: string): { key: string; merged: Record<string, unknown> } | null {
  const [first, second] = text.split('\n');
  const key = first?.trim() ?? '';
  if (!KEY.test(key)) return null;
  let merged: Record<string, unknown> = {};
  try {
    const m: unknown = second?.trim() ? JSON.parse(second) : {};
    if (m && typeof m === 'object' && !Array.isArray(m)) merged = m as Record<string, unknown>;
  } catch {
    /* the key alone */
  }
  return { key, merged };
}
