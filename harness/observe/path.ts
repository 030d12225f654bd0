// Packet paths through the kernel (--trace-path): what a tracing kernel records, and reading it
// back. Pure: no I/O.
//
// A tracing kernel boots with the function graph tracer armed beneath the network stack's entry
// points (PATH_ENTRIES) and records only around the signature probe (images/agent/agent.sh,
// kr_graph_on/kr_graph_off). The agent sends the graph back compacted (graph.awk), one line per
// call or event, in the `path` section:
//   @ <cpu> <task>-<pid>      the lines below ran in this context (until the next @)
//   <depth> <fn>              a call that called traced functions (its children follow, deeper)
//   <depth> <fn>;             a call that called none
//   <depth> # <event>: <text> a tracepoint event or a return value, where it fired (the comments
//                             function_graph prints); return values are kretprobe events
//                             "kr<n>: (<ret_ip> <- <fn>) ret=0x<hex>"
//   0 }                       a top-level call returned (deeper closing braces are left out)
//   ! <text>                  the buffer lost events, or the agent cut the output
// Depths are function_graph's: a call at depth d is a child of the last call at depth d - 1 in the
// same context; an event at level l fired inside the last call at depth l - 1 (at level 0: inside
// the open top-level call, if any).
import { functionOf } from './trace.ts';

/** Where a packet enters the network stack: the graph records everything beneath these (receive, transmit, local output). */
export const PATH_ENTRIES = ['__netif_receive_skb', '__dev_queue_xmit', 'ip_local_out', 'ip6_local_out'];

/**
 * Kernel infrastructure the network stack calls that is not traced, nor what it calls: the
 * allocator, spin locks, printk (the console under TCG) and the kprobes' own handlers. Each glob
 * costs ~0.1 s of the arming at boot under TCG (ftrace matches it against every traceable
 * function), so the list is short; PATH_NOISE leaves out the rest when paths are compared.
 */
export const PATH_NOTRACE = ['kmem_cache_*', '__kmalloc*', 'kfree', '_raw_spin_*', '*printk*', '*kprobe*', '*kretprobe*', 'call_rcu'];

/**
 * Calls whose inner path depends on state rather than on the packet (allocator fast and slow
 * paths, locks, timers, wakeups, RCU, rate limits, tracepoint iterators, the kprobe machinery):
 * left out of the comparison, with what they call.
 */
export const PATH_NOISE: RegExp[] = [
  /^(kmem_cache_|__kmalloc|kmalloc_|slob_|__slab_|page_frag_|__alloc_pages|__free_pages|free_unref_page)/, /^(kfree|krealloc)$/,
  /^(_raw_(spin|read|write)_|queued_(spin|read|write)_lock)/, /^(call_rcu|rcu_|__rcu_)/,
  /printk/, /^___ratelimit$/,
  /^(__cond_resched|_cond_resched|schedule|preempt_schedule|try_to_wake_up|__wake_up|wake_up_|__queue_work|queue_work_on|irq_work_queue)/,
  /^(mod_timer|__mod_timer|add_timer|del_timer|timer_reduce|hrtimer_|ktime_get)/,
  /^(get_random_|__get_random_|__check_object_size|__might_)/, /^__traceiter_/,
  /k(ret)?probe/, /rethook/,
];

/** Is a call of this function noise for the comparison (see PATH_NOISE)? */
export function isNoise(fn: string): boolean {
  const f = functionOf(fn);
  return PATH_NOISE.some((re) => re.test(f));
}

/** Tracepoints recorded with the graph (they show inside it, where they fired): the packet at each device, drops with their reason, route lookups. */
export const PATH_EVENTS = ['net/netif_receive_skb', 'net/net_dev_queue', 'skb/kfree_skb', 'fib/fib_table_lookup', 'fib6/fib6_table_lookup'];

/**
 * Calls that run other work on the current task: interrupt entry and exit, and softirqs run on the
 * way out of an interrupt or of a bottom-half section. Packets processed inside them are units of
 * their own (they start at an entry point); whatever else they ran (timers, RCU callbacks) is not
 * part of the packet's path.
 */
export const PATH_DETOURS: RegExp = /^(__do_softirq|do_softirq|handle_softirqs|invoke_softirq|run_ksoftirqd|irq_enter|irq_exit|__irq_exit|__irq_enter|__sysvec_|sysvec_|__common_interrupt|common_interrupt)/;

/** Lines the agent sends at most (~4 ms per KB on the serial channel under TCG; a line is ~25 bytes). */
export const PATH_MAX_LINES = 40_000;

/** The kernel command-line words that make the agent arm the graph at boot (a tracing kernel's runs). */
export function graphCmdline(): string[] {
  return [`kr.graph=${PATH_ENTRIES.join(',')}`, `kr.graph_notrace=${PATH_NOTRACE.join(',')}`, `kr.graph_events=${PATH_EVENTS.join(',')}`];
}

/** A kernel symbol as the trace prints it, safe to pass to the agent (kprobe_events takes it). */
export const SYMBOL_RE = /^[A-Za-z_][A-Za-z0-9_.]{0,127}$/;

export interface PathCall {
  kind: 'call';
  /** the symbol as the kernel printed it (with GCC clone suffixes, e.g. tcp_v4_rcv or foo.constprop.0) */
  fn: string;
  depth: number;
  /** "<task>-<pid>" (per CPU for pid 0) */
  ctx: string;
  /** line in the path section */
  line: number;
  children: PathNode[];
  parent: PathCall | null;
  /** its return value (a kretprobe on it), as printed: "0xffffffee" */
  ret?: string;
  /** it called nothing traced */
  leaf: boolean;
}

export interface PathEvent {
  kind: 'event';
  /** the event's name (netif_receive_skb, kfree_skb, fib_table_lookup, ...) */
  name: string;
  text: string;
  line: number;
  ctx: string;
  /** the call it fired in; null outside every traced call */
  parent: PathCall | null;
}

export type PathNode = PathCall | PathEvent;

/** One packet at one place: the work beneath one entry-point call, without the packets it started (units of their own). */
export interface PathUnit {
  index: number;
  root: PathCall;
  /** what identifies the packet across kernels: the entry point, the device and length its first event shows */
  key: string;
}

export interface PathTrace {
  roots: PathCall[];
  /** events outside every traced call (a route lookup before the packet reached ip_local_out, ...) */
  orphans: PathEvent[];
  units: PathUnit[];
  stats: { lines: number; calls: number; events: number; returns: number; lost: number; truncated: number };
}

const RET_RE = /^kr\d+: \((\S+) <- (\S+)\) ret=(0x[0-9a-fA-F]+|-?\d+)/;

/** A return-value event ("kr3: (ip_rcv+0x2f/0x4e <- ip_rcv_core) ret=0xffffffea") -> function and value. */
export function parseRet(text: string): { fn: string; value: string } | null {
  const m = RET_RE.exec(text);
  return m ? { fn: m[2]!, value: m[3]! } : null;
}

export function parsePath(text: string, entries: string[] = PATH_ENTRIES): PathTrace {
  const roots: PathCall[] = [];
  const orphans: PathEvent[] = [];
  const stats = { lines: 0, calls: 0, events: 0, returns: 0, lost: 0, truncated: 0 };
  /** per context: the open calls by depth, and calls still waiting for a return value, by function */
  const stacks = new Map<string, PathCall[]>();
  const pending = new Map<string, Map<string, PathCall[]>>();
  let ctx = '?';
  const lines = text.replace(/\r/g, '').split('\n');
  lines.forEach((raw, line) => {
    const l = raw.trimEnd();
    if (!l) return;
    stats.lines++;
    if (l.startsWith('@ ')) {
      const [cpu, task] = l.slice(2).trim().split(/\s+/);
      // the graph's depth belongs to a task; the idle task (pid 0) is one per CPU
      ctx = task && !/-0$/.test(task) ? task : `${task ?? '?'}@${cpu ?? '?'}`;
      return;
    }
    if (l.startsWith('! ')) {
      const lost = /LOST (\d+) EVENTS/.exec(l);
      const cut = /^! truncated (\d+)/.exec(l);
      if (lost) stats.lost += Number(lost[1]);
      if (cut) stats.truncated += Number(cut[1]);
      return;
    }
    const m = /^(\d+) (.*)$/.exec(l);
    if (!m) return;
    const depth = Number(m[1]);
    const body = m[2]!;
    let stack = stacks.get(ctx);
    if (!stack) stacks.set(ctx, (stack = []));
    if (body === '}') {
      stack.length = 0;
      return;
    }
    if (body.startsWith('# ')) {
      const ev = /^# ([A-Za-z0-9_]+): ?(.*)$/.exec(body);
      if (!ev) return;
      const parent = depth > 0 ? (stack[depth - 1] ?? null) : (stack[0] && !stack[0].leaf ? stack[0] : null);
      const r = parseRet(`${ev[1]}: ${ev[2]}`);
      if (r) {
        // the innermost call of that function still without its return value, in this context
        const waiting = pending.get(ctx)?.get(r.fn);
        const call = waiting?.pop();
        if (call) {
          call.ret = r.value;
          stats.returns++;
        }
        return;
      }
      const e: PathEvent = { kind: 'event', name: ev[1]!, text: ev[2] ?? '', line, ctx, parent };
      stats.events++;
      if (parent) parent.children.push(e);
      else orphans.push(e);
      return;
    }
    const leaf = body.endsWith(';');
    const fn = leaf ? body.slice(0, -1) : body;
    if (!/^\S+$/.test(fn)) return;
    stack.length = Math.min(stack.length, depth);
    // a call deeper than what is open: the recording started inside its callers
    while (stack.length < depth) {
      const gap: PathCall = { kind: 'call', fn: '?', depth: stack.length, ctx, line, children: [], parent: stack[stack.length - 1] ?? null, leaf: false };
      if (gap.parent) gap.parent.children.push(gap);
      else roots.push(gap);
      stack.push(gap);
    }
    const parent = depth > 0 ? stack[depth - 1]! : null;
    const call: PathCall = { kind: 'call', fn, depth, ctx, line, children: [], parent, leaf };
    stats.calls++;
    if (parent) parent.children.push(call);
    else roots.push(call);
    stack.push(call);
    let byFn = pending.get(ctx);
    if (!byFn) pending.set(ctx, (byFn = new Map()));
    const list = byFn.get(fn) ?? [];
    list.push(call);
    byFn.set(fn, list);
  });
  return { roots, orphans, units: unitsOf(roots, entries), stats };
}

/** The units of a forest: every call of an entry point, in trace order (nested ones too). */
function unitsOf(roots: PathCall[], entries: string[]): PathUnit[] {
  const entrySet = new Set(entries);
  const found: PathCall[] = [];
  const walk = (c: PathCall): void => {
    if (entrySet.has(functionOf(c.fn))) found.push(c);
    for (const n of c.children) if (n.kind === 'call') walk(n);
  };
  roots.forEach(walk);
  found.sort((a, b) => a.line - b.line);
  const keys = new Map<PathCall, string>();
  const keyOf = (c: PathCall): string => {
    const known = keys.get(c);
    if (known !== undefined) return known;
    const own = ownEvents(c, entrySet).find((e) => e.name === 'netif_receive_skb' || e.name === 'net_dev_queue');
    let key = functionOf(c.fn);
    if (own) {
      const f = /\bdev=(\S+)/.exec(own.text)?.[1];
      const len = /\blen=(\d+)/.exec(own.text)?.[1];
      key += ` ${f ?? '?'} len=${len ?? '?'}`;
    } else {
      const nested = found.find((u) => u !== c && u.line > c.line && isInside(u, c));
      if (nested) key += ` > ${keyOf(nested)}`;
    }
    keys.set(c, key);
    return key;
  };
  return found.map((root, index) => ({ index, root, key: keyOf(root) }));
}

function isInside(c: PathCall, ancestor: PathCall): boolean {
  for (let p = c.parent; p; p = p.parent) if (p === ancestor) return true;
  return false;
}

/** Is this call where a packet of its own starts, or another context's work (not part of the packet's path)? */
function isBoundary(c: PathCall, entries: Set<string>): boolean {
  const f = functionOf(c.fn);
  return entries.has(f) || PATH_DETOURS.test(f);
}

/** Left out of a unit's own path: another packet, a detour, or noise. */
function isOutside(c: PathCall, entries: Set<string>): boolean {
  return isBoundary(c, entries) || isNoise(c.fn);
}

/** The events of a unit's own work (not those of the packets it started, nor of detours). */
export function ownEvents(root: PathCall, entries: Set<string> = new Set(PATH_ENTRIES)): PathEvent[] {
  const out: PathEvent[] = [];
  const walk = (c: PathCall): void => {
    for (const n of c.children) {
      if (n.kind === 'event') out.push(n);
      else if (!isBoundary(n, entries)) walk(n); // events inside noise calls (a tracepoint's iterator) are the unit's
    }
  };
  walk(root);
  return out;
}

/** A unit's own calls in order (pre-order), without the packets it started and without detours. */
export function ownCalls(root: PathCall, entries: Set<string> = new Set(PATH_ENTRIES)): PathCall[] {
  const out: PathCall[] = [root];
  const walk = (c: PathCall): void => {
    for (const n of c.children)
      if (n.kind === 'call' && !isOutside(n, entries)) {
        out.push(n);
        walk(n);
      }
  };
  walk(root);
  return out;
}

/** Every event beneath a call (packets it started included), in trace order. */
export function eventsBeneath(root: PathCall): PathEvent[] {
  const out: PathEvent[] = [];
  const walk = (c: PathCall): void => {
    for (const n of c.children) {
      if (n.kind === 'event') out.push(n);
      else walk(n);
    }
  };
  walk(root);
  return out;
}
