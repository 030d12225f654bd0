// Where two kernels' packet paths split (--trace-path): align the paths the function graph
// recorded on each kernel for the signature probe, name the first place they differ, the return
// values there and what each kernel did next. Pure.
//
// 1. Each side's packets (units: the work beneath one entry-point call, see path.ts) are reduced to
//    their own calls (not the packets they started, not detours into other softirq work, not
//    PATH_NOISE), as "<depth>:<function>" tokens; function names without GCC's clone suffixes, so
//    that two builds compare.
// 2. A packet seen again with the same path on the same side (a retransmit) counts once; the
//    packets are matched across sides by their key (entry point, device, length) in order (longest
//    common subsequence): packets only one side saw (other traffic) are left aside.
// 3. In the first matched pair whose paths differ, the common prefix ends where one kernel called
//    something the other did not. The function named is the one whose return value differs there,
//    followed down to the deepest such callee (kretprobe values, second pass); without a differing
//    return value, the caller that branched.
import { functionOf } from './trace.ts';
import { eventsBeneath, isNoise, ownCalls, PATH_ENTRIES, SYMBOL_RE, type PathCall, type PathEvent, type PathTrace, type PathUnit } from './path.ts';

/**
 * A kretprobe's $retval (x64) read as the C function most likely returned it: a 32- or 64-bit
 * integer, a pointer, or a bool. An int leaves the upper half zero (or sign-extended: a long
 * error code, an ERR_PTR); a bool may set only %al and leave whatever was in %rax above it, so a
 * value with such an upper half and a low byte of 1 (never an aligned pointer) is a true bool.
 */
export interface RetValue {
  raw: string;
  kind: 'int' | 'pointer' | 'bool';
  /** the integer (ints, ERR_PTR values, a bool's 1), else null */
  value: number | null;
  /** the low byte (a bool's value, whatever the rest) */
  low: number;
}

export function retValue(raw: string): RetValue {
  let v: bigint;
  try {
    v = BigInt(raw);
  } catch {
    return { raw, kind: 'int', value: null, low: -1 };
  }
  if (v < 0n) v += 1n << 64n;
  const hi = v >> 32n;
  const lo = v & 0xffffffffn;
  const low = Number(v & 0xffn);
  if (hi === 0n || hi === 0xffffffffn) return { raw, kind: 'int', value: Number(lo >= 0x80000000n ? lo - 0x100000000n : lo), low };
  if (low === 1) return { raw, kind: 'bool', value: 1, low };
  return { raw, kind: 'pointer', value: null, low };
}

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST',
  18: 'EXDEV', 19: 'ENODEV', 22: 'EINVAL', 28: 'ENOSPC', 32: 'EPIPE', 34: 'ERANGE', 61: 'ENODATA', 71: 'EPROTO', 74: 'EBADMSG', 75: 'EOVERFLOW', 84: 'EILSEQ',
  90: 'EMSGSIZE', 92: 'ENOPROTOOPT', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 100: 'ENETDOWN',
  101: 'ENETUNREACH', 103: 'ECONNABORTED', 104: 'ECONNRESET', 105: 'ENOBUFS', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED', 113: 'EHOSTUNREACH', 115: 'EINPROGRESS',
};

/** "-18 (-EXDEV)", "1", "pointer 0xffff8880..." */
export function describeRet(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  const r = retValue(raw);
  if (r.kind === 'pointer') return `pointer ${r.raw}`;
  if (r.kind === 'bool') return `1 (true, ${r.raw})`;
  if (r.value === null) return r.raw;
  const name = r.value < 0 ? ERRNO[-r.value] : undefined;
  return name ? `${r.value} (-${name})` : String(r.value);
}

/** The return value for JSON: the integer, or the pointer as printed; null when not recorded. */
export function retJson(raw: string | undefined): number | string | null {
  if (raw === undefined) return null;
  const r = retValue(raw);
  return r.kind !== 'pointer' && r.value !== null ? r.value : r.raw;
}

/**
 * Do two return values differ? Pointers compare as "a pointer" (their values differ from kernel to
 * kernel); a bool on either side compares the low bytes. null: unknown (not recorded, or a pointer
 * with a zero low byte against 0, which is NULL against a pointer or two false bools).
 */
export function retsDiffer(a: string | undefined, b: string | undefined): boolean | null {
  if (a === undefined || b === undefined) return null;
  const x = retValue(a);
  const y = retValue(b);
  if (x.kind === 'int' && y.kind === 'int') return x.value !== y.value;
  if (x.kind === 'bool' || y.kind === 'bool') return x.low !== y.low;
  if (x.kind === 'pointer' && y.kind === 'pointer') return false;
  const [p, i] = x.kind === 'pointer' ? [x, y] : [y, x];
  if (i.value === 0 && p.low === 0) return null;
  return true;
}

export interface DivergenceSide {
  kernel: string;
  /** the named function's return value: an integer, a pointer as printed, or null when not recorded */
  ret: number | string | null;
  /** the same in words: "-18 (-EXDEV)" */
  retText: string | null;
  /** the first call after the split on this kernel (null: it made no further call for this packet) */
  next: string | null;
  /** who made that call */
  nextIn: string | null;
  /** the calls after it, in order (a few) */
  then: string[];
  /** the first packet drop after the split: skb:kfree_skb's reason and the dropping function */
  drop: { reason: string; at: string | null } | null;
  /** tracepoint events inside the named function on this kernel (route lookups, ...) */
  events: string[];
}

export interface Divergence {
  /** the function where the paths split, as the kernel's symbols name it */
  function: string;
  /** its callers, innermost first, up to the packet's entry point */
  via: string[];
  /** 'return': it returned differently (and what followed differed); 'call': the caller branched with no differing return value recorded */
  how: 'return' | 'call';
  /** the packet: entry point, device, length */
  packet: string;
  before: DivergenceSide;
  after: DivergenceSide;
  /** the drop after the split (the first kernel that dropped) */
  drop: { reason: string; at: string | null; kernel: string } | null;
}

export interface PathComparison {
  before: string;
  after: string;
  divergence: Divergence | null;
  /** what was compared, and what was left aside */
  note: string;
}

interface Prepared {
  unit: PathUnit;
  calls: PathCall[];
  tokens: string[];
  sig: string;
  repeat: boolean;
}

function prepare(t: PathTrace, entries: Set<string>): Prepared[] {
  const seen = new Set<string>();
  return t.units.map((unit) => {
    const calls = ownCalls(unit.root, entries);
    const tokens = calls.map((c) => `${c.depth - unit.root.depth}:${functionOf(c.fn)}`);
    const sig = `${unit.key}\n${tokens.join(' ')}`;
    const repeat = seen.has(sig);
    seen.add(sig);
    return { unit, calls, tokens, sig, repeat };
  });
}

/** Longest common subsequence of two key lists: the matched index pairs, in order. */
export function lcsPairs(a: string[], b: string[]): Array<[number, number]> {
  const n = a.length;
  const m = b.length;
  if (n * m > 25_000_000) {
    // too many packets to match exhaustively: in order, greedily
    const out: Array<[number, number]> = [];
    let j = 0;
    for (let i = 0; i < n && j < m; i++) {
      const k = b.indexOf(a[i]!, j);
      if (k >= 0) {
        out.push([i, k]);
        j = k + 1;
      }
    }
    return out;
  }
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const out: Array<[number, number]> = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push([i, j]);
      i++;
      j++;
    } else if (dp[i + 1]![j]! >= dp[i]![j + 1]!) i++;
    else j++;
  }
  return out;
}

/** Where a matched pair of packets splits: the calls both made before it, and the calls just after it. */
export interface Split {
  a: Prepared;
  b: Prepared;
  /** where the split starts in each side's own calls */
  ia: number;
  ib: number;
  /** the calls both made before the split (one side's -> the same call on the other) */
  pair: Map<PathCall, PathCall>;
  /** the caller both were in at the split, and its children before it (the last one decided, usually) */
  parent: PathCall;
  siblings: PathCall[];
  nextA: PathCall | undefined;
  nextB: PathCall | undefined;
}

function relDepth(c: PathCall, p: Prepared): number {
  return c.depth - p.unit.root.depth;
}

/** Calls after a split that must match on both sides for an extra call tree on one side to count as rejoined. */
const REJOIN = 8;

/**
 * A hunk of calls one side made and the other did not, as in a diff of the two call sequences. It
 * rejoins when only one side has calls in it, they are whole call trees, and both sides go on with
 * the same calls after it (state, not the packet: a neighbour entry created on one kernel only, say).
 */
function rejoins(extra: PathCall[], p: Prepared, after: number, matchedAfter: number, remaining: number): boolean {
  const d = relDepth(extra[0]!, p);
  if (extra.some((c) => relDepth(c, p) < d)) return false;
  const next = p.calls[after];
  if (next && relDepth(next, p) > d) return false;
  return matchedAfter >= 1 && matchedAfter >= Math.min(REJOIN, remaining);
}

/** The first split of a matched pair that does not rejoin (null: none), and how many rejoined before it. */
function splitOf(a: Prepared, b: Prepared): { split: Split | null; rejoined: number } {
  const matches = lcsPairs(a.tokens, b.tokens);
  const pair = new Map<PathCall, PathCall>();
  let rejoined = 0;
  let pa = 0;
  let pb = 0;
  for (let k = 0; k <= matches.length; k++) {
    const [ma, mb] = matches[k] ?? [a.tokens.length, b.tokens.length];
    if (ma > pa || mb > pb) {
      // a hunk: a.calls[pa..ma) against b.calls[pb..mb)
      let run = 0;
      while (k + run < matches.length && matches[k + run]![0] === ma + run && matches[k + run]![1] === mb + run) run++;
      const remaining = Math.min(a.tokens.length - ma, b.tokens.length - mb);
      const onlyA = mb === pb;
      const onlyB = ma === pa;
      const transient =
        (onlyA && rejoins(a.calls.slice(pa, ma), a, ma, run, remaining)) || (onlyB && rejoins(b.calls.slice(pb, mb), b, mb, run, remaining));
      if (!transient) return { split: splitAt(a, b, pa, pb, pair), rejoined };
      rejoined++;
    }
    if (k < matches.length) {
      pair.set(a.calls[ma]!, b.calls[mb]!);
      pa = ma + 1;
      pb = mb + 1;
    }
  }
  return { split: null, rejoined };
}

/** Calls in common before a split for two packets to count as the same packet on both kernels (at least, and as a share of the shorter path). */
const ALIKE_CALLS = 4;
const ALIKE_SHARE = 0.25;

function alike(s: Split): boolean {
  return s.pair.size >= ALIKE_CALLS && s.pair.size >= ALIKE_SHARE * Math.min(s.a.calls.length, s.b.calls.length);
}

function splitAt(a: Prepared, b: Prepared, ia: number, ib: number, pair: Map<PathCall, PathCall>): Split {
  const nextA = a.calls[ia];
  const nextB = b.calls[ib];
  const depths = [nextA ? relDepth(nextA, a) : null, nextB ? relDepth(nextB, b) : null].filter((d): d is number => d !== null);
  const level = Math.max(1, Math.min(...depths));
  let pIdx = ia - 1;
  while (pIdx > 0 && (relDepth(a.calls[pIdx]!, a) !== level - 1 || !pair.has(a.calls[pIdx]!))) pIdx--;
  const parent = a.calls[Math.max(0, pIdx)]!;
  const siblings = a.calls.slice(pIdx + 1, ia).filter((c) => relDepth(c, a) === level && c.parent === parent && pair.has(c));
  return { a, b, ia, ib, pair: new Map(pair), parent, siblings, nextA, nextB };
}

/** The children of a prefix call that are in the prefix too (paired with the other side's). */
function pairedChildren(c: PathCall, pair: Map<PathCall, PathCall>): PathCall[] {
  return c.children.filter((n): n is PathCall => n.kind === 'call' && pair.has(n));
}

/** From a call whose return value differs, down to the deepest callee whose return value differs too (the last such at each level). */
function descend(c: PathCall, pair: Map<PathCall, PathCall>): PathCall {
  for (;;) {
    const kids = pairedChildren(c, pair).filter((k) => retsDiffer(k.ret, pair.get(k)!.ret) === true);
    const last = kids[kids.length - 1];
    if (!last) return c;
    c = last;
  }
}

/** The nearest caller that is not noise (an event fires inside a tracepoint's iterator, say). */
function realCaller(c: PathCall | null): PathCall | null {
  while (c && isNoise(c.fn)) c = c.parent;
  return c;
}

function dropOfEvent(e: PathEvent): { reason: string; at: string | null } | null {
  const reason = /\breason: (\S+)/.exec(e.text)?.[1];
  if (!reason) return null;
  // the event fires in kfree_skb_reason(); its location is the caller's
  let c = realCaller(e.parent);
  while (c && /^(__)?kfree_skb/.test(functionOf(c.fn))) c = realCaller(c.parent);
  return { reason, at: c?.fn ?? null };
}

function sideOf(kernel: string, p: Prepared, origin: PathCall | undefined, next: PathCall | undefined, after: number): DivergenceSide {
  const calls = p.calls;
  const idx = next ? calls.indexOf(next) : -1;
  const then: string[] = [];
  if (idx >= 0) for (const c of calls.slice(idx + 1)) if (then.length < 6 && then[then.length - 1] !== c.fn) then.push(c.fn);
  const drops = eventsBeneath(p.unit.root)
    .filter((e) => e.name === 'kfree_skb' && e.line >= after)
    .map(dropOfEvent)
    .filter((d): d is NonNullable<typeof d> => d !== null);
  const events = origin
    ? eventsBeneath(origin)
        .filter((e) => e.name !== 'kfree_skb' && e.name !== 'netif_receive_skb' && e.name !== 'net_dev_queue')
        .map((e) => `${e.name}: ${e.text}`)
    : [];
  return {
    kernel,
    ret: origin ? retJson(origin.ret) : null,
    retText: origin ? describeRet(origin.ret) : null,
    next: next?.fn ?? null,
    nextIn: next ? (realCaller(next.parent)?.fn ?? null) : null,
    then,
    drop: drops[0] ?? null,
    events: [...new Set(events)].slice(0, 4),
  };
}

function divergenceOf(s: Split, kernels: [string, string]): Divergence {
  // the last sibling before the split (and the ones before it) first: a return value that differs
  let origin: PathCall | undefined;
  for (const sib of [...s.siblings].reverse())
    if (retsDiffer(sib.ret, s.pair.get(sib)!.ret) === true) {
      origin = descend(sib, s.pair);
      break;
    }
  let how: Divergence['how'] = 'return';
  if (!origin) {
    how = 'call';
    const last = s.siblings[s.siblings.length - 1];
    const dA = s.nextA ? relDepth(s.nextA, s.a) : -1;
    const dB = s.nextB ? relDepth(s.nextB, s.b) : -1;
    // one kernel went on inside the last sibling, the other did not: it branched in there
    origin = last && dA !== dB ? last : s.parent;
    if (retsDiffer(origin.ret, s.pair.get(origin)?.ret) === true) how = 'return';
  }
  const other = s.pair.get(origin);
  const via: string[] = [];
  for (let c = realCaller(origin.parent); c; c = realCaller(c.parent)) {
    via.push(c.fn);
    if (c === s.a.unit.root) break;
  }
  const lastA = s.a.calls[s.ia - 1] ?? s.a.unit.root;
  const lastB = s.b.calls[s.ib - 1] ?? s.b.unit.root;
  const before = sideOf(kernels[0], s.a, origin, s.nextA, lastA.line + 1);
  const after = sideOf(kernels[1], s.b, other, s.nextB, lastB.line + 1);
  const drop = before.drop ? { ...before.drop, kernel: kernels[0] } : after.drop ? { ...after.drop, kernel: kernels[1] } : null;
  return { function: origin.fn, via, how, packet: s.a.unit.key, before, after, drop };
}

type Side = { kernel: string; trace: PathTrace };

interface Analysis {
  /** no path on a side: why */
  empty?: string;
  /** the pairs that split, in order: packets alike up to the split first, then those unlike from the start */
  splits: Split[];
  unlike: number;
  same: number;
  pairs: number;
  calls: number;
  rejoined: number;
  aside: string;
}

function analyse(before: Side, after: Side, entries: string[]): Analysis {
  const set = new Set(entries);
  const A = prepare(before.trace, set);
  const B = prepare(after.trace, set);
  const none = { splits: [], unlike: 0, same: 0, pairs: 0, calls: 0, rejoined: 0, aside: '' };
  for (const [k, side] of [[before.kernel, A], [after.kernel, B]] as const) if (side.length === 0) return { ...none, empty: `no packet path was recorded on ${k}` };
  const a = A.filter((u) => !u.repeat);
  const b = B.filter((u) => !u.repeat);
  const pairs = lcsPairs(
    a.map((u) => u.unit.key),
    b.map((u) => u.unit.key),
  );
  const repeats = A.length - a.length + (B.length - b.length);
  const out: Analysis = {
    ...none,
    pairs: pairs.length,
    calls: a.reduce((n, u) => n + u.calls.length, 0),
    aside: `${a.length - pairs.length} only on ${before.kernel}, ${b.length - pairs.length} only on ${after.kernel}${repeats ? `, ${repeats} repeated` : ''}`,
  };
  const unlike: Split[] = [];
  for (const [i, j] of pairs) {
    const r = splitOf(a[i]!, b[j]!);
    out.rejoined += r.rejoined;
    if (!r.split) out.same++;
    // two packets of the same key whose paths part at once are most likely two different packets
    // (another protocol, of the same length on the same device): last in line
    else if (!alike(r.split)) unlike.push(r.split);
    else out.splits.push(r.split);
  }
  out.unlike = unlike.length;
  out.splits.push(...unlike);
  return out;
}

function noteOf(x: Analysis, before: string): string {
  const rejoin = x.rejoined ? `; ${x.rejoined} difference(s) that rejoined the same path (an extra call tree on one kernel only)` : '';
  const unlike = x.unlike ? `, ${x.unlike} matched by key but unlike from the start` : '';
  return x.splits.length
    ? `${x.same} packet(s) took the same path; packets left aside: ${x.aside}${unlike}${rejoin}`
    : `the same path on both kernels: ${x.pairs} packet(s), ${x.calls} calls on ${before}; packets left aside: ${x.aside}${rejoin}`;
}

/** Compare two kernels' paths: the first split, or null when the paths are the same. */
export function comparePaths(before: Side, after: Side, entries: string[] = PATH_ENTRIES): PathComparison & { split: Split | null; splits: Split[] } {
  const base = { before: before.kernel, after: after.kernel };
  const x = analyse(before, after, entries);
  if (x.empty) return { ...base, divergence: null, split: null, splits: [], note: x.empty };
  const split = x.splits[0] ?? null;
  return { ...base, divergence: split ? divergenceOf(split, [before.kernel, after.kernel]) : null, split, splits: x.splits, note: noteOf(x, before.kernel) };
}

/** Where a split is: the packet, the caller, and what each side called next (in order, or as a set for a kernel against itself). */
export function splitPlace(s: Split, ordered = true): string {
  const next = [s.nextA, s.nextB].map((c) => (c ? functionOf(c.fn) : '(end)'));
  return [s.a.unit.key, functionOf(s.parent.fn), ...(ordered ? next : next.sort())].join('|');
}

/**
 * Two passes on each kernel (the second with return probes): the divergence is the first split of
 * the second pass that the first pass showed at the same place, and that neither kernel shows
 * between its own two runs (that is run-to-run variation: a TCP segment that met its socket in
 * another state, a timer that fired in one run only).
 */
export function confirmDivergence(first: { before: Side; after: Side }, second: { before: Side; after: Side }, entries: string[] = PATH_ENTRIES): PathComparison {
  const base = { before: second.before.kernel, after: second.after.kernel };
  const cross = analyse(second.before, second.after, entries);
  if (cross.empty) return { ...base, divergence: null, note: cross.empty };
  const earlier = new Set(analyse(first.before, first.after, entries).splits.map((s) => splitPlace(s)));
  const own = new Set(
    [analyse(first.before, second.before, entries), analyse(first.after, second.after, entries)].flatMap((x) => x.splits.map((s) => splitPlace(s, false))),
  );
  const kept = cross.splits.filter((s) => earlier.has(splitPlace(s)) && !own.has(splitPlace(s, false)));
  const dropped = cross.splits.length - kept.length;
  const why = dropped ? `; ${dropped} split(s) left aside: not at the same place in both passes, or also between a kernel's own two runs` : '';
  const chosen = kept[0];
  if (!chosen) return { ...base, divergence: null, note: `${cross.splits.length ? `no split seen in both passes: ${noteOf(cross, base.before)}` : noteOf(cross, base.before)}${why}` };
  return { ...base, divergence: divergenceOf(chosen, [base.before, base.after]), note: `${noteOf(cross, base.before)}${why}` };
}

/**
 * The functions worth a return probe on a second pass, per side (each kernel's own symbols): around
 * the first split of a first-pass comparison, the callers, the calls before the split under the
 * same caller and what they called, and the first calls after it. At most `max`.
 */
export function returnProbes(s: Split, max = 40): { before: string[]; after: string[] } {
  const names: string[] = [];
  const add = (c: PathCall | undefined): void => {
    if (!c || c.fn === '?') return;
    const f = functionOf(c.fn);
    if (!names.includes(f) && !isNoise(c.fn) && !/^(__)?kfree_skb/.test(f)) names.push(f);
  };
  const last = s.siblings[s.siblings.length - 1];
  add(last);
  add(s.parent);
  for (let c = s.parent.parent; c; c = c.parent) {
    add(c);
    if (c === s.a.unit.root) break;
  }
  if (last) for (const c of ownCalls(last)) if (s.pair.has(c)) add(c);
  for (const c of [...s.siblings].reverse().slice(0, 8)) add(c);
  add(s.nextA);
  add(s.nextB);
  const symbols = (p: Prepared): string[] => {
    const bySym = new Map<string, string>();
    for (const c of p.calls) if (!bySym.has(functionOf(c.fn))) bySym.set(functionOf(c.fn), c.fn);
    return names
      .map((n) => bySym.get(n))
      .filter((x): x is string => !!x && SYMBOL_RE.test(x))
      .slice(0, max);
  };
  return { before: symbols(s.a), after: symbols(s.b) };
}
