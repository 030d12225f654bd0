// Defect 12, the quiet path: reading a case's source files from a kernel tree waits for the tree's
// lock like a build does, and says so (it used to wait without a word).
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { readTreeFiles } from '../../harness/kernels/build.ts';
import type { LoadedKernel } from '../../harness/kernels/load.ts';
import type { SourceIdentity } from '../../harness/kernels/source.ts';
import { holdLockFor } from '../lock-holder.ts';
import { testTempDir } from '../tmp.ts';

describe('readTreeFiles waits for the tree, saying for what and who holds it', () => {
  it('held by a live build: a message naming it; once the build is gone, the files are read', async () => {
    const cacheDir = testTempDir('kr-srcwait-');
    const treeRoot = path.join(cacheDir, 'trees', 'tree-x');
    fs.mkdirSync(treeRoot, { recursive: true });
    const holder = execa('sleep', ['60'], { reject: false });
    holdLockFor(holder.pid!, path.join(treeRoot, '.lock'), { what: 'building 6.1-vanilla', token: 't' });
    const src: SourceIdentity = {
      id: 'src-x',
      treeId: 'tree-x',
      label: 'a test tree',
      patchable: true,
      async prepareTree(root) {
        const tree = path.join(root, 'src');
        fs.mkdirSync(path.join(tree, 'tools'), { recursive: true });
        fs.writeFileSync(path.join(tree, 'tools', 'x.sh'), 'echo x\n');
        return tree;
      },
    };
    const k = { def: { name: 'kx', patches: [] }, file: '/k.yaml', baseDir: '/' } as unknown as LoadedKernel;
    const lines: string[] = [];
    const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), progress: () => undefined };
    const reading = readTreeFiles(k, src, [{ path: 'tools/x.sh', optional: false }], { cacheDir, log });
    await new Promise((r) => setTimeout(r, 1500));
    expect(lines[0]).toMatch(new RegExp(`^waiting for the kernel tree tree-x \\(to read tools/x\\.sh for kx\\): held by pid ${holder.pid} on \\S+ \\(building 6\\.1-vanilla, since `));
    holder.kill('SIGKILL');
    await holder;
    expect(await reading).toEqual({ 'tools/x.sh': 'echo x\n' });
    expect(lines.at(-1)).toMatch(/^got the kernel tree tree-x \(to read tools\/x\.sh for kx\) after \d+ s$/);
  }, 20_000);
});
