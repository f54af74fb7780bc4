/**
 * The built package must let a bundler drop what a consumer does not import: the
 * package says `sideEffects: false`, so no policy module may run code at load
 * that a bundler has to keep (such as marking a class from outside its body).
 */
import { build } from 'esbuild';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSources } from './helpers.ts';

describe('tree shaking', () => {
  it('a bundler given the built package and `import { timeout }` leaves the other policies out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-shake-'));
    try {
      await buildSources(join(dir, 'dist'), ['index', 'opossum/index'], ['esm']);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', sideEffects: false }));
      const result = await build({
        stdin: { contents: "import { timeout } from './dist/index.js'; console.log(timeout);", resolveDir: dir },
        bundle: true,
        format: 'esm',
        platform: 'node', // Breakwater runs on Node: bulkhead, hedge and the rate limiter import node:async_hooks
        write: false,
        minify: true,
        logLevel: 'silent',
      });
      const code = result.outputFiles[0]!.text;
      expect(code).toContain('TimeoutError'); // the import itself is there
      expect(code).not.toMatch(/bulkhead|circuitBreaker|retryAfter|async_hooks/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a service that imports breakwater/opentelemetry gets neither prom-client nor the Prometheus sink, and one that does not gets no OpenTelemetry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-shake-otel-'));
    try {
      await buildSources(join(dir, 'dist'), ['index', 'prometheus/index', 'opentelemetry/index'], ['esm']);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', sideEffects: false }));
      const bundle = async (contents: string): Promise<string> => {
        const result = await build({
          stdin: { contents, resolveDir: dir },
          bundle: true,
          format: 'esm',
          platform: 'node',
          write: false,
          external: ['prom-client', '@opentelemetry/api'],
          logLevel: 'silent',
        });
        return result.outputFiles[0]!.text;
      };
      const otel = await bundle("import { openTelemetry } from './dist/opentelemetry/index.js'; console.log(openTelemetry);");
      expect(otel).toContain('@opentelemetry/api');
      expect(otel).toContain('breakwater.call.duration');
      expect(otel).not.toMatch(/prom-client|PrometheusMetrics|registerMetric/);
      const core = await bundle("import { pipeline, retry } from './dist/index.js'; console.log(pipeline, retry);");
      expect(core).not.toMatch(/opentelemetry|prom-client/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
