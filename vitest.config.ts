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
      // One group: the unit files fill a lane's gaps at the end rather than hold both lanes at the start.
      // Beside a lab booting in the other lane: more than vitest's 5 s for a test that runs tsc or node.
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Two labs at a time, each file with lab names of its own.
          // A cold base image takes a minute, and a file waits for a package install queued behind the other's.
          testTimeout: 15 * 60_000,
          hookTimeout: 15 * 60_000,
        },
      },
    ],
  },
});
