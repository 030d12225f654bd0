// Command-line conventions: the bin shim and --version, numbers checked at parse time, input files
// refused at once, old option spellings, colour, exit codes (each --help, the README's table, and
// the pure mappings of verify and bisect-run). The CLI runs for real; nothing here builds a kernel.
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BISECT_RUN_ABORT_BASE, bisectRunExitCode, bisectRunMeaning } from '../../harness/bisect/runexit.ts';
import { BISECT_RUN_EXIT_CODES, colorEnabled, EXIT_CODES, fractionArg, intArg, normalizeColorArgv, shardArg, type ExitCodeDoc } from '../../harness/cli/options.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { repoRoot, resultsRoot } from '../../harness/util/paths.ts';
import { verifyExitCode, type Conclusion } from '../../harness/verify/logic.ts';
import { matrixResult, SMALL_MATRIX } from './records.ts';

const bin = path.join(repoRoot, 'bin/kernel-repro.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function kr(args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const r = await execa('node', [bin, ...args], { cwd: tmp, reject: false, env: { KERNEL_REPRO_RESULTS: path.join(tmp, 'results'), ...env }, extendEnv: true, stdin: 'ignore', timeout: 60_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: Date.now() - t0 };
}

describe('the kernel-repro command', { timeout: 180_000 }, () => {
  it('--version prints the package version (through the bin shim, from another directory)', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    expect(pkg.bin['kernel-repro']).toBe('bin/kernel-repro.mjs');
    const r = await kr(['--version']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(`kernel-repro ${pkg.version}`);
    expect((await kr(['-V'])).stdout.trim()).toBe(`kernel-repro ${pkg.version}`);
    // npx in the clone runs the project's own bin (the name is not taken from the registry)
    const npx = await execa('npx', ['--no-install', 'kernel-repro', '--version'], { cwd: path.join(repoRoot, 'harness'), reject: false });
    expect(npx.exitCode).toBe(0);
    expect(String(npx.stdout).trim()).toBe(`kernel-repro ${pkg.version}`);
  });

  it('run output goes to results/ in the clone, or in the current directory when installed as a package', () => {
    expect(resultsRoot({}, '/src/kernel-repro', '/home/u')).toBe('/src/kernel-repro/results');
    expect(resultsRoot({}, '/usr/lib/node_modules/kernel-repro', '/home/u')).toBe('/home/u/results');
    expect(resultsRoot({ KERNEL_REPRO_RESULTS: '/r' }, '/usr/lib/node_modules/kernel-repro', '/home/u')).toBe('/r');
  });

  it('refuses a bad number at parse time with exit 2, naming the option', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['repro', '-j', 'abc'], /option '-j, --concurrency <n>' argument 'abc' is invalid\. must be a whole number from 1 to 64/],
      [['matrix', '--concurrency', '0'], /'-j, --concurrency <n>' argument '0' is invalid/],
      [['verify', '--patch', 'x', '--kernel', 'y', '--repeat', '2.5'], /option '--repeat <n>' argument '2\.5' is invalid/],
      [['bisect', '--repo', '.', '--old', 'a', '--new', 'b', '-c', 'c', '--threshold', '2'], /option '--threshold <f>' argument '2' is invalid\. must be a fraction in \(0, 1\]/],
      [['matrix', '--shard', '3/2'], /option '--shard <i\/n>' argument '3\/2' is invalid/],
      [['bench', '--runs', 'many'], /option '--runs <n>' argument 'many' is invalid/],
    ];
    const results = await Promise.all(cases.map(([args]) => kr(args)));
    cases.forEach(([args, msg], i) => {
      const r = results[i]!;
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  });

  it('refuses a device, a pipe or an oversized file as input at once (exit 2, naming the file)', async () => {
    const big = path.join(tmp, 'big.patch');
    fs.writeFileSync(big, 'x'.repeat(17 * 1024 * 1024));
    const cases: Array<[string[], string]> = [
      [['repro', '--case', '/dev/zero', '--kernel', '6.1-fixed', '--no-install'], 'error (bad-input): /dev/zero: (file): is a character device, not a regular file'],
      [['repro', '--kernel', '/dev/zero', '--no-install'], 'error (bad-input): /dev/zero: (file): is a character device, not a regular file'],
      [['matrix', '--matrix', '/dev/zero', '--no-install'], 'error (bad-input): /dev/zero: (file): is a character device'],
      [['matrix', '--baseline', '/dev/zero', '--no-install'], 'error (bad-input): /dev/zero: (file): is a character device'],
      [['verify', '--patch', '/dev/zero', '--kernel', '6.1-vanilla', '--no-install'], 'error (bad-input): /dev/zero: --patch: is a character device'],
      [['verify', '--patch', big, '--kernel', '6.1-vanilla', '--no-install'], `error (bad-input): ${big}: --patch: is 17825792 bytes, more than the 16777216 bytes`],
      [['report', 'merge', '/dev/zero'], 'error (bad-input): /dev/zero: (file): is a character device'],
      [['bisect-run', '--case', 'rp-filter-selftest', '--kernel-config', '/dev/zero', '--no-install'], 'error (bad-input): /dev/zero: --kernel-config: is a character device'],
    ];
    const results = await Promise.all(cases.map(([args]) => kr(args)));
    cases.forEach(([args, msg], i) => {
      const r = results[i]!;
      expect(r.stderr, args.join(' ')).toContain(msg);
      expect(r.exitCode, args.join(' ')).toBe(args[0] === 'bisect-run' ? 202 : 2);
      expect(r.ms).toBeLessThan(30_000); // at once: no read of an endless device (the CLI itself starts in 1-3 s)
    });
  });

  it('keeps the old spellings working but out of --help; --json and --format ktap contradict', async () => {
    const patch = path.join(repoRoot, 'test/fixtures/comment-only.patch');
    const base = await kr(['verify', '--patch', patch, '--base', 'no-such-kernel', '--no-install']);
    expect(base.exitCode).toBe(2);
    expect(base.stderr).toMatch(/--kernel: no built-in kernel named "no-such-kernel"/);
    const none = await kr(['verify', '--patch', patch, '--no-install']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/--kernel: which kernel does the patch go on\?/);
    const help = await kr(['verify', '--help']);
    expect(help.stdout).toMatch(/-k, --kernel <name\|path>/);
    expect(help.stdout).not.toMatch(/--base/);
    const both = await kr(['repro', '--json', '--format', 'ktap', '--kernel', '6.1-fixed', '--no-install']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain('--format: --json and --format ktap contradict each other');
    const bad = await kr(['repro', '--format', 'yaml']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/argument 'yaml' is invalid\. Allowed choices are text, json, ktap/);
  });

  it('every command documents the same exit codes in its --help; bisect-run documents git bisect run codes', async () => {
    const table = (codes: readonly ExitCodeDoc[]): string[] => codes.map((c) => `${String(c.code).padStart(3)}  ${c.meaning}`);
    const squash = (s: string): string => s.replace(/\s+/g, ' ');
    const cmds = [[], ['repro'], ['matrix'], ['report', 'merge'], ['verify'], ['bisect'], ['bench'], ['doctor'], ['cache'], ['cache', 'gc'], ['reduce']];
    const helps = await Promise.all(cmds.map((cmd) => kr([...cmd, '--help'])));
    cmds.forEach((cmd, i) => {
      expect(helps[i]!.exitCode, cmd.join(' ')).toBe(0);
      for (const line of table(EXIT_CODES)) expect(squash(helps[i]!.stdout), `${cmd.join(' ')} --help`).toContain(squash(line));
    });
    const br = await kr(['bisect-run', '--help']);
    for (const line of table(BISECT_RUN_EXIT_CODES)) expect(squash(br.stdout)).toContain(squash(line));
  });

  it("the command reference's exit-code tables are the code's tables", () => {
    const readme = fs.readFileSync(path.join(repoRoot, 'docs', 'cli.md'), 'utf8');
    const start = readme.indexOf('\n## Exit codes\n');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
    // runs of table lines; the rows after the header and the |---| line
    const blocks: string[][] = [];
    let prevTable = false;
    for (const line of section.split('\n')) {
      const isTable = line.startsWith('|');
      if (isTable && !prevTable) blocks.push([]);
      if (isTable) blocks.at(-1)!.push(line);
      prevTable = isTable;
    }
    const tables = blocks
      .filter((b) => b[0] === '| code | meaning |')
      .map((b) =>
        b.slice(2).map((row) => {
          const [code, meaning] = row.split('|').slice(1, -1).map((c) => c.trim());
          return { code: Number(code), meaning };
        }),
      );
    expect(tables).toEqual([[...EXIT_CODES], [...BISECT_RUN_EXIT_CODES]]);
  });

  it('colour: --color wins; otherwise NO_COLOR turns it off and a terminal turns it on', async () => {
    expect(colorEnabled('always', { NO_COLOR: '1' }, false)).toBe(true);
    expect(colorEnabled('never', {}, true)).toBe(false);
    expect(colorEnabled('auto', { NO_COLOR: '1' }, true)).toBe(false);
    expect(colorEnabled(undefined, { NO_COLOR: '' }, true)).toBe(true);
    expect(colorEnabled(undefined, { FORCE_COLOR: '1' }, false)).toBe(true);
    expect(colorEnabled(undefined, { FORCE_COLOR: '0' }, false)).toBe(false);
    expect(colorEnabled(undefined, { TERM: 'dumb' }, true)).toBe(false);
    expect(normalizeColorArgv(['node', 'kr', '--color', 'report'])).toEqual(['node', 'kr', '--color=always', 'report']);
    expect(normalizeColorArgv(['--color', 'never', 'repro'])).toEqual(['--color', 'never', 'repro']);
    // for real: the verdicts of a merged report, on a pipe (not a terminal)
    const file = path.join(tmp, 'whole.json');
    fs.writeFileSync(file, JSON.stringify(matrixResult(SMALL_MATRIX)));
    const ansi = /\x1b\[3\dm(not-)?reproduced\x1b\[0m/;
    const merge = (flags: string[], env: Record<string, string> = {}) => kr([...flags, 'report', 'merge', file, '--results', path.join(tmp, `m-${flags.join('')}-${Object.keys(env).join('')}`)], env);
    expect((await merge([])).stdout).not.toMatch(ansi);
    expect((await merge(['--color'])).stdout).toMatch(ansi);
    expect((await merge(['--color=always'], { NO_COLOR: '1' })).stdout).toMatch(ansi);
    expect((await merge([], { NO_COLOR: '1', FORCE_COLOR: '1' })).stdout).not.toMatch(ansi);
    expect((await merge(['--no-color'], { FORCE_COLOR: '1' })).stdout).not.toMatch(ansi);
  });
});

describe('argument parsers', () => {
  it('whole numbers, fractions and shards', () => {
    expect(intArg(1, 64)('8')).toBe(8);
    for (const v of ['0', '65', '-1', '1e3', '2.0', '', ' ', '0x10', 'abc']) expect(() => intArg(1, 64)(v), v).toThrow(/must be a whole number from 1 to 64/);
    expect(fractionArg('0.67')).toBe(0.67);
    expect(fractionArg('1')).toBe(1);
    for (const v of ['0', '1.5', 'NaN', '-0.5', '']) expect(() => fractionArg(v), v).toThrow(/fraction/);
    expect(shardArg('2/3')).toEqual({ index: 2, of: 3 });
    for (const v of ['0/3', '4/3', '1/0', '1', 'a/b']) expect(() => shardArg(v), v).toThrow(/i\/n/);
  });
});

describe('exit codes of verify and bisect-run', () => {
  it('verify: 0 for an answer, 1 for inconclusive or boot failed, 4 when the patched kernel did not build', () => {
    const report = (...c: Conclusion[]) => ({ cases: c.map((conclusion) => ({ conclusion })) }) as Parameters<typeof verifyExitCode>[0];
    expect(verifyExitCode(report('fixed', 'unchanged', 'newly broken', 'still reproduces'))).toBe(0);
    expect(verifyExitCode(report('fixed', 'inconclusive'))).toBe(1);
    expect(verifyExitCode(report('boot failed'))).toBe(1);
    expect(verifyExitCode({ ...report('build failed'), problem: { kind: 'build failed', message: 'm', excerpt: '' } })).toBe(4);
  });

  it('bisect-run: only a verdict marks a commit; a commit that cannot be judged is skipped; a misconfigured harness aborts', () => {
    const v = (verdict: 'reproduced' | 'not-reproduced' | 'error' | 'timeout' | 'panic') => bisectRunExitCode({ kind: 'verdict', verdict });
    expect([v('not-reproduced'), v('reproduced'), v('error'), v('timeout'), v('panic')]).toEqual([0, 1, 125, 125, 125]);
    expect(bisectRunExitCode({ kind: 'kernel-build-failed' })).toBe(125);
    const e = (kind: ConstructorParameters<typeof HarnessError>[0]) => bisectRunExitCode({ kind: 'harness-error', error: new HarnessError(kind, 'x') });
    expect([e('bad-input'), e('missing-prereq'), e('build-failed'), e('no-space'), e('boot-failed'), e('internal'), e('interrupted')]).toEqual([202, 203, 204, 205, 201, 201, 130]);
    expect(bisectRunExitCode({ kind: 'harness-error', error: Object.assign(new Error('disk full'), { code: 'ENOSPC' }) })).toBe(205);
    expect(bisectRunExitCode({ kind: 'harness-error', error: new TypeError('bug') })).toBe(BISECT_RUN_ABORT_BASE + 1);
    // what git makes of them: every harness problem is >= 128 (abort), never a mark
    for (const k of ['bad-input', 'missing-prereq', 'build-failed', 'no-space', 'boot-failed', 'internal', 'interrupted'] as const) expect(bisectRunMeaning(e(k))).toBe('abort');
    expect([0, 1, 125, 127, 128, 255].map(bisectRunMeaning)).toEqual(['good', 'bad', 'skip', 'bad', 'abort', 'abort']);
    // the documented table lists every code the mapping gives
    const documented = BISECT_RUN_EXIT_CODES.map((c) => c.code);
    for (const c of [0, 1, 125, 201, 202, 203, 204, 205, 130]) expect(documented).toContain(c);
  });
});
