// Verdict from observations: the signature probe's outcome (if the signature has one) plus the kernel
// signals the case's signature names, after the checks that the run itself worked (no panic, deadline met, agent
// finished, control probes passed). Pure.
import type { AgentReport } from '../agent/protocol.ts';
import type { SignalResult } from './signals/index.ts';
import type { PanicInfo, ProbeResult, Verdict } from './types.ts';

export interface SignatureSpec {
  /** absent: the signature is the kernel's evidence alone (its signals fire, its absent signals do not) */
  probe?: string;
  /** how the signature probe ends when the behaviour is present (default: it fails) */
  when: 'fail' | 'pass';
}

export interface VerdictInput {
  signature: SignatureSpec;
  controlProbes: string[];
  /** the agent's probes with the kselftest results read from them (observe/kselftest.ts) */
  report: Pick<AgentReport, 'hello' | 'abort' | 'done'> & { probes: ProbeResult[] };
  signals: SignalResult[];
  panic: PanicInfo | null;
  vmTimedOut: boolean;
  deadlineMs: number;
  /** the guest was stopped for flooding a channel past its cap: why (trust/channel.ts floodReason) */
  flood?: string;
}

/** For a result that did not run: the results of the same test that did (a misspelt name shows at once). */
function ranInstead(probes: readonly { name: string; parent?: string }[], name: string): string {
  const parent = name.includes('/') ? name.slice(0, name.indexOf('/')) : undefined;
  const siblings = parent === undefined ? [] : probes.filter((p) => p.parent === parent).map((p) => p.name);
  if (parent !== undefined && siblings.length === 0) return ` (${parent} reported no kselftest results)`;
  if (siblings.length === 0) return '';
  const shown = siblings.slice(0, 40);
  return ` (the results of ${parent} that ran: ${shown.join(', ')}${siblings.length > shown.length ? `, and ${siblings.length - shown.length} more` : ''})`;
}

/** "martian ×1 (martian source ...)" */
function said(s: SignalResult): string {
  return `${s.name} ×${s.count} (${s.matches[0]?.text ?? s.description})`;
}

/** The crash the signature names: every splat signal of the signature fired (and there is one). */
function crashNamed(v: VerdictInput): SignalResult[] {
  const splats = v.signals.filter((s) => s.role === 'signature' && s.kind === 'splat');
  return splats.length > 0 && splats.every((s) => s.fired) ? splats : [];
}

/** The signals by role: the signature's (fired or missing), the absent ones (fired, or not
 *  observable: they decide nothing), and the evidence that fired, as a reason's tail. */
function bySignalRole(v: VerdictInput): {
  signature: SignalResult[];
  fired: SignalResult[];
  missing: SignalResult[];
  absent: SignalResult[];
  absentFired: SignalResult[];
  unobservable: SignalResult[];
  also: string;
} {
  const signature = v.signals.filter((s) => s.role === 'signature');
  const absent = v.signals.filter((s) => s.role === 'absent');
  const evidence = v.signals.filter((s) => s.role === 'evidence' && s.fired);
  return {
    signature,
    fired: signature.filter((s) => s.fired),
    missing: signature.filter((s) => !s.fired),
    absent,
    absentFired: absent.filter((s) => s.fired),
    unobservable: absent.filter((s) => !s.fired && s.incomplete !== undefined),
    also: evidence.length ? `; evidence: ${evidence.map((s) => `${s.name} ×${s.count}`).join(', ')}` : '',
  };
}

/** A signature without a probe: the kernel's evidence decides alone. Every signature signal fired and
 *  no absent one: reproduced; none of them fired: not-reproduced; some but not all: error. */
function signalsOnly(v: VerdictInput): { verdict: Verdict; reason: string } {
  const { signature, fired, missing, absent, absentFired, unobservable, also } = bySignalRole(v);
  const none = (list: SignalResult[]): string => `no ${list.map((s) => `"${s.description}"`).join(', no ')}`;
  const absentSaid = absentFired.length ? `the kernel showed ${absentFired.map(said).join(', ')}, which must be absent` : '';
  if (signature.length === 0) return { verdict: 'error', reason: 'the signature has neither a probe nor a signal' };
  if (missing.length === 0 && absentFired.length === 0) {
    if (unobservable.length) return { verdict: 'error', reason: `kernel: ${fired.map(said).join(', ')}, but absent signal ${unobservable[0]!.name} could not be observed: ${unobservable[0]!.incomplete}` };
    const asExpected = absent.length ? `; absent as expected: ${absent.map((s) => s.name).join(', ')}` : '';
    return { verdict: 'reproduced', reason: `kernel: ${fired.map(said).join(', ')}${asExpected}${also}` };
  }
  if (fired.length === 0) return { verdict: 'not-reproduced', reason: `${none(signature)}${absentSaid ? `; ${absentSaid}` : ''}${also}` };
  if (missing.length === 0) return { verdict: 'error', reason: `kernel: ${fired.map(said).join(', ')}, but ${absentSaid}: inconsistent evidence` };
  return { verdict: 'error', reason: `kernel: ${fired.map(said).join(', ')}, but ${none(missing)}: the signature's signals fired only in part${absentSaid ? `; ${absentSaid}` : ''}` };
}

export function decideVerdict(v: VerdictInput): { verdict: Verdict; reason: string } {
  // a crash (oops=panic: every oops and BUG ends the kernel) is the verdict, unless it is the
  // splat the signature names: then the splat decides
  const crash = v.panic && v.panic.kind !== 'warning' ? v.panic : null;
  const named = crash ? crashNamed(v) : [];
  const absentSplatFired = v.signals.some((s) => s.role === 'absent' && s.kind === 'splat' && s.fired);
  if (crash && (named.length === 0 || absentSplatFired)) return { verdict: 'panic', reason: crash.title };
  if (crash && !v.report.done) {
    // the kernel died on the signature's splat: the probes and the agent's evidence (tracepoints,
    // counters) could not be read; the kernel log (splats) was
    const unread = v.signals.filter((s) => s.role === 'absent' && s.kind !== 'splat');
    if (unread.length)
      return { verdict: 'error', reason: `the kernel crashed on ${named.map(said).join(', ')} (${crash.title}), so absent signal(s) ${unread.map((s) => s.name).join(', ')} could not be read` };
    const missed = v.signals.filter((s) => s.role === 'signature' && s.kind !== 'splat' && !s.fired);
    return {
      verdict: 'reproduced',
      reason: `kernel: ${named.map(said).join(', ')}; then ${crash.title} (the probes did not finish${missed.length ? `; not read: ${missed.map((s) => s.name).join(', ')}` : ''})`,
    };
  }
  if (v.flood) return { verdict: 'error', reason: v.flood };
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
    if (!p) return { verdict: 'error', reason: `control probe ${name} did not run${ranInstead(v.report.probes, name)}` };
    if (p.skipped) return { verdict: 'error', reason: `inconclusive: control ${name} was skipped by its test ([SKIP]: ${p.output || 'no reason given'}), so the scenario is not known to work` };
    if (!p.passed) return { verdict: 'error', reason: `control probe ${name} failed: the scenario itself does not work on this kernel` };
  }
  // a signature signal whose pattern ran out of its matching budget (trust/regex.ts) decides nothing
  const cut = v.signals.find((s) => s.role === 'signature' && s.incomplete !== undefined && !s.fired);
  if (cut) return { verdict: 'error', reason: `signal ${cut.name} was not read to the end: ${cut.incomplete}` };
  if (v.signature.probe === undefined) return signalsOnly(v);
  const sig = v.report.probes.find((x) => x.name === v.signature.probe);
  if (!sig) return { verdict: 'error', reason: `signature probe ${v.signature.probe} did not run${ranInstead(v.report.probes, v.signature.probe)}` };
  // a skipped kselftest result tells nothing about the kernel's behaviour: never "failed"
  if (sig.skipped)
    return { verdict: 'error', reason: `inconclusive: the signature ${sig.name} was skipped by its test ([SKIP]: ${sig.output || 'no reason given'}); the kernel or the guest lacks what the test needs` };
  const { signature, fired, missing, absent, absentFired, unobservable, also } = bySignalRole(v);
  const behaves = v.signature.when === 'fail' ? !sig.passed : sig.passed;
  const probeSaid = sig.passed
    ? `${sig.name} passed`
    : `${sig.name} failed${sig.stoppedEarly ? ' (stopped at the kernel signal)' : sig.timedOut ? ' (timed out)' : ''}`;
  const none = signature.length ? `no ${signature.map((s) => `"${s.description}"`).join(', no ')}` : 'no kernel signal declared';
  const asExpected = absent.length && absentFired.length === 0 ? `; absent as expected: ${absent.map((s) => s.name).join(', ')}` : '';
  const absentSaid = absentFired.length ? `; but the kernel showed ${absentFired.map(said).join(', ')}, which must be absent` : '';
  if (behaves && missing.length === 0 && absentFired.length === 0) {
    if (unobservable.length)
      return { verdict: 'error', reason: `${probeSaid}, but absent signal ${unobservable[0]!.name} could not be observed: ${unobservable[0]!.incomplete}` };
    return { verdict: 'reproduced', reason: `${probeSaid}; ${fired.length ? `kernel: ${fired.map(said).join(', ')}` : 'no kernel signal declared'}${asExpected}${also}` };
  }
  if (!behaves && fired.length === 0) return { verdict: 'not-reproduced', reason: `${probeSaid}; ${none}${absentFired.length ? `; kernel: ${absentFired.map(said).join(', ')}` : ''}${also}` };
  // the probe behaves as with the bug, but the kernel did what the fixed kernel does (and showed none of the signature's signals)
  if (behaves && fired.length === 0 && absentFired.length > 0) return { verdict: 'not-reproduced', reason: `${probeSaid}${absentSaid}${missing.length ? `; ${none}` : ''}${also}` };
  if (!behaves)
    return { verdict: 'error', reason: `${probeSaid} but the kernel showed ${fired.map(said).join(', ')}: inconsistent evidence` };
  if (absentFired.length > 0)
    return { verdict: 'error', reason: `${probeSaid}, the kernel showed ${fired.map(said).join(', ')}${absentSaid}: inconsistent evidence` };
  return {
    verdict: 'error',
    reason: `${probeSaid}${sig.rc !== null && !sig.passed ? ` (rc ${sig.rc})` : ''} without the signature's kernel evidence (no ${missing.map((s) => `"${s.description}"`).join(', no ')})${also}`,
  };
}
