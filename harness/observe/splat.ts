// Kernel splats in the kernel log: WARN, BUG, refcount_t, KASAN and UBSAN reports, each with the
// function it names and its call trace, and the phase of the case it happened in. Pure.
//
// What the kernel prints (6.1: kernel/panic.c __warn, lib/bug.c report_bug, lib/refcount.c,
// mm/kasan/report.c, lib/ubsan.c):
//   ------------[ cut here ]------------                 (a WARN with a message: the message next)
//   refcount_t: underflow; use-after-free.               (REFCOUNT_WARN: then its WARNING line)
//   WARNING: CPU: 0 PID: 1 at net/ipv6/route.c:1234 fib6_foo+0x12/0x34 [ipv6]
//   kernel BUG at net/core/skbuff.c:123!
//   BUG: kernel NULL pointer dereference, address: 0000000000000000
//   BUG: KASAN: slab-use-after-free in fib6_foo+0x12/0x34
//   UBSAN: shift-out-of-bounds in net/ipv4/foo.c:12:34
// then "RIP: 0010:func+0x12/0x34", "Call Trace:", frames, "---[ end trace ... ]---" (KASAN and
// UBSAN reports end with a line of '=').
//
// The window: the agent writes "kernel-repro: phase <setup|steps|probes|after>" into the kernel
// log (/dev/kmsg) as the case goes (setup: the case was received; steps: the case's steps begin;
// probes: the probes begin; after: the probes are over). Splats count from the first such marker
// to the end of the console; a console without markers (an agent that did not write them) counts
// whole.
import { parseKernelLine, splitLines } from './kernelLog.ts';
import { functionOf } from './trace.ts';

export const SPLAT_TYPES = ['warn', 'bug', 'refcount', 'kasan', 'ubsan'] as const;
export type SplatType = (typeof SPLAT_TYPES)[number];
export const CASE_PHASES = ['setup', 'steps', 'probes', 'after'] as const;
export type CasePhase = (typeof CASE_PHASES)[number];

/** The marker the agent writes into the kernel log at each phase of the case (agent.sh kr_phase). */
export const PHASE_MARK = 'kernel-repro: phase ';
const PHASE_RE = /^kernel-repro: phase (setup|steps|probes|after)\s*$/;

/** At most this many lines of a splat are kept (its header and call trace). */
export const SPLAT_MAX_LINES = 40;
/** A splat's body is looked for over at most this many lines after its header. */
const SPLAT_SCAN_LINES = 300;

export interface Splat {
  type: SplatType;
  /** the header line as printed (without console prefixes) */
  title: string;
  /** kasan: the bug type (slab-use-after-free); ubsan: the check (shift-out-of-bounds); refcount: saturated, underflow, ...; bug: what the BUG line says */
  kind?: string;
  /** the faulting function as written in C (suffixes like .constprop.0 dropped), or null when the splat names none */
  function: string | null;
  /** where the kernel says it was: the symbol as printed (func+0x12/0x34) */
  at?: string;
  file?: string;
  line?: number;
  /** the phase of the case it happened in (absent: the console has no phase markers) */
  phase?: CasePhase;
  /** printk timestamp of the header, when printed */
  time?: number;
  /** the header, the message, the RIP line and the call trace(s): at most SPLAT_MAX_LINES */
  excerpt: string[];
}

// " dump_stack_lvl+0x44/0x5c", " [<ffffffff8100abcd>] dump_stack+0x19/0x1b", " ? foo+0x1/0x2", " bar+0x10/0x20 [mod]"
const FRAME_RE = /^\s*(?:\[<[0-9a-fA-F]+>\]\s*)?(\?\s+)?([A-Za-z_.$][\w.$]*)\+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+/;
const MARKER_RE = /^\s*<\/?[A-Z]+>\s*$/;
const RIP_RE = /^(?:RIP|pc|PC is at|EIP|NIP)[\s:]+(?:[0-9a-f]{4}:)?(?:\[<[0-9a-fA-F]+>\]\s*)?([A-Za-z_.$][\w.$]*\+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+)/;
const SYM_RE = /^([A-Za-z_.$][\w.$]*)\+0x[0-9a-fA-F]+\/0x[0-9a-fA-F]+/;
/** functions of the reporting machinery, never "the faulting function" */
const MACHINERY_RE =
  /^(?:dump_stack(?:_lvl)?|__dump_stack|show_stack|show_trace_log_lvl|__warn|warn_slowpath_fmt|__warn_printk|report_bug|handle_bug|exc_invalid_op|asm_exc_invalid_op|print_report|print_address_description|kasan_report|__kasan_\w+|kasan_\w+|__asan_\w+|check_region_inline|__might_resched|__might_sleep|__might_fault|__schedule_bug|ubsan_epilogue|__ubsan_handle_\w+|handle_overflow|panic|refcount_warn_saturate|__refcount_\w+|refcount_\w+)$/;

// headers
const CUT_RE = /^-+\[ cut here \]-+$/;
const REFCOUNT_RE = /^refcount_t: (.*?)\.?$/;
// 6.1: "WARNING: CPU: 0 PID: 1 at file:line func+0x/0x" or "... at func+0x/0x"; newer kernels: "WARNING: file:line at func+0x/0x, CPU#0: comm/1"; old: "WARNING: at file:line func()"
const WARN_RES: RegExp[] = [
  /^WARNING: CPU: \d+ PID: \d+ at (?:(\S+):(\d+) )?(\S+)/,
  /^WARNING: (\S+):(\d+) at ([^\s,]+)/,
  /^WARNING: at (\S+):(\d+) ([A-Za-z_.$][\w.$]*)\(\)/,
];
// lockdep and RCU reports: warnings without a location
const WARN_OTHER_RE = /^WARNING: (?:possible |suspicious |inconsistent |bad unlock|held lock freed|lock held|nested lock|Nested lock)/;
const KBUG_RE = /^kernel BUG at (\S+?):(\d+)!/;
const KASAN_RE = /^BUG: KASAN: (\S+)(?: in (\S+))?/;
const BUG_RE = /^BUG: (.+)$/;
const UBSAN_RE = /^UBSAN: (.+?) in (\S+?):(\d+)(?::\d+)?\s*$/;
const UBSAN_OLD_RE = /^UBSAN: Undefined behaviour in (\S+?):(\d+)(?::\d+)?/;
const OOPS_RE = /^(?:Oops(?::| -)|Internal error: Oops|general protection fault|invalid opcode:)/;
const END_RE = /^---\[ end (?:trace|Kernel panic)/;
const RULE_RE = /^={20,}\s*$/;
// lines of a splat worth keeping besides its header and frames
const KEEP_RE = /^(?:Call Trace:|Call trace:|(?:Read|Write) of size|Allocated by task|Freed by task|Last potentially related work|The buggy address|shift exponent|index \d+ is out of range|signed integer overflow|load of value|division|member access|---\[ end)/;

interface Open {
  splat: Splat;
  /** lines scanned since its header */
  scanned: number;
  /** its RIP line's symbol, when printed */
  rip?: string;
  /** reliable frames of its call trace(s), in order */
  frames: string[];
  /** a refcount splat still waiting for its WARNING line */
  awaitingWarning: boolean;
}

type SplatHeader = Omit<Splat, 'excerpt' | 'phase' | 'time'>;

function header(msg: string): SplatHeader | null {
  let m = REFCOUNT_RE.exec(msg);
  if (m) return { type: 'refcount', title: msg, kind: m[1]!.replace(/;.*$/, ''), function: null };
  for (const re of WARN_RES) {
    m = re.exec(msg);
    if (m) {
      const at = m[3]!.replace(/,$/, '');
      const sym = SYM_RE.exec(at)?.[1] ?? (/^[A-Za-z_.$][\w.$]*$/.test(at) ? at : null);
      return { type: 'warn', title: msg, function: sym ? functionOf(sym) : null, ...(sym ? { at } : {}), ...(m[1] ? { file: m[1], line: Number(m[2]) } : {}) };
    }
  }
  if (WARN_OTHER_RE.test(msg)) return { type: 'warn', title: msg, kind: msg.slice('WARNING: '.length), function: null };
  m = KBUG_RE.exec(msg);
  if (m) return { type: 'bug', title: msg, kind: 'kernel BUG', function: null, file: m[1]!, line: Number(m[2]) };
  m = KASAN_RE.exec(msg);
  if (m) {
    const at = m[2];
    const sym = at ? (SYM_RE.exec(at)?.[1] ?? at) : null;
    return { type: 'kasan', title: msg, kind: m[1]!, function: sym ? functionOf(sym) : null, ...(at ? { at } : {}) };
  }
  m = BUG_RE.exec(msg);
  if (m) return { type: 'bug', title: msg, kind: m[1]!.trim(), function: null };
  m = UBSAN_OLD_RE.exec(msg);
  if (m) return { type: 'ubsan', title: msg, kind: 'undefined-behaviour', function: null, file: m[1]!, line: Number(m[2]) };
  m = UBSAN_RE.exec(msg);
  if (m) return { type: 'ubsan', title: msg, kind: m[1]!, function: null, file: m[2]!, line: Number(m[3]) };
  return null;
}

function close(o: Open): Splat {
  const s = o.splat;
  if (s.function === null) {
    // bug: the RIP line; refcount, ubsan and the rest: the first reliable frame outside the reporting machinery
    const fromRip = s.type === 'refcount' || s.type === 'ubsan' ? null : o.rip;
    const sym = fromRip ?? o.frames.map((f) => functionOf(f)).find((f) => !MACHINERY_RE.test(f)) ?? null;
    s.function = sym === null ? null : functionOf(sym);
    if (s.at === undefined && fromRip) s.at = fromRip;
  }
  return s;
}

/** The kernel log's messages in the case's window (see the header), with the phase each is in. */
export function caseMessages(consoleText: string): Array<{ msg: string; time?: number; phase?: CasePhase }> {
  const lines = splitLines(consoleText).map((l) => parseKernelLine(l));
  const first = lines.findIndex((l) => PHASE_RE.test(l.msg.trim()));
  const out: Array<{ msg: string; time?: number; phase?: CasePhase }> = [];
  let phase: CasePhase | undefined;
  for (let i = Math.max(0, first); i < lines.length; i++) {
    const l = lines[i]!;
    const msg = l.msg.trimEnd();
    const pm = PHASE_RE.exec(msg.trim());
    if (pm) phase = pm[1] as CasePhase;
    out.push({ msg, ...(l.time !== undefined ? { time: l.time } : {}), ...(phase ? { phase } : {}) });
  }
  return out;
}

/** Every splat in the case's window of the console, in order. */
export function parseSplats(consoleText: string): Splat[] {
  const msgs = caseMessages(consoleText);
  const out: Splat[] = [];
  let open: Open | null = null;
  let cutAt = -10;
  const finish = (): void => {
    if (open) out.push(close(open));
    open = null;
  };
  for (let i = 0; i < msgs.length; i++) {
    const { msg, time, phase } = msgs[i]!;
    if (PHASE_RE.test(msg.trim())) {
      finish();
      continue;
    }
    if (CUT_RE.test(msg)) {
      // (older kernels print a refcount_t message before the "cut here" of its WARNING)
      if (open && (open as Open).awaitingWarning) continue;
      finish();
      cutAt = i;
      continue;
    }
    const h = header(msg);
    const cur: Open | null = open;
    if (h && cur && cur.awaitingWarning && h.type === 'warn' && h.at !== undefined) {
      // the refcount message's own WARNING line: where, not a new splat
      cur.awaitingWarning = false;
      cur.splat.at = h.at;
      if (h.file !== undefined) cur.splat.file = h.file;
      if (h.line !== undefined) cur.splat.line = h.line;
      if (cur.splat.excerpt.length < SPLAT_MAX_LINES) cur.splat.excerpt.push(msg);
      continue;
    }
    if (h && h.type === 'refcount' && cur && cur.splat.type === 'warn' && cur.splat.at !== undefined && cur.scanned <= 3) {
      // (arm64 prints a WARN's message after its WARNING line) the WARNING was this refcount_t's
      cur.splat = { ...cur.splat, type: 'refcount', kind: h.kind!, function: null, excerpt: [...cur.splat.excerpt, msg] };
      continue;
    }
    // an Oops line opens a splat only outside one (after "BUG: unable to handle ..." it is part of it)
    const oops: SplatHeader | null = !h && !cur && OOPS_RE.test(msg) ? { type: 'bug', title: msg, kind: msg.replace(/:.*$/, ''), function: null } : null;
    const hd: SplatHeader | null = h ?? oops;
    if (hd) {
      finish();
      // a WARN's message: the lines between "cut here" and its WARNING line
      const message: string[] = hd.type === 'warn' && i - cutAt <= 6 ? msgs.slice(cutAt + 1, i).map((x) => x.msg) : [];
      open = {
        splat: { ...hd, ...(phase ? { phase } : {}), ...(time !== undefined ? { time } : {}), excerpt: [...message, msg] },
        scanned: 0,
        frames: [],
        awaitingWarning: hd.type === 'refcount',
      };
      continue;
    }
    if (!cur) continue;
    const o: Open = cur;
    o.scanned++;
    const keep = (): void => {
      if (o.splat.excerpt.length < SPLAT_MAX_LINES) o.splat.excerpt.push(msg);
    };
    if (END_RE.test(msg)) {
      keep();
      finish();
      continue;
    }
    if (RULE_RE.test(msg)) {
      finish();
      continue;
    }
    const rip = RIP_RE.exec(msg);
    if (rip) {
      o.rip ??= rip[1]!;
      keep();
    } else if (FRAME_RE.test(msg) || MARKER_RE.test(msg)) {
      const f = FRAME_RE.exec(msg);
      if (f && f[1] === undefined && f[2]) o.frames.push(f[2]);
      keep();
    } else if (KEEP_RE.test(msg.trim()) || (o.splat.type === 'ubsan' && o.scanned <= 2 && !/^CPU: /.test(msg))) keep();
    if (o.scanned >= SPLAT_SCAN_LINES) finish();
  }
  finish();
  return out;
}

/** The kernel-log ERE (grep -E) that sees a splat of this type begin: what a probe with stopOnSignal watches for. */
export function splatWatch(type: SplatType | 'any'): string {
  const by: Record<SplatType, string> = {
    warn: 'WARNING: CPU: [0-9]+ PID: [0-9]+|WARNING: [^ ]+:[0-9]+ at ',
    bug: 'kernel BUG at |BUG: ([^K]|K[^A]|KA[^S])',
    refcount: 'refcount_t: ',
    kasan: 'BUG: KASAN: ',
    ubsan: 'UBSAN: ',
  };
  return type === 'any' ? SPLAT_TYPES.map((t) => by[t]).join('|') : by[type];
}
