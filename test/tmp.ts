// Temporary directories for tests that are removed when their test file (or test) ends.
// End-to-end fixtures are large (an extracted kernel tree is ~1.7 GB): a test that leaves its
// directory behind fills the disk after a few runs. KERNEL_REPRO_KEEP_TMP=1 keeps them for debugging.
import { afterAll, onTestFinished } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const keep = process.env.KERNEL_REPRO_KEEP_TMP === '1';

function remove(dir: string): void {
  if (keep) console.error(`kept ${dir} (KERNEL_REPRO_KEEP_TMP=1)`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

/** A directory removed after the last test of the file; call it at the top of a file or in a hook. */
export function fileTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => remove(dir));
  return dir;
}

/** A directory removed when the current test finishes; call it inside a test. */
export function testTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onTestFinished(() => remove(dir));
  return dir;
}
