import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Files in name order: 01-repro runs first, so CI proves the cold path from an empty cache and
 * the later end-to-end files reuse its kernels through the cache. */
class ByName extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId));
  }
}

// Unit tests run in parallel and fast; end-to-end tests boot real kernels, share built kernels
// through the cache, and run one file at a time (kernel builds contend for the cores).
export default defineConfig({
  test: {
    sequence: { sequencer: ByName },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60 * 60_000,
          hookTimeout: 60 * 60_000,
          sequence: { concurrent: false },
        },
      },
    ],
  },
});
