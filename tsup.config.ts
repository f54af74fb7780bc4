import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    'prometheus/index': 'src/prometheus/index.ts',
    'opossum/index': 'src/opossum/index.ts',
    'chaos/index': 'src/chaos/index.ts',
    'opentelemetry/index': 'src/opentelemetry/index.ts',
    'fetch/index': 'src/fetch/index.ts',
    'redis/index': 'src/redis/index.ts',
    'http/index': 'src/http/index.ts',
  },
  format: ['esm', 'cjs'],
  // The published types leave out what is marked @internal: users and custom policies
  // see only their API (etc/api/ records it; `npm run api:check` compares).
  dts: { compilerOptions: { stripInternal: true } },
  clean: true,
  sourcemap: true,
  target: 'node22',
  splitting: true,
  treeshake: true,
});
