// A kernel definition's patch that does not apply to its source (issue 21: "a revert that does not
// apply there is exit 2, naming the patch and the hunk"): the error names the definition, the
// patch's field, the patch and each failed hunk (file, number, @@ header, line); a patch under
// test (verify --patch, no definition) stays a failed build (exit 4). `patch` itself runs on a tiny tree.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { patchSpecs } from '../../harness/kernels/build.ts';
import { kernelSchema } from '../../harness/kernels/schema.ts';
import { applyPatch, describeHunks, failedHunks, patchFailed } from '../../harness/kernels/source.ts';
import { parseData } from '../../harness/util/load.ts';
import { HarnessError } from '../../harness/util/errors.ts';
import { testTempDir } from '../tmp.ts';

const FILE = ['a', 'b', '\tdev_match = fib_info_nh_uses_dev(res.fi, dev);', '\tif (dev_match) {', '\t\treturn ret;', '\t}', 'c', 'd', ''].join('\n');
// the fix: two lines added after dev_match (reverse-applied to get the unfixed kernel)
const FIX = [
  'diff --git a/net/ipv4/fib_frontend.c b/net/ipv4/fib_frontend.c',
  '--- a/net/ipv4/fib_frontend.c',
  '+++ b/net/ipv4/fib_frontend.c',
  '@@ -1,6 +1,8 @@',
  ' a',
  ' b',
  ' \tdev_match = fib_info_nh_uses_dev(res.fi, dev);',
  '+\tdev_match = dev_match || (res.type == RTN_LOCAL &&',
  '+\t\t\t\t  dev == net->loopback_dev);',
  ' \tif (dev_match) {',
  ' \t\treturn ret;',
  ' \t}',
  '',
].join('\n');

function tree(withFix: boolean, changed = false): string {
  const dir = testTempDir('kr-patch-');
  fs.mkdirSync(path.join(dir, 'net/ipv4'), { recursive: true });
  let text = withFix ? FILE.replace('(res.fi, dev);\n', '(res.fi, dev);\n\tdev_match = dev_match || (res.type == RTN_LOCAL &&\n\t\t\t\t  dev == net->loopback_dev);\n') : FILE;
  if (changed) text = text.replace('fib_info_nh_uses_dev(res.fi, dev)', 'nh_uses_dev(res.fi, dev)'); // the code around the fix moved on
  fs.writeFileSync(path.join(dir, 'net/ipv4/fib_frontend.c'), text);
  fs.writeFileSync(path.join(dir, 'fix.patch'), FIX);
  return dir;
}

const spec = (dir: string): { file: string; reverse: boolean; id: string; def: string; field: string } => ({
  file: path.join(dir, 'fix.patch'),
  reverse: true,
  id: 'x',
  def: 'bugs/kernels/x-6.12-reverted.yaml',
  field: 'patches[0]',
});

describe('a patch that does not apply', () => {
  it('reverse-applies where the source has the fix', async () => {
    const dir = tree(true);
    const r = await applyPatch(dir, path.join(dir, 'fix.patch'), true, path.join(dir, 'log'));
    expect(r.ok).toBe(true);
  });

  it('where the source moved on: exit 2 naming the definition, the field, the patch and the hunk with its header and line', async () => {
    const dir = tree(true, true);
    const r = await applyPatch(dir, path.join(dir, 'fix.patch'), true, path.join(dir, 'log'));
    expect(r.ok).toBe(false);
    const e = patchFailed(spec(dir), 'linux-source-6.12 6.12.117-1 (trixie)', r.out, path.join(dir, 'log'), r.rej);
    expect(e).toBeInstanceOf(HarnessError);
    expect(e.exitCode).toBe(2);
    expect(e.file).toBe('bugs/kernels/x-6.12-reverted.yaml');
    expect(e.field).toBe('patches[0]');
    expect(e.message).toBe('patch fix.patch does not reverse-apply to linux-source-6.12 6.12.117-1 (trixie): net/ipv4/fib_frontend.c hunk #1 (@@ -1,8 +1,6 @@) failed at line 1');
    expect(e.excerpt).toContain('rejected hunks');
  });

  it('where the source never had the fix: refused (patch -R --batch alone would apply it forward and succeed), the file named with the reason', async () => {
    const dir = tree(false);
    const r = await applyPatch(dir, path.join(dir, 'fix.patch'), true, path.join(dir, 'log'));
    expect(r.ok).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'net/ipv4/fib_frontend.c'), 'utf8')).toBe(FILE); // untouched: the fix was not added
    const e = patchFailed(spec(dir), 'k', r.out, path.join(dir, 'log'), r.rej);
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(
      'patch fix.patch does not reverse-apply to k: net/ipv4/fib_frontend.c (@@ -1,8 +1,6 @@): the source does not have what it reverts (the patch would apply forward: the fix is absent or was changed)',
    );
  });

  it('a patch under test (no definition) stays a failed build, exit 4', async () => {
    const dir = tree(true, true);
    const r = await applyPatch(dir, path.join(dir, 'fix.patch'), true, path.join(dir, 'log'));
    const { def: _d, field: _f, ...noDef } = spec(dir);
    expect(patchFailed(noDef, 'k', r.out, path.join(dir, 'log'), r.rej).exitCode).toBe(4);
  });

  it('reads patch\'s words: failed hunks paired with the reject file\'s headers, a missing file, an applied patch', () => {
    const out = [
      'patching file net/ipv4/fib_frontend.c',
      'Hunk #1 succeeded at 390 (offset 7 lines).',
      'Hunk #2 FAILED at 435.',
      'patching file net/ipv4/route.c',
      'Hunk #1 FAILED at 1720.',
      '2 out of 3 hunks FAILED -- saving rejects to file x.rej',
    ].join('\n');
    const rej = ['--- net/ipv4/fib_frontend.c', '+++ net/ipv4/fib_frontend.c', '@@ -435,7 +435,6 @@ static int __fib_validate_source(', ' x', '--- net/ipv4/route.c', '+++ net/ipv4/route.c', '@@ -1720,3 +1720,4 @@', ' y'].join('\n');
    expect(failedHunks(out, rej)).toEqual([
      { file: 'net/ipv4/fib_frontend.c', hunk: 2, at: 435, header: '@@ -435,7 +435,6 @@' },
      { file: 'net/ipv4/route.c', hunk: 1, at: 1720, header: '@@ -1720,3 +1720,4 @@' },
    ]);
    const missing = ["can't find file to patch at input line 21", '|--- a/net/ipv4/gone.c', '|+++ b/net/ipv4/gone.c', '--------------------------', 'No file to patch.  Skipping patch.', '1 out of 1 hunk ignored'].join('\n');
    expect(describeHunks(failedHunks(missing))).toBe('net/ipv4/gone.c: the file is not in the tree');
    const applied = ['patching file net/ipv4/fib_frontend.c', 'Reversed (or previously applied) patch detected!  Skipping patch.', '1 out of 1 hunk ignored'].join('\n');
    expect(describeHunks(failedHunks(applied, '--- net/ipv4/fib_frontend.c\n+++ net/ipv4/fib_frontend.c\n@@ -383,6 +383,11 @@\n x'))).toBe('net/ipv4/fib_frontend.c (@@ -383,6 +383,11 @@): it is already in the tree');
    expect(failedHunks('patching file x\n')).toEqual([]);
  });

  it("a definition's patches carry the definition and field for the error; the patch verify adds does not", () => {
    const dir = tree(true);
    fs.writeFileSync(path.join(dir, 'other.patch'), FIX);
    const file = path.join(dir, 'k.yaml');
    const def = parseData('name: k\nsource: { type: debian-source, package: linux-source-6.1 }\npatches: [{ file: fix.patch, reverse: true }, { file: other.patch }]\n', file, kernelSchema);
    const specs = patchSpecs({ def, file, baseDir: dir, patchUnderTest: path.join(dir, 'other.patch') });
    expect(specs.map((p) => [p.def, p.field])).toEqual([
      [file, 'patches[0]'],
      [undefined, undefined],
    ]);
  });
});
