// `npm run cache`: what the kernel cache holds, and `cache gc` to shrink it (least recently used
// first; never what a running build holds or what was used in the last minutes).
import path from 'node:path';
import type { Command } from 'commander';
import { age, parseDuration, parseSize, planGc, summarize, type GcPolicy, type Unit } from '../cache/plan.ts';
import { removeUnit, scanCache } from '../cache/store.ts';
import { parseKinds, pushCache, PUSH_KINDS } from '../cache/push.ts';
import { makeLogger } from '../util/log.ts';
import { remoteFromEnv, REMOTE_ENV } from '../util/remote.ts';
import { freeBytes, human } from '../util/disk.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';
import { cacheRoot } from '../util/paths.ts';
import { guarded } from './common.ts';
import { exitCodesHelp } from './options.ts';

interface LsOpts {
  json?: boolean;
}
interface PushOpts extends LsOpts {
  kind: string;
  since?: string;
}
interface GcOpts extends LsOpts {
  maxSize?: string;
  olderThan?: string;
  keepRecent: string;
  dryRun?: boolean;
}

const out = (s: string): void => void process.stdout.write(s + '\n');

/** Version of `cache ls --json` and `cache gc --json`. */
const CACHE_SCHEMA_VERSION = 1;

function unitJson(u: Unit, now: number): Record<string, unknown> {
  return { area: u.area, id: u.id, bytes: u.bytes, usedAt: new Date(u.usedAt).toISOString(), unusedMs: now - u.usedAt, ...(u.inUse ? { inUse: true } : {}), ...(u.orphan ? { orphan: true } : {}) };
}

export function registerCache(program: Command): void {
  const cache = program.command('cache').description('show the kernel cache (trees, kernels, snapshots, images, downloads) and shrink it').addHelpText('after', exitCodesHelp());
  cache
    .command('ls', { isDefault: true })
    .description('sizes per area, each kernel tree with its last use, and the free disk space')
    .addHelpText('after', exitCodesHelp())
    .option('--json', 'print JSON')
    .action((opts: LsOpts) =>
      guarded(async () => {
        const dir = cacheRoot();
        const now = Date.now();
        const units = await scanCache(dir);
        const areas = summarize(units);
        const free = freeBytes(dir);
        if (opts.json) {
          out(JSON.stringify({ schemaVersion: CACHE_SCHEMA_VERSION, cacheDir: dir, freeBytes: free, areas, units: units.map((u) => unitJson(u, now)) }, null, 2));
          return ExitCode.ok;
        }
        out(`cache: ${dir} (${human(free)} free on its disk)`);
        out(`${'area'.padEnd(10)} ${'entries'.padStart(7)} ${'size'.padStart(9)}  last used`);
        for (const a of areas) out(`${a.area.padEnd(10)} ${String(a.count).padStart(7)} ${human(a.bytes).padStart(9)}  ${a.lastUsed ? age(now - a.lastUsed) + ' ago' : '-'}`);
        out(`${'total'.padEnd(10)} ${String(units.length).padStart(7)} ${human(units.reduce((s, u) => s + u.bytes, 0)).padStart(9)}`);
        const trees = units.filter((u) => u.area === 'trees');
        if (trees.length) {
          out('\nkernel trees (source + build directories; removing one costs a re-extraction and a rebuild):');
          for (const t of trees) out(`  ${path.basename(t.id).padEnd(44)} ${human(t.bytes).padStart(9)}  used ${age(now - t.usedAt)} ago${t.inUse ? '  [in use]' : ''}${t.orphan ? '  [its git repository is gone]' : ''}`);
        }
        out('\nnot counted: ccache (keeps its own size limit) and small memo files');
        return ExitCode.ok;
      }),
    );
  cache
    .command('gc')
    .description('remove least recently used cache units (and worktrees whose git repository is gone); without --max-size or --older-than: --older-than 7d')
    .option('--max-size <size>', 'shrink the cache to at most this size, least recently used first (e.g. 10G, 0)')
    .option('--older-than <duration>', 'remove what was not used for this long (e.g. 30d, 12h)')
    .option('--keep-recent <duration>', 'never remove what was used this recently (a run may be reading it)', '10m')
    .option('--dry-run', 'only say what would be removed')
    .addHelpText('after', exitCodesHelp())
    .option('--json', 'print JSON')
    .action((opts: GcOpts) =>
      guarded(async () => {
        const dir = cacheRoot();
        const now = Date.now();
        const policy: GcPolicy = {
          graceMs: parseDuration(opts.keepRecent, '--keep-recent'),
          now,
          ...(opts.maxSize !== undefined ? { maxBytes: parseSize(opts.maxSize, '--max-size') } : {}),
          ...(opts.olderThan !== undefined ? { olderThanMs: parseDuration(opts.olderThan, '--older-than') } : {}),
        };
        if (policy.maxBytes === undefined && policy.olderThanMs === undefined) policy.olderThanMs = 7 * 86_400_000;
        const before = freeBytes(dir);
        const plan = planGc(await scanCache(dir), policy);
        const removed: Unit[] = [];
        const busy: Unit[] = [];
        if (!opts.dryRun)
          for (const u of plan.victims) {
            if (await removeUnit(u)) removed.push(u);
            else busy.push(u); // a build took its lock after the scan
          }
        const freed = (opts.dryRun ? plan.victims : removed).reduce((s, u) => s + u.bytes, 0);
        if (opts.json) {
          out(
            JSON.stringify(
              {
                schemaVersion: CACHE_SCHEMA_VERSION,
                cacheDir: dir,
                dryRun: opts.dryRun ?? false,
                policy,
                totalBytes: plan.totalBytes,
                freedBytes: freed,
                removed: (opts.dryRun ? plan.victims : removed).map((u) => unitJson(u, now)),
                spared: [...plan.spared.map((s) => ({ ...unitJson(s.unit, now), why: s.why })), ...busy.map((u) => ({ ...unitJson(u, now), why: 'in use' }))],
                overBudget: plan.overBudget,
                freeBytesBefore: before,
                freeBytesAfter: freeBytes(dir),
              },
              null,
              2,
            ),
          );
          return ExitCode.ok;
        }
        const verb = opts.dryRun ? 'would remove' : 'removed';
        for (const u of opts.dryRun ? plan.victims : removed) out(`${verb} ${u.id} (${human(u.bytes)}, ${u.orphan ? 'its git repository is gone' : `unused for ${age(now - u.usedAt)}`})`);
        for (const s of plan.spared) out(`kept ${s.unit.id} (${human(s.unit.bytes)}): ${s.why}`);
        for (const u of busy) out(`kept ${u.id} (${human(u.bytes)}): in use`);
        const n = opts.dryRun ? plan.victims.length : removed.length;
        out(`${verb} ${n} unit${n === 1 ? '' : 's'}, ${human(freed)}: cache ${human(plan.totalBytes)} -> ${human(plan.totalBytes - freed)}; ${human(freeBytes(dir))} free on its disk`);
        if (plan.overBudget) out(`still above --max-size ${opts.maxSize}: the rest is in use or used within --keep-recent ${opts.keepRecent}`);
        return ExitCode.ok;
      }),
    );
  cache
    .command('push')
    .description(`upload every complete local entry the remote cache (${REMOTE_ENV.url}) lacks, with the kernel index files leading to them`)
    .option('--kind <kinds>', `cache areas, comma-separated (${PUSH_KINDS.join(', ')})`, 'kernels,images')
    .option('--since <duration>', 'only entries made or used within this time (e.g. 2h)')
    .option('--json', 'print JSON')
    .addHelpText('after', exitCodesHelp())
    .action((opts: PushOpts) =>
      guarded(async () => {
        const kinds = parseKinds(opts.kind, '--kind');
        const since = opts.since !== undefined ? Date.now() - parseDuration(opts.since, '--since') : undefined;
        const remote = remoteFromEnv();
        if (!remote) throw new HarnessError('bad-input', `no remote cache is configured`, { field: REMOTE_ENV.url, hint: `set ${REMOTE_ENV.url} to its base URL (docs/remote-cache.md)` });
        const report = await pushCache({ cacheDir: cacheRoot(), kinds, remote, log: makeLogger({ quiet: opts.json ?? false }), ...(since !== undefined ? { since } : {}) });
        const bytes = report.uploaded.reduce((s, u) => s + u.bytes, 0);
        if (opts.json) {
          out(JSON.stringify({ schemaVersion: CACHE_SCHEMA_VERSION, ...report, uploadedBytes: bytes }, null, 2));
          return ExitCode.ok;
        }
        for (const u of report.uploaded) out(`uploaded ${u.kind}/${u.key}${u.name ? ` (${u.name})` : ''} ${human(u.bytes)}`);
        for (const i of report.indexes) out(`uploaded ${i.kind}/index/${i.name} -> ${i.key.slice(0, 12)}`);
        for (const c of report.skippedCorrupt) out(`skipped ${c}: it does not match its manifest (discarded)`);
        out(`uploaded ${report.uploaded.length} entr${report.uploaded.length === 1 ? 'y' : 'ies'} (${human(bytes)}) and ${report.indexes.length} index file${report.indexes.length === 1 ? '' : 's'} to ${report.where}; ${report.alreadyThere} already there`);
        return ExitCode.ok;
      }),
    );
}
