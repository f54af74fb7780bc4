/**
 * The vitest configuration Stryker runs (`npm run test:mutation`): the unit,
 * property and reliability suites, without the type tests (Stryker's runner
 * does not run them, and they check no behaviour) and without the suites that
 * start real servers or processes (demos, Prometheus, packaging) or read src/ as text (the security review),
 * which kill no
 * mutant the fast suites do not and would make each mutant cost seconds.
 */
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      typecheck: { enabled: false },
      globalSetup: [],
      exclude: [
        'node_modules/**',
        'test/demo-*.test.ts',
        'test/prometheus-server.test.ts',
        'test/prometheus-promtool.test.ts',
        'test/prometheus-setup.test.ts',
        'test/package.test.ts',
        'test/tree-shaking.test.ts',
        'test/docs-samples.test.ts',
        'test/api-docs.test.ts',
        'test/reliability/process.test.ts',
        'test/redis-*.test.ts', // need the redis-server that the main config's set-up starts
        'test/reliability/security.test.ts', // reads src/ as text, which Stryker rewrites
        'examples/**',
      ],
    },
  }),
);
