// Content-addressed cache entries, published atomically: an entry is built in a private staging
// directory and renamed into place, so a reader sees either nothing or a complete entry. A
// manifest (written last, inside the staging dir) lists every file with its sha256; an entry whose
// files do not match its manifest is treated as corrupt, moved aside and rebuilt.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sha256, sha256File } from './hash.ts';
import { systemProbe, withFileLock, type LockOptions } from './lock.ts';
import type { Logger } from './log.ts';
import { onExitCleanup } from './proc.ts';
import { readInputFile } from '../trust/files.ts';
import { remoteFromEnv, type FetchOptions, type RemoteCache } from './remote.ts';

export { sha256, sha256File } from './hash.ts';

/** Stable hash of a JSON-able value (keys sorted). */
export function hashOf(value: unknown): string {
  const canon = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canon);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v as Record<string, unknown>)
          .sort()
          .map((k) => [k, canon((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return sha256(JSON.stringify(canon(value)));
}

/**
 * What identifies a file in a cache key. A file inside the cache's content-keyed entries never
 * changes in place, so its path relative to the cache (and its size) names its content on any
 * machine: keys made of it can be shared (a remote cache). Any other file: its absolute path, size
 * and modification time.
 */
export function cachedFileId(file: string, cacheDir: string): { rel: string; size: number } | { path: string; size: number; mtimeMs: number } {
  const abs = path.resolve(file);
  const st = fs.statSync(abs);
  const rel = path.relative(path.resolve(cacheDir), abs);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return { rel, size: st.size };
  return { path: abs, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
}

/** What changes when a file is written, truncated or replaced. */
interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}
function stampOf(st: fs.Stats): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}
function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  return !!a && !!b && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

export interface Manifest<M> {
  key: string;
  createdAt: string;
  files: Record<string, string>; // relative path -> sha256
  meta: M;
}

const MANIFEST = 'manifest.json';

/** Store directories swept by this process. */
const swept = new Set<string>();

export interface StoreOptions {
  /** the remote cache shared with other machines (default: the one the environment configures, see remote.ts); null: none */
  remote?: RemoteCache | null;
  /** the entries' kind on the remote (default: the directory's name: kernels, images, ...) */
  kind?: string;
}

export class EntryStore<M> {
  readonly remote: RemoteCache | null;
  readonly kind: string;

  constructor(
    readonly dir: string,
    opts: StoreOptions = {},
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.remote = opts.remote !== undefined ? opts.remote : remoteFromEnv();
    this.kind = opts.kind ?? path.basename(dir);
  }

  entryDir(key: string): string {
    return path.join(this.dir, key);
  }

  /** Return the manifest of a complete, intact entry, or null. A corrupt entry is moved aside. */
  get(key: string, opts: { verify?: boolean } = {}): Manifest<M> | null {
    const dir = this.entryDir(key);
    const mf = path.join(dir, MANIFEST);
    if (!fs.existsSync(mf)) {
      if (fs.existsSync(dir)) this.discard(key, 'no manifest');
      return null;
    }
    let manifest: Manifest<M>;
    try {
      manifest = JSON.parse(fs.readFileSync(mf, 'utf8')) as Manifest<M>;
    } catch {
      this.discard(key, 'unreadable manifest');
      return null;
    }
    // verify: false (large entries: a 140 MB source tarball, a package layer, a prebuilt image) checks
    // the digests once, then only that no file was written since (size, mtime, ctime, inode: a write,
    // a truncation or a replacement changes one of them; only bit rot under the file system would not)
    const quick = opts.verify === false ? this.readStamps(key) : null;
    const stamps: Record<string, FileStamp> = {};
    let hashed = false;
    for (const [rel, digest] of Object.entries(manifest.files)) {
      const f = path.join(dir, rel);
      let st: fs.Stats;
      try {
        st = fs.statSync(f);
      } catch {
        this.discard(key, `file ${rel} is missing`);
        return null;
      }
      stamps[rel] = stampOf(st);
      if (quick && sameStamp(quick[rel], stamps[rel])) continue;
      hashed = true;
      if (sha256File(f) !== digest) {
        this.discard(key, `file ${rel} does not match its manifest`);
        return null;
      }
    }
    if (hashed) this.writeStamps(key, stamps);
    try {
      const now = new Date();
      fs.utimesSync(mf, now, now); // last use, for `cache gc`
    } catch {
      /* read-only cache: fine */
    }
    return manifest;
  }

  lastDiscard: string | null = null;

  /** Where the stamps of an entry's checked files are kept (beside the entries: an entry's files are its manifest's). */
  private stampFile(key: string): string {
    return path.join(this.dir, '.checked', `${key}.json`);
  }

  private readStamps(key: string): Record<string, FileStamp> | null {
    try {
      return JSON.parse(readInputFile(this.stampFile(key), 1024 * 1024, 'checked stamps')) as Record<string, FileStamp>;
    } catch {
      return null;
    }
  }

  private writeStamps(key: string, stamps: Record<string, FileStamp>): void {
    try {
      const f = this.stampFile(key);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(`${f}.${process.pid}.tmp`, JSON.stringify(stamps));
      fs.renameSync(`${f}.${process.pid}.tmp`, f);
    } catch {
      /* read-only cache: the digests are checked again next time */
    }
  }

  private discard(key: string, why: string): void {
    fs.rmSync(this.stampFile(key), { force: true });
    const dir = this.entryDir(key);
    const aside = path.join(this.dir, `.corrupt-${key}-${process.pid}-${Date.now()}`);
    try {
      fs.renameSync(dir, aside);
      fs.rmSync(aside, { recursive: true, force: true });
    } catch {
      /* someone else removed it */
    }
    this.lastDiscard = `cache entry ${key.slice(0, 12)} discarded: ${why}`;
  }

  /** A private staging directory on the same file system (for an atomic rename). */
  staging(key: string): string {
    const d = path.join(this.dir, `.staging-${key.slice(0, 16)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    fs.mkdirSync(d, { recursive: true });
    // gone at exit, even on SIGINT (after publish it no longer exists: nothing to remove)
    onExitCleanup(() => fs.rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /**
   * The entry under `key`: the local one, else the remote cache's (downloaded, checked, and
   * published here whole), else null. For callers that fill and publish by hand (under their own
   * lock, as `getOrFill` does: look, lock, look again, fetch, fill).
   */
  async fetch(key: string, o: FetchOptions & { verify?: boolean } = {}): Promise<Manifest<M> | null> {
    const local = this.get(key, o.verify === undefined ? {} : { verify: o.verify });
    if (local || !this.remote?.available) return local;
    this.sweepOnce();
    const staging = this.staging(key);
    try {
      if (!(await this.remote.fetchInto(this.kind, key, staging, o))) return null;
      return this.adopt(key, staging);
    } finally {
      fs.rmSync(staging, { recursive: true, force: true }); // gone after the rename; else a rejected entry
    }
  }

  /** Rename a complete, checked entry (its manifest written elsewhere) into place. */
  private adopt(key: string, staging: string): Manifest<M> | null {
    try {
      fs.renameSync(staging, this.entryDir(key));
    } catch {
      /* another run published the same key first */
    }
    return this.get(key, { verify: false });
  }

  /** With push on, upload the local entry `key` to the remote cache (a warning when it cannot); true when it was uploaded. */
  async push(key: string, o: FetchOptions & { ifMissing?: boolean } = {}): Promise<boolean> {
    if (!this.remote?.push || !this.remote.available) return false;
    if (!fs.existsSync(path.join(this.entryDir(key), MANIFEST))) return false;
    if (o.ifMissing) {
      const has = await this.remote.has(this.kind, key, o.log);
      if (has !== false) return has === true;
    }
    return (await this.remote.upload(this.kind, key, this.entryDir(key), o)) !== null;
  }

  /** Write the manifest into `staging` and rename it into place. Returns the final directory. */
  publish(key: string, staging: string, meta: M): Manifest<M> {
    const files: Record<string, string> = {};
    const walk = (d: string): void => {
      for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, ent.name);
        if (ent.isDirectory()) walk(p);
        else if (ent.isFile() && ent.name !== MANIFEST) files[path.relative(staging, p)] = sha256File(p);
      }
    };
    walk(staging);
    const manifest: Manifest<M> = { key, createdAt: new Date().toISOString(), files, meta };
    fs.writeFileSync(path.join(staging, MANIFEST), JSON.stringify(manifest, null, 2));
    const dest = this.entryDir(key);
    try {
      fs.renameSync(staging, dest);
    } catch (err) {
      // another run published the same key first: keep theirs (same inputs, same content)
      fs.rmSync(staging, { recursive: true, force: true });
      const theirs = this.get(key);
      if (theirs) return theirs;
      throw err;
    }
    // just hashed: its stamps, so that a `verify: false` use does not hash it again
    const stamps: Record<string, FileStamp> = {};
    try {
      for (const rel of Object.keys(files)) stamps[rel] = stampOf(fs.statSync(path.join(dest, rel)));
      this.writeStamps(key, stamps);
    } catch {
      /* checked on first use instead */
    }
    return manifest;
  }

  /**
   * The entry under `key`, or, when there is none, the one `fill` makes: under a lock on the key,
   * looking again once the lock is held (another run may have made it meanwhile), in a private
   * staging directory that `fill` writes and that is removed when `fill` fails, so that no
   * half-written entry is ever seen. `fill` returns the entry's meta.
   */
  async getOrFill(
    key: string,
    fill: (staging: string) => Promise<M>,
    opts: { verify?: boolean; label?: string; log?: Logger } = {},
  ): Promise<{ manifest: Manifest<M>; cached: boolean; downloaded?: boolean }> {
    const verify = opts.verify === undefined ? {} : { verify: opts.verify };
    this.lastDiscard = null;
    const hit = this.get(key, verify);
    if (hit) return { manifest: hit, cached: true };
    // a corrupt entry (a file changed, truncated or gone) was moved aside: say so, then make it again
    if (this.lastDiscard) (opts.log ? opts.log.warn.bind(opts.log) : (m: string) => void process.stderr.write(`warning: ${m}\n`))(`${opts.label ?? `${this.kind} entry`}: ${this.lastDiscard} (making it again)`);
    const fo: FetchOptions = { ...(opts.label ? { label: opts.label } : {}), ...(opts.log ? { log: opts.log } : {}) };
    const lockOpts: LockOptions = {
      what: `making ${opts.label ?? `${this.kind} entry ${key.slice(0, 12)}`}`,
      waitingFor: `${opts.label ?? `the ${this.kind} entry ${key.slice(0, 12)}`} (another run is making it)`,
      ...(opts.log ? { log: opts.log } : {}),
    };
    return withLock(path.join(this.dir, `.lock-${key.slice(0, 16)}`), async () => {
      this.sweepOnce(); // what killed fills and downloads left here, whatever the entries' kind
      const again = this.get(key, verify);
      if (again) return { manifest: again, cached: true };
      const remote = await this.fetch(key, { ...fo, ...verify });
      if (remote) return { manifest: remote, cached: true, downloaded: true };
      const staging = this.staging(key);
      let manifest: Manifest<M>;
      try {
        const meta = await fill(staging);
        manifest = this.publish(key, staging, meta);
      } catch (e) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw e;
      }
      await this.push(key, fo);
      return { manifest, cached: false };
    }, lockOpts);
  }

  /** Remove staging directories (and remote cache downloads and uploads, half-made lock files) left by dead processes. */
  sweep(): void {
    for (const name of fs.readdirSync(this.dir)) {
      const m =
        /^\.staging-.*-(\d+)-[0-9a-f]+(?:\.download)?$/.exec(name) ??
        /^\.upload-[0-9a-f]+-(\d+)-[0-9a-f]+\.tar$/.exec(name) ??
        /^\.lock-[0-9a-zA-Z]+\.owner\.json\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid) continue;
      if (!systemProbe.alive(pid)) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
    }
  }

  /** `sweep`, once per process and store directory (a fill or a download of any kind of entry starts with it). */
  sweepOnce(): void {
    if (swept.has(this.dir)) return;
    swept.add(this.dir);
    try {
      this.sweep();
    } catch {
      /* a read-only cache: nothing to sweep */
    }
  }
}

/**
 * Hold an exclusive lock on `target` while `fn` runs (see lock.ts: taken over only from a holder
 * that is gone; a wait says what it waits for and who holds it). `opts` may be just a callback
 * called once when the lock is found held.
 */
export async function withLock<T>(target: string, fn: () => Promise<T>, opts?: LockOptions | (() => void)): Promise<T> {
  const o: LockOptions = typeof opts === 'function' ? { onWait: opts } : (opts ?? {});
  return withFileLock(target, fn, o);
}
