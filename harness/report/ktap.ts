// KTAP v1 (the kernel's Documentation/dev-tools/ktap.rst) of repro runs and matrix cells, so tools
// made for kselftest and KUnit results can read them. Pure: returns a string.
//
//   KTAP version 1
//   # <header lines>
//   1..N
//   # <diagnostic lines of test 1: verdict, reason, the signals that fired>
//   ok 1 <kernel>/<case>[/<variant>] # <verdict>
//   not ok 2 <...> # TIMEOUT <reason>
//
// "ok" means what exit code 0 means for the command: the run reached a verdict (repro), the cell
// met its expectation (matrix). error and panic carry the ERROR directive, timeout TIMEOUT.
import type { RunRecord, Verdict } from '../observe/types.ts';
import { variantOf } from './diff.ts';
import { judge } from './outcome.ts';
import { stripAnsi } from './table.ts';

export type KtapDirective = 'SKIP' | 'TODO' | 'XFAIL' | 'TIMEOUT' | 'ERROR';

export interface KtapTest {
  name: string;
  ok: boolean;
  directive?: KtapDirective;
  /** the text after "#" on the result line */
  diagnostic?: string;
  /** diagnostic lines printed before the result line ("# " is added) */
  notes?: string[];
}

/** One line of text: no line breaks, no control characters. */
function oneLine(s: string): string {
  return stripAnsi(s)
    .replace(/[\r\n\t]+/g, ' ')
    .replace(/[\x00-\x1f\x7f]/g, '')
    .trim();
}

/** A test description "can be any string of words (can't include #)". */
function description(s: string): string {
  return oneLine(s).replace(/#/g, '_') || 'unnamed';
}

export function renderKtap(tests: KtapTest[], header: string[] = []): string {
  const out = ['KTAP version 1', ...header.map((h) => `# ${oneLine(h)}`), `1..${tests.length}`];
  tests.forEach((t, i) => {
    for (const n of t.notes ?? []) out.push(`# ${oneLine(n)}`);
    const after = [t.directive, t.diagnostic ? oneLine(t.diagnostic) : undefined].filter(Boolean).join(' ');
    out.push(`${t.ok ? 'ok' : 'not ok'} ${i + 1} ${description(t.name)}${after ? ` # ${after}` : ''}`);
  });
  return out.join('\n') + '\n';
}

function directiveOf(v: Verdict): KtapDirective | undefined {
  return v === 'timeout' ? 'TIMEOUT' : v === 'error' || v === 'panic' ? 'ERROR' : undefined;
}

function notesOf(r: RunRecord): string[] {
  const fired = r.signals.filter((x) => x.fired).map((x) => `signal ${x.name} (${x.role}) x${x.count}: ${x.matches[0]?.text ?? x.description}`);
  return [`${r.kernel} ${r.case}: ${r.verdict}: ${r.reason}`, ...fired, ...(r.panic ? [`${r.panic.kind}: ${r.panic.title}`] : [])];
}

/** A run (or cell) against its expectation: the test line, with the verdict as its diagnostic. */
export function ktapTestOf(r: RunRecord, expected: Verdict | null | undefined, name: string): KtapTest {
  const j = judge(r.verdict, expected, r.reason);
  const directive = j.kind === 'pass' ? undefined : directiveOf(r.verdict);
  const diagnostic = j.kind === 'pass' ? r.verdict : j.kind === 'failure' ? j.message : r.reason;
  return { name, ok: j.kind === 'pass', ...(directive ? { directive } : {}), diagnostic, notes: notesOf(r) };
}

/** repro: one test per kernel x case; ok when the run reached a verdict. */
export function reproKtap(runs: RunRecord[], header: string[]): string {
  return renderKtap(
    runs.map((r) => {
      const v = variantOf(r.sysctls);
      return ktapTestOf(r, undefined, `${r.kernel}/${r.case}${v ? `/${v}` : ''}`);
    }),
    header,
  );
}

/** matrix: one test per cell; ok when the cell met its expectation (or reached a verdict, without one). */
export function matrixKtap(cells: Array<{ kernel: string; case: string; variant: string; expected: Verdict | null; run: RunRecord }>, header: string[]): string {
  return renderKtap(
    cells.map((c) => ktapTestOf(c.run, c.expected, `${c.kernel}/${c.case}/${c.variant}`)),
    header,
  );
}
