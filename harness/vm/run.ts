// Boot one guest with a hard deadline, no session (the accelerator probe); capture the console and
// the result channel. Case runs go through session.ts.
import fs from 'node:fs';
import { readChannel, resultChannelCap, watchChannel, type ChannelState } from '../trust/channel.ts';
import { HarnessError } from '../util/errors.ts';
import { run, type RunResult } from '../util/proc.ts';
import { accelFailure, qemuArgs, type VmSpec } from './qemu.ts';

export const QEMU = process.env.KERNEL_REPRO_QEMU ?? 'qemu-system-x86_64';

export interface VmResult {
  console: string;
  /** the result channel's text: at most its cap (trust/channel.ts) */
  results: string;
  /** how much the guest wrote there; whether it was cut or flooded */
  resultsChannel?: ChannelState;
  exitCode: number | null;
  timedOut: boolean;
  accelError: string | null;
  durationMs: number;
  args: string[];
}

/**
 * What a finished QEMU process says about the harness rather than the guest: interrupted or QEMU
 * missing (thrown), an accelerator failure (from its output), or QEMU refusing to start (a bad
 * argument, an unreadable kernel: returned, for the caller to throw once it has ruled out its own
 * explanations, e.g. a snapshot that did not load).
 */
export function judgeQemuExit(r: RunResult, args: string[], accelError: string | null): { accelError: string | null; refused: HarnessError | null } {
  if (r.interrupted) throw new HarnessError('interrupted', 'interrupted while a guest was running');
  if (r.exitCode === null && !r.timedOut && r.signal === null)
    throw new HarnessError('missing-prereq', `cannot start ${QEMU}`, { hint: 'apt-get install qemu-system-x86' });
  const accel = accelError ?? accelFailure(r.stderr);
  let refused: HarnessError | null = null;
  if (!accel && !r.timedOut && r.exitCode !== 0 && /^(qemu-system-\S+|qemu): /m.test(r.stderr)) {
    const msg = r.stderr.split('\n').find((l) => /qemu/.test(l)) ?? r.stderr;
    refused = new HarnessError('boot-failed', `QEMU refused to start: ${msg.trim()}`, { hint: `command: ${QEMU} ${args.join(' ')}` });
  }
  return { accelError: accel, refused };
}

export async function bootVm(
  spec: VmSpec & { resultsFile: string },
  opts: { deadlineMs: number; consoleFile: string; onConsoleLine?: (line: string) => void },
): Promise<VmResult> {
  fs.writeFileSync(spec.resultsFile, '');
  const args = qemuArgs(spec);
  let accelError: string | null = null;
  const cap = resultChannelCap();
  const stop = new AbortController();
  const watch = watchChannel(spec.resultsFile, cap, () => stop.abort());
  const r = await run(QEMU, args, {
    timeoutMs: opts.deadlineMs,
    abort: stop.signal,
    logFile: opts.consoleFile,
    onLine: (line) => opts.onConsoleLine?.(line),
    killWhen: (line) => {
      if (!accelError) accelError = accelFailure(line);
      return accelError !== null;
    },
  }).finally(() => watch.stop());
  const judged = judgeQemuExit(r, args, accelError);
  if (judged.refused) throw judged.refused;
  const read = readChannel(spec.resultsFile, cap);
  const flood = watch.flood();
  return {
    console: r.stdout + (r.stderr ? `\n${r.stderr}` : ''),
    results: read.text,
    resultsChannel: { ...read.state, flooded: flood !== null, ...(flood ? { floodedAtMs: flood.atMs } : {}) },
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    accelError: judged.accelError,
    durationMs: r.durationMs,
    args,
  };
}
