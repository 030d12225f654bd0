// Find a kernel crash in console output. Pure: no I/O.

import type { PanicInfo } from './types.ts';
import { parseKernelLine, splitLines } from './kernelLog.ts';

type Kind = PanicInfo['kind'];

const PANIC_RE = /^Kernel panic - not syncing/;
const OOPS_RES: RegExp[] = [/^Oops(?::| -)/, /^Internal error: Oops/, /^general protection fault/];
const BUG_RES: RegExp[] = [/^BUG: \S/, /^kernel BUG at /];
const WARNING_RE =
  /^WARNING: (?:CPU: \d+ PID: \d+|possible |suspicious |inconsistent |bad unlock)/;

/** Maximum number of lines kept in PanicInfo.text. */
const MAX_TEXT_LINES = 80;

function oopsOrBugKind(msg: string): Kind | null {
  if (BUG_RES.some((re) => re.test(msg))) return 'bug';
  if (OOPS_RES.some((re) => re.test(msg))) return 'oops';
  return null;
}

function collect(msgs: string[], start: number, endRe: RegExp): string {
  const out: string[] = [];
  for (let i = start; i < msgs.length && out.length < MAX_TEXT_LINES; i++) {
    const msg = msgs[i] ?? '';
    out.push(msg);
    if (endRe.test(msg)) break;
  }
  return out.join('\n');
}

/**
 * The most severe crash in `consoleLog`, or null for a clean log.
 * Severity: `Kernel panic - not syncing` > oops/BUG (`Oops:`, `Oops -`, `general protection
 * fault`, `BUG: ...`, `kernel BUG at`) > `WARNING:`; within a level the first one wins.
 * `title` is the marker line without console prefixes. `text` runs from the marker (for a panic:
 * from the first oops/BUG line within the 80 lines before it, which carries the stack) for at most
 * 80 lines, ending early at `---[ end Kernel panic` (panic) or `---[ end trace` (others), inclusive.
 */
export function detectPanic(consoleLog: string): PanicInfo | null {
  const msgs = splitLines(consoleLog).map((l) => parseKernelLine(l).msg.trimEnd());

  const panicIdx = msgs.findIndex((m) => PANIC_RE.test(m));
  if (panicIdx >= 0) {
    let start = panicIdx;
    for (let i = Math.max(0, panicIdx - (MAX_TEXT_LINES - 1)); i < panicIdx; i++) {
      if (oopsOrBugKind(msgs[i] ?? '') !== null) {
        start = i;
        break;
      }
    }
    return {
      kind: 'panic',
      title: (msgs[panicIdx] ?? '').trim(),
      text: collect(msgs, start, /^---\[ end Kernel panic/),
    };
  }

  for (let i = 0; i < msgs.length; i++) {
    const msg = msgs[i] ?? '';
    const kind = oopsOrBugKind(msg);
    if (kind !== null) {
      return { kind, title: msg.trim(), text: collect(msgs, i, /^---\[ end trace/) };
    }
  }

  const warnIdx = msgs.findIndex((m) => WARNING_RE.test(m));
  if (warnIdx >= 0) {
    return {
      kind: 'warning',
      title: (msgs[warnIdx] ?? '').trim(),
      text: collect(msgs, warnIdx, /^---\[ end trace/),
    };
  }
  return null;
}

// " dump_stack_lvl+0x44/0x5c", " [<ffffffff8100abcd>] dump_stack+0x19/0x1b",
// " ? foo+0x1/0x2" (unreliable), " bar+0x10/0x20 [mymod]"
const FRAME_RE = /^\s*(?:\[<[0-9a-fA-F]+>\]\s*)?(\?\s+)?([A-Za-z_.$][\w.$]*)\+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+/;
// stack-section markers printed inside a trace: <TASK> </TASK> <IRQ> </IRQ> <NMI> <EOI> ...
const MARKER_RE = /^\s*<\/?[A-Z]+>\s*$/;

/**
 * A stable one-line identity for a crash: the title plus the first 3 reliable function names of
 * the first `Call Trace:` in the text (`<TASK>`-style markers and `? `-prefixed frames skipped),
 * joined by ' | '. E.g. `Kernel panic - not syncing: sysrq triggered crash | dump_stack_lvl |
 * panic | sysrq_handle_crash`.
 */
export function crashFingerprint(p: PanicInfo): string {
  const funcs: string[] = [];
  const lines = p.text.split('\n');
  const traceAt = lines.findIndex((l) => /^\s*Call [Tt]race:/.test(l));
  if (traceAt >= 0) {
    for (let i = traceAt + 1; i < lines.length && funcs.length < 3; i++) {
      const line = lines[i] ?? '';
      if (MARKER_RE.test(line)) continue;
      const m = FRAME_RE.exec(line);
      if (!m) break; // end of the trace block
      if (m[1] !== undefined) continue; // "? frame": not reliable
      if (m[2] !== undefined) funcs.push(m[2]);
    }
  }
  return [p.title, ...funcs].join(' | ');
}
