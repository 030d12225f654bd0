// Verdict from observations: the kernel's own signals (martian lines, counters, panic text) and
// the probes, against the case's signature. Pure.
import type { AgentReport } from './results.ts';
import type { MartianEvent, PanicInfo, Verdict } from './types.ts';
import { matchesMartian } from './martian.ts';

export interface SignatureSpec {
  probe: string;
  martian?: { src?: string; dst?: string; dev?: string };
}

export interface VerdictInput {
  signature: SignatureSpec;
  controlProbes: string[];
  report: AgentReport;
  martians: MartianEvent[];
  rpFilterDelta: number;
  panic: PanicInfo | null;
  vmTimedOut: boolean;
  deadlineMs: number;
}

export function decideVerdict(v: VerdictInput): { verdict: Verdict; reason: string } {
  if (v.panic && v.panic.kind !== 'warning') return { verdict: 'panic', reason: v.panic.title };
  if (v.vmTimedOut)
    return {
      verdict: 'timeout',
      reason: `guest did not finish within its ${v.deadlineMs} ms deadline${v.report.hello ? '' : ' (the agent never started)'}`,
    };
  if (!v.report.hello) return { verdict: 'error', reason: 'the guest agent never reported (boot failed?)' };
  if (v.report.abort) return { verdict: 'error', reason: v.report.abort };
  if (!v.report.done) return { verdict: 'error', reason: 'the guest stopped before the agent finished' };
  for (const name of v.controlProbes) {
    const p = v.report.probes.find((x) => x.name === name);
    if (!p) return { verdict: 'error', reason: `control probe ${name} did not run` };
    if (!p.passed) return { verdict: 'error', reason: `control probe ${name} failed: the scenario itself does not work on this kernel` };
  }
  const sig = v.report.probes.find((x) => x.name === v.signature.probe);
  if (!sig) return { verdict: 'error', reason: `signature probe ${v.signature.probe} did not run` };
  const matching = v.signature.martian ? v.martians.filter((m) => matchesMartian(m, v.signature.martian!)) : [];
  const kernelSaysDrop = v.signature.martian ? matching.length > 0 : v.rpFilterDelta > 0;
  const want = v.signature.martian
    ? `martian source ${v.signature.martian.dst ?? '*'} from ${v.signature.martian.src ?? '*'}, on dev ${v.signature.martian.dev ?? '*'}`
    : 'IPReversePathFilter drop';
  if (!sig.passed && kernelSaysDrop)
    return {
      verdict: 'reproduced',
      reason: `${sig.name} failed${sig.stoppedEarly ? ' (stopped at the kernel signal)' : ''}; kernel logged ${matching.length || v.rpFilterDelta}x "${want}"${v.rpFilterDelta ? `, IPReversePathFilter +${v.rpFilterDelta}` : ''}`,
    };
  if (sig.passed && !kernelSaysDrop)
    return { verdict: 'not-reproduced', reason: `${sig.name} passed; no "${want}" logged` };
  if (sig.passed)
    return { verdict: 'error', reason: `${sig.name} passed but the kernel logged "${want}": inconsistent evidence` };
  return {
    verdict: 'error',
    reason: `${sig.name} failed (rc ${sig.rc ?? 'none'}${sig.timedOut ? ', timed out' : ''}) without the signature's kernel evidence (no "${want}")`,
  };
}
