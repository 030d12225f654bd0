// kselftest output: the "TEST: <what> [ OK ]" / "[FAIL]" / "[SKIP]" lines that tools/testing/
// selftests/net scripts print (log_test in fib_tests.sh and friends), read as probe results. Pure.
import type { ProbeResult } from './types.ts';

const STATUSES = new Set(['OK', 'FAIL', 'SKIP', 'XFAIL']);

/**
 * "  TEST: <what>   [ OK ]" -> what and status; null for other lines. String operations only: the
 * guest writes these lines, and the regex this replaces (`^\s*TEST:\s+(.*?)\s*\[\s*(OK|...)\s*\]\s*$`)
 * backtracked for 28 s over one line of 4096 spaces.
 */
export function parseTestLine(line: string): { what: string; status: string } | null {
  const s = line.trim();
  if (!s.startsWith('TEST:') || !s.endsWith(']')) return null;
  const open = s.lastIndexOf('[');
  if (open < 0) return null;
  const status = s.slice(open + 1, -1).trim();
  if (!STATUSES.has(status)) return null;
  const head = s.slice(5, open); // after "TEST:"
  if (!/^\s/.test(head)) return null; // "TEST:" is followed by white space
  const what = head.trim();
  if (/[\n\r\u2028\u2029]/.test(what)) return null; // one line of text
  return { what, status };
}

/** "rp_filter passes local packets" -> "rp_filter-passes-local-packets" */
export function resultSlug(what: string): string {
  return what.trim().toLowerCase().replace(/[^a-z0-9_.]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 128) || 'test';
}

/** The results of one exec probe's output, each as a probe named <probe>/<slug>. */
export function kselftestResults(parent: ProbeResult): ProbeResult[] {
  const out: ProbeResult[] = [];
  const seen = new Map<string, number>();
  for (const line of parent.output.split('\n')) {
    const m = parseTestLine(line);
    if (!m) continue;
    let slug = resultSlug(m.what);
    const n = (seen.get(slug) ?? 0) + 1;
    seen.set(slug, n);
    if (n > 1) slug = `${slug}-${n}`;
    const status = m.status;
    out.push({
      name: `${parent.name}/${slug}`,
      ns: parent.ns,
      rc: null,
      passed: status === 'OK' || status === 'XFAIL',
      durationMs: 0,
      stoppedEarly: false,
      output: line.trim(),
      parent: parent.name,
      ...(status === 'SKIP' ? { skipped: true } : {}),
      ...(status === 'XFAIL' ? { xfail: true } : {}),
    });
  }
  return out;
}
