// The guest image: a base initramfs (busybox-static, iproute2's ip and tc with their shared-library
// closure, the guest agent) cached by content, plus a tiny per-run overlay holding the rendered case.
// Linux unpacks concatenated cpio archives in order, so base + overlay is one -initrd file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HarnessError } from '../util/errors.ts';
import { confine } from '../trust/paths.ts';
import { cachedFileId, EntryStore, hashOf, sha256, sha256File, withLock } from '../util/cache.ts';
import type { Logger } from '../util/log.ts';
import { repoRoot } from '../util/paths.ts';
import { run, runOk } from '../util/proc.ts';

const IMAGE_FORMAT = 8; // bump when the layout below changes
const agentDir = path.join(repoRoot, 'images', 'agent');
const AGENT_FILES = ['init', 'agent.sh', 'lib.sh', 'counters.awk', 'symbols.awk', 'graph.awk', 'udp-probe'];
/** C source of the guest's reseed helper (repeats from a case snapshot): clock, CRNG reseed, jitter */
const RESEED_SOURCE = path.join(agentDir, 'reseed.c');

export interface ImageMeta {
  busybox: string;
  ip: string;
  tc: string;
  libs: string[];
  sizeBytes: number;
}

export interface BaseImage {
  path: string;
  key: string;
  meta: ImageMeta;
  cached: boolean;
}

function which(names: string[], candidates: string[]): string {
  for (const c of candidates) if (fs.existsSync(c)) return fs.realpathSync(c);
  throw new HarnessError('missing-prereq', `cannot find ${names.join('/')} (looked in ${candidates.join(', ')})`, {
    hint: 'install the Debian packages busybox-static and iproute2 (npm run doctor -- --install)',
  });
}

async function libClosure(bins: string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const b of bins) {
    const out = await runOk('ldd', [b], { timeoutMs: 10_000 });
    for (const line of out.split('\n')) {
      const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (m?.[1]) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}

export interface HostTools {
  busybox: string;
  ip: string;
  tc: string;
}

export function findHostTools(): HostTools {
  return {
    busybox: which(['busybox'], ['/bin/busybox', '/usr/bin/busybox']),
    ip: which(['ip'], ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']),
    tc: which(['tc'], ['/usr/sbin/tc', '/sbin/tc']),
  };
}

async function assertStatic(busybox: string): Promise<void> {
  const r = await run('ldd', [busybox], { timeoutMs: 10_000 });
  if (r.exitCode === 0 && /=>/.test(r.stdout))
    throw new HarnessError('missing-prereq', `${busybox} is dynamically linked; the guest needs busybox-static`, {
      hint: 'apt-get install busybox-static',
    });
}

/** cpio (newc) of a directory tree; gzip if `compress`. */
export async function cpioDir(dir: string, out: string, compress: boolean): Promise<void> {
  const script = `cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 ${compress ? '| gzip -1' : ''} > "$2"`;
  const r = await run('sh', ['-c', script, 'cpio', dir, out], { timeoutMs: 120_000 });
  if (r.exitCode !== 0)
    throw new HarnessError('build-failed', `cannot pack the initramfs: ${r.stderr.trim() || 'cpio failed'}`, {
      hint: 'is the cpio package installed?',
    });
}

async function gccVersion(): Promise<string> {
  const r = await run('gcc', ['-dumpfullversion'], { timeoutMs: 10_000 });
  return r.exitCode === 0 ? r.stdout.trim() : 'none';
}

/** The reseed helper: x86-64 system calls only (no libc, static), so that it starts at once in a restored guest. */
async function compileReseed(out: string): Promise<void> {
  const r = await run('gcc', ['-O2', '-static', '-nostdlib', '-ffreestanding', '-fno-stack-protector', '-fno-pie', '-no-pie', '-o', out, RESEED_SOURCE], { timeoutMs: 60_000 });
  if (r.exitCode !== 0)
    throw new HarnessError('missing-prereq', `cannot compile the guest's reseed helper (${path.relative(repoRoot, RESEED_SOURCE)}): ${(r.stderr || r.stdout).trim().split('\n').slice(0, 3).join(' / ') || 'gcc failed'}`, {
      hint: 'install gcc and the kernel headers linux-libc-dev (npm run doctor -- --install)',
    });
}

/** Files of the host's netbase package the guest gets as they are (protocol and service names). */
const BASE_FILES = ['/etc/protocols', '/etc/services', '/etc/ethertypes', '/etc/rpc'];

export async function ensureBaseImage(cacheDir: string, logTo: ((msg: string) => void) | Logger): Promise<BaseImage> {
  const logger: Logger = typeof logTo === 'function' ? { info: logTo, warn: (m) => logTo(`warning: ${m}`), progress: logTo } : logTo;
  const log = (m: string): void => logger.info(m);
  const tools = findHostTools();
  await assertStatic(tools.busybox);
  const libs = await libClosure([tools.ip, tools.tc]);
  const agentFiles = AGENT_FILES.map((f) => path.join(agentDir, f));
  const key = hashOf({
    format: IMAGE_FORMAT,
    busybox: sha256File(tools.busybox),
    ip: sha256File(tools.ip),
    tc: sha256File(tools.tc),
    libs: libs.map((l) => [l, sha256File(l)]),
    agent: agentFiles.map((f) => sha256File(f)),
    reseed: [sha256File(RESEED_SOURCE), await gccVersion()],
    baseFiles: BASE_FILES.map((f) => [f, fs.existsSync(f) ? sha256File(f) : null]),
  });
  const store = new EntryStore<ImageMeta>(path.join(cacheDir, 'images'));
  const hit = store.get(key);
  if (hit) return { path: path.join(store.entryDir(key), 'base.cpio'), key, meta: hit.meta, cached: true };

  return withLock(path.join(store.dir, `.lock-${key.slice(0, 16)}`), async () => {
    // made here before, or by another machine with the same host tools (the remote cache)
    const again = await store.fetch(key, { label: 'the guest image', log: logger });
    if (again) return { path: path.join(store.entryDir(key), 'base.cpio'), key, meta: again.meta, cached: true };
    log('building the guest image (busybox-static, iproute2, agent)');
    const staging = store.staging(key);
    const root = path.join(staging, 'root');
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'usr/lib/kr', 'proc', 'sys', 'dev', 'run', 'tmp', 'etc', 'var', 'kr', 'case'])
      fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.symlinkSync('../run', path.join(root, 'var/run'));
    fs.copyFileSync(tools.busybox, path.join(root, 'bin/busybox'));
    fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
    const applets = (await runOk(tools.busybox, ['--list-full'], { timeoutMs: 10_000 })).split('\n').filter(Boolean);
    for (const a of applets) {
      const base = path.basename(a);
      if (base === 'ip' || base === 'tc' || base === 'busybox') continue; // iproute2's, not busybox's
      const dest = path.join(root, a);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (!fs.existsSync(dest)) fs.symlinkSync('/bin/busybox', dest);
    }
    fs.copyFileSync(tools.ip, path.join(root, 'usr/lib/kr/ip'));
    fs.copyFileSync(tools.tc, path.join(root, 'usr/lib/kr/tc'));
    // iproute2 in PATH too, for the case's own commands (a bash script's `ip`); busybox sh would
    // still run its applets first, so the agent calls these by full path
    fs.symlinkSync('/usr/lib/kr/ip', path.join(root, 'usr/sbin/ip'));
    fs.symlinkSync('/usr/lib/kr/tc', path.join(root, 'usr/sbin/tc'));
    for (const lib of libs) {
      const dest = path.join(root, lib);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.copyFileSync(fs.realpathSync(lib), dest);
    }
    // the dynamic loader is looked up at its canonical path
    // users and groups for programs that look them up (tcpdump -Z root, bash's ~)
    fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    // the host's netbase files: protocol, service and ethertype names (`ip rule ... ipproto udp`,
    // `nft ... tcp dport ssh`, getservbyname) as on an installed system
    for (const f of BASE_FILES) if (fs.existsSync(f)) fs.copyFileSync(f, path.join(root, f));
    fs.mkdirSync(path.join(root, 'root'), { recursive: true });
    fs.copyFileSync(path.join(agentDir, 'init'), path.join(root, 'init'));
    fs.chmodSync(path.join(root, 'init'), 0o755);
    for (const f of AGENT_FILES.filter((x) => x !== 'init')) fs.copyFileSync(path.join(agentDir, f), path.join(root, 'kr', f));
    fs.chmodSync(path.join(root, 'kr/udp-probe'), 0o755);
    await compileReseed(path.join(root, 'kr/reseed'));
    const out = path.join(staging, 'base.cpio');
    // uncompressed: unpacking a gzip image cost the guest ~0.25 s of TCG time per boot
    await cpioDir(root, out, false);
    fs.rmSync(root, { recursive: true, force: true });
    const meta: ImageMeta = { busybox: tools.busybox, ip: tools.ip, tc: tools.tc, libs, sizeBytes: fs.statSync(out).size };
    const m = store.publish(key, staging, meta);
    await store.push(key, { label: 'the guest image', log: logger });
    return { path: path.join(store.entryDir(key), 'base.cpio'), key, meta: m.meta, cached: false };
  }, { what: 'building the guest image', waitingFor: 'the guest image', log: { info: log } });
}

/** Append `file` to `out`, padded first to a 512-byte boundary (zeros between archives are skipped by the kernel's unpacker). */
function appendArchive(out: string, file: string): void {
  const pad = (512 - (fs.statSync(out).size % 512)) % 512;
  if (pad) fs.appendFileSync(out, Buffer.alloc(pad));
  fs.appendFileSync(out, fs.readFileSync(file));
}

/** Write base + layers + an overlay holding `files` (path -> content) into `out` (one -initrd file; later archives win). */
export async function composeInitramfs(base: string, files: Record<string, string | Buffer>, out: string, layers: string[] = []): Promise<void> {
  fs.copyFileSync(base, out);
  for (const l of layers) appendArchive(out, l);
  if (Object.keys(files).length === 0) return;
  const dir = `${out}.d`;
  fs.rmSync(dir, { recursive: true, force: true });
  // each path in the guest (/lib/modules/..., /src/...) is confined under the staging dir, no `..`
  // (trust/paths.ts), all checked before anything is written
  const members = Object.entries(files).map(([p, content]) => ({ dest: confine(dir, p.replace(/^\/+/, ''), { def: p, field: 'initramfs files' }), content }));
  fs.mkdirSync(dir, { recursive: true });
  for (const { dest, content } of members) {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, content, { mode: typeof content === 'string' && content.startsWith('#!') ? 0o755 : 0o644 });
  }
  const overlay = `${out}.overlay.cpio`;
  await cpioDir(dir, overlay, false);
  appendArchive(out, overlay);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(overlay, { force: true });
}

/**
 * The base image plus package layers and files that must be there at boot (a modular kernel's
 * modules: sending a few hundred KB over the guest's serial input would cost seconds), cached by
 * content next to the base image, so that a booted-kernel snapshot of it is reused by every run
 * needing the same layers and files.
 */
export async function imageWithFiles(base: string, files: Record<string, string | Buffer>, cacheDir: string, layers: string[] = []): Promise<string> {
  if (Object.keys(files).length === 0 && layers.length === 0) return base;
  const id = (f: string): unknown => cachedFileId(f, cacheDir);
  const key = hashOf({
    base: id(base),
    layers: layers.map(id),
    files: Object.keys(files)
      .sort()
      .map((p) => [p, sha256(files[p]!)]),
  });
  const dir = path.join(cacheDir, 'images', 'with-files');
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${key}.cpio`);
  // last use for `cache gc` in a stamp beside it: the image's own mtime is part of snapshot keys
  const used = (): void => fs.writeFileSync(`${out}.used`, '');
  if (fs.existsSync(out)) {
    used();
    return out;
  }
  // runs of one process that need the same image (two guests at once) wait for one composition
  let making = composing.get(out);
  if (!making) {
    making = (async () => {
      const tmp = `${out}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
      try {
        await composeInitramfs(base, files, tmp, layers);
        fs.renameSync(tmp, out); // whole or not at all (another process's identical image may have won: same content)
      } finally {
        fs.rmSync(tmp, { force: true });
        composing.delete(out);
      }
    })();
    composing.set(out, making);
  }
  await making;
  used();
  return out;
}

const composing = new Map<string, Promise<void>>();
