// Defect 9: a corrupt cache entry of a kind used without re-hashing every time (`verify: false`:
// a prebuilt image, a .deb, a Debian image, a source tarball, a guest package layer) is detected,
// said, and made again, like any other entry.
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { execa } from 'execa';
import { EntryStore } from '../../harness/util/cache.ts';
import { loadKernel } from '../../harness/kernels/load.ts';
import { ensureKernel } from '../../harness/kernels/providers/index.ts';
import type { Logger } from '../../harness/util/log.ts';
import { testTempDir } from '../tmp.ts';

function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`), progress: () => undefined };
}

const corruptions: Array<[string, (f: string) => void]> = [
  ['overwritten in place, same size', (f) => {
    const b = fs.readFileSync(f);
    b[b.length >> 1] = b[b.length >> 1]! ^ 0xff;
    fs.writeFileSync(f, b);
  }],
  ['truncated', (f) => fs.truncateSync(f, 3)],
  ['overwritten, its mtime put back', (f) => {
    const st = fs.statSync(f);
    fs.writeFileSync(f, Buffer.alloc(st.size, 0x41));
    fs.utimesSync(f, st.atime, st.mtime);
  }],
  ['removed', (f) => fs.rmSync(f)],
];

/** A prebuilt bzImage by the x86 boot protocol, its config beside it, in `dir`/k. */
function prebuiltImage(tmp: string): string {
  const config = 'CONFIG_64BIT=y\nCONFIG_NET=y\nCONFIG_PVH=y\n';
  const body = Buffer.concat([crypto.randomBytes(2048), Buffer.from('Linux version 6.1.7-kr (kr@host) (gcc 12) #1 SMP\0', 'latin1'), crypto.randomBytes(512)]);
  // a bzImage by the x86 boot protocol, its config beside it
  const setup = Buffer.alloc(4 * 512);
  setup.writeUInt8(3, 0x1f1);
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x020f, 0x206);
  setup.writeUInt16LE(0x200, 0x20e);
  setup.write('6.1.7-kr (kr@host) #1 SMP\0', 0x400, 'latin1');
  const payload = zlib.gzipSync(body);
  setup.writeUInt32LE(100, 0x248);
  setup.writeUInt32LE(payload.length, 0x24c);
  fs.mkdirSync(path.join(tmp, 'k'));
  const img = path.join(tmp, 'k', 'bzImage');
  fs.writeFileSync(img, Buffer.concat([setup, crypto.randomBytes(100), payload]));
  fs.writeFileSync(path.join(tmp, 'k', '.config'), config);
  return img;
}

describe('defect 9: corrupt entries used with verify: false', () => {
  for (const [how, corrupt] of corruptions)
    it(`a file of the entry ${how}: detected on the next use, said, made again`, async () => {
      const store = new EntryStore<{ n: number }>(path.join(testTempDir('kr-corrupt-'), 'kernels'), { remote: null });
      let fills = 0;
      const fill = async (staging: string): Promise<{ n: number }> => {
        fills++;
        fs.writeFileSync(path.join(staging, 'bzImage'), crypto.randomBytes(4096));
        return { n: fills };
      };
      const log = captureLog();
      const key = 'a'.repeat(64);
      await store.getOrFill(key, fill, { verify: false, label: 'kernel img', log });
      const hit = await store.getOrFill(key, fill, { verify: false, label: 'kernel img', log });
      expect([hit.cached, fills]).toEqual([true, 1]);
      corrupt(path.join(store.entryDir(key), 'bzImage'));
      const again = await store.getOrFill(key, fill, { verify: false, label: 'kernel img', log });
      expect([again.cached, again.manifest.meta.n, fills]).toEqual([false, 2, 2]);
      expect(log.lines).toContainEqual(expect.stringMatching(new RegExp(`^warning: kernel img: cache entry ${key.slice(0, 12)} discarded: file bzImage (does not match its manifest|is missing) \\(making it again\\)$`)));
      // the new entry is served, intact
      const third = await store.getOrFill(key, fill, { verify: false, label: 'kernel img', log });
      expect([third.cached, fills]).toEqual([true, 2]);
    });

  it('a prebuilt kernel image (provider "image") whose cached copy was damaged is copied again', async () => {
    const tmp = testTempDir('kr-corrupt-');
    const cacheDir = path.join(tmp, 'cache');
    const img = prebuiltImage(tmp);
    const log = captureLog();
    const a = await ensureKernel(loadKernel(img), { cacheDir, log });
    expect(a.cached).toBe(false);
    const b = fs.readFileSync(a.bzImage);
    b[600] = b[600]! ^ 0xff;
    fs.writeFileSync(a.bzImage, b);
    const again = await ensureKernel(loadKernel(img), { cacheDir, log });
    expect(again.cached).toBe(false);
    expect(fs.readFileSync(again.bzImage).equals(fs.readFileSync(img))).toBe(true);
    expect(log.lines.join('\n')).toMatch(/warning: kernel k-bzImage: cache entry [0-9a-f]{12} discarded: file bzImage does not match its manifest \(making it again\)/);
  });
});

describe('defect 11: leftovers of killed fills and downloads are swept, whatever the entries\' kind', () => {
  it('a prebuilt image\'s store: a dead process\'s staging directory and remote download go, a live one\'s stay', async () => {
    const tmp = testTempDir('kr-sweep-');
    const cacheDir = path.join(tmp, 'cache');
    const kernels = path.join(cacheDir, 'kernels');
    fs.mkdirSync(kernels, { recursive: true });
    const gone = execa('true');
    await gone;
    const live = execa('sleep', ['30'], { reject: false });
    try {
      const dead = [`.staging-0123456789abcdef-${gone.pid}-deadbeef`, `.staging-0123456789abcdef-${gone.pid}-deadbeef.download`, `.lock-0123456789abcdef.owner.json.${gone.pid}.cafe0001.tmp`];
      const kept = [`.staging-fedcba9876543210-${live.pid}-0badf00d`, `.staging-fedcba9876543210-${live.pid}-0badf00d.download`];
      fs.mkdirSync(path.join(kernels, dead[0]!));
      fs.writeFileSync(path.join(kernels, dead[0]!, 'bzImage'), 'half');
      fs.writeFileSync(path.join(kernels, dead[1]!), 'half a tarball');
      fs.writeFileSync(path.join(kernels, dead[2]!), '{}');
      fs.mkdirSync(path.join(kernels, kept[0]!));
      fs.writeFileSync(path.join(kernels, kept[1]!), 'in progress');
      const a = await ensureKernel(loadKernel(prebuiltImage(tmp)), { cacheDir, log: captureLog() });
      expect(a.cached).toBe(false);
      const left = fs.readdirSync(kernels);
      for (const d of dead) expect(left).not.toContain(d);
      for (const k of kept) expect(left).toContain(k);
    } finally {
      live.kill('SIGKILL');
      await live;
    }
  });
});
