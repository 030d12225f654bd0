import { defineConfig } from 'vitest/config';

// Unit tests run in parallel and fast; end-to-end tests boot real kernels, share built kernels
// through the cache, and run one file at a time (kernel builds contend for the cores).
export default defineConfig({
  test: {
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
