// kselftest output: the "TEST: <what> [ OK ]" / "[FAIL]" / "[SKIP]" lines that tools/testing/
// selftests/net scripts print (log_test in fib_tests.sh and friends), read as probe results. Pure.
import type { ProbeResult } from './types.ts';

const TEST_RE = /^\s*TEST:\s+(.*?)\s*\[\s*(OK|FAIL|SKIP|XFAIL)\s*\]\s*$/;

/** "rp_filter passes local packets" -> "rp_filter-passes-local-packets" */
export function resultSlug(what: string): string {
  return what.trim().toLowerCase().replace(/[^a-z0-9_.]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 128) || 'test';
}

/** The results of one exec probe's output, each as a probe named <probe>/<slug>. */
export function kselftestResults(parent: ProbeResult): ProbeResult[] {
  const out: ProbeResult[] = [];
  const seen = new Map<string, number>();
  for (const line of parent.output.split('\n')) {
    const m = TEST_RE.exec(line);
    if (!m) continue;
    let slug = resultSlug(m[1]!);
    const n = (seen.get(slug) ?? 0) + 1;
    seen.set(slug, n);
    if (n > 1) slug = `${slug}-${n}`;
    const status = m[2]!;
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
    });
  }
  return out;
}
