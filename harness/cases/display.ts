// The setup of a rendered case as the commands a person would type: each line of an iproute2, tc or
// bridge batch file prefixed with its program (`ip -n ns2 -6 rule add ...`), each sysctl write as
// `sysctl -w key=value`, in the order the guest runs them, grouped by setup step (the label the
// agent reports, `links+interfaces:ns2`). Pure: the rendered files in, display lines out. It reads
// only what renderCase wrote (steps.sh, setup-<ns>.sh and the batch files they name), so what it
// shows is what ran.
import { HOST_NS } from './schema.ts';
import { shq } from './render.ts';

export interface SetupCommand {
  /** as a person would type it, e.g. `ip -n ns2 nexthop add id 1 via 192.0.2.2 dev v1` */
  text: string;
  /** the batch or script file it is a line of (`/case/routing-ns2.ip`), and its line there (from 1) */
  file?: string;
  line?: number;
}

export interface SetupStep {
  /** the step's label, as the agent reports it (`nexthops+routes:ns2`) */
  label: string;
  /** the namespace it runs in */
  ns: string;
  commands: SetupCommand[];
}

/** The words of a line of shell as shq() and the renderer write it: blanks split, '...' quotes, \x escapes. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, end < 0 ? line.length : end);
      i = end < 0 ? line.length : end;
      inWord = true;
    } else if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

const base = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const linesOf = (text: string | undefined): string[] => (text ?? '').split('\n');

/** `ip netns exec NS ` in front of a command that has no namespace option of its own (nothing in the initial namespace). */
function netnsExec(ns: string): string {
  return ns === HOST_NS ? '' : `ip netns exec ${shq(ns)} `;
}

/** The commands of one `kr_run LABEL [kr_in NS] CMD...` line. */
function runCommands(argv: string[], ns: string, files: Record<string, string>): SetupCommand[] {
  if (argv[0] === 'kr_in' && argv.length > 2) {
    ns = argv[1]!;
    argv = argv.slice(2);
  }
  const prog = base(argv[0] ?? '');
  const batch = argv.indexOf('-batch');
  if ((prog === 'ip' || prog === 'tc' || prog === 'bridge') && batch > 0 && argv[batch + 1] !== undefined) {
    // ip, tc and bridge all take -n NS (-netns): the batch runs inside NS, so its lines say -n NS
    const file = argv[batch + 1]!;
    const opts = [...(ns === HOST_NS ? [] : ['-n', ns]), ...argv.slice(1, batch)].map(shq);
    const head = [prog, ...opts].join(' ');
    return linesOf(files[file]).flatMap((l, i) => (l.trim() ? [{ text: `${head} ${l.trim()}`, file, line: i + 1 }] : []));
  }
  if (prog === 'sh' && argv.length === 2 && /\/sysctl-[^/]*\.sh$/.test(argv[1]!)) {
    const file = argv[1]!;
    return linesOf(files[file]).flatMap((l, i) => {
      // echo VALUE > /proc/sys/a/b/c
      const w = shellWords(l);
      if (w.length !== 4 || w[0] !== 'echo' || w[2] !== '>' || !w[3]!.startsWith('/proc/sys/')) return [];
      const key = w[3]!.slice('/proc/sys/'.length).split('/').join('.');
      return [{ text: `${netnsExec(ns)}sysctl -w ${shq(`${key}=${w[1]}`)}`, file, line: i + 1 }];
    });
  }
  return [{ text: netnsExec(ns) + [prog === 'ip' || prog === 'tc' ? prog : argv[0]!, ...argv.slice(1)].map(shq).join(' ') }];
}

function stepsOf(script: string | undefined, ns: string, files: Record<string, string>, out: SetupStep[]): void {
  for (const raw of linesOf(script)) {
    const w = shellWords(raw.trim());
    if (w[0] === 'kr_phase') return; // the setup ends where the case's own steps begin
    if (w[0] === 'kr_run' && w.length > 2) {
      const argv = w.slice(2);
      out.push({ label: w[1]!, ns: argv[0] === 'kr_in' ? (argv[1] ?? ns) : ns, commands: runCommands(argv, ns, files) });
    } else if (w[0] === '.' && w.length === 2 && /\/setup-[^/]*\.sh$/.test(w[1]!)) stepsOf(files[w[1]!], ns, files, out);
    else if (w[0] === 'kr_in' && w.length === 4 && w[2] === '/bin/sh' && /\/setup-[^/]*\.sh$/.test(w[3]!)) stepsOf(files[w[3]!], w[1]!, files, out);
  }
}

/** The setup steps of a rendered case (renderCase's files), in the order the guest runs them. */
export function setupSteps(files: Record<string, string>): SetupStep[] {
  const out: SetupStep[] = [];
  stepsOf(files['/case/steps.sh'], HOST_NS, files, out);
  return out;
}

/** The failing command of a setup step from what it printed: `Command failed FILE:N` (ip, tc and
 *  bridge -batch) or `FILE: line N:` (sh), and the error message without that location. */
export function failedCommand(step: SetupStep, output: string): { command: SetupCommand; message: string } | null {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const l of lines) {
    const m = /^Command failed (\S+):(\d+)$/.exec(l) ?? /^(?:\S+: )?(\/\S+): line (\d+): /.exec(l);
    if (!m) continue;
    const command = step.commands.find((c) => c.file === m[1] && c.line === Number(m[2]));
    if (!command) continue;
    const message = lines
      .filter((x) => !/^Command failed \S+:\d+$/.test(x))
      .map((x) => x.replace(/^(?:\S+: )?\/\S+: line \d+: /, ''))
      .slice(0, 3)
      .join(' / ');
    return { command, message };
  }
  return null;
}

/** Why a run stopped at a failed setup step: `setup step LABEL failed at: COMMAND (MESSAGE)`, or null
 *  when the step or its failing line cannot be told (then the caller quotes the output as it is). */
export function setupFailure(steps: SetupStep[], label: string, output: string): string | null {
  const step = steps.find((s) => s.label === label);
  const f = step ? failedCommand(step, output) : null;
  return f ? `setup step ${label} failed at: ${f.command.text}${f.message ? ` (${f.message})` : ''}` : null;
}

/** The setup as lines for a report: `# LABEL` then its commands, step by step (a shell would take it
 *  as it is); a step with nothing to run (an empty sysctl script) is left out. */
export function setupLines(steps: ReadonlyArray<{ label: string; commands: ReadonlyArray<{ text: string } | string> }>): string[] {
  return steps.filter((s) => s.commands.length).flatMap((s) => [`# ${s.label}`, ...s.commands.map((c) => (typeof c === 'string' ? c : c.text))]);
}
