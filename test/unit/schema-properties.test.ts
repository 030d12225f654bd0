// Property-based tests (fast-check) of the parsers that read untrusted input (issue 20): the guest
// agent's protocol (anything the guest writes), case files and kernel definitions (anything a
// file holds). Each either gives a well-formed value or a typed bad-input error naming a field;
// never an untyped exception, never superlinear time.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { parseAgentOutput, RECORD_PREFIX, type AgentReport } from '../../harness/agent/protocol.ts';
import { loadCase } from '../../harness/cases/load.ts';
import { caseSchema } from '../../harness/cases/schema.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { kernelSchema } from '../../harness/kernels/schema.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { parseData } from '../../harness/util/load.ts';
import { fileTempDir } from '../tmp.ts';

const SEED = 20;

function wellFormed(r: AgentReport): boolean {
  const fin = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n);
  const str = (s: unknown): boolean => typeof s === 'string';
  return (
    Object.getPrototypeOf(r.sections) === null &&
    Object.values(r.sections).every(str) &&
    r.steps.every((s) => str(s.label) && fin(s.rc) && typeof s.ok === 'boolean' && fin(s.ms)) &&
    r.probes.every((p) => str(p.name) && str(p.ns) && (p.rc === null || fin(p.rc)) && typeof p.passed === 'boolean' && fin(p.durationMs) && str(p.output)) &&
    r.captures.every((c) => str(c.name) && fin(c.packets) && fin(c.pcapBytes)) &&
    r.warnings.every(str) &&
    typeof r.done === 'boolean' &&
    (r.hello === undefined || (str(r.hello.kernel) && fin(r.hello.uptimeMs))) &&
    (r.go === undefined || (fin(r.go.jitterUs) && fin(r.go.uptimeMs))) &&
    [r.doneUptimeMs, r.readyUptimeMs, r.caseUptimeMs, r.checkpointUptimeMs].every((n) => n === undefined || fin(n)) &&
    // nothing the guest wrote reached a prototype
    (({}) as Record<string, unknown>).polluted === undefined
  );
}

/** Words the agent's records are made of, and hostile ones. */
const word = fc.oneof(
  fc.constantFrom('hello', 'ready', 'case', 'checkpoint', 'go', 'step', 'probe', 'server', 'capture', 'warn', 'abort', 'fault', 'done', 'begin', 'end'),
  fc.constantFrom('trace', 'probe-output:p', 'p', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'polluted'),
  fc.constantFrom('rc=0', 'rc=none', 'rc=1e999', 'rc=-0', 'rc=NaN', 'ok=1', 'pass=1', 'ms=12', 'ms=Infinity', 'uptime_ms=5', 'uptime_ms=0x10', 'kernel=6.1', '__proto__=x', 'polluted=1', 'ns=host', '=', '==', 'a='),
  fc.string({ maxLength: 12 }),
);
const line = fc.oneof(
  { weight: 5, arbitrary: fc.array(word, { maxLength: 6 }).map((ws) => RECORD_PREFIX + ws.join(' ')) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.constantFrom('@@KR', '@@KR ', '@@KR  ', '@@KR begin __proto__', '@@KR end __proto__', '@@KR begin probe-output:p', '@@KR end probe-output:p', '\r', '') },
);

describe('agent protocol parser: anything the guest writes', () => {
  it('arbitrary lines: never throws, the report is well-formed', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), fc.constantFrom('\n', '\r\n', '\r'), (lines, nl) => {
        const r = parseAgentOutput(lines.join(nl));
        return wellFormed(r);
      }),
      { numRuns: 2000, seed: SEED },
    );
  });

  it('arbitrary text: never throws, the report is well-formed', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500, unit: 'binary' }), (t) => wellFormed(parseAgentOutput(t))),
      { numRuns: 1000, seed: SEED },
    );
  });

  it('a section named __proto__ is just a section', () => {
    const r = parseAgentOutput('@@KR begin __proto__\n{"polluted":1}\n@@KR end __proto__\n@@KR probe __proto__ rc=0 pass=1 ms=1\n@@KR done uptime_ms=1\n');
    expect(r.sections['__proto__']).toBe('{"polluted":1}');
    expect(wellFormed(r)).toBe(true);
  });

  it('linear time: 8 MiB of hostile text of several shapes parses in seconds, not minutes', () => {
    const MiB = 1024 * 1024;
    const shapes: Record<string, string> = {
      'one endless line': 'x'.repeat(8 * MiB),
      'endless record': `${RECORD_PREFIX}warn ${'a='.repeat(4 * MiB)}`,
      'many sections': `${RECORD_PREFIX}begin s\n`.repeat(8 * MiB / 14),
      'many records': `${RECORD_PREFIX}probe p rc=1 pass=0 ms=1 ${' '.repeat(30)}\n`.repeat(8 * MiB / 60),
      'white space': ' \t'.repeat(4 * MiB),
      'never-ending section': `${RECORD_PREFIX}begin trace\n` + `${'t '.repeat(100)}\n`.repeat(8 * MiB / 201),
    };
    for (const [what, text] of Object.entries(shapes)) {
      const t = Date.now();
      const r = parseAgentOutput(text);
      const ms = Date.now() - t;
      expect([what, wellFormed(r)]).toEqual([what, true]);
      expect(ms, what).toBeLessThan(5000);
    }
  });
});

/** A case that loads, to mutate. */
const BASE_CASE = {
  name: 'base',
  description: 'a case',
  namespaces: ['ns2'],
  links: [{ type: 'veth', name: 'veth1', peer: { name: 'veth2', ns: 'ns2' } }],
  interfaces: [{ dev: 'veth1', addresses: ['192.0.2.1/24'] }],
  probes: [{ name: 'p', ping: '192.0.2.2' }, { name: 'k', exec: { argv: ['true'], results: 'kselftest' } }],
  signals: [
    { name: 'l', kind: 'log', pattern: 'martian source' },
    { name: 't', kind: 'tracepoint', event: 'fib:fib_table_lookup', match: '==> dev [^l]' },
  ],
  signature: { probe: 'p', signals: ['l'] },
};

const FIELDS = ['name', 'description', 'namespaces', 'links', 'interfaces', 'routes', 'sysctls', 'qdiscs', 'filters', 'nftables', 'steps', 'servers', 'captures', 'probes', 'tracepoints', 'counters', 'signals', 'signature', 'deadlineMs', 'repeats', 'kconfig', 'packages', 'sourceFiles', 'references', 'unknown', '__proto__', 'constructor'];

/** A JSON value, with the strings a hostile file would use. */
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 20 }),
    fc.constantFrom('(?!lo )', '(a)\\1', '^(a+)+$', '[[:foo:]]', 'a{1001}', '../../etc/passwd', '\u0000', 'host', 'p', 'l', 'fib:fib_table_lookup', '192.0.2.1/24', '', 'default'),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('name', 'kind', 'pattern', 'match', 'ns', 'dev', 'event', 'probe', 'exec', 'argv', 'ping', 'type', 'x', '__proto__'), tie('v'), { maxKeys: 4 }),
  ),
})).v;

/** A path into an object, and a new value there. */
function mutate(base: unknown, at: Array<string | number>, v: unknown): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  let o: Record<string | number, unknown> = copy;
  for (let i = 0; i < at.length - 1; i++) {
    const next = o[at[i]!];
    if (next === null || typeof next !== 'object') return copy;
    o = next as Record<string | number, unknown>;
  }
  Object.defineProperty(o, at[at.length - 1]!, { value: v, enumerable: true, writable: true, configurable: true });
  return copy;
}

const pathIntoCase = fc.oneof(
  fc.constantFrom(...FIELDS).map((f) => [f]),
  fc.tuple(fc.constantFrom('signals', 'probes', 'links', 'interfaces'), fc.nat(3), fc.constantFrom('name', 'kind', 'pattern', 'match', 'ns', 'event', 'ping', 'exec', 'min', 'dev', 'type')),
  fc.tuple(fc.constant('signature'), fc.constantFrom('probe', 'signals', 'controls', 'when')),
);

/** The load's outcome: ok, or the field of a typed bad-input error; anything else fails the property. */
function outcome(load: () => unknown, file: string): 'ok' | string {
  try {
    load();
    return 'ok';
  } catch (e) {
    if (!(e instanceof HarnessError)) throw new Error(`untyped error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (e.kind !== 'bad-input' || e.exitCode !== 2) throw new Error(`a ${e.kind} error: ${e.message}`);
    if (e.file !== file || !e.field) throw new Error(`no file or field: ${e.file} ${e.field}`);
    return e.field;
  }
}

describe('case files: random YAML-ish input either loads or is bad input naming a field', () => {
  const dir = fileTempDir('kr-props-');

  it('the base case loads (the property below starts from something valid)', () => {
    expect(outcome(() => parseData(JSON.stringify(BASE_CASE), 'case.yaml', caseSchema), 'case.yaml')).toBe('ok');
  });

  it('one field of a valid case replaced by anything', () => {
    let bad = 0;
    fc.assert(
      fc.property(pathIntoCase, value, (at, v) => {
        const field = outcome(() => parseData(JSON.stringify(mutate(BASE_CASE, at, v)), 'case.yaml', caseSchema), 'case.yaml');
        if (field !== 'ok') bad++;
        return true;
      }),
      { numRuns: 1500, seed: SEED },
    );
    expect(bad).toBeGreaterThan(100); // the mutations do reach the validation
  });

  it('whole random objects and random text, through the file loader', () => {
    fc.assert(
      fc.property(fc.oneof(fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 8 }).map((o) => YAML.stringify(o)), fc.string({ maxLength: 200 })), (text) => {
        const file = path.join(dir, 'case.yaml');
        fs.writeFileSync(file, text);
        outcome(() => loadCase(file), file);
        return true;
      }),
      { numRuns: 300, seed: SEED },
    );
  });

  it('a refused pattern names its field', () => {
    const c = mutate(BASE_CASE, ['signals', 1, 'match'], 'dev (?!lo )');
    expect(outcome(() => parseData(JSON.stringify(c), 'case.yaml', caseSchema), 'case.yaml')).toBe('signals[1].match');
  });
});

const BASE_KERNEL = {
  name: 'k',
  source: { type: 'debian-source', package: 'linux-source-6.1' },
  patches: [],
  config: { base: 'tinyconfig', fragments: [] },
};

describe('kernel definitions: random input either loads or is bad input naming a field', () => {
  const dir = fileTempDir('kr-props-');
  const pathIntoKernel = fc.oneof(
    fc.constantFrom('name', 'description', 'source', 'patches', 'config', 'expect', 'unknown').map((f) => [f]),
    fc.tuple(fc.constant('source'), fc.constantFrom('type', 'package', 'version', 'url', 'sha256', 'path', 'repo', 'rev', 'modules')),
    fc.tuple(fc.constant('config'), fc.constantFrom('base', 'file', 'fragments')),
  );
  const kernelValue = fc.oneof(value, fc.constantFrom('image', 'dir', 'tarball', 'git', 'deb', 'url', 'debian-image', 'a\u0000b', '/dev/null/x', 'x/'.repeat(3000), [{ file: 'p\u0000' }], [{ file: '/etc' }], ['\u0000']));

  it('the base kernel loads', () => {
    const file = path.join(dir, 'k.yaml');
    fs.writeFileSync(file, JSON.stringify(BASE_KERNEL));
    expect(outcome(() => loadKernel(file), file)).toBe('ok');
  });

  it('one field of a valid definition replaced by anything (schema, and the loader that checks the files it names)', () => {
    fc.assert(
      fc.property(fc.constantFrom(BASE_KERNEL, { ...BASE_KERNEL, config: { fragments: [] } }), pathIntoKernel, kernelValue, (base, at, v) => {
        const text = JSON.stringify(mutate(base, at, v));
        outcome(() => parseData(text, 'k.yaml', kernelSchema), 'k.yaml');
        const file = path.join(dir, 'k.yaml');
        fs.writeFileSync(file, text);
        outcome(() => loadKernel(file), file);
        return true;
      }),
      { numRuns: 600, seed: SEED },
    );
  });

  it('random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        outcome(() => parseData(text, 'k.yaml', kernelSchema), 'k.yaml');
        return true;
      }),
      { numRuns: 500, seed: SEED },
    );
  });
});
