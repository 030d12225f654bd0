// End to end (issue 20, trust boundary): a hostile case and a hostile guest on a real kernel.
// A log signal ^(a+)+$ with a guest that prints 60 a's and then 60 a's and a "!" to the kernel log
// (on the second line the old JavaScript matcher never returned), and a guest step that floods the agent's result channel (/dev/ttyS1)
// ending with a typed error verdict naming the channel and its cap, within seconds of the cap.
// One kernel (6.1-vanilla, from the shared cache), two short runs.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { cli } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

const dir = fileTempDir('kr-hostile-e2e-');

interface Run {
  verdict: string;
  reason: string;
  durationMs: number;
  signals: Array<{ name: string; fired: boolean; count: number }>;
  warnings: string[];
  vm: { resultsChannel?: { bytes: number; capBytes: number; truncated: boolean; flooded: boolean; floodedAtMs?: number } };
  files: { results: string };
}
const runOf = (results: string): Run => (JSON.parse(fs.readFileSync(path.join(results, 'summary.json'), 'utf8')) as { runs: Run[] }).runs[0]!;

describe('a hostile case and guest on a real kernel', () => {
  it('log signal ^(a+)+$ against kernel lines of 60 a\'s (one matches, one ends in "!"): a verdict in normal time', async () => {
    // the line that does not match is the one a backtracking matcher never finishes
    const file = path.join(dir, 'hostile-regex.yaml');
    fs.writeFileSync(
      file,
      `name: hostile-regex
description: a log signal ^(a+)+$ and a guest that prints 60 a's, then 60 a's and a "!", to the kernel log
steps:
  - { name: kmsg, exec: [sh, -c, "echo ${'a'.repeat(60)} > /dev/kmsg; echo ${'a'.repeat(60)}! > /dev/kmsg"] }
probes:
  - { name: p, exec: { argv: ["true"] } }
signals:
  - { name: aaa, kind: log, pattern: "^(a+)+$" }
signature: { probe: p, when: pass, signals: [aaa] }
`,
    );
    const results = path.join(dir, 'regex');
    const r = await cli(['repro', '--kernel', '6.1-vanilla', '--case', file, '--results', results, '-j', '1'], { timeoutMs: 5 * 60_000 });
    if (r.exitCode !== 0) console.error(r.stdout.slice(-2000), r.stderr.slice(-2000));
    expect(r.exitCode).toBe(0);
    const run = runOf(results);
    expect(run.verdict).toBe('reproduced');
    expect(run.signals.find((s) => s.name === 'aaa')).toMatchObject({ fired: true, count: 1 });
    expect(run.durationMs).toBeLessThan(60_000);
  }, 6 * 60_000);

  it('a guest flooding its result channel: stopped within seconds of the cap, an error verdict naming the channel and the cap', async () => {
    const file = path.join(dir, 'hostile-flood.yaml');
    fs.writeFileSync(
      file,
      `name: hostile-flood
description: a guest step that floods the agent's result channel (/dev/ttyS1)
steps:
  - { name: flood, exec: [sh, -c, "while :; do echo '@@KR warn flooding the result channel 0123456789012345678901234567890123456789' > /dev/ttyS1; done"], timeoutMs: 120000 }
probes:
  - { name: p, exec: { argv: ["true"] } }
signature: { probe: p, when: pass }
`,
    );
    const results = path.join(dir, 'flood');
    // a 1 MiB cap (the default is 16 MiB) keeps the run short under TCG
    const t0 = Date.now();
    const r = await cli(['repro', '--kernel', '6.1-vanilla', '--case', file, '--results', results, '-j', '1'], { timeoutMs: 5 * 60_000, env: { KERNEL_REPRO_RESULTS_MAX_BYTES: String(1024 * 1024) } });
    const wall = Date.now() - t0;
    expect(r.exitCode).toBe(1);
    const run = runOf(results);
    expect(run.verdict).toBe('error');
    expect(run.reason).toMatch(/^guest flooded the result channel \(ttyS1\) past 1 MiB: stopped after \d+\.\d s/);
    // the run's own record (record.json beside results.txt) holds the channel's state
    const record = JSON.parse(fs.readFileSync(path.join(path.dirname(run.files.results), 'record.json'), 'utf8')) as Pick<Run, 'vm'>;
    run.vm = record.vm;
    expect(run.vm.resultsChannel).toMatchObject({ flooded: true, truncated: true, capBytes: 1024 * 1024 });
    expect(fs.statSync(run.files.results).size).toBeLessThanOrEqual(1024 * 1024 + 64 * 1024); // the boot records of a restored guest come on top
    expect(run.warnings.length).toBeLessThanOrEqual(110);
    // well before the case's 60 s deadline, and a few seconds after the cap at most
    expect(run.durationMs).toBeLessThan(50_000);
    expect(run.durationMs - run.vm.resultsChannel!.floodedAtMs!).toBeLessThan(5_000);
    expect(wall).toBeLessThan(90_000);
  }, 6 * 60_000);
});
