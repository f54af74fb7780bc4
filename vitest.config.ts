import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Finds (or installs) promtool and prometheus, and redis-server, for the suites that need them.
    globalSetup: ['test/prometheus-setup.ts', 'test/redis-setup.ts'],
    typecheck: {
      enabled: true,
      include: ['test/**/*.test-d.ts'],
      tsconfig: './tsconfig.json',
    },
    // An unhandled rejection anywhere fails the run (vitest's default, pinned here on purpose).
    dangerouslyIgnoreUnhandledErrors: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
