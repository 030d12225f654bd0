import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fragmentMismatches, missingRequired, parseKconfig } from '../../harness/kernels/kconfig.ts';
import { kernelSchema } from '../../harness/kernels/schema.ts';
import { builtinKernels, loadKernel } from '../../harness/kernels/load.ts';
import { parseAgentOutput } from '../../harness/agent/protocol.ts';
import { evaluateSignals, type Observations } from '../../harness/observe/signals/index.ts';
import { decideVerdict, type VerdictInput } from '../../harness/observe/verdict.ts';
import { parseMartians } from '../../harness/observe/martian.ts';
import { accelFailure, qemuArgs } from '../../harness/vm/qemu.ts';
import { caseSnapshotKey, pruneVictims, snapshotKey } from '../../harness/vm/snapshot.ts';
import { EntryStore } from '../../harness/util/cache.ts';
import { run } from '../../harness/util/proc.ts';
import { ExitCode, formatError, HarnessError, normalizeError } from '../../harness/util/errors.ts';
import { ensureFree, extractedEstimate, freeBytes, GB, isNoSpace, MB } from '../../harness/util/disk.ts';
import { parseData } from '../../harness/util/load.ts';
import { buildErrorExcerpt } from '../../harness/kernels/build.ts';
import { testTempDir } from '../tmp.ts';

describe('kconfig', () => {
  const cfg = parseKconfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_S="x y"\n');
  it('parses y/m/n/strings', () => {
    expect(cfg.get('CONFIG_A')).toBe('y');
    expect(cfg.get('CONFIG_B')).toBe('n');
    expect(cfg.get('CONFIG_S')).toBe('"x y"');
  });
  it('lists required options that are missing', () => {
    expect(missingRequired(cfg, ['CONFIG_A', 'CONFIG_B', 'CONFIG_C', 'CONFIG_D'])).toEqual(['CONFIG_B', 'CONFIG_D']);
  });
  it('finds fragment options that did not survive olddefconfig', () => {
    expect(fragmentMismatches(cfg, [{ name: 'f', text: 'CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n' }])).toEqual([
      { option: 'CONFIG_B', wanted: 'y', got: 'n', fragment: 'f' },
      { option: 'CONFIG_C', wanted: 'n', got: 'm', fragment: 'f' },
    ]);
  });
});

describe('kernel definitions', () => {
  it('built-ins load', () => {
    expect(builtinKernels()).toEqual(expect.arrayContaining(['6.1-vanilla', '6.1-fixed']));
    const v = loadKernel('6.1-vanilla');
    expect(v.def.patches[0]?.reverse).toBe(true);
    expect(loadKernel('6.1-fixed').def.patches).toEqual([]);
  });
  const bad: Array<[string, string, string]> = [
    ['missing source', 'name: k\n', 'source'],
    ['unknown source type', 'name: k\nsource: { type: ftp, path: x }\n', 'source.type'],
    ['debian package name with a command', 'name: k\nsource: { type: debian-source, package: "linux-source-6.1; rm -rf /" }\n', 'source.package'],
    ['patches not a list', 'name: k\nsource: { type: dir, path: /x }\npatches: p.patch\n', 'patches'],
    ['reverse not a boolean', 'name: k\nsource: { type: dir, path: /x }\npatches: [{ file: p.patch, reverse: "yes" }]\n', 'patches[0].reverse'],
    ['config base unknown', 'name: k\nsource: { type: dir, path: /x }\nconfig: { base: myconfig }\n', 'config.base'],
    ['unknown field', 'name: k\nsource: { type: dir, path: /x }\nflavour: x\n', '(top level)'],
    ['name with slash', 'name: a/b\nsource: { type: dir, path: /x }\n', 'name'],
  ];
  for (const [what, yaml, field] of bad)
    it(`rejects ${what}`, () => {
      try {
        parseData(yaml, 'k.yaml', kernelSchema);
        throw new Error('accepted');
      } catch (e) {
        expect(e).toBeInstanceOf(HarnessError);
        expect((e as HarnessError).field).toBe(field);
        expect((e as HarnessError).file).toBe('k.yaml');
      }
    });
  it('a missing patch file names the field', () => {
    const dir = testTempDir('kr-k-');
    const f = path.join(dir, 'k.yaml');
    fs.writeFileSync(f, 'name: k\nsource: { type: debian-source, package: linux-source-6.1 }\npatches: [{ file: nope.patch }]\n');
    expect(() => loadKernel(f)).toThrow(/patch file not found/);
    try {
      loadKernel(f);
    } catch (e) {
      expect((e as HarnessError).field).toBe('patches[0].file');
    }
  });
});

const agentOut = [
  '@@KR hello kernel=6.1.192 uptime_ms=890',
  '@@KR step netns:ns2 rc=0 ms=50',
  '@@KR probe ping-local ns=ns2 rc=none pass=0 ms=230 early=1 timedout=0',
  '@@KR begin probe-output:ping-local',
  'PING 192.0.2.1 (192.0.2.1): 56 data bytes',
  '@@KR end probe-output:ping-local',
  '@@KR probe ping-loopback ns=ns2 rc=0 pass=1 ms=40 early=0 timedout=0',
  '@@KR begin dmesg',
  '[    1.5] IPv4: martian source 192.0.2.1 from 192.0.2.1, on dev lo',
  '@@KR end dmesg',
  '@@KR done',
].join('\r\n');

describe('agent result channel', () => {
  it('parses records and sections', () => {
    const r = parseAgentOutput(agentOut);
    expect(r.hello).toEqual({ kernel: '6.1.192', uptimeMs: 890 });
    expect(r.steps).toEqual([{ label: 'netns:ns2', rc: 0, ok: true, ms: 50 }]);
    expect(r.probes[0]).toMatchObject({ name: 'ping-local', ns: 'ns2', rc: null, passed: false, stoppedEarly: true });
    expect(r.probes[0]?.output).toBe('PING 192.0.2.1 (192.0.2.1): 56 data bytes');
    expect(r.probes[1]).toMatchObject({ name: 'ping-loopback', rc: 0, passed: true });
    expect(r.sections['dmesg']).toContain('martian source');
    expect(r.done).toBe(true);
  });
  it('keeps a truncated section when the guest died mid-way', () => {
    const r = parseAgentOutput('@@KR hello kernel=x uptime_ms=1\n@@KR begin dmesg\nline1\n');
    expect(r.sections['dmesg']).toBe('line1\n');
    expect(r.done).toBe(false);
  });
});

describe('verdict', () => {
  const martianSpec = { name: 'martian', kind: 'martian' as const, src: '192.0.2.1', dst: '192.0.2.1', dev: 'lo' };
  const counterSpec = { name: 'rp-drop', kind: 'counter' as const, counter: 'TcpExt.IPReversePathFilter', min: 1 };
  const obs = (consoleText: string, delta: number): Observations => ({
    console: consoleText,
    trace: [],
    countersBefore: { host: { 'TcpExt.IPReversePathFilter': 0 } },
    countersAfter: { host: { 'TcpExt.IPReversePathFilter': delta } },
    symbols: {},
    namespaces: ['host'],
  });
  const base = (o: { console?: string; delta?: number; signature?: string[] } = {}): VerdictInput => {
    const report = parseAgentOutput(agentOut);
    return {
      signature: { probe: 'ping-local', when: 'fail' },
      controlProbes: ['ping-loopback'],
      report,
      signals: evaluateSignals([martianSpec, counterSpec], o.signature ?? ['martian'], obs(o.console ?? report.sections['dmesg'] ?? '', o.delta ?? 1)),
      panic: null,
      vmTimedOut: false,
      deadlineMs: 1000,
    };
  };
  it('reproduced: signature probe failed and the signature signal fired; evidence signals are named', () => {
    const v = decideVerdict(base());
    expect(v.verdict).toBe('reproduced');
    expect(v.reason).toContain('martian source 192.0.2.1 from 192.0.2.1, on dev lo');
    expect(v.reason).toContain('evidence: rp-drop ×1');
  });
  it('not-reproduced: probe passed, no signature signal', () => {
    const i = base({ console: '', delta: 0 });
    i.report.probes[0]!.passed = true;
    expect(decideVerdict(i).verdict).toBe('not-reproduced');
  });
  it('error when the probe failed without the kernel evidence, naming what is missing', () => {
    const v = decideVerdict(base({ console: '' }));
    expect(v.verdict).toBe('error');
    expect(v.reason).toMatch(/without the signature's kernel evidence \(no "martian source 192\.0\.2\.1 from 192\.0\.2\.1, on dev lo"\)/);
  });
  it('inconsistent evidence: the probe passed but a signature signal fired', () => {
    const i = base();
    i.report.probes[0]!.passed = true;
    expect(decideVerdict(i).reason).toMatch(/inconsistent evidence/);
  });
  it('every signature signal must fire; evidence-only signals do not decide', () => {
    expect(decideVerdict(base({ signature: ['martian', 'rp-drop'], delta: 0 })).verdict).toBe('error');
    expect(decideVerdict(base({ signature: ['martian', 'rp-drop'] })).verdict).toBe('reproduced');
    expect(decideVerdict(base({ signature: ['martian'], delta: 0 })).verdict).toBe('reproduced');
  });
  it('when: pass -- the behaviour is a probe that passes (a packet that should have been dropped)', () => {
    const i = base({ console: '' , delta: 0, signature: [] });
    i.signature.when = 'pass';
    expect(decideVerdict(i).verdict).toBe('not-reproduced'); // ping-local failed: the behaviour is absent
    i.report.probes[0]!.passed = true;
    expect(decideVerdict(i)).toMatchObject({ verdict: 'reproduced', reason: expect.stringContaining('no kernel signal declared') });
  });
  it('error when a control probe fails', () => {
    const i = base();
    i.report.probes[1]!.passed = false;
    expect(decideVerdict(i).reason).toMatch(/control probe ping-loopback failed/);
  });
  it('timeout and panic win over everything else', () => {
    expect(decideVerdict({ ...base(), vmTimedOut: true }).verdict).toBe('timeout');
    expect(decideVerdict({ ...base(), panic: { kind: 'panic', title: 'Kernel panic - not syncing: x', text: '' } }).verdict).toBe('panic');
  });
  it('error when the agent never started', () => {
    expect(decideVerdict({ ...base(), report: parseAgentOutput('') }).verdict).toBe('error');
  });
});

describe('qemu arguments', () => {
  it('microvm + PVH, no network, results on COM2, hard reboot on panic', () => {
    const a = qemuArgs({ accel: 'tcg', machine: 'microvm', kernel: '/k/vmlinux', initrd: '/i', resultsFile: '/r' });
    expect(a.join(' ')).toContain('-M microvm -accel tcg');
    expect(a).toContain('-no-reboot');
    expect(a.slice(a.indexOf('-nic'), a.indexOf('-nic') + 2)).toEqual(['-nic', 'none']);
    expect(a).toContain('file,id=res,path=/r');
    const append = a[a.indexOf('-append') + 1]!;
    expect(append).toContain('panic=-1');
    expect(append).toContain('reboot=t');
    expect(a).not.toContain('-cpu');
  });
  it('a session starts paused with QMP, or restores a snapshot (read by QEMU from the descriptor the harness opens)', () => {
    const a = qemuArgs({ accel: 'tcg', machine: 'microvm', kernel: '/k/vmlinux', initrd: '/i', resultsFile: '/r', session: { qmpSocket: '/t/q' } });
    expect(a).toContain('-S');
    expect(a.join(' ')).toContain('-qmp unix:/t/q,server=on,wait=off');
    expect(a).not.toContain('-incoming');
    const b = qemuArgs({ accel: 'tcg', machine: 'microvm', kernel: '/k/vmlinux', initrd: '/i', resultsFile: '/r', session: { qmpSocket: '/t/q', incoming: "/c/it's snap" } });
    expect(b).not.toContain('-S');
    expect(b[b.indexOf('-incoming') + 1]).toBe('fd:3');
    expect(b).toContain('file,id=res,path=/r'); // records always go to a file (lossless)
  });
  it('kvm adds -cpu host', () => {
    const a = qemuArgs({ accel: 'kvm', machine: 'pc', kernel: '/k/bzImage', initrd: '/i', resultsFile: '/r' });
    expect(a.join(' ')).toContain('-M pc -accel kvm -cpu host');
  });
  it('recognises KVM failures', () => {
    expect(accelFailure('KVM internal error. Suberror: 1\nextra')).toBe('KVM internal error. Suberror: 1');
    expect(accelFailure('qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0')).toMatch(/failed to set MSR/);
    expect(accelFailure('all fine')).toBeNull();
  });
});

describe('snapshots', () => {
  const spec = { accel: 'tcg' as const, machine: 'microvm' as const, kernel: '', initrd: '' };
  it('the key changes with the kernel file, the image, the command line, the accelerator and QEMU; nothing else', () => {
    const dir = testTempDir('kr-snapkey-');
    const k = path.join(dir, 'vmlinux');
    const i = path.join(dir, 'base.cpio');
    fs.writeFileSync(k, 'kernel');
    fs.writeFileSync(i, 'image');
    const s = { ...spec, kernel: k, initrd: i };
    const key = snapshotKey(s, 'QEMU 7.2', '/nowhere');
    expect(snapshotKey({ ...s }, 'QEMU 7.2', '/nowhere')).toBe(key);
    expect(snapshotKey(s, 'QEMU 8.0', '/nowhere')).not.toBe(key);
    expect(snapshotKey({ ...s, append: ['kr.fault=hang'] }, 'QEMU 7.2', '/nowhere')).not.toBe(key);
    expect(snapshotKey({ ...s, accel: 'kvm' }, 'QEMU 7.2', '/nowhere')).not.toBe(key);
    expect(snapshotKey({ ...s, memoryMb: 512 }, 'QEMU 7.2', '/nowhere')).not.toBe(key);
    fs.writeFileSync(k, 'kernel, rebuilt');
    expect(snapshotKey(s, 'QEMU 7.2', '/nowhere')).not.toBe(key);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  it('files inside the cache count by their place in it (content-keyed), so that keys are the same on another machine', () => {
    const mk = (root: string): string => {
      fs.mkdirSync(path.join(root, 'kernels', 'k1'), { recursive: true });
      fs.mkdirSync(path.join(root, 'images', 'i1'), { recursive: true });
      fs.writeFileSync(path.join(root, 'kernels', 'k1', 'vmlinux'), 'kernel');
      fs.writeFileSync(path.join(root, 'images', 'i1', 'base.cpio'), 'image');
      return snapshotKey({ ...spec, kernel: path.join(root, 'kernels', 'k1', 'vmlinux'), initrd: path.join(root, 'images', 'i1', 'base.cpio') }, 'QEMU 7.2', root);
    };
    const a = testTempDir('kr-snapkey-a-');
    const b = testTempDir('kr-snapkey-b-');
    const ka = mk(a);
    fs.utimesSync(path.join(b, '.'), new Date(), new Date());
    const kb = mk(b);
    expect(kb).toBe(ka);
    // outside the cache: the path is part of the key
    expect(snapshotKey({ ...spec, kernel: path.join(a, 'kernels', 'k1', 'vmlinux'), initrd: path.join(a, 'images', 'i1', 'base.cpio') }, 'QEMU 7.2', b)).not.toBe(ka);
    expect(caseSnapshotKey(ka, Buffer.from('case 1'))).not.toBe(caseSnapshotKey(ka, Buffer.from('case 2')));
    expect(caseSnapshotKey(ka, Buffer.from('case 1'))).not.toBe(caseSnapshotKey(kb + '0', Buffer.from('case 1')));
    fs.rmSync(a, { recursive: true, force: true });
    fs.rmSync(b, { recursive: true, force: true });
  });
  it('prunes the least recently used beyond the budget, never the one just made', () => {
    const e = [
      { key: 'a', bytes: 30, usedAt: 3 },
      { key: 'b', bytes: 30, usedAt: 1 },
      { key: 'c', bytes: 30, usedAt: 2 },
      { key: 'new', bytes: 30, usedAt: 0 },
    ];
    expect(pruneVictims(e, 120)).toEqual([]);
    expect(pruneVictims(e, 60, 'new')).toEqual(['b', 'c']);
    expect(pruneVictims(e, 0, 'new')).toEqual(['b', 'c', 'a']);
  });
});

describe('cache entries', () => {
  it('publish atomically, detect corruption, discard it', () => {
    const dir = testTempDir('kr-cache-');
    const store = new EntryStore<{ n: number }>(dir);
    expect(store.get('k1')).toBeNull();
    const st = store.staging('k1');
    fs.writeFileSync(path.join(st, 'a'), 'hello');
    store.publish('k1', st, { n: 1 });
    expect(store.get('k1')?.meta).toEqual({ n: 1 });
    fs.writeFileSync(path.join(store.entryDir('k1'), 'a'), 'tampered');
    expect(store.get('k1')).toBeNull();
    expect(store.lastDiscard).toMatch(/does not match its manifest/);
    expect(fs.existsSync(store.entryDir('k1'))).toBe(false);
  });
  it('an entry without a manifest (half-written) is never used', () => {
    const dir = testTempDir('kr-cache-');
    const store = new EntryStore<{ n: number }>(dir);
    fs.mkdirSync(store.entryDir('k2'));
    fs.writeFileSync(path.join(store.entryDir('k2'), 'bzImage'), 'partial');
    expect(store.get('k2')).toBeNull();
  });
  it('getOrFill: fills once, then serves the entry; a fill that fails leaves no entry and no staging', async () => {
    const dir = testTempDir('kr-cache-');
    const store = new EntryStore<{ n: number }>(dir);
    let fills = 0;
    const fill = async (staging: string): Promise<{ n: number }> => {
      fills++;
      fs.writeFileSync(path.join(staging, 'a'), 'x');
      return { n: fills };
    };
    const first = await store.getOrFill('k3', fill);
    expect(first.cached).toBe(false);
    const second = await store.getOrFill('k3', fill);
    expect(second.cached).toBe(true);
    expect(second.manifest.meta).toEqual({ n: 1 });
    expect(fills).toBe(1);
    await expect(
      store.getOrFill('k4', async (staging) => {
        fs.writeFileSync(path.join(staging, 'half'), 'written');
        throw new HarnessError('build-failed', 'the fill failed');
      }),
    ).rejects.toThrow('the fill failed');
    expect(store.get('k4')).toBeNull();
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.staging-'))).toEqual([]);
  });
});

describe('process runner', () => {
  it('kills the whole process group at the deadline', async () => {
    const dir = testTempDir('kr-proc-');
    const pidFile = path.join(dir, 'child.pid');
    const r = await run('sh', ['-c', `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 500 });
    expect(r.timedOut).toBe(true);
    const child = Number(fs.readFileSync(pidFile, 'utf8'));
    await new Promise((res) => setTimeout(res, 200));
    // gone, or a zombie waiting for a reaper: either way no longer running
    let state = 'gone';
    try {
      state = fs.readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]!.slice(0, 1);
    } catch {
      /* gone */
    }
    expect(['gone', 'Z']).toContain(state);
  });
  it('killWhen stops a process on a matching line', async () => {
    const r = await run('sh', ['-c', 'echo start; echo "KVM internal error. Suberror: 1"; sleep 30'], {
      timeoutMs: 20_000,
      killWhen: (l) => l.includes('KVM internal error'),
    });
    expect(r.killedOnLine).toBe(true);
    expect(r.durationMs).toBeLessThan(10_000);
  });
});

describe('a full disk', () => {
  it('a log that cannot be written (/dev/full) stops the child and ends in a no-space error, not a crash', async () => {
    const t0 = Date.now();
    const err = await run('sh', ['-c', 'echo building; sleep 30'], { timeoutMs: 20_000, logFile: '/dev/full' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HarnessError);
    expect((err as HarnessError).kind).toBe('no-space');
    expect((err as HarnessError).message).toBe('no space left on the device writing /dev/full (ENOSPC)');
    expect((err as HarnessError).exitCode).toBe(ExitCode.noSpace);
    expect(Date.now() - t0).toBeLessThan(10_000); // the child was stopped, not waited for
  });
  it('a tool that fails saying the disk is full is a no-space error with its words', async () => {
    const err = await run('sh', ['-c', 'echo "tar: linux/x.c: Cannot write: No space left on device" >&2; exit 2'], { timeoutMs: 5000, cwd: '/' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as HarnessError).kind).toBe('no-space');
    expect((err as HarnessError).message).toBe('sh failed: no space left on the device (in /)');
    expect((err as HarnessError).excerpt).toBe('tar: linux/x.c: Cannot write: No space left on device');
  });
  it('the same words from a process the harness stopped itself are not a disk problem', async () => {
    const r = await run('sh', ['-c', 'echo "No space left on device"; sleep 30'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
  });
  it('ensureFree names the directory, the need and what is free; plain ENOSPC errors become typed', () => {
    expect(() => ensureFree('/var/cache/kr', 3 * GB, 'extracting linux-source-6.1', () => 512 * MB)).toThrow(
      'not enough disk space in /var/cache/kr for extracting linux-source-6.1: it needs about 3.0 GB, 512 MB free',
    );
    expect(() => ensureFree('/x', GB, 'y', () => 2 * GB)).not.toThrow();
    // the nearest existing parent's file system (the two reads may differ a little while other work writes to the disk)
    expect(Math.abs(freeBytes('/no/such/dir/below/root') - freeBytes('/'))).toBeLessThan(256 * 1024 ** 2);
    const raw = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/c/trees/x' });
    expect(formatError(raw)).toMatch(/^error \(no-space\): no space left on the device writing \/c\/trees\/x \(ENOSPC\)\nhint: free disk space/);
    expect(normalizeError(new Error('other'))).not.toBeInstanceOf(HarnessError);
    expect(isNoSpace('ld: final link failed: No space left on device')).toBe(true);
    expect(isNoSpace({ code: 'EDQUOT' })).toBe(true);
    expect(isNoSpace('error: undefined reference')).toBe(false);
    expect(extractedEstimate(137 * MB, 'linux-source-6.1.tar.xz')).toBeGreaterThan(1.4 * GB);
    expect(extractedEstimate(200 * MB, 'linux-6.1.tar.gz')).toBeGreaterThan(1.1 * GB);
  });
});

describe('build failures', () => {
  it('the excerpt starts near the first error', () => {
    const log = ['  CC a.o', '  CC b.o', 'net/ipv4/fib_frontend.c:391:9: error: expected ; before }', '  391 | x', 'make[3]: *** [x] Error 1', ...Array(30).fill('noise')].join('\n');
    const ex = buildErrorExcerpt(log);
    expect(ex.split('\n')[2]).toContain('error: expected');
    expect(ex).not.toContain('noise\nnoise\nnoise\nnoise\nnoise\nnoise\nnoise\nnoise\nnoise\nnoise\nnoise');
  });
});

describe('old kernels and today\'s compiler', () => {
  it('recognises the yylloc link failure of pre-5.7 kernels with GCC >= 10', async () => {
    const { buildProblemHint } = await import('../../harness/kernels/build.ts');
    expect(buildProblemHint("/usr/bin/ld: scripts/dtc/dtc-parser.tab.o:(.bss+0x10): multiple definition of `yylloc'; scripts/dtc/dtc-lexer.lex.o:(.bss+0x0): first defined here")).toMatch(/before v5\.7/);
    expect(buildProblemHint('  CC      net/core/dev.o')).toBeUndefined();
  });
});
