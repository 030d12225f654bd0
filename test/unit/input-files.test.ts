// Input files the user names must be regular files of bounded size, refused before they are read.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HarnessError } from '../../harness/util/errors.ts';
import { MAX_DEFINITION_BYTES, readInputFile } from '../../harness/util/load.ts';

describe('input files', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kr-input-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const refused = (file: string, max = MAX_DEFINITION_BYTES): string => {
    const t0 = Date.now();
    try {
      readInputFile(file, max, '--case');
    } catch (e) {
      expect(e).toBeInstanceOf(HarnessError);
      expect((e as HarnessError).file).toBe(file);
      expect((e as HarnessError).field).toBe('--case');
      expect(Date.now() - t0).toBeLessThan(1000);
      return (e as HarnessError).message;
    }
    throw new Error('accepted');
  };
  it('refuses devices, pipes and directories before opening them', () => {
    expect(refused('/dev/zero')).toBe('is a character device, not a regular file');
    expect(refused(tmp)).toBe('is a directory, not a regular file');
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(refused(fifo)).toBe('is a named pipe, not a regular file');
    expect(refused(path.join(tmp, 'absent.yaml'))).toBe('cannot read file: ENOENT');
  });
  it('refuses a file over its bound, reads one within it', () => {
    const f = path.join(tmp, 'big.yaml');
    fs.writeFileSync(f, 'x'.repeat(2049));
    expect(refused(f, 2048)).toBe('is 2049 bytes, more than the 2048 bytes such a file may have');
    expect(readInputFile(f, 4096)).toHaveLength(2049);
  });
});
