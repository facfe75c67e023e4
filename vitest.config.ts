import { defineConfig } from 'vitest/config';
import LongestFirst from './test/e2e-sequencer.js';

export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    // Two workers even on two cores: the end-to-end files mostly wait on machines.
    maxWorkers: 2,
    // The longest end-to-end files first, so the two lanes end together.
    sequence: { sequencer: LongestFirst },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // After the unit tests; two labs at a time, each file with lab names of its own.
          sequence: { groupOrder: 1 },
          // A cold base image takes a minute, and a file waits for a package install queued behind the other's.
          testTimeout: 15 * 60_000,
          hookTimeout: 15 * 60_000,
        },
      },
    ],
  },
});
