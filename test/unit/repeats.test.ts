// Repeats, the pure parts: seeds and jitter, the plan from the case and the command line, the go
// line and the records about it, where the checkpoint goes in a rendered case, what a series says;
// and the agent's kr_checkpoint itself, run by busybox sh with stand-ins for the guest's tools.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { frameGo, parseAgentOutput } from '../../harness/agent/protocol.ts';
import { renderCase } from '../../harness/cases/render.ts';
import { caseSchema, type CaseDef } from '../../harness/cases/schema.ts';
import { describeRepeats, jitterUs, parseBaseSeed, repeatPlan, repeatRun, repeatSeed, summarizeRepeats } from '../../harness/pipeline/repeats.ts';
import { repeatRecord } from '../../harness/pipeline/runCase.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const BASE = '0123456789abcdef0123456789abcdef';

function kcase(extra: Record<string, unknown> = {}): CaseDef {
  return caseSchema.parse({
    name: 'r',
    description: 'repeats',
    namespaces: ['peer'],
    links: [{ type: 'veth', name: 'v0', peer: { name: 'v1', ns: 'peer' } }],
    interfaces: [{ dev: 'v0', addresses: ['198.51.100.1/24'] }],
    servers: [{ name: 'echo', ns: 'peer', tcpListen: 7000, reply: 'hello' }],
    captures: [{ dev: 'v0' }],
    probes: [{ name: 'tcp', tcp: { host: '198.51.100.2', port: 7000, expect: 'hello' } }],
    signature: { probe: 'tcp' },
    tracepoints: ['fib'],
    ...extra,
  });
}

describe('seeds, jitter and the plan', () => {
  it('a repeat seed is 256 bits derived from the base seed and the index: stable, and different per repeat and per base', () => {
    const s1 = repeatSeed(BASE, 1);
    expect(s1).toMatch(/^[0-9a-f]{64}$/);
    expect(repeatSeed(BASE, 1)).toBe(s1);
    expect(repeatSeed(BASE, 2)).not.toBe(s1);
    expect(repeatSeed('f'.repeat(32), 1)).not.toBe(s1);
    const seeds = new Set(Array.from({ length: 50 }, (_, i) => repeatSeed(BASE, i + 1)));
    expect(seeds.size).toBe(50);
  });
  it('jitter stays within 0..jitterMs ms, spreads over it, and is none in replay or with jitterMs 0', () => {
    const js = Array.from({ length: 200 }, (_, i) => jitterUs(repeatSeed(BASE, i), 5));
    for (const j of js) {
      expect(j).toBeGreaterThanOrEqual(0);
      expect(j).toBeLessThanOrEqual(5000);
    }
    expect(Math.max(...js)).toBeGreaterThan(4000);
    expect(Math.min(...js)).toBeLessThan(1000);
    expect(jitterUs(repeatSeed(BASE, 1), 0)).toBe(0);
    const plan = { mode: 'replay' as const, baseSeed: BASE, jitterMs: 5, snapshot: true };
    expect(repeatRun(plan, 3)).toEqual({ index: 3, mode: 'replay', seed: repeatSeed(BASE, 3), jitterUs: 0, snapshot: true });
    expect(repeatRun({ ...plan, mode: 'independent' }, 3).jitterUs).toBe(jitterUs(repeatSeed(BASE, 3), 5));
  });
  it('the plan: the case decides, --replay and --seed override; a bad seed is bad input naming the option', () => {
    const c = kcase().repeats;
    expect(c).toEqual({ mode: 'independent', jitterMs: 5, snapshot: true });
    const p = repeatPlan(c, {});
    expect(p.mode).toBe('independent');
    expect(p.baseSeed).toMatch(/^[0-9a-f]{32}$/);
    expect(repeatPlan(c, {}).baseSeed).not.toBe(p.baseSeed);
    expect(repeatPlan(c, { replay: true, seed: BASE.toUpperCase() })).toEqual({ mode: 'replay', baseSeed: BASE, jitterMs: 5, snapshot: true });
    expect(repeatPlan(kcase({ repeats: { mode: 'replay', snapshot: false } }).repeats, {})).toMatchObject({ mode: 'replay', snapshot: false, jitterMs: 5 });
    try {
      parseBaseSeed('xyz');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(HarnessError);
      expect((e as HarnessError).field).toBe('--seed');
    }
    expect(() => kcase({ repeats: { mode: 'sometimes' } })).toThrow(/mode/);
    expect(() => kcase({ repeats: { jitterMs: 60_000 } })).toThrow(/jitterMs/);
    expect(() => kcase({ repeats: { seed: 1 } })).toThrow();
  });
});

describe('the checkpoint and the go', () => {
  it('a case rendered with a checkpoint stops after its setup (links, sysctls, servers, captures, tracepoints) and before its first probe', () => {
    const steps = renderCase(kcase(), { checkpoint: true }).files['/case/steps.sh']!.split('\n');
    const at = steps.indexOf('kr_checkpoint');
    expect(at).toBeGreaterThan(0);
    const idx = (re: RegExp): number => steps.findIndex((l) => re.test(l));
    for (const before of [/setup-host\.sh/, /setup-peer\.sh/, /^kr_server /, /^kr_wait_listen /, /^kr_capture_start /, /^kr_trace_on /]) expect(idx(before)).toBeLessThan(at);
    for (const after of [/^kr_probe /, /^kr_trace_dump/, /^kr_capture_stop /, /^kr_counters_in after host/, /^kr_counters_in after peer/]) expect(idx(after)).toBeGreaterThan(at);
    // without one, the case is rendered as it always was
    expect(renderCase(kcase()).files['/case/steps.sh']).not.toContain('kr_checkpoint');
    expect(renderCase(kcase()).files['/case/steps.sh']).toBe(renderCase(kcase(), { checkpoint: false }).files['/case/steps.sh']);
  });
  it('the go line carries the seed, the host clock, the jitter and the mode; a seed that is not 64 hex digits is refused', () => {
    const seed = repeatSeed(BASE, 1);
    expect(frameGo({ seed, epochS: 1764480000.7, jitterUs: 2012.4, mode: 'independent' }).toString()).toBe(`@@GO ${seed} 1764480000 2012 independent\n`);
    expect(() => frameGo({ seed: 'abc', epochS: 0, jitterUs: 0, mode: 'replay' })).toThrow(/64 hex/);
  });
  it('the records: checkpoint and go are parsed, and a repeat record says what the guest did', () => {
    const seed = repeatSeed(BASE, 2);
    const text = [
      '@@KR hello kernel=6.1.192 uptime_ms=1200',
      '@@KR checkpoint uptime_ms=2400',
      `@@KR go mode=independent seed=${seed} jitter_us=2012 clock=ok addentropy=ok reseed=ENOTTY uptime_ms=2600`,
      '@@KR done uptime_ms=2900',
    ].join('\n');
    const rep = parseAgentOutput(text);
    expect(rep.checkpointUptimeMs).toBe(2400);
    expect(rep.go).toEqual({ mode: 'independent', seed, jitterUs: 2012, clock: 'ok', addEntropy: 'ok', reseed: 'ENOTTY', uptimeMs: 2600 });
    const run = repeatRun({ mode: 'independent', baseSeed: BASE, jitterMs: 5, snapshot: true }, 2);
    expect(repeatRecord(run, rep, { use: 'restored', key: 'k'.repeat(64) })).toEqual({
      index: 2,
      mode: 'independent',
      seed,
      jitterUs: run.jitterUs,
      applied: { clock: 'ok', addEntropy: 'ok', reseed: 'ENOTTY' },
      guestMs: 300,
      caseSnapshot: 'restored',
      caseSnapshotKey: 'k'.repeat(64),
    });
    // a case that stopped before its checkpoint: nothing applied
    expect(repeatRecord(run, parseAgentOutput('@@KR abort setup step x failed\n@@KR done uptime_ms=9'), { use: 'none' })).toMatchObject({ applied: null, caseSnapshot: 'none' });
  });
  it("the agent's kr_checkpoint: the helper waits on a FIFO; independent hands it the go, replay does not; a wrong line ends the case", () => {
    const dir = testTempDir('kr-checkpoint-');
    const agent = fs.readFileSync(path.join(repoRoot, 'images/agent/agent.sh'), 'utf8');
    const fn = /^kr_checkpoint\(\) \{[\s\S]*?^\}$/m.exec(agent)![0];
    const reseed = path.join(dir, 'reseed');
    const stub = (answer: string): void =>
      fs.writeFileSync(reseed, `#!/bin/sh\n[ "$1" = --fifo ] || exit 9\nread -r l < "$2"\necho "reseed-called $l" >> "$LOG"\necho "${answer}" > "$3"\n`, { mode: 0o755 });
    const stubs = ['kr_rec() { echo "@@KR $*"; }', 'kr_now() { echo 1000; }', 'kr_t() { KR_T=1000; }', 'kr_finish() { echo "@@KR abort $1"; exit 0; }'].join('\n');
    const run = (input: string): { out: string; log: string } => {
      const log = path.join(dir, 'log');
      fs.writeFileSync(log, '');
      for (const f of ['go', 'gone']) fs.rmSync(path.join(dir, `kr.${f}`), { force: true });
      const body = fn.replaceAll('/kr/reseed', reseed).replaceAll('/tmp/kr.', path.join(dir, 'kr.'));
      const script = `${stubs}\n${body}\nexec 4<&0\nkr_checkpoint\necho after\nkill $KR_RESEED 2>/dev/null; exit 0`;
      const out = execFileSync('/bin/busybox', ['sh', '-c', script], { input, env: { LOG: log, PATH: '/usr/bin:/bin' }, timeout: 10_000 }).toString();
      return { out, log: fs.readFileSync(log, 'utf8') };
    };
    const seed = repeatSeed(BASE, 1);
    stub('clock=ok addentropy=ok reseed=ENOTTY');
    const ind = run(frameGo({ seed, epochS: 1764480000, jitterUs: 1500, mode: 'independent' }).toString());
    expect(ind.out).toContain('@@KR checkpoint uptime_ms=1000');
    expect(ind.out).toContain(`@@KR go mode=independent seed=${seed} jitter_us=1500 clock=ok addentropy=ok reseed=ENOTTY uptime_ms=1000`);
    expect(ind.out).toMatch(/^after$/m);
    expect(ind.log.split('\n').filter(Boolean)).toEqual([`reseed-called ${seed} 1764480000 1500`]);
    const rep = run(frameGo({ seed, epochS: 1764480000, jitterUs: 0, mode: 'replay' }).toString());
    expect(rep.out).toContain(`@@KR go mode=replay seed=${seed} jitter_us=0 clock=skipped addentropy=skipped reseed=skipped`);
    expect(rep.log).toBe('');
    // a helper that answers something else is reported as an error, not passed on
    stub('oops');
    expect(run(frameGo({ seed, epochS: 1, jitterUs: 0, mode: 'independent' }).toString()).out).toContain('clock=error addentropy=error reseed=error');
    // no helper: said so, and no wait on a FIFO nobody reads
    fs.rmSync(reseed);
    expect(run(frameGo({ seed, epochS: 1, jitterUs: 0, mode: 'independent' }).toString()).out).toContain('clock=nohelper addentropy=nohelper reseed=nohelper');
    const wrong = run('@@CASE 12\n');
    expect(wrong.out).toContain('@@KR abort unexpected on the case input after the checkpoint: @@CASE');
    expect(wrong.out).not.toMatch(/^after$/m);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("the agent's sections from files", () => {
  it('kr_section_file sends a file whole, by the shell for short ones and awk for the rest, with or without a last newline', () => {
    const dir = testTempDir('kr-section-');
    const agent = fs.readFileSync(path.join(repoRoot, 'images/agent/agent.sh'), 'utf8');
    const fn = /^kr_section_file\(\) \{[\s\S]*?^\}$/m.exec(agent)![0];
    const files: Record<string, string> = {
      short: 'a\nb\nlast-no-newline',
      long: Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join('\n') + '\n',
      exact: Array.from({ length: 32 }, (_, i) => `l${i}`).join('\n') + '\n',
      empty: '',
      odd: "-n\n\\t 'quoted' $HOME\n",
    };
    for (const [name, text] of Object.entries(files)) {
      fs.writeFileSync(path.join(dir, name), text);
      const out = execFileSync('/bin/busybox', ['sh', '-c', `kr_rec() { echo "@@KR $*" >&3; }\n${fn}\nexec 3>&1\nkr_section_file "s:$1" "$2"`, 'sh', name, path.join(dir, name)], { env: { PATH: '/usr/bin:/bin' } }).toString();
      const body = text === '' ? '' : text.endsWith('\n') ? text : text + '\n';
      expect(out, name).toBe(`@@KR begin s:${name}\n${body}@@KR end s:${name}\n`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('the reseed helper', () => {
  it('compiles without libc and refuses bad arguments before touching anything (it is never run with good ones here: it would set the host clock)', () => {
    const dir = testTempDir('kr-reseed-');
    const bin = path.join(dir, 'reseed');
    execFileSync('gcc', ['-O2', '-static', '-nostdlib', '-ffreestanding', '-fno-stack-protector', '-fno-pie', '-no-pie', '-o', bin, path.join(repoRoot, 'images/agent/reseed.c')]);
    expect(fs.statSync(bin).size).toBeLessThan(64 * 1024);
    const bad = (args: string[]): { out: string; rc: number } => {
      try {
        return { out: execFileSync(bin, args).toString(), rc: 0 };
      } catch (e) {
        const err = e as { status: number; stdout: Buffer };
        return { out: err.stdout.toString(), rc: err.status };
      }
    };
    for (const args of [[], ['00', '1', '2'], ['z'.repeat(64), '1', '2'], ['a'.repeat(64), 'x', '2'], ['a'.repeat(64), '1']])
      expect(bad(args)).toEqual({ out: 'clock=EINVAL addentropy=EINVAL reseed=EINVAL\n', rc: 2 });
    // the FIFO form reads the same values from its input and answers on its output
    const fin = path.join(dir, 'in');
    const fout = path.join(dir, 'out');
    execFileSync('mkfifo', [fin, fout]);
    // (values that parse but are refused: a seed with a non-hex digit, so that nothing is set on the host)
    const viaFifo = (line: string): string =>
      execFileSync('/bin/busybox', ['sh', '-c', `"$0" --fifo "$1" "$2" & printf '%s\\n' "$3" > "$1"; cat "$2"; wait $!; echo "rc=$?"`, bin, fin, fout, line], { timeout: 10_000 }).toString();
    expect(viaFifo('zz 1 2')).toBe('clock=EINVAL addentropy=EINVAL reseed=EINVAL\nrc=2\n');
    expect(viaFifo(`${'a'.repeat(63)}g 1764480000 1500`)).toBe('clock=EINVAL addentropy=EINVAL reseed=EINVAL\nrc=2\n');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('what a series says', () => {
  it('counts reseeded, made and restored, and gives the seed to run the same series again', () => {
    const plan = { mode: 'independent' as const, baseSeed: BASE, jitterMs: 5, snapshot: true };
    const rec = (caseSnapshot: 'created' | 'restored' | 'none', reseed = 'ok') => ({ vm: { repeat: { mode: 'independent' as const, applied: { clock: 'ok', addEntropy: 'ok', reseed }, caseSnapshot } } });
    const s = summarizeRepeats(BASE, [{ case: 'c', plan }], [rec('created'), rec('restored'), rec('restored', 'ENOTTY'), { vm: {} }]);
    expect(s).toMatchObject({ runs: 3, independent: 3, reseeded: 2, caseSnapshotsCreated: 1, restored: 2 });
    const line = describeRepeats(s);
    expect(line).toMatch(/guest CRNG reseeded in 2 of 3/);
    expect(line).toMatch(/1 case snapshot\(s\) made, 2 of 3 runs restored/);
    expect(line).toContain(`--seed ${BASE}`);
    expect(describeRepeats(summarizeRepeats(BASE, [{ case: 'c', plan: { ...plan, mode: 'replay' } }], []))).toMatch(/replays of the case snapshot/);
  });
});
