// The trust boundary's modules directly, and properties of its path and archive rules (fast-check): whatever relative path,
// symlink layout or archive member header an untrusted source makes up, the result is under the
// root or a typed refusal, and no accepted member keeps an unsafe name, type or mode.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { memberProblem, normaliseTree, normalMode, tarMemberFilter, type MemberHeader } from '../../harness/trust/archive.ts';
import { copyInput, readInputBytes, readInputFile, sha256Input, statRegular } from '../../harness/trust/files.ts';
import { confine, confineReal, isUnder, readUnder } from '../../harness/trust/paths.ts';
import { sha256 } from '../../harness/util/hash.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { fileTempDir, testTempDir } from '../tmp.ts';

const tmp = fileTempDir('kr-trust-props-');

/** Path pieces an attacker would use, joined by "/" (or "//"). */
const SEGMENTS = ['a', 'b', 'c.ko', '..', '.', '', 'x\0y', 'link', 'up', 'abs', 'C:', '...', 'a b'];
const relPath = fc
  .array(fc.constantFrom(...SEGMENTS), { minLength: 0, maxLength: 7 })
  .chain((parts) => fc.tuple(fc.constant(parts), fc.boolean(), fc.boolean()))
  .map(([parts, lead, doubled]) => (lead ? '/' : '') + parts.join(doubled ? '//' : '/'));

/** Either the value of `f`, or the typed refusal it must end in (anything else fails the property). */
function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    expect(e).toBeInstanceOf(HarnessError);
    expect((e as HarnessError).kind).toBe('bad-input');
    expect((e as HarnessError).field).toBe('f');
    return { ok: false };
  }
}

let n = 0;
/** A fresh root holding a few files and a random set of symlinks (some stay inside, some lead out). */
function hostileRoot(links: Array<[string, string]>): { root: string; outside: string } {
  const base = path.join(tmp, `r${n++}`);
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(root, 'a/b'), { recursive: true });
  fs.mkdirSync(outside, { recursive: true });
  fs.writeFileSync(path.join(outside, 'c.ko'), 'OUTSIDE');
  fs.writeFileSync(path.join(root, 'c.ko'), 'inside');
  fs.writeFileSync(path.join(root, 'a/c.ko'), 'inside');
  fs.writeFileSync(path.join(root, 'a/b/c.ko'), 'inside');
  for (const [where, target] of links) {
    const p = path.join(root, where);
    if (!fs.existsSync(path.dirname(p)) || fs.lstatSync(p, { throwIfNoEntry: false })) continue;
    fs.symlinkSync(target === 'OUT' ? outside : target, p);
  }
  return { root, outside };
}

/** Paths through the links' names (what the symlink property needs to hit often). */
const linkedPath = fc.array(fc.constantFrom('link', 'up', 'abs', 'a', 'b', 'c.ko', '..', '.'), { minLength: 1, maxLength: 5 }).map((p) => p.join('/'));

const linkSpec = fc.array(
  fc.tuple(fc.constantFrom('link', 'up', 'abs', 'a/link', 'a/b/up', 'a/abs'), fc.constantFrom('..', '../..', '../../outside', '/', 'OUT', 'a', 'b', '.', 'c.ko', 'a/b', 'link', 'up', '/etc', 'up/../c.ko', 'link/../../outside/c.ko', 'up/..')),
  { maxLength: 4 },
);

describe('path confinement (fast-check)', () => {
  it('confine: any relative path gives a path lexically under the root, or a typed refusal', () => {
    const root = path.join(tmp, 'lexical');
    fc.assert(
      fc.property(relPath, (rel) => {
        const r = attempt(() => confine(root, rel, 'f'));
        if (!r.ok) return;
        expect(isUnder(root, r.value)).toBe(true);
        expect(r.value.includes('\0')).toBe(false);
        expect(rel.split('/')).not.toContain('..');
        expect(path.isAbsolute(rel)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('confineReal and readUnder: with symlinks anywhere in the tree, nothing resolves or is read outside the real root', () => {
    fc.assert(
      fc.property(linkSpec, fc.oneof(relPath, linkedPath, linkedPath), (links, rel) => {
        const { root } = hostileRoot(links);
        const realRoot = fs.realpathSync.native(root);
        const r = attempt(() => confineReal(root, rel, 'f', { allowMissing: true }));
        if (r.ok) {
          expect(isUnder(realRoot, r.value)).toBe(true);
          if (fs.existsSync(r.value)) expect(isUnder(realRoot, fs.realpathSync.native(r.value))).toBe(true);
        }
        const read = attempt(() => readUnder(root, rel, 1024, 'f'));
        if (read.ok) expect(read.value.toString()).toBe('inside');
      }),
      { numRuns: 300 },
    );
  });
});

const TYPES = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link', 'CharacterDevice', 'BlockDevice', 'FIFO', 'Unsupported'];
const header: fc.Arbitrary<MemberHeader> = fc.record({
  path: relPath,
  type: fc.constantFrom(...TYPES),
  linkpath: fc.option(relPath, { nil: undefined }),
  mode: fc.integer({ min: 0, max: 0o7777 }),
});

describe('archive members (fast-check)', () => {
  it('a member is accepted only with a safe name and a plain type (links only in-tree, when allowed)', () => {
    fc.assert(
      fc.property(header, fc.constantFrom<'none' | 'in-tree'>('none', 'in-tree'), fc.integer({ min: 0, max: 1 }), (h, links, strip) => {
        const why = memberProblem(h, { links, strip });
        if (why !== null) return;
        expect(h.path.includes('\0')).toBe(false);
        expect(h.path.startsWith('/') || /^[a-zA-Z]:/.test(h.path)).toBe(false);
        expect(h.path.split('/')).not.toContain('..');
        const plain = ['File', 'OldFile', 'ContiguousFile', 'Directory'].includes(h.type);
        if (links === 'none') expect(plain).toBe(true);
        else expect(plain || h.type === 'SymbolicLink' || h.type === 'Link').toBe(true);
        if (!plain) {
          const target = h.linkpath ?? '';
          expect(target.startsWith('/')).toBe(false);
          // where the link points, from where it is (after the strip): inside the tree
          const rel = h.path.split('/').slice(strip).filter((s) => s !== '' && s !== '.').join('/');
          const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(rel || '.'), target));
          expect(resolved === '..' || resolved.startsWith('../')).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('modes: what the filter lets through has 0644 or 0755 (0755 iff an x bit), never a set-id or sticky bit', () => {
    fc.assert(
      fc.property(header, (h) => {
        const entry = { ...h };
        const ok = tarMemberFilter({ links: 'none' }, () => undefined)(h.path, entry);
        expect(ok).toBe(memberProblem(h) === null);
        if (!ok) return;
        const want = h.type === 'Directory' ? 0o755 : (h.mode ?? 0) & 0o111 ? 0o755 : 0o644;
        expect(entry.mode).toBe(want);
        expect(normalMode(h.mode, h.type === 'Directory')).toBe(want);
        expect((entry.mode ?? 0) & 0o7000).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('normaliseTree: whatever modes an unpacked tree has, files end 0644/0755 and directories 0755', () => {
    const modes = fc.array(fc.tuple(fc.constantFrom('f', 'd/f', 'd/e/f', 'd', 'd/e'), fc.integer({ min: 0, max: 0o7777 })), { maxLength: 6 });
    fc.assert(
      fc.property(modes, (ms) => {
        const root = path.join(tmp, `t${n++}`);
        fs.mkdirSync(path.join(root, 'd/e'), { recursive: true });
        for (const f of ['f', 'd/f', 'd/e/f']) fs.writeFileSync(path.join(root, f), 'x');
        for (const [p, m] of ms) fs.chmodSync(path.join(root, p), p === 'd' || p === 'd/e' ? m | 0o700 : m);
        expect(normaliseTree(root)).toEqual([]);
        for (const p of ['.', 'd', 'd/e']) expect(fs.statSync(path.join(root, p)).mode & 0o7777).toBe(0o755);
        for (const p of ['f', 'd/f', 'd/e/f']) expect([0o644, 0o755]).toContain(fs.statSync(path.join(root, p)).mode & 0o7777);
      }),
      { numRuns: 100 },
    );
  });
});

/** The typed refusal `f` must end in. */
async function refused(f: () => unknown): Promise<HarnessError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(HarnessError);
    expect((e as HarnessError).kind).toBe('bad-input');
    return e as HarnessError;
  }
  throw new Error('accepted');
}

describe('trust/files.ts and trust/paths.ts directly', () => {
  it('bounded bytes, hash and copy; a refusal names the definition and field, with the path in the message', async () => {
    const t = testTempDir('kr-trust-files-');
    const f = path.join(t, 'x.patch');
    fs.writeFileSync(f, 'abc');
    expect(readInputBytes(f, 3, 'patches[0].file').toString()).toBe('abc');
    expect(sha256Input(f, 3, 'patches[0].file')).toBe(sha256('abc'));
    copyInput(f, path.join(t, 'copy'), 3);
    expect(fs.readFileSync(path.join(t, 'copy'), 'utf8')).toBe('abc');
    const big = await refused(() => sha256Input(f, 2, { def: '/defs/k.yaml', field: 'patches[0].file' }));
    expect([big.file, big.field]).toEqual(['/defs/k.yaml', 'patches[0].file']);
    expect(big.message).toBe(`${f}: is 3 bytes, more than the 2 bytes such a file may have`);
    // a symlink where none is allowed
    fs.symlinkSync(f, path.join(t, 'l'));
    expect(readInputFile(path.join(t, 'l'), 10)).toBe('abc');
    expect((await refused(() => readInputFile(path.join(t, 'l'), 10, 'f', { noFollow: true }))).message).toMatch(/symbolic link/);
    // stat-level refusals before any open
    expect((await refused(() => statRegular('/dev/zero', 10, 'f'))).message).toBe('is a character device, not a regular file');
  });

  it('confine refuses absolute, .. and NUL paths; readUnder a symlink chain out of the root', async () => {
    const t = testTempDir('kr-trust-paths-');
    const root = path.join(t, 'root');
    fs.mkdirSync(path.join(root, 'd'), { recursive: true });
    fs.writeFileSync(path.join(t, 'secret'), 'host');
    expect(confine(root, 'd/x', 'f')).toBe(path.join(root, 'd/x'));
    for (const bad of ['/etc/passwd', '../x', 'd/../../x', 'd/\0x', '']) await refused(() => confine(root, bad, 'f'));
    fs.symlinkSync('..', path.join(root, 'd/up'));
    fs.symlinkSync('up/../secret', path.join(root, 'd/chain'));
    expect((await refused(() => readUnder(root, 'd/chain', 100, 'f'))).message).toMatch(/leads out of/);
    fs.symlinkSync('../..', path.join(root, 'd/out'));
    expect((await refused(() => readUnder(root, 'd/out/secret', 100, 'f'))).message).toMatch(/leads out of/);
    // (Node's JS realpath resolves "up/../secret" lexically; the kernel, and confineReal, through the link)
    expect(fs.realpathSync.native(path.join(root, 'd/chain'))).toBe(fs.realpathSync(path.join(t, 'secret')));
  });
});
