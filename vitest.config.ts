import { defineConfig } from 'vitest/config';
import { NodeStorySequencer } from './test/node/sequencer.js';

// Four layers, each runnable alone (npm run test:unit|test:integration|test:e2e|test:node).
// integration and e2e talk to real processes, so they run one file at a time.
export default defineConfig({
  test: {
    sequence: { sequencer: NodeStorySequencer },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          globalSetup: ['test/env/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 90_000,
          hookTimeout: 240_000,
          fileParallelism: false,
          globalSetup: ['test/env/global-setup.ts'],
        },
      },
      {
        // The chart's DaemonSet on a real kubelet and container runtime (test/node/up). Runs alone, after
        // the others (npm test runs it last): the controller-manager it starts would act on the objects
        // the other projects create by hand.
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 900_000,
          fileParallelism: false,
          globalSetup: ['test/env/global-setup.ts', 'test/node/global-setup.ts'],
        },
      },
    ],
  },
});
