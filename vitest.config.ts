import { defineConfig } from 'vitest/config';

// VM tests boot real boxes under QEMU: on 2 cores, two test files at a time is the most that helps.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Scales testTimeout and hookTimeout (below: the reference machine's) by the floor global-setup measured.
    setupFiles: ['test/scale.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    fileParallelism: true,
    testTimeout: 180_000,
    hookTimeout: 300_000,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' line.
    reporters: ['default', ['json', { outputFile: 'dist/test-results.json' }]],
  },
});
