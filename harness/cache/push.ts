// `cache push`: upload the complete local entries the remote cache lacks (and the kernel index
// files that lead to them), so that other machines download instead of building.
import fs from 'node:fs';
import path from 'node:path';
import { EntryStore } from '../util/cache.ts';
import { HarnessError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import { indexText, type RemoteCache } from '../util/remote.ts';

export const PUSH_KINDS = ['kernels', 'images', 'downloads', 'snapshots'] as const;
export type PushKind = (typeof PUSH_KINDS)[number];

const KEY = /^[0-9a-f]{64}$/;

export function parseKinds(s: string, field: string): PushKind[] {
  const kinds = s.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = kinds.filter((k) => !(PUSH_KINDS as readonly string[]).includes(k));
  if (bad.length || kinds.length === 0) throw new HarnessError('bad-input', `"${s}" names no cache area (${PUSH_KINDS.join(', ')})`, { field });
  return [...new Set(kinds)] as PushKind[];
}

export interface PushReport {
  where: string;
  uploaded: Array<{ kind: string; key: string; name?: string; bytes: number }>;
  alreadyThere: number;
  skippedCorrupt: string[];
  indexes: Array<{ kind: string; name: string; key: string }>;
}

/** Entries of `dir` (keys) whose manifest was written or used at or after `since`. */
function entryKeys(dir: string, since: number): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => KEY.test(n))
    .filter((n) => {
      const st = fs.statSync(path.join(dir, n, 'manifest.json'), { throwIfNoEntry: false });
      return !!st && st.mtimeMs >= since;
    })
    .sort();
}

export async function pushCache(o: { cacheDir: string; kinds: PushKind[]; remote: RemoteCache; since?: number; log: Logger }): Promise<PushReport> {
  const report: PushReport = { where: o.remote.store.where, uploaded: [], alreadyThere: 0, skippedCorrupt: [], indexes: [] };
  const unreachable = (): HarnessError =>
    new HarnessError('missing-prereq', `the remote cache ${o.remote.store.where} cannot be reached; ${report.uploaded.length} entries were uploaded before it went away`, {
      hint: 'the warning above says why; run cache push again when it answers',
    });
  for (const kind of o.kinds) {
    const store = new EntryStore<{ name?: string }>(path.join(o.cacheDir, kind), { remote: o.remote, kind });
    const onRemote = new Set<string>();
    for (const key of entryKeys(store.dir, o.since ?? 0)) {
      const has = await o.remote.has(kind, key, o.log);
      if (has === null) throw unreachable();
      if (has) {
        onRemote.add(key);
        report.alreadyThere++;
        continue;
      }
      const m = store.get(key); // complete and intact: every file against its manifest
      if (!m) {
        report.skippedCorrupt.push(`${kind}/${key}`);
        if (store.lastDiscard) o.log.warn(store.lastDiscard);
        continue;
      }
      const name = typeof m.meta?.name === 'string' ? m.meta.name : undefined;
      const up = await o.remote.upload(kind, key, store.entryDir(key), { force: true, log: o.log, label: `${kind}/${key.slice(0, 12)}${name ? ` (${name})` : ''}` });
      if (!up) {
        if (!o.remote.available) throw unreachable();
        continue;
      }
      onRemote.add(key);
      report.uploaded.push({ kind, key, ...(name ? { name } : {}), bytes: up.bytes });
    }
    // index files (kernels: inputs -> kernel key) leading to an entry the remote has
    const indexDir = path.join(store.dir, 'index');
    if (!fs.existsSync(indexDir)) continue;
    for (const name of fs.readdirSync(indexDir).filter((n) => KEY.test(n)).sort()) {
      const file = path.join(indexDir, name);
      const key = fs.readFileSync(file, 'utf8').trim();
      if (!onRemote.has(key)) continue;
      const has = await o.remote.hasIndex(kind, name, o.log);
      if (has === null) throw unreachable();
      if (has) continue;
      let merged: unknown = {};
      try {
        merged = JSON.parse(fs.readFileSync(`${file}.merged`, 'utf8'));
      } catch {
        /* no merged options */
      }
      if (!(await o.remote.putIndex(kind, name, indexText(key, merged), { force: true, log: o.log }))) throw unreachable();
      report.indexes.push({ kind, name, key });
    }
  }
  return report;
}
