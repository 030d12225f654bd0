// Content-addressed cache entries, published atomically: an entry is built in a private staging
// directory and renamed into place, so a reader sees either nothing or a complete entry. A
// manifest (written last, inside the staging dir) lists every file with its sha256; an entry whose
// files do not match its manifest is treated as corrupt, moved aside and rebuilt.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';

export function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

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

export interface Manifest<M> {
  key: string;
  createdAt: string;
  files: Record<string, string>; // relative path -> sha256
  meta: M;
}

const MANIFEST = 'manifest.json';

export class EntryStore<M> {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
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
    for (const [rel, digest] of Object.entries(manifest.files)) {
      const f = path.join(dir, rel);
      if (!fs.existsSync(f) || (opts.verify !== false && sha256File(f) !== digest)) {
        this.discard(key, `file ${rel} does not match its manifest`);
        return null;
      }
    }
    try {
      const now = new Date();
      fs.utimesSync(mf, now, now); // last use, for `cache gc`
    } catch {
      /* read-only cache: fine */
    }
    return manifest;
  }

  lastDiscard: string | null = null;

  private discard(key: string, why: string): void {
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
    return d;
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
    return manifest;
  }

  /**
   * The entry under `key`, or, when there is none, the one `fill` makes: under a lock on the key,
   * looking again once the lock is held (another run may have made it meanwhile), in a private
   * staging directory that `fill` writes and that is removed when `fill` fails, so that no
   * half-written entry is ever seen. `fill` returns the entry's meta.
   */
  async getOrFill(key: string, fill: (staging: string) => Promise<M>, opts: { verify?: boolean } = {}): Promise<{ manifest: Manifest<M>; cached: boolean }> {
    const hit = this.get(key, opts);
    if (hit) return { manifest: hit, cached: true };
    return withLock(path.join(this.dir, `.lock-${key.slice(0, 16)}`), async () => {
      const again = this.get(key, opts);
      if (again) return { manifest: again, cached: true };
      const staging = this.staging(key);
      try {
        const meta = await fill(staging);
        return { manifest: this.publish(key, staging, meta), cached: false };
      } catch (e) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw e;
      }
    });
  }

  /** Remove staging directories left by dead processes. */
  sweep(): void {
    for (const name of fs.readdirSync(this.dir)) {
      const m = /^\.staging-.*-(\d+)-[0-9a-f]+$/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid) continue;
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (!alive) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
    }
  }
}

/** Hold an exclusive lock on `target` (a file or directory that exists) while `fn` runs. */
export async function withLock<T>(target: string, fn: () => Promise<T>, onWait?: () => void): Promise<T> {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  if (!fs.existsSync(target)) fs.writeFileSync(target, '');
  let release: (() => Promise<void>) | undefined;
  let waited = false;
  for (;;) {
    try {
      release = await lockfile.lock(target, { stale: 30_000, update: 5_000, realpath: false });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (!waited) onWait?.();
      waited = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}
