// Run records and matrix results made up for unit tests of the reports, the shard merge and the
// nightly script (no kernel involved).
import type { RunRecord, Verdict } from '../../harness/observe/types.ts';
import { expandMatrix, planShards, shardCells, type CellSpec } from '../../harness/matrix/logic.ts';
import { cellResult, MATRIX_SCHEMA_VERSION, type MatrixResult } from '../../harness/matrix/result.ts';
import type { MatrixDef } from '../../harness/matrix/schema.ts';

export const MARTIAN = 'IPv4: martian source 10.53.180.130 from 10.53.180.130, on dev lo';

export function runRecord(kernel: string, kcase: string, verdict: Verdict, sysctls: Record<string, string> = {}): RunRecord {
  const reproduced = verdict === 'reproduced';
  return {
    kernel,
    case: kcase,
    sysctls,
    verdict,
    reason: reproduced ? 'martian source logged and the probe failed' : verdict === 'not-reproduced' ? 'all probes passed, no martian logged' : `the guest ended in ${verdict}`,
    counters: { 'host:TcpExt.IPReversePathFilter': reproduced ? 1 : 0 },
    counterDeltas: reproduced ? { 'host:TcpExt.IPReversePathFilter': 1 } : {},
    probes: [],
    signals: [
      {
        name: 'martian',
        kind: 'martian',
        role: 'signature',
        description: 'martian source 10.53.180.130 from 10.53.180.130, on dev lo',
        fired: reproduced,
        count: reproduced ? 1 : 0,
        matches: reproduced ? [{ text: MARTIAN.replace('IPv4: ', ''), fields: { src: '10.53.180.130', dst: '10.53.180.130', dev: 'lo', time: 1.5 } }] : [],
      },
    ],
    traceEvents: 3,
    captures: [],
    warnings: [],
    ...(verdict === 'panic' ? { panic: { kind: 'panic' as const, title: 'Kernel panic - not syncing: test', text: 'Call Trace:' } } : {}),
    kernelInfo: { release: '6.1.0', configHash: '0123456789abcdef', key: `${kernel}-key`, source: 'linux-source-6.1', patches: [] },
    vm: { accel: 'tcg', machine: 'microvm', bootMs: 700, exitCode: null, timedOut: verdict === 'timeout' },
    durationMs: 1234,
    files: { console: `/nonexistent/${kernel}/${kcase}/console.log`, results: `/nonexistent/${kernel}/${kcase}/results.txt` },
  };
}

/** A small matrix: 3 kernels x 1 case x 2 variants, with expectations. */
export const SMALL_MATRIX: MatrixDef = {
  name: 'small',
  description: '',
  kernels: ['k-a', 'k-b', 'k-c'],
  cases: ['case-x'],
  variants: [
    { name: 'rp1', sysctls: ['*:net.ipv4.conf.all.rp_filter=1'], expect: { 'k-a': 'reproduced', 'k-b': 'not-reproduced' } },
    { name: 'rp0', sysctls: ['*:net.ipv4.conf.all.rp_filter=0'], expect: 'not-reproduced' },
  ],
};

/** What a shard (or, without `shard`, a whole run) of `def` writes, every cell with the verdict `verdictOf` gives. */
export function matrixResult(def: MatrixDef, o: { shard?: { index: number; of: number }; accel?: string; verdictOf?: (c: CellSpec) => Verdict } = {}): MatrixResult {
  const all = expandMatrix(def);
  const cells = o.shard ? shardCells(all, o.shard.index, o.shard.of) : all;
  const plan = o.shard ? planShards(all, o.shard.of) : null;
  const verdictOf = o.verdictOf ?? ((c: CellSpec) => c.expected ?? 'not-reproduced');
  return {
    schemaVersion: MATRIX_SCHEMA_VERSION,
    tool: 'kernel-repro',
    kind: 'matrix',
    matrix: def.name,
    runId: `run-${o.shard ? o.shard.index : 'whole'}`,
    startedAt: `2024-05-0${o.shard?.index ?? 1}T10:00:00.000Z`,
    accel: o.accel ?? 'tcg',
    accelReason: o.accel === 'kvm' ? 'KVM works (probe boot 300 ms)' : 'no /dev/kvm',
    shard: o.shard && plan ? { index: o.shard.index, of: o.shard.of, kernels: plan[o.shard.index - 1]!.kernels, plan } : null,
    cells: cells.map((c) => cellResult(c, runRecord(c.kernel, c.case, verdictOf(c), Object.fromEntries(c.sysctls.map((s) => [`${s.ns}:${s.key}`, s.value]))), { console: '', trace: '' })),
  };
}
