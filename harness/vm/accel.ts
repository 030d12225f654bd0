// Choose the accelerator: KVM when it really works on this host, else TCG, saying why.
// /dev/kvm can exist and still be unusable (nested virt that aborts on MSRs, or a guest that
// stops with "KVM internal error"), so the probe boots a real guest with a short deadline.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashOf } from '../util/cache.ts';
import { run } from '../util/proc.ts';
import type { Accel, Machine } from './qemu.ts';
import { bootVm, QEMU } from './run.ts';
import { reportsDone } from '../agent/protocol.ts';

export interface AccelChoice {
  accel: Accel;
  reason: string;
  probedMs?: number;
}

const PROBE_DEADLINE_MS = 12_000;
const PROBE_TTL_MS = 24 * 3600_000;

export async function qemuVersion(): Promise<string | null> {
  const r = await run(QEMU, ['--version'], { timeoutMs: 10_000 });
  return r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : null;
}

export function kvmDeviceProblem(): string | null {
  if (!fs.existsSync('/dev/kvm')) return 'no /dev/kvm';
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return '/dev/kvm is not accessible (add the user to the kvm group)';
  }
  return null;
}

/**
 * Decide KVM vs TCG. KERNEL_REPRO_ACCEL=kvm|tcg forces it. Otherwise a boot of `kernel` (PVH vmlinux
 * on microvm, or bzImage on pc) with `initrd` (an image whose agent ends at once) under KVM decides;
 * the answer is cached.
 */
export async function chooseAccel(opts: { cacheDir: string; kernel: string; machine?: Machine; initrd: string; workDir: string }): Promise<AccelChoice> {
  const forced = process.env.KERNEL_REPRO_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `KERNEL_REPRO_ACCEL=${forced}` };
  const dev = kvmDeviceProblem();
  if (dev) return { accel: 'tcg', reason: dev };
  const memo = path.join(opts.cacheDir, 'accel', hashOf({ qemu: await qemuVersion(), host: os.release(), cpu: os.cpus()[0]?.model }) + '.json');
  if (fs.existsSync(memo)) {
    const m = JSON.parse(fs.readFileSync(memo, 'utf8')) as AccelChoice & { at: number };
    if (Date.now() - m.at < PROBE_TTL_MS) return { accel: m.accel, reason: `${m.reason} (probed earlier)` };
  }
  fs.mkdirSync(opts.workDir, { recursive: true });
  const res = await bootVm(
    { accel: 'kvm', machine: opts.machine ?? 'microvm', kernel: opts.kernel, initrd: opts.initrd, append: ['kr.probe'], resultsFile: path.join(opts.workDir, 'kvm-probe.results') },
    { deadlineMs: PROBE_DEADLINE_MS, consoleFile: path.join(opts.workDir, 'kvm-probe.console') },
  );
  let choice: AccelChoice;
  if (res.accelError) choice = { accel: 'tcg', reason: `KVM unusable here: ${res.accelError}` };
  else if (res.timedOut) choice = { accel: 'tcg', reason: `KVM guest made no progress within ${PROBE_DEADLINE_MS / 1000}s` };
  else if (!reportsDone(res.results)) choice = { accel: 'tcg', reason: `KVM guest did not finish (QEMU exit ${res.exitCode})` };
  else choice = { accel: 'kvm', reason: `KVM works (probe boot ${res.durationMs} ms)` };
  choice.probedMs = res.durationMs;
  fs.mkdirSync(path.dirname(memo), { recursive: true });
  fs.writeFileSync(memo, JSON.stringify({ ...choice, at: Date.now() }));
  return choice;
}
