// Command-line conventions shared by every command: numbers checked while parsing (exit 2 naming
// the option), colour (--color, NO_COLOR), output formats, hidden old spellings of renamed options,
// and the exit-code table each --help prints (the README's "Exit codes" section is the same table).
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseBaseSeed } from '../pipeline/repeats.ts';
import { BISECT_RUN_ABORT_BASE } from '../bisect/runexit.ts';
import { ExitCode, HarnessError } from '../util/errors.ts';

/** A whole number in [min, max]; a commander argument parser (a bad value ends in exit 2 naming the option). */
export function intArg(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** A fraction in (0, 1]. */
export function fractionArg(value: string): number {
  const n = /^\s*(?:\d+(?:\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('must be a fraction in (0, 1], e.g. 0.67');
  return n;
}

/** "i/n" with 1 <= i <= n. */
export function shardArg(value: string): { index: number; of: number } {
  const m = /^(\d{1,3})\/(\d{1,3})$/.exec(value.trim());
  const index = Number(m?.[1]);
  const of = Number(m?.[2]);
  if (!m || index < 1 || of < 1 || index > of) throw new InvalidArgumentError('must be i/n with 1 <= i <= n, e.g. 2/3');
  return { index, of };
}

/** The most guests that make sense at once on one machine (each takes 256 MB and a core). */
export const MAX_CONCURRENCY = 64;

export function concurrencyOption(): Option {
  return new Option('-j, --concurrency <n>', 'guests at a time (default: number of cores)').argParser(intArg(1, MAX_CONCURRENCY));
}

export function repeatOption(what: string, dflt: number): Option {
  return new Option('--repeat <n>', what).argParser(intArg(1, 50)).default(dflt);
}

/** With --repeat: repeats restore the case set up once (a case snapshot); these say how each is made its own. */
export function repeatModeOptions(): Option[] {
  return [
    new Option('--replay', "repeats restore the case snapshot as it is (no reseed of the guest's CRNG, no clock, no jitter): the case's repeats.mode replay"),
    new Option('--seed <hex>', "the base seed of the repeats (32 hex digits, from a run's JSON repeats.baseSeed): the same seeds again").argParser((v) => {
      if (!/^[0-9a-fA-F]{32}$/.test(v.trim())) throw new InvalidArgumentError('must be 32 hex digits (a repeats.baseSeed from a run\'s JSON)');
      return parseBaseSeed(v);
    }),
  ];
}

/** An old spelling kept working but not shown in --help (the README names the canonical one). */
export function hiddenAlias(flags: string, canonical: string, parse?: (v: string) => unknown): Option {
  const o = new Option(flags, `old spelling of ${canonical}`).hideHelp();
  return parse ? o.argParser(parse) : o;
}

// ---- colour ----------------------------------------------------------------------------------

export type ColorWhen = 'auto' | 'always' | 'never';

/** --color always|never wins; otherwise NO_COLOR (any non-empty value) turns colour off,
 * FORCE_COLOR (non-empty, not 0) on, TERM=dumb off, and a terminal decides. See no-color.org. */
export function colorEnabled(when: ColorWhen | undefined, env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (when === 'always') return true;
  if (when === 'never') return false;
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== '0') return true;
  if (env.TERM === 'dumb') return false;
  return isTTY;
}

let colorWhen: ColorWhen = 'auto';
const COLOR_CHOICES = ['auto', 'always', 'never'];

/** A bare `--color` means always (as in GNU ls and grep), also when a command name follows it,
 * which commander would otherwise take for the option's value. */
export function normalizeColorArgv(argv: string[]): string[] {
  return argv.map((a, i) => (a === '--color' && !COLOR_CHOICES.includes(argv[i + 1] ?? '') ? '--color=always' : a));
}

export function addColorOptions(program: Command): void {
  program
    .addOption(new Option('--color [when]', 'colour the verdicts: auto (a terminal, unless NO_COLOR is set), always, never').choices(COLOR_CHOICES).preset('always'))
    .addOption(new Option('--no-color', 'same as --color never'));
  program.hook('preAction', (cmd) => {
    const c = cmd.opts<{ color?: ColorWhen | boolean }>().color;
    colorWhen = c === false ? 'never' : c === true || c === undefined ? 'auto' : c;
  });
}

/** Whether to colour what goes to `stream` under the global --color option and the environment. */
export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return colorEnabled(colorWhen, process.env, stream.isTTY === true);
}

// ---- output formats --------------------------------------------------------------------------

export type Format = 'text' | 'json' | 'ktap';

export function formatOption(formats: Format[]): Option {
  return new Option('--format <format>', `what to print on stdout: ${formats.join(', ')} (human output then goes to stderr)`).choices(formats).default('text');
}

/** --json is short for --format json; both at once with another format is a contradiction. */
export function outputFormat(opts: { json?: boolean; format?: Format }): Format {
  const f = opts.format ?? 'text';
  if (opts.json && f !== 'text' && f !== 'json') throw new HarnessError('bad-input', `--json and --format ${f} contradict each other`, { field: '--format' });
  return opts.json ? 'json' : f;
}

// ---- exit codes ------------------------------------------------------------------------------

export interface ExitCodeDoc {
  code: number;
  meaning: string;
}

/** The exit codes of every command (bisect-run excepted: it speaks `git bisect run`'s language). */
export const EXIT_CODES: readonly ExitCodeDoc[] = [
  { code: ExitCode.ok, meaning: 'done: every run reached a verdict (reproduced or not) and every expectation held' },
  {
    code: ExitCode.runFailed,
    meaning:
      'no clear answer: a run ended in error, timeout or panic; matrix and report merge: an unexpected verdict (or, with --fail-on-change, a change against the baseline); verify: a case inconclusive or boot failed; bisect: no single commit',
  },
  { code: ExitCode.badInput, meaning: 'bad input: a kernel, case, matrix, patch or result file, or a command-line value; the message names the file or option and the field' },
  { code: ExitCode.missingPrereq, meaning: 'missing host prerequisites; the message gives the apt-get command' },
  { code: ExitCode.buildFailed, meaning: 'a kernel or image failed to build; the message shows the build-log excerpt' },
  { code: ExitCode.noSpace, meaning: 'not enough disk space; the message names the directory, what needed the space and how much is free' },
  { code: ExitCode.interrupted, meaning: 'interrupted (SIGINT or SIGTERM); guests and builds were stopped' },
];

/** `git bisect run` reads 0 as good, 125 as skip, 1-127 as bad and 128-255 as "abort the bisection". */
export const BISECT_RUN_EXIT_CODES: readonly ExitCodeDoc[] = [
  { code: 0, meaning: 'good: the case does not reproduce on this commit' },
  { code: 1, meaning: 'bad: the case reproduces on this commit' },
  { code: 125, meaning: 'skip: this commit cannot be judged (its kernel does not build, or the run ended in error, timeout or panic)' },
  { code: ExitCode.interrupted, meaning: 'abort: interrupted' },
  { code: BISECT_RUN_ABORT_BASE + 1, meaning: 'abort: the harness failed (QEMU refused to start, an internal error)' },
  { code: BISECT_RUN_ABORT_BASE + ExitCode.badInput, meaning: 'abort: bad input (the case, an option, or a kconfig option the case needs that the kernel config lacks)' },
  { code: BISECT_RUN_ABORT_BASE + ExitCode.missingPrereq, meaning: 'abort: missing host prerequisites' },
  { code: BISECT_RUN_ABORT_BASE + ExitCode.buildFailed, meaning: "abort: the harness's own boot image failed to build" },
  { code: BISECT_RUN_ABORT_BASE + ExitCode.noSpace, meaning: 'abort: not enough disk space' },
];

export function exitCodesHelp(codes: readonly ExitCodeDoc[] = EXIT_CODES): string {
  return ['', 'Exit codes:', ...codes.map((c) => `  ${String(c.code).padStart(3)}  ${c.meaning}`)].join('\n');
}
