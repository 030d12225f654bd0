// `npm run doctor`: what this machine has, what is missing, whether KVM works.
import type { Command } from 'commander';
import { builtinKernels, loadKernel } from '../kernels/load.ts';
import { busyboxIsStatic, checkPrereqs, ensurePrereqs, missingPackages } from '../host/prereqs.ts';
import { hostPackagesFor } from '../kernels/providers/index.ts';
import os from 'node:os';
import { ensureFree, freeBytes, GB, human, sameDisk } from '../util/disk.ts';
import { ExitCode } from '../util/errors.ts';
import { makeLogger } from '../util/log.ts';
import { cacheRoot } from '../util/paths.ts';
import { kvmDeviceProblem, qemuVersion } from '../vm/accel.ts';
import { systemApt } from '../host/apt.ts';
import { suiteApt, suitesInCache } from '../host/aptSuite.ts';
import { readResolved, resolvedRecord } from '../kernels/debsource.ts';
import { guarded } from './common.ts';
import { exitCodesHelp } from './options.ts';

// measured (.ci/run on a fresh clone, empty cache): the disk use peaks at 8.2 GB, during 07-sources
// (the cache ~6 GB with three kernel trees, and a 1.7 GB git repository of a kernel in $TMPDIR)
const TEST_SPACE = 7 * GB;
const TEST_TMP_SPACE = 2 * GB;

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check (and with --install, install) the host prerequisites; show KVM usability')
    .option('--install', 'install missing Debian/Ubuntu packages with apt-get (root)')
    .option('--quiet', 'print only problems')
    .option('--test-deps', 'also what the test suite needs (chromium for the HTML report, xmllint for JUnit, python3 for KTAP, git, procps, nginx as a WebDAV remote cache)')
    .addHelpText('after', exitCodesHelp())
    .action((opts: { install?: boolean; quiet?: boolean; testDeps?: boolean }) =>
      guarded(async () => {
        const log = makeLogger({ quiet: opts.quiet ?? false });
        const kernels = builtinKernels().map((r) => loadKernel(r));
        // the tests also drive Chromium (HTML report), look for stray processes with pgrep, check
        // JUnit against the Jenkins schema with xmllint, read KTAP with the kernel's kunit.py, and
        // serve a remote cache with nginx's WebDAV module
        const testDeps = [
          { file: '/usr/sbin/nginx', pkg: 'nginx' },
          { file: '/usr/bin/chromium', pkg: 'chromium' },
          { file: '/usr/bin/pgrep', pkg: 'procps' },
          { file: '/usr/bin/git', pkg: 'git' },
          { file: '/usr/bin/xmllint', pkg: 'libxml2-utils' },
          { file: '/usr/bin/python3', pkg: 'python3' },
        ];
        const extra = [...hostPackagesFor(kernels), ...(opts.testDeps ? testDeps : [])];
        if (opts.install) await ensurePrereqs(extra, log, { install: true });
        const prereqs = checkPrereqs(extra);
        const say = (s: string): void => {
          if (!opts.quiet) process.stdout.write(s + '\n');
        };
        for (const p of prereqs) say(`${p.present ? 'ok     ' : 'MISSING'} ${p.what.padEnd(34)} (${p.pkg})`);
        const cache = cacheRoot();
        if (!opts.quiet) {
          // the kernel sources an unpinned definition resolves to at run time, and what the archive would give now
          const apt = systemApt();
          for (const { pkg } of hostPackagesFor(kernels)) {
            const [have, cand] = await Promise.all([apt.installed(pkg), apt.candidate(pkg)]);
            const age = apt.listsAgeMs();
            const lists = age === null ? 'never refreshed' : `refreshed ${Math.round(age / 3600_000)} h ago`;
            say(`${pkg}: installed ${have ?? '(none)'}; the package lists (${lists}) offer ${cand ?? '(none)'}`);
          }
          // definitions naming a suite (source.suite): its private lists in the cache (no update here: that is the run's)
          for (const { suite, packages } of suitesInCache(cache)) {
            const sapt = suiteApt(cache, suite);
            const age = sapt.listsAgeMs();
            const lists = age === null ? 'never fetched' : `refreshed ${Math.round(age / 3600_000)} h ago`;
            for (const pkg of packages) {
              const last = readResolved(resolvedRecord(cache, suite, pkg));
              say(`${pkg} (${suite}): the ${suite} lists (${lists}) offer ${(await sapt.candidate(pkg)) ?? '(none)'}; last resolved ${last ? `${last.version} at ${last.at}` : '(never)'}`);
            }
          }
        }
        const bbStatic = await busyboxIsStatic();
        say(`${bbStatic ? 'ok     ' : 'MISSING'} ${'static busybox'.padEnd(34)} (busybox-static)`);
        say(`qemu: ${(await qemuVersion()) ?? 'not found'}`);
        const kvm = kvmDeviceProblem();
        say(`kvm: ${kvm ?? '/dev/kvm present (a short probe boot at the first run decides whether it really works)'}`);
        const free = freeBytes(cache);
        say(`cache: ${cache} (${human(free)} free on its disk; a kernel tree and its build take ~1.7 GB)`);
        if (opts.testDeps) {
          // the end-to-end tests build kernels from three sources into the cache and make a git
          // history of a kernel tree in the temporary directory: stop now rather than half-way
          if (sameDisk(cache, os.tmpdir())) ensureFree(cache, TEST_SPACE + TEST_TMP_SPACE, 'the test suite (kernel trees, builds, snapshots, temporary trees)');
          else {
            ensureFree(cache, TEST_SPACE, 'the test suite (kernel trees, builds, snapshots)');
            ensureFree(os.tmpdir(), TEST_TMP_SPACE, "the test suite's temporary kernel trees");
          }
        }
        const missing = missingPackages(prereqs).concat(bbStatic ? [] : ['busybox-static']);
        if (missing.length) {
          process.stderr.write(`missing: ${missing.join(' ')}\nrun as root: apt-get update && apt-get install -y ${missing.join(' ')}\n`);
          return ExitCode.missingPrereq;
        }
        return ExitCode.ok;
      }),
    );
}
