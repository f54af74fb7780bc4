/**
 * `npm run test:soak`: the process-level reliability tests at full size
 * (1,000,000 soak calls, 100,000 concurrent load calls), without the rest of
 * the suite. The sizes can still be overridden with SOAK_CALLS / LOAD_CALLS.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/reliability/process.test.ts'],
    env: {
      SOAK_CALLS: process.env.SOAK_CALLS ?? '1000000',
      LOAD_CALLS: process.env.LOAD_CALLS ?? '100000',
    },
    testTimeout: 1_900_000,
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
