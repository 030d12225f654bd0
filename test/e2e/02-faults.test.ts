// Faults end to end on a real kernel (6.1-fixed from the shared cache): a hung guest, a kernel
// panic, a malformed case file and an unmet kconfig need, each ending in a clear typed result.
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { loadCase } from '../../harness/cases/load.ts';
import { ensureBaseImage, type BaseImage } from '../../harness/images/initramfs.ts';
import { ensureKernel } from '../../harness/kernels/providers/index.ts';
import type { KernelArtifact } from '../../harness/kernels/artifact.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { runCase } from '../../harness/pipeline/runCase.ts';
import { makeLogger } from '../../harness/util/log.ts';
import { cacheRoot } from '../../harness/util/paths.ts';
import { cli, processAlive } from './helpers.ts';
import { fileTempDir } from '../tmp.ts';

let kernel: KernelArtifact;
let image: BaseImage;
const runDir = fileTempDir('kr-faults-');

beforeAll(async () => {
  const log = makeLogger();
  kernel = await ensureKernel(loadKernel('6.1-fixed'), { cacheDir: cacheRoot(), log });
  image = await ensureBaseImage(cacheRoot(), log.info);
});

describe('guest faults', () => {
  it('a hung guest is killed at its deadline: verdict timeout, QEMU gone', async () => {
    const deadlineMs = 10_000;
    const t0 = Date.now();
    const r = await runCase({
      kernel,
      kcase: loadCase('rp-filter-selftest'),
      baseImage: image.path,
      accel: 'tcg',
      runDir,
      label: 'hang',
      deadlineMs,
      append: ['kr.fault=hang'],
    });
    const elapsed = Date.now() - t0;
    expect(r.verdict).toBe('timeout');
    expect(r.vm.timedOut).toBe(true);
    expect(r.reason).toMatch(/10000 ms deadline/);
    expect(elapsed).toBeLessThan(deadlineMs + 5_000);
    expect(processAlive(path.join(runDir, '6.1-fixed__rp-filter-selftest__hang'))).toBe(false);
    expect(fs.readFileSync(r.files.results, 'utf8')).toContain('@@KR fault hang');
  });

  it('a kernel panic ends the run at once: verdict panic with the panic text kept', async () => {
    const r = await runCase({
      kernel,
      kcase: loadCase('rp-filter-selftest'),
      baseImage: image.path,
      accel: 'tcg',
      runDir,
      label: 'crash',
      deadlineMs: 60_000,
      append: ['kr.fault=crash'],
    });
    expect(r.verdict).toBe('panic');
    expect(r.panic?.title).toMatch(/Kernel panic - not syncing: sysrq triggered crash/);
    expect(r.panic?.text).toMatch(/Call Trace:/);
    expect(r.durationMs).toBeLessThan(30_000);
    expect(fs.readFileSync(r.files.console, 'utf8')).toContain('sysrq triggered crash');
  });
});

describe('isolation', () => {
  it('the guest has no network device of its own: no ethernet link before the case, everything down', async () => {
    const r = await runCase({ kernel, kcase: loadCase('rp-filter-selftest'), baseImage: image.path, accel: 'tcg', runDir, label: 'links', append: ['kr.report=links'] });
    expect(r.verdict).toBe('not-reproduced');
    const results = fs.readFileSync(r.files.results, 'utf8');
    const links = results.slice(results.indexOf('@@KR begin links-at-start'), results.indexOf('@@KR end links-at-start')).split('\n').slice(1).filter(Boolean);
    expect(links[0]).toMatch(/^1: lo: /);
    // built-in tunnel drivers add their fallback devices (sit0); no NIC exists (-nic none)
    for (const l of links) {
      expect(l).not.toMatch(/link\/ether/);
      expect(l).toMatch(/state DOWN/);
    }
  });
});

describe('bad input through the CLI', () => {
  it('a malformed case file: exit 2, file and field named, no stack trace, nothing built', async () => {
    const bad = path.join(runDir, 'bad-case.yaml');
    fs.writeFileSync(bad, 'name: bad\ndescription: x\nprobes:\n  - { name: p, ping: 10.0.0.999 }\nsignature: { probe: p }\n');
    const r = await cli(['repro', '--case', bad, '--kernel', '6.1-fixed'], { timeoutMs: 60_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`${bad}: probes[0].ping: must be an IPv4 or IPv6 address`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).not.toMatch(/building|configuring/);
  });

  it('a case needing an option the kernel cannot enable (its dependencies are off): exit 2 before any build or boot, naming option and case', async () => {
    // an option the kernel merely lacks is merged into a variant of it (README, "Adding a case": kconfig)
    const needy = path.join(runDir, 'needy.yaml');
    const text = fs.readFileSync(loadCase('rp-filter-selftest').file, 'utf8').replace('name: rp-filter-selftest', 'name: needy').replace('kconfig:\n', 'kconfig:\n  - CONFIG_NFT_FIB_INET\n');
    fs.writeFileSync(needy, text);
    const r = await cli(['repro', '--case', needy, '--kernel', '6.1-fixed'], { timeoutMs: 30 * 60_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`error (bad-input): ${needy}: kconfig: kernel 6.1-fixed cannot enable CONFIG_NFT_FIB_INET, which case needy needs`);
    expect(r.stderr).not.toMatch(/building needy|building 6\.1-fixed|accelerator:/); // stopped before building or booting anything
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown kernel name: exit 2 listing the built-ins', async () => {
    const r = await cli(['repro', '--kernel', 'no-such-kernel'], { timeoutMs: 60_000 });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/no built-in kernel named "no-such-kernel" \(built in: .*6\.1-fixed/);
  });
});
