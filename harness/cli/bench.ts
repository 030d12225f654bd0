// `npm run bench`: side-by-side timings in one run (medians), since these machines are noisy.
//  (a) naive bare boot: -M pc, compressed bzImage, the same files as the harness's image (busybox,
//      iproute2 and libraries) packed with gzip as one would by hand, /init reboots at once
//  (f) the floor: -M microvm, direct PVH entry of the uncompressed vmlinux, same files uncompressed,
//      same halting init
//  (b) the harness's full run of one case on that kernel (render, restore the booted guest from its
//      snapshot, send the case, run, parse, verdict), and the same run booting cold (no snapshot)
//  (c) warm `repro` end to end (the CLI, nothing to build)
//  (d) cold vs warm kernel build   (e) runs with concurrency 1 vs 2
//  (h) one repeat of the case restored from its case snapshot (the guest saved once the case was set
//      up): restore, go (reseed, clock, jitter), probes, evidence, verdict; repeatRatio = h/a
//  (i) coldFromRemoteMs: a cold `repro` (empty local cache) against a remote cache (nginx WebDAV on
//      127.0.0.1) filled from this warm cache with `cache push`
//  (g) with --trace-path: the same case run traced (tracing variant of the kernel), without and with
//      return probes; the arming at boot; the tracing variant's build; warm `repro --trace-path`
import { readChannelText } from '../trust/channel.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { execa } from 'execa';
import { loadCase } from '../cases/load.ts';
import { composeInitramfs } from '../images/initramfs.ts';
import { ensureKernel } from '../kernels/providers/index.ts';
import { loadKernel } from '../kernels/load.ts';
import { prepare, runAll, type RunSpec } from '../pipeline/prepare.ts';
import { runCase } from '../pipeline/runCase.ts';
import { davUnavailable, startDavServer } from '../cache/davserver.ts';
import { EntryStore } from '../util/cache.ts';
import { ExitCode } from '../util/errors.ts';
import { makeLogger, silentLogger } from '../util/log.ts';
import { cacheRoot, repoRoot } from '../util/paths.ts';
import { run } from '../util/proc.ts';
import type { KernelMeta } from '../kernels/artifact.ts';
import { qemuArgs } from '../vm/qemu.ts';
import { QEMU } from '../vm/run.ts';
import { SnapshotStore } from '../vm/snapshot.ts';
import { repeatPlan, repeatRun } from '../pipeline/repeats.ts';
import { guarded, newRunDir } from './common.ts';
import { exitCodesHelp, hiddenAlias, intArg, repeatOption } from './options.ts';
import { parseAgentOutput } from '../agent/protocol.ts';
import { pathOf } from '../pipeline/tracePath.ts';
import { isNoise, ownCalls } from '../observe/path.ts';

/** Size and save time of a case snapshot, from its cache entry. */
function caseSnapshotInfo(cacheDir: string, key: string | undefined): { sizeBytes: number; saveMs: number } | null {
  if (!key) return null;
  const m = new SnapshotStore(cacheDir).lookup(key);
  return m ? { sizeBytes: m.meta.sizeBytes, saveMs: m.meta.saveMs } : null;
}

/** (g): what --trace-path costs on this kernel and case (tracing variant, warm caches). */
async function benchTracing(o: { kdef: ReturnType<typeof loadKernel>; kcase: ReturnType<typeof loadCase>; cacheDir: string; runDir: string; n: number; install: boolean; log: ReturnType<typeof makeLogger>; plainMs: number }) {
  const prepared = await prepare({ kernels: [o.kdef], cases: [o.kcase], cacheDir: o.cacheDir, log: o.log, install: o.install, workDir: o.runDir, tracing: true });
  const spec = prepared.spec(o.kdef.def.name, o.kcase.def.name);
  const one = (label: string, returns: string[]) =>
    runCase({ kernel: spec.kernel, kcase: spec.kcase, baseImage: prepared.image.path, layers: spec.layers ?? [], sourceFiles: spec.sourceFiles ?? {}, accel: prepared.accel.accel, runDir: o.runDir, label, tracePath: { returns } });
  // a first traced run makes the tracing kernel's snapshot (the graph armed at boot)
  const first = await one('bench-trace-snapshot', []);
  const boot = parseAgentOutput(readChannelText(first.files.results));
  const armMs = boot.readyUptimeMs !== undefined && boot.hello ? boot.readyUptimeMs - boot.hello.uptimeMs : null;
  // return probes on the functions of the recorded packets (as many as a second pass typically gets)
  const calls = pathOf(first).units.flatMap((u) => ownCalls(u.root));
  const returns = [...new Set(calls.filter((c) => !isNoise(c.fn)).map((c) => c.fn))].slice(-13);
  o.log.info(`measuring (g) traced runs of ${o.kcase.def.name} on the tracing variant, ${o.n} times, without and with ${returns.length} return probes`);
  const t: number[] = [];
  const tr: number[] = [];
  const guest: number[] = [];
  for (let i = 0; i < o.n; i++) {
    let t0 = Date.now();
    const r = await one(`bench-trace-${i}`, []);
    t.push(Date.now() - t0);
    if (r.vm.caseMs !== undefined) guest.push(r.vm.caseMs);
    t0 = Date.now();
    await one(`bench-trace-ret-${i}`, returns);
    tr.push(Date.now() - t0);
  }
  const c: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const r = await execa(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'harness/cli/main.ts'), 'repro', '--trace-path', '--json', '--no-install'], { reject: false, env: { KERNEL_REPRO_CACHE: o.cacheDir } });
    c.push(Date.now() - t0);
    if (r.exitCode !== 0) o.log.warn(`warm repro --trace-path exited ${r.exitCode}`);
  }
  return {
    kernel: { configHash: spec.kernel.meta.configHash, traceConfig: spec.kernel.meta.traceConfig ?? [] },
    tracedRunMs: median(t),
    tracedGuestCaseMs: guest.length ? median(guest) : null,
    tracedWithReturnsMs: median(tr),
    returnProbes: returns.length,
    extraPerRunMs: median(t) - o.plainMs,
    armMs,
    buildMs: spec.kernel.meta.buildMs,
    warmReproMs: median(c),
    samples: { tracedRunMs: t, tracedWithReturnsMs: tr, warmReproMs: c },
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

/** The harness's own image content with an init that reboots at once; gzip'd as a user would pack it by hand. */
async function haltImage(dir: string, base: string, gzip: boolean): Promise<string> {
  const raw = path.join(dir, 'halt.cpio');
  if (!fs.existsSync(raw)) await composeInitramfs(base, { '/init': '#!/bin/sh\n/bin/busybox reboot -f\n' }, raw);
  if (!gzip) return raw;
  const out = `${raw}.gz`;
  await run('sh', ['-c', 'gzip -c "$1" > "$2"', 'x', raw, out], { timeoutMs: 60_000 });
  return out;
}

async function timeQemu(args: string[]): Promise<number> {
  const r = await run(QEMU, args, { timeoutMs: 60_000 });
  if (r.exitCode !== 0 || r.timedOut) throw new Error(`bare boot failed (${r.exitCode}): ${r.stderr.slice(-300)}`);
  return r.durationMs;
}

interface BenchOpts {
  repeat: number;
  runs?: number;
  json?: boolean;
  kernel: string;
  case: string;
  results?: string;
  install: boolean;
  tracePath?: boolean;
  remoteCache: boolean;
}

const tsxCli = (args: string[], env: Record<string, string>) =>
  execa(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'harness/cli/main.ts'), ...args], { reject: false, env, stdin: 'ignore' });

type RemoteBench =
  | { skipped: string }
  | {
      coldFromRemoteMs: number;
      exitCode: number;
      /** the cold run built something instead of downloading it */
      builtLocally: boolean;
      downloads: string[];
      push: { ms: number; entries: number; bytes: number; indexes: number };
    };

/** (i): fill a throwaway WebDAV remote cache from this warm cache with `cache push`, then time a
 * cold `repro` (the CLI, default kernels and cases, an empty local cache) against it. */
async function benchColdFromRemote(o: { cacheDir: string; runDir: string; log: ReturnType<typeof makeLogger>; since: number }): Promise<RemoteBench> {
  const why = await davUnavailable();
  if (why) return { skipped: why };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-bench-remote-'));
  const dav = await startDavServer({ root: path.join(tmp, 'www'), dir: path.join(tmp, 'nginx') });
  try {
    const none = { KERNEL_REPRO_REMOTE_CACHE_PUSH: '', KERNEL_REPRO_REMOTE_CACHE_HEADER: '', KERNEL_REPRO_REMOTE_CACHE_SIGN: '' };
    // what this bench used ((c) ran the default job warm): kernels, images and booted-kernel snapshots, as a nightly publishes them
    const since = `${Math.ceil((Date.now() - o.since) / 1000) + 5}s`;
    o.log.info(`measuring (i) cold repro from a remote cache: cache push of the kernels, images and snapshots this bench used to ${dav.url}`);
    let t0 = Date.now();
    const push = await tsxCli(['cache', 'push', '--json', '--kind', 'kernels,images,snapshots', '--since', since], { ...none, KERNEL_REPRO_CACHE: o.cacheDir, KERNEL_REPRO_REMOTE_CACHE: dav.url });
    const pushMs = Date.now() - t0;
    if (push.exitCode !== 0) return { skipped: `cache push failed: ${String(push.stderr).trim().split('\n').slice(-2).join(' ')}` };
    const rep = JSON.parse(String(push.stdout)) as { uploaded: unknown[]; uploadedBytes: number; indexes: unknown[] };
    o.log.info(`(i) pushed ${rep.uploaded.length} entries (${Math.round(rep.uploadedBytes / 1e6)} MB) in ${(pushMs / 1000).toFixed(1)} s; cold repro with an empty local cache`);
    const empty = path.join(tmp, 'cache');
    t0 = Date.now();
    const r = await tsxCli(['repro', '--json', '--no-install', '--results', path.join(o.runDir, 'cold-from-remote')], { ...none, KERNEL_REPRO_CACHE: empty, KERNEL_REPRO_REMOTE_CACHE: dav.url });
    const coldFromRemoteMs = Date.now() - t0;
    const err = String(r.stderr);
    return {
      coldFromRemoteMs,
      exitCode: r.exitCode ?? 1,
      builtLocally: /building 6\.1-|configuring |building the guest image/.test(err),
      downloads: err.split('\n').filter((l) => l.includes('from the remote cache')).map((l) => l.replace(/^\[\s*[\d.]+s\]\s*/, '')),
      push: { ms: pushMs, entries: rep.uploaded.length, bytes: rep.uploadedBytes, indexes: rep.indexes.length },
    };
  } finally {
    await dav.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Version of bench.json (and `bench --json`). */
export const BENCH_SCHEMA_VERSION = 1;

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure the harness against bare QEMU boots of the same kernel, side by side (medians)')
    .addOption(repeatOption('repetitions per measurement', 5))
    .addOption(hiddenAlias('--runs <n>', '--repeat', intArg(1, 50)))
    .option('-k, --kernel <name|path>', 'kernel definition', '6.1-fixed')
    .option('-c, --case <name|path>', 'case for the full-run measurement', 'rp-filter-selftest')
    .option('--json', 'print the figures as JSON on stdout')
    .option('--results <dir>', 'results folder (default: results/<run-id>)')
    .option('--no-install', 'never run apt-get (no host install, no update, no guest or kernel source package download); fail with the command instead')
    .addHelpText('after', exitCodesHelp())
    .option('--trace-path', 'also measure (g): traced runs of the case on the tracing variant, and warm repro --trace-path')
    .option('--no-remote-cache', 'skip (i) coldFromRemoteMs (a cold repro against a local nginx WebDAV remote cache filled by cache push)')
    .action((opts: BenchOpts) => guarded(() => bench(opts)));
}

export async function bench(opts: BenchOpts): Promise<number> {
  const benchStarted = Date.now();
  const log = makeLogger();
  const n = opts.runs ?? opts.repeat;
  const cacheDir = cacheRoot();
  const { runId, runDir } = newRunDir('bench', opts.results);
  const kdef = loadKernel(opts.kernel);
  const kcase = loadCase(opts.case);
  const prepared = await prepare({ kernels: [kdef, loadKernel('6.1-vanilla')], cases: [kcase], cacheDir, log, install: opts.install, workDir: runDir });
  const k = prepared.kernels[0]!;
  const accel = prepared.accel.accel;
  const halt = await haltImage(runDir, prepared.image.path, false);
  const haltGz = await haltImage(runDir, prepared.image.path, true);
  const naiveArgs = ['-M', 'pc', '-accel', accel, '-m', '256M', '-display', 'none', '-serial', 'stdio', '-no-reboot', '-kernel', k.bzImage, '-initrd', haltGz, '-append', 'console=ttyS0 panic=-1'];
  const floorArgs = qemuArgs({ accel, machine: 'microvm', kernel: k.vmlinux, initrd: halt, resultsFile: path.join(runDir, 'floor.results') });

  const a: number[] = [];
  const f: number[] = [];
  const b: number[] = [];
  const bCold: number[] = [];
  const parts = { guestCaseMs: [] as number[], qemuWallMs: [] as number[], restoreMs: [] as number[] };
  const coldParts = { guestBootMs: [] as number[], guestCaseMs: [] as number[], qemuWallMs: [] as number[] };
  let failedRuns = 0;
  // one run first so that the booted-guest snapshot exists (a later run restores it)
  const first = await runCase({ kernel: k, kcase, baseImage: prepared.image.path, accel, runDir, label: 'bench-snapshot' });
  log.info(`snapshot of ${k.name}: ${first.vm.snapshot?.use ?? 'none'}`);
  // and the case snapshot that every repeat restores (independent repeats, the case's own jitter)
  const plan = repeatPlan(kcase.def.repeats, {});
  const firstRepeat = await runCase({ kernel: k, kcase, baseImage: prepared.image.path, accel, runDir, label: 'bench-repeat-0', repeat: repeatRun(plan, 1) });
  log.info(`case snapshot of ${k.name} x ${kcase.def.name}: ${firstRepeat.vm.repeat?.caseSnapshot ?? 'none'}`);
  const h: number[] = [];
  const repeatParts = { guestMs: [] as number[], restoreMs: [] as number[], qemuWallMs: [] as number[] };
  log.info(`measuring (a) naive bare boot, (f) floor boot, (b) full case run (snapshot, and booting cold), (h) a repeat from the case snapshot, interleaved, ${n} times each`);
  for (let i = 0; i < n; i++) {
    a.push(await timeQemu(naiveArgs));
    f.push(await timeQemu(floorArgs));
    let t0 = Date.now();
    const r = await runCase({ kernel: k, kcase, baseImage: prepared.image.path, accel, runDir, label: `bench-${i}` });
    b.push(Date.now() - t0);
    if (r.vm.snapshot?.use !== 'restored') log.warn(`case run ${i} did not restore the snapshot (${r.vm.snapshot?.use}: ${r.vm.snapshot?.note ?? ''})`);
    if (r.vm.caseMs !== undefined && r.vm.wallMs) {
      parts.guestCaseMs.push(r.vm.caseMs);
      parts.qemuWallMs.push(r.vm.wallMs);
      if (r.vm.snapshot?.restoreMs !== undefined) parts.restoreMs.push(r.vm.snapshot.restoreMs);
    }
    t0 = Date.now();
    const rc = await runCase({ kernel: k, kcase, baseImage: prepared.image.path, accel, runDir, label: `bench-cold-${i}`, snapshot: false });
    bCold.push(Date.now() - t0);
    if (rc.vm.bootMs && rc.vm.caseMs !== undefined && rc.vm.wallMs) {
      coldParts.guestBootMs.push(rc.vm.bootMs);
      coldParts.guestCaseMs.push(rc.vm.caseMs);
      coldParts.qemuWallMs.push(rc.vm.wallMs);
    }
    t0 = Date.now();
    const rr = await runCase({ kernel: k, kcase, baseImage: prepared.image.path, accel, runDir, label: `bench-repeat-${i + 1}`, repeat: repeatRun(plan, i + 2) });
    h.push(Date.now() - t0);
    if (rr.vm.repeat?.caseSnapshot !== 'restored') log.warn(`repeat ${i} did not restore the case snapshot (${rr.vm.repeat?.caseSnapshot}: ${rr.vm.repeat?.note ?? rr.vm.snapshot?.note ?? ''})`);
    if (rr.vm.repeat?.guestMs !== undefined) repeatParts.guestMs.push(rr.vm.repeat.guestMs);
    if (rr.vm.snapshot?.restoreMs !== undefined) repeatParts.restoreMs.push(rr.vm.snapshot.restoreMs);
    if (rr.vm.wallMs) repeatParts.qemuWallMs.push(rr.vm.wallMs);
    for (const x of [r, rc, rr])
      if (x.verdict !== 'not-reproduced' && x.verdict !== 'reproduced') {
        log.warn(`case run ${i} ended in ${x.verdict}: ${x.reason}`);
        failedRuns++;
      }
  }

  log.info('measuring (c) warm repro end to end, 3 times');
  const c: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const r = await execa(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'harness/cli/main.ts'), 'repro', '--json', '--no-install'], { reject: false, env: { KERNEL_REPRO_CACHE: cacheDir } });
    c.push(Date.now() - t0);
    if (r.exitCode !== 0) {
      log.warn(`warm repro exited ${r.exitCode}`);
      failedRuns++;
    }
  }

  // (i) right after (c): what (c) used is what the cold run needs (cache push --since takes what was used since the bench started;
  // (d) reads every kernel's manifest, which marks them all used)
  const remote: RemoteBench = opts.remoteCache ? await benchColdFromRemote({ cacheDir, runDir, log, since: benchStarted }) : { skipped: '--no-remote-cache' };
  if ('exitCode' in remote && (remote.exitCode !== 0 || remote.builtLocally)) {
    log.warn(`(i) the cold repro from the remote cache ${remote.exitCode !== 0 ? `exited ${remote.exitCode}` : 'built something locally'}`);
    failedRuns++;
  }

  log.info('measuring (d) warm kernel lookup and reading the recorded cold/incremental build times');
  const w: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    await ensureKernel(kdef, { cacheDir, log: silentLogger });
    w.push(Date.now() - t0);
  }
  const store = new EntryStore<KernelMeta>(path.join(cacheDir, 'kernels'));
  const builds = fs
    .readdirSync(store.dir)
    .filter((d) => /^[0-9a-f]{64}$/.test(d))
    .map((d) => store.get(d, { verify: false })?.meta)
    .filter((m): m is KernelMeta => !!m && m.configHash === k.meta.configHash && m.sourceId === k.meta.sourceId);
  const coldBuildMs = builds.length ? Math.max(...builds.map((m) => m.buildMs)) : null;
  const incrementalBuildMs = builds.length > 1 ? Math.min(...builds.map((m) => m.buildMs)) : null;

  log.info('measuring (e) 2 kernels x 2 cases with concurrency 1, then 2');
  const cases = [loadCase('rp-filter-selftest'), loadCase('rp-filter-mesos')];
  const specs: RunSpec[] = prepared.kernels.flatMap((kk) => cases.map((cc) => ({ kernel: kk, kcase: cc })));
  const e: Record<number, number> = {};
  for (const conc of [1, 2]) {
    const t0 = Date.now();
    const runs = await runAll(specs.map((s) => ({ ...s, label: `conc${conc}` })), prepared, { runDir, log: silentLogger, concurrency: conc });
    failedRuns += runs.length - runs.filter((x) => x.verdict === 'reproduced' || x.verdict === 'not-reproduced').length;
    e[conc] = Date.now() - t0;
  }


  const g = opts.tracePath ? await benchTracing({ kdef, kcase, cacheDir, runDir, n, install: opts.install, log, plainMs: median(b) }) : null;

  const result = {
    schemaVersion: BENCH_SCHEMA_VERSION,
    runId,
    host: { cores: os.availableParallelism(), accel, accelReason: prepared.accel.reason },
    kernel: { name: k.name, release: k.meta.release, configHash: k.meta.configHash },
    case: kcase.def.name,
    runs: n,
    bareBootMs: median(a),
    floorBootMs: median(f),
    caseRunMs: median(b),
    ratio: Number((median(b) / median(a)).toFixed(3)),
    floorRatio: Number((median(b) / median(f)).toFixed(3)),
    /** where (b) goes: QEMU start to the restored guest running, the agent's case work (guest time,
     *  case received to done), QEMU wall time; the rest is the harness on the host */
    caseRunBreakdown: parts.qemuWallMs.length
      ? {
          restoreMs: parts.restoreMs.length ? median(parts.restoreMs) : null,
          guestCaseMs: median(parts.guestCaseMs),
          qemuWallMs: median(parts.qemuWallMs),
          hostOverheadMs: median(b) - median(parts.qemuWallMs),
        }
      : null,
    /** the same run with snapshots off: the guest boots the kernel every time */
    caseRunColdBootMs: median(bCold),
    caseRunColdBootBreakdown: coldParts.qemuWallMs.length
      ? {
          guestBootMs: median(coldParts.guestBootMs),
          guestCaseMs: median(coldParts.guestCaseMs),
          qemuWallMs: median(coldParts.qemuWallMs),
        }
      : null,
    snapshot: first.vm.snapshot ?? null,
    /** (h) one repeat restored from the case snapshot (independent: reseeded, clock set, jittered) */
    repeatRunMs: median(h),
    repeatRatio: Number((median(h) / median(a)).toFixed(3)),
    repeatBreakdown: repeatParts.qemuWallMs.length
      ? {
          restoreMs: repeatParts.restoreMs.length ? median(repeatParts.restoreMs) : null,
          guestRepeatMs: repeatParts.guestMs.length ? median(repeatParts.guestMs) : null,
          qemuWallMs: median(repeatParts.qemuWallMs),
          hostOverheadMs: median(h) - median(repeatParts.qemuWallMs),
        }
      : null,
    caseSnapshot: caseSnapshotInfo(cacheDir, firstRepeat.vm.repeat?.caseSnapshotKey),
    warmReproMs: median(c),
    warmKernelLookupMs: median(w),
    coldBuildMs,
    incrementalBuildMs,
    /** a cold `repro` (empty local cache) against a remote cache filled by `cache push`; null when skipped */
    coldFromRemoteMs: 'coldFromRemoteMs' in remote ? remote.coldFromRemoteMs : null,
    coldFromRemote: remote,
    matrix: { runs: specs.length, concurrency1Ms: e[1]!, concurrency2Ms: e[2]!, speedup: Number((e[1]! / e[2]!).toFixed(2)) },
    samples: { bareBootMs: a, floorBootMs: f, caseRunMs: b, caseRunColdBootMs: bCold, repeatRunMs: h, warmReproMs: c },
    ...(g ? { tracePath: g } : {}),
  };
  fs.writeFileSync(path.join(runDir, 'bench.json'), JSON.stringify(result, null, 2));
  const s = (ms: number | null): string => (ms === null ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
  const table = [
    `kernel ${k.name} (${k.meta.release}), accelerator ${accel}, ${n} runs each, medians`,
    `(a) naive bare boot (-M pc, bzImage, gzip initramfs)   ${s(result.bareBootMs)}`,
    `(f) floor boot (-M microvm, PVH vmlinux)               ${s(result.floorBootMs)}`,
    `(b) harness: full ${kcase.def.name} run (snapshot)     ${s(result.caseRunMs)}`,
    `    ratio b/a = ${result.ratio}   floorRatio b/f = ${result.floorRatio}`,
    ...(result.caseRunBreakdown
      ? [`    (b) = restore ${result.caseRunBreakdown.restoreMs ?? '?'} ms (QEMU start to guest running) + case in the guest ${result.caseRunBreakdown.guestCaseMs} ms; QEMU wall ${result.caseRunBreakdown.qemuWallMs} ms; host side ${result.caseRunBreakdown.hostOverheadMs} ms`]
      : []),
    `    same run booting cold (snapshots off)              ${s(result.caseRunColdBootMs)}` +
      (result.caseRunColdBootBreakdown ? ` = guest boot ${result.caseRunColdBootBreakdown.guestBootMs} ms + case ${result.caseRunColdBootBreakdown.guestCaseMs} ms, QEMU wall ${result.caseRunColdBootBreakdown.qemuWallMs} ms` : ''),
    `(h) one repeat from the case snapshot                  ${s(result.repeatRunMs)}   repeatRatio h/a = ${result.repeatRatio}` +
      (result.repeatBreakdown ? ` = restore ${result.repeatBreakdown.restoreMs ?? '?'} ms + the repeat in the guest ${result.repeatBreakdown.guestRepeatMs ?? '?'} ms; QEMU wall ${result.repeatBreakdown.qemuWallMs} ms; host side ${result.repeatBreakdown.hostOverheadMs} ms` : ''),
    ...(result.caseSnapshot ? [`    case snapshot: ${(result.caseSnapshot.sizeBytes / 1e6).toFixed(1)} MB, saved in ${result.caseSnapshot.saveMs} ms`] : []),
    `(c) warm repro end to end (3 runs)                     ${s(result.warmReproMs)}`,
    `(d) kernel build: first build of this config ${s(coldBuildMs)} (as recorded in the cache; ccache may have helped), one-file variant ${s(incrementalBuildMs)}, warm cache lookup ${result.warmKernelLookupMs} ms`,
    'coldFromRemoteMs' in remote
      ? `(i) cold repro from a remote cache (empty local cache)  ${s(remote.coldFromRemoteMs)}; cache push of ${remote.push.entries} entries (${Math.round(remote.push.bytes / 1e6)} MB) took ${s(remote.push.ms)}`
      : `(i) cold repro from a remote cache: skipped (${remote.skipped})`,
    `(e) ${specs.length} runs: concurrency 1 ${s(e[1]!)}, concurrency 2 ${s(e[2]!)}, speed-up ${result.matrix.speedup}x`,
    ...(g
      ? [
          `(g) traced ${kcase.def.name} run (tracing variant, snapshot): ${s(g.tracedRunMs)} (+${s(g.tracedRunMs - result.caseRunMs)} over (b)), case in the guest ${g.tracedGuestCaseMs} ms; with ${g.returnProbes} return probes ${s(g.tracedWithReturnsMs)}`,
          `    arming the graph at boot ${g.armMs ?? '?'} ms of guest time (once per tracing kernel, kept in its snapshot); tracing variant build ${s(g.buildMs)} (as recorded); warm repro --trace-path ${s(g.warmReproMs)} against (c) ${s(result.warmReproMs)}`,
        ]
      : []),
    `written to ${path.join(runDir, 'bench.json')}`,
  ].join('\n');
  (opts.json ? process.stderr : process.stdout).write(table + '\n');
  if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  // the figures stand, but a run that gave no verdict means they measured something else
  if (failedRuns) log.warn(`${failedRuns} measured run(s) did not reach a verdict: exit 1`);
  return failedRuns ? ExitCode.runFailed : ExitCode.ok;
}
