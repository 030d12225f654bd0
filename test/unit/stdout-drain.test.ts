// A large --json written into a pipe whose reader is slow arrives whole: the CLI waits for stdout
// to drain before it exits (process.exit right after the write cut it at the pipe's 64 KiB).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../harness/util/paths.ts';

describe('the CLI exits only once its stdout is written', () => {
  it('400 KB into a pipe read after a pause arrive whole', () => {
    const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
    const script = path.join(repoRoot, 'test/fixtures/big-stdout.ts');
    const out = execFileSync('sh', ['-c', `"$0" "$1" | (sleep 1; wc -c)`, tsx, script], { encoding: 'utf8', timeout: 60_000 });
    expect(Number(out.trim())).toBe(400_001);
  });
});
