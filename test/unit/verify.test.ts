import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';
import { conclude, diffstat, parsePatch, type SideSummary } from '../../harness/verify/logic.ts';
import { markdownToHtml } from '../../harness/verify/html.ts';

const side = (reproduced: number, runs: number, martians: string[] = [], failed = 0): SideSummary => ({
  reproduced,
  runs,
  failed,
  signals: [
    { name: 'martian', role: 'signature', description: 'martian source', counts: Array.from({ length: runs }, () => (martians.length ? 1 : 0)), evidence: martians },
    // evidence-only signals do not decide whether the evidence changed
    { name: 'fib', role: 'evidence', description: 'fib lookups', counts: [], evidence: [`lookup ${Math.random()}`] },
  ],
});
const M = ['martian source 10.53.180.130 from 10.53.180.130, on dev lo'];

describe('verify logic', () => {
  it('reads a format-patch header and counts the diff', () => {
    const p = parsePatch(fs.readFileSync(path.join(repoRoot, 'kernels/patches/0001-fib-relax-source-validation-check-for-loopback-packets.patch'), 'utf8'), 'x');
    expect(p.subject).toBe('fib: relax source validation check for loopback packets');
    expect(p.author).toBe('Cong Wang <xiyou.wangcong@gmail.com>');
    expect(p.files).toEqual([{ path: 'net/ipv4/fib_frontend.c', added: 5, removed: 0 }]);
    expect(diffstat(p)).toContain('1 file changed, 5 insertions(+), 0 deletions(-)');
  });
  it('a plain diff gets its file name as subject', () => {
    const p = parsePatch('--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n', 'x.diff');
    expect(p).toMatchObject({ subject: 'x.diff', author: null, files: [{ path: 'x.c', added: 1, removed: 1 }] });
  });
  it('conclusions', () => {
    expect(conclude(side(3, 3, M), side(0, 3))).toBe('fixed');
    expect(conclude(side(0, 3), side(3, 3, M))).toBe('newly broken');
    expect(conclude(side(3, 3, M), side(3, 3, M))).toBe('unchanged');
    expect(conclude(side(0, 3), side(0, 3))).toBe('unchanged');
    expect(conclude(side(3, 3, M), side(3, 3, ['martian source 1.2.3.4 from 1.2.3.4, on dev lo']))).toBe('still reproduces');
    expect(conclude(side(3, 3, M), side(1, 3, M))).toBe('inconclusive');
    expect(conclude(side(3, 3, M), side(0, 3, [], 1))).toBe('inconclusive');
    expect(conclude(side(3, 3, M), side(0, 0), 'build failed')).toBe('build failed');
    expect(conclude(side(3, 3, M), side(0, 3, [], 3))).toBe('boot failed');
  });
  it('renders Markdown to escaped HTML', () => {
    const html = markdownToHtml('## t <b>\n\n| a | b |\n|---|---|\n| x | **fixed** |\n```\n<script>\n```\n', 'T');
    expect(html).toContain('<h2>t &#60;b&#62;</h2>');
    expect(html).toContain('<td><b>fixed</b></td>');
    expect(html).toContain('&#60;script&#62;');
    expect(html).not.toContain('<script>');
  });
});
