#!/usr/bin/env node
// The nightly matrix's steps (.github/workflows/nightly.yml calls them; they run the same here):
//
//   node .ci/nightly.mjs plan          shards (one per kernel) and KVM options, to $GITHUB_OUTPUT
//   node .ci/nightly.mjs shard I/N     run shard I of N into out/shard-I, then bound the kernel cache
//   node .ci/nightly.mjs publish       upload the kernels and guest images of this shard's cache that the
//                                      remote cache lacks (only when KERNEL_REPRO_REMOTE_CACHE is set)
//   node .ci/nightly.mjs merge DIR     merge DIR/*/matrix.json into merged/; summary.md to
//                                      $GITHUB_STEP_SUMMARY; JUnit failures as annotations
//
// Environment: NIGHTLY_MATRIX (matrix file, default matrices/default.yaml), NIGHTLY_OUT (default
// out), NIGHTLY_MERGED (default merged), NIGHTLY_SHARDS (the plan's JSON, for merge: names shards
// that left no matrix.json at all), KERNEL_REPRO_CACHE (default .kernel-cache), NIGHTLY_CACHE_GC=0
// (tests: keep a shared cache as it is), NIGHTLY_KVM_DEVICE (tests: another path than /dev/kvm).
// The logic (shard plan, merge completeness) is the harness's own (harness/matrix/), tested in the
// test suite, which also runs these steps.
import { $, fs, path } from 'zx';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const cli = ['node', path.join(root, 'bin/kernel-repro.mjs')];
const matrixFile = process.env.NIGHTLY_MATRIX ?? path.join(root, 'matrices/default.yaml');
const outDir = path.resolve(process.env.NIGHTLY_OUT ?? 'out');
const mergedDir = path.resolve(process.env.NIGHTLY_MERGED ?? 'merged');
process.env.KERNEL_REPRO_CACHE ??= path.resolve('.kernel-cache');
const kvmDevice = process.env.NIGHTLY_KVM_DEVICE ?? '/dev/kvm';
$.verbose = false;

const say = (s) => process.stderr.write(`nightly: ${s}\n`);

/** Append `name=value` lines to $GITHUB_OUTPUT (or print them outside GitHub Actions). */
function output(values) {
  const text = Object.entries(values)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  if (process.env.GITHUB_OUTPUT) fs.appendFileSync(process.env.GITHUB_OUTPUT, text + '\n');
  else process.stdout.write(text + '\n');
}

/** Run the CLI with the terminal as its output; return its exit code. */
async function kr(args) {
  say(`kernel-repro ${args.join(' ')}`);
  const p = await $({ stdio: ['ignore', 'inherit', 'inherit'], nothrow: true })`${cli} ${args}`;
  return p.exitCode ?? 1;
}

async function plan() {
  const p = await $({ nothrow: true })`${cli} matrix --matrix ${matrixFile} --plan-shards per-kernel`;
  if (p.exitCode !== 0) {
    process.stderr.write(p.stderr);
    return p.exitCode ?? 1;
  }
  const shards = JSON.parse(p.stdout).shards;
  const kvm = fs.existsSync(kvmDevice);
  say(`${shards.length} shards: ${shards.map((s) => `${s.index}/${s.of} ${s.kernels.join('+')} (${s.cells} cells)`).join(', ')}`);
  say(kvm ? `${kvmDevice} present: the shard containers get it; the harness probes it and falls back to TCG if it does not work` : `no ${kvmDevice} on this runner: the guests run under TCG`);
  output({ shards: JSON.stringify(shards), kvm_options: kvm ? `--device ${kvmDevice}` : '' });
  return 0;
}

async function shard(spec) {
  if (!/^\d+\/\d+$/.test(spec ?? '')) {
    say('usage: shard I/N');
    return 2;
  }
  const index = spec.split('/')[0];
  say(`${kvmDevice} ${fs.existsSync(kvmDevice) ? 'present' : 'absent'} here; cache ${process.env.KERNEL_REPRO_CACHE}`);
  // a fresh container has no package lists: the harness runs apt-get update when an install fails
  const code = await kr(['matrix', '--matrix', matrixFile, '--shard', spec, '--results', path.join(outDir, `shard-${index}`)]);
  // what tonight did not use goes, then least recently used down to 3 GB (GitHub's cache limit is
  // per repository): kernel trees (~1.7 GB, only needed to rebuild) go before kernels and snapshots
  if (process.env.NIGHTLY_CACHE_GC !== '0') {
    const gc = await kr(['cache', 'gc', '--older-than', '20h', '--max-size', '3G']);
    if (gc !== 0) say(`cache gc exited ${gc}`);
  }
  return code;
}

/** GitHub annotations for the cells that failed, from the merged matrix.json (the same cells JUnit fails). */
function annotate(merged) {
  if (!process.env.GITHUB_ACTIONS) return;
  const esc = (s) => String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  for (const c of merged.cells)
    if (c.failed) process.stdout.write(`::error title=${esc(`${c.kernel} ${c.case} [${c.variant}]`)}::${esc(c.expected ? `expected ${c.expected}, got ${c.verdict}: ${c.reason}` : `${c.verdict}: ${c.reason}`)}\n`);
}

async function merge(dir) {
  if (!dir) {
    say('usage: merge DIR (the folder holding one folder per shard artifact)');
    return 2;
  }
  const found = fs.existsSync(dir) ? fs.readdirSync(dir).map((d) => path.join(dir, d, 'matrix.json')).filter((f) => fs.existsSync(f)).sort() : [];
  if (process.env.NIGHTLY_SHARDS) {
    const planned = JSON.parse(process.env.NIGHTLY_SHARDS);
    say(`planned ${planned.length} shards; found ${found.length} matrix.json: ${found.join(', ') || 'none'}`);
  }
  if (found.length === 0) {
    say(`no shard left a matrix.json in ${dir}: nothing to merge`);
    return 2;
  }
  const json = path.join(mergedDir, 'merged.json');
  fs.mkdirSync(mergedDir, { recursive: true });
  const p = await $({ nothrow: true, stdio: ['ignore', 'pipe', 'inherit'] })`${cli} report merge ${found} --results ${mergedDir} --json`;
  fs.writeFileSync(json, p.stdout);
  const summary = path.join(mergedDir, 'summary.md');
  if (process.env.GITHUB_STEP_SUMMARY && fs.existsSync(summary)) fs.appendFileSync(process.env.GITHUB_STEP_SUMMARY, fs.readFileSync(summary, 'utf8'));
  if (p.exitCode === 0 || p.exitCode === 1) annotate(JSON.parse(p.stdout));
  else if (process.env.GITHUB_STEP_SUMMARY) fs.appendFileSync(process.env.GITHUB_STEP_SUMMARY, `## kernel-repro matrix: the shards could not be merged\n\nSee the log of the merge step (exit ${p.exitCode}).\n`);
  return p.exitCode ?? 1;
}

/** The shard's kernels, guest images and booted-kernel snapshots to the remote cache (a repository secret gives its URL). */
async function publish() {
  if (!process.env.KERNEL_REPRO_REMOTE_CACHE) {
    say('no remote cache configured (KERNEL_REPRO_REMOTE_CACHE): nothing to publish');
    return 0;
  }
  // snapshots restore on machines with the same cache entries and QEMU (their keys say so)
  return kr(['cache', 'push', '--kind', 'kernels,images,snapshots']);
}

const [step, arg] = process.argv.slice(2);
const steps = { plan, shard, publish, merge };
if (!steps[step]) {
  say('usage: node .ci/nightly.mjs plan | shard I/N | publish | merge DIR');
  process.exit(2);
}
process.exit(await steps[step](arg));
