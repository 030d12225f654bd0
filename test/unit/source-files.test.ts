// Optional source files (a file one kernel series' tree has and another's lacks: 6.12's
// selftests/net/lib.sh), the working directory of exec steps and probes, and point-to-point
// addresses (peer). The tree decides which optional files a run has; the trust rules of source
// files hold for optional ones too (a path leading out of the tree is refused, never "absent").
import { describe, expect, it } from 'vitest';
import { parseCase, refusedAt } from './case-helpers.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderCase, shq } from '../../harness/cases/render.ts';
import { type CaseDef } from '../../harness/cases/schema.ts';
import { readTreeFiles } from '../../harness/kernels/build.ts';
import { memberNotFound } from '../../harness/kernels/debsource.ts';
import type { LoadedKernel } from '../../harness/kernels/load.ts';
import type { SourceIdentity } from '../../harness/kernels/source.ts';
import { sourceFilesRecord } from '../../harness/pipeline/runCase.ts';
import { buildSummary } from '../../harness/report/summary.ts';
import { runRecord } from './records.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { silentLogger } from '../../harness/util/log.ts';
import { repoRoot } from '../../harness/util/paths.ts';
import { testTempDir } from '../tmp.ts';

const parse = parseCase;
const BASE = `
name: t
description: test
probes:
  - { name: p, ping: 127.0.0.1 }
signature: { probe: p }
`;
describe('sourceFiles: a path (mandatory) or { path, optional }', () => {
  it('a plain path stays mandatory; an object is optional only when it says so', () => {
    const c = parse(`${BASE}sourceFiles: [a/x.sh, { path: a/lib.sh, optional: true }, { path: a/y.sh }]`);
    expect(c.sourceFiles).toEqual([
      { path: 'a/x.sh', optional: false },
      { path: 'a/lib.sh', optional: true },
      { path: 'a/y.sh', optional: false },
    ]);
  });
  it('the path rules hold for the object form; unknown keys and a path listed twice are refused', () => {
    refusedAt(`${BASE}sourceFiles: ["../x"]`, 'sourceFiles[0]', /relative path inside the kernel tree/);
    refusedAt(`${BASE}sourceFiles: [{ path: "../../etc/passwd", optional: true }]`, 'sourceFiles[0].path', /relative path inside the kernel tree/);
    refusedAt(`${BASE}sourceFiles: [{ path: /etc/passwd, optional: true }]`, 'sourceFiles[0].path');
    refusedAt(`${BASE}sourceFiles: [{ path: a/b, optinal: true }]`, 'sourceFiles[0]', /optinal/);
    refusedAt(`${BASE}sourceFiles: [a/b, { path: a/b, optional: true }]`, 'sourceFiles[1]', /listed twice/);
  });
  it('the run record says which were present', () => {
    const c = parse(`${BASE}sourceFiles: [a/x.sh, { path: a/lib.sh, optional: true }, { path: a/z.sh, optional: true }]`);
    expect(sourceFilesRecord(c.sourceFiles, { 'a/x.sh': 'x', 'a/z.sh': '' })).toEqual([
      { path: 'a/x.sh', optional: false, present: true },
      { path: 'a/lib.sh', optional: true, present: false },
      { path: 'a/z.sh', optional: true, present: true }, // an empty file is a file
    ]);
  });
  it('summary.json carries it per run (runs without source files carry none)', () => {
    const files = [{ path: 'a/lib.sh', optional: true, present: false }];
    const s = buildSummary({ runId: 'r', startedAt: 't', accel: 'tcg' }, [{ ...runRecord('k1', 'c', 'reproduced'), sourceFiles: files }, runRecord('k2', 'c', 'not-reproduced')]);
    expect(s.runs[0]?.sourceFiles).toEqual(files);
    expect(s.runs[0]?.sourceFiles).not.toBe(files);
    expect(s.runs[1]).not.toHaveProperty('sourceFiles');
  });
  it("a Debian source package's missing member is recognised only from tar's own words", () => {
    expect(memberNotFound('tar: linux-source-6.1/tools/x/lib.sh: Not found in archive\ntar: Exiting with failure status due to previous errors\n')).toBe(true);
    expect(memberNotFound('xz: (stdin): Compressed data is corrupt\ntar: Unexpected EOF in archive\n')).toBe(false);
    expect(memberNotFound('tar: linux-source-6.1/a: Not found in archive\ntar: Child returned status 1\n')).toBe(false);
    expect(memberNotFound('')).toBe(false);
  });
});

describe('readTreeFiles: an optional file the tree lacks is left out; the trust rules stay', () => {
  const setup = (): { tree: string; outside: string; read: (wants: Array<{ path: string; optional: boolean }>) => Promise<Record<string, string>>; prepared: () => number } => {
    const t = testTempDir('kr-srcopt-');
    const cacheDir = path.join(t, 'cache');
    const tree = path.join(t, 'tree');
    const outside = path.join(t, 'host-secret');
    fs.writeFileSync(outside, 'root:secret\n');
    const net = path.join(tree, 'tools/testing/selftests/net');
    fs.mkdirSync(net, { recursive: true });
    fs.writeFileSync(path.join(net, 'fib_tests.sh'), 'source lib.sh\n');
    fs.symlinkSync(outside, path.join(net, 'out.sh'));
    fs.symlinkSync(path.dirname(outside), path.join(net, 'outdir'));
    fs.symlinkSync('nowhere.sh', path.join(net, 'dangling.sh'));
    let n = 0;
    const src: SourceIdentity = {
      id: 'src-opt',
      treeId: 'tree-opt',
      label: 'a test tree',
      patchable: true,
      async prepareTree() {
        n++;
        return tree;
      },
    } as unknown as SourceIdentity;
    const k = { def: { name: 'kx', patches: [] }, file: '/k.yaml', baseDir: '/' } as unknown as LoadedKernel;
    return { tree, outside, read: (wants) => readTreeFiles(k, src, wants, { cacheDir, log: silentLogger }), prepared: () => n };
  };
  const net = (f: string): string => `tools/testing/selftests/net/${f}`;
  const refusal = async (p: Promise<unknown>): Promise<HarnessError> => {
    const e = await p.then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(HarnessError);
    return e as HarnessError;
  };

  it('optional and missing: left out (and remembered); mandatory and missing: refused naming its index', async () => {
    const s = setup();
    const wants = [
      { path: net('fib_tests.sh'), optional: false },
      { path: net('lib.sh'), optional: true },
      { path: net('fib_tests.sh/x'), optional: true }, // under a file: nothing there either
    ];
    expect(await s.read(wants)).toEqual({ [net('fib_tests.sh')]: 'source lib.sh\n' });
    expect(s.prepared()).toBe(1);
    // from the memos: the tree is not brought up again, the absence is remembered too
    expect(await s.read(wants)).toEqual({ [net('fib_tests.sh')]: 'source lib.sh\n' });
    expect(s.prepared()).toBe(1);
    // a mandatory file the tree lacks is still an error (its absence memo is for optional wants only)
    const e = await refusal(s.read([{ path: net('fib_tests.sh'), optional: false }, { path: net('lib.sh'), optional: false }]));
    expect(e.field).toBe('sourceFiles[1]');
    expect(e.message).toMatch(/lib\.sh is not a file in the source tree of kx/);
  });

  it('a tree that has the optional file gives it', async () => {
    const s = setup();
    fs.writeFileSync(path.join(s.tree, net('lib.sh')), 'setup_ns() { :; }\n');
    expect(await s.read([{ path: net('lib.sh'), optional: true }])).toEqual({ [net('lib.sh')]: 'setup_ns() { :; }\n' });
  });

  it('optional does not excuse a symlink out of the tree, a dangling one, a directory or a FIFO', async () => {
    const s = setup();
    fs.mkdirSync(path.join(s.tree, 'tools/dir'));
    execFileSync('mkfifo', [path.join(s.tree, 'tools/fifo.sh')]);
    const cases: Array<[string, RegExp]> = [
      [net('out.sh'), /leads out of .* through a symbolic link/],
      [net('outdir/nothing-here.sh'), /leads out of .* through a symbolic link/], // missing, but behind a link out: refused, not "absent"
      [net('dangling.sh'), /cannot read file|not a regular file|ENOENT/],
      ['tools/dir', /directory/],
      ['tools/fifo.sh', /named pipe/],
    ];
    for (const [p, msg] of cases) {
      const e = await refusal(s.read([{ path: net('fib_tests.sh'), optional: false }, { path: p, optional: true }]));
      expect(e.field, p).toBe('sourceFiles[1]');
      expect(e.message, p).toMatch(msg);
    }
  });
});

describe('cwd: the directory an exec step or probe runs in', () => {
  it('an absolute guest directory; relative, `..`, `.` or shell characters are refused naming the field', () => {
    const c = parse(`${BASE}steps:\n  - { name: s, exec: [./x.sh], cwd: /src/tools/testing/selftests/net }\nprobes:\n  - { name: p, exec: { argv: [bash, fib_tests.sh], cwd: /src/tools/testing/selftests/net/ } }`.replace(/probes:\n {2}- \{ name: p, ping: 127\.0\.0\.1 \}\n/, ''));
    expect(c.steps[0]!.cwd).toBe('/src/tools/testing/selftests/net');
    const p = c.probes[0]!;
    expect('exec' in p && p.exec.cwd).toBe('/src/tools/testing/selftests/net/');
    for (const bad of ['src/net', '/src/../etc', '/src/./net', '/src/$(reboot)', '/src/a b', "/src/a'b", '//src', '/src/net\\n']) {
      refusedAt(`${BASE}steps:\n  - { name: s, exec: [id], cwd: ${JSON.stringify(bad)} }`, 'steps[0].cwd', /absolute guest directory/);
      refusedAt(`name: t\ndescription: d\nprobes:\n  - { name: p, exec: { argv: [id], cwd: ${JSON.stringify(bad)} } }\nsignature: { probe: p }`, 'probes[0].exec.cwd', /absolute guest directory/);
    }
  });

  it('renders as KR_CWD on the line before its own step or probe only', () => {
    const c = parse(
      `name: t\ndescription: d\nsteps:\n  - { name: a, exec: [./x.sh], cwd: /src/net }\n  - { name: b, exec: [pwd] }\nprobes:\n  - { name: p, exec: { argv: [./fib_tests.sh, -t, x], cwd: /src/tools/testing/selftests/net } }\n  - { name: q, exec: { argv: [pwd] } }\nsignature: { probe: p }`,
    );
    const lines = renderCase(c).files['/case/steps.sh']!.split('\n');
    const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
    expect(lines[at(/^kr_step exec:a /) - 1]).toBe('KR_CWD=/src/net');
    expect(lines[at(/^kr_step exec:b /) - 1]).not.toMatch(/KR_CWD/);
    expect(lines[at(/^kr_probe p /) - 1]).toBe('KR_CWD=/src/tools/testing/selftests/net');
    expect(lines[at(/^kr_probe q /) - 1]).not.toMatch(/KR_CWD/);
    expect(lines.filter((l) => l.startsWith('KR_CWD='))).toHaveLength(2);
  });

  const has = fs.existsSync('/bin/busybox');
  const agent = (script: string, dir: string): string => {
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    for (const a of ['awk', 'grep', 'usleep', 'cat', 'head', 'sh', 'pwd']) fs.symlinkSync('/bin/busybox', path.join(bin, a));
    const text = fs.readFileSync(path.join(repoRoot, 'images/agent/agent.sh'), 'utf8').replace(/^\. \/kr\/lib\.sh$/m, '').replaceAll('/tmp/kr.', `${dir}/kr.`);
    fs.writeFileSync(path.join(dir, 'agent.sh'), text);
    const full = `exec 3>&1\ncd /\n. ${shq(path.join(repoRoot, 'images/agent/lib.sh'))}\n. ${shq(path.join(dir, 'agent.sh'))}\nkr_finish() { kr_rec "abort $1"; exit 0; }\n${script}`;
    return execFileSync('/bin/busybox', ['sh', '-c', full], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` } }).toString();
  };

  it.runIf(has)('the agent runs a step and a probe in their directory (a relative program too), the next ones where the agent is', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-cwd-'));
    try {
      const sel = path.join(dir, 'selftests');
      fs.mkdirSync(sel);
      fs.writeFileSync(path.join(sel, 'lib.sh'), 'where=lib-found\n');
      fs.writeFileSync(path.join(sel, 't.sh'), '#!/bin/sh\n. ./lib.sh\necho "$where in $(pwd)"\n', { mode: 0o755 });
      const out = agent(
        [
          `KR_CWD=${shq(sel)}`,
          `KR_EXPECT=${shq(`lib-found in ${sel}`)}`,
          'kr_step exec:a host 5000 0 ./t.sh',
          'KR_EXPECT=/',
          'kr_step exec:b host 5000 0 pwd',
          `KR_CWD=${shq(sel)}`,
          `kr_probe p host 5000 0 0 lib-found 0 sh t.sh`,
          `kr_probe q host 5000 0 0 ${shq(sel)} 0 pwd`,
          'echo "agent in $(pwd)"',
        ].join('\n'),
        dir,
      );
      expect(out).toMatch(/@@KR step exec:a rc=0 ok=1 /);
      expect(out).toMatch(/@@KR step exec:b rc=0 ok=1 /);
      expect(out).toMatch(/@@KR probe p ns=host rc=0 pass=1 /);
      expect(out).toMatch(/@@KR probe q ns=host rc=0 pass=0 /); // KR_CWD held for probe p only
      expect(out).toContain('agent in /\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(has)('a directory that is not there fails the step (exit 127, the shell saying why)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-cwd-'));
    try {
      const out = agent(`KR_CWD=${shq(path.join(dir, 'nope'))}\nkr_step exec:a host 5000 0 pwd\necho not-reached`, dir);
      expect(out).toMatch(/@@KR step exec:a rc=127 ok=0 /);
      expect(out).toMatch(/can't cd to .*nope/);
      expect(out).not.toContain('not-reached');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('addresses: peer (a point-to-point address)', () => {
  const withAddr = (a: string): string => `${BASE}links:\n  - { type: dummy, name: d0 }\ninterfaces:\n  - { dev: d0, addresses: [${a}] }\n`;
  it('renders ip address add <address> peer <peer> dev <dev>, with broadcast too', () => {
    const c = parse(withAddr('{ address: "2001:db8::1/128", peer: "2001:db8::2" }, { address: 192.0.2.1/32, peer: 192.0.2.2/24, broadcast: 192.0.2.255 }'));
    const batch = renderCase(c).files['/case/addr-host.ip']!;
    expect(batch).toContain('address add 2001:db8::1/128 peer 2001:db8::2 dev d0 nodad\n');
    expect(batch).toContain('address add 192.0.2.1/32 peer 192.0.2.2/24 broadcast 192.0.2.255 dev d0\n');
  });
  it('a peer of another family, or not an address, is refused naming it', () => {
    refusedAt(withAddr('{ address: "2001:db8::1/128", peer: 192.0.2.2 }'), 'interfaces[0].addresses[0].peer', /not of the family/);
    refusedAt(withAddr('{ address: 192.0.2.1/32, peer: "192.0.2.2 dev lo" }'), 'interfaces[0].addresses[0].peer', /address or prefix/);
  });
});
