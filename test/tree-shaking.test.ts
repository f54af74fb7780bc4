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

/** Builds `entries` of the package, then bundles `contents` (which imports from ./dist) minified, as a consumer's bundler would. */
async function bundle(entries: readonly string[], contents: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'breakwater-shake-'));
  try {
    await buildSources(join(dir, 'dist'), entries, ['esm']);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', sideEffects: false }));
    const result = await build({
      stdin: { contents, resolveDir: dir },
      bundle: true,
      format: 'esm',
      platform: 'node', // Breakwater runs on Node: bulkhead, hedge and the rate limiter import node:async_hooks
      external: ['prom-client', '@opentelemetry/api'], // the optional peers, as a service has them
      write: false,
      minify: true,
      logLevel: 'silent',
    });
    return result.outputFiles[0]!.text;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('tree shaking', () => {
  it('a bundler given the built package and `import { timeout }` leaves the other policies out', async () => {
    const code = await bundle(['index', 'opossum/index'], "import { timeout } from './dist/index.js'; console.log(timeout);");
    expect(code).toContain('TimeoutError'); // the import itself is there
    expect(code).not.toMatch(/bulkhead|circuitBreaker|retryAfter|async_hooks|opentelemetry|prom-client/);
  }, 120_000);

  it('`import { openTelemetry }` from breakwater/opentelemetry leaves prom-client and the Prometheus sink out', async () => {
    const code = await bundle(['index', 'prometheus/index', 'opentelemetry/index'], "import { openTelemetry } from './dist/opentelemetry/index.js'; console.log(openTelemetry);");
    expect(code).toContain('@opentelemetry/api');
    expect(code).toContain('breakwater.call.duration');
    expect(code).not.toMatch(/prom-client|PrometheusMetrics|registerMetric/);
  }, 120_000);

  it('`import { resilientFetch }` from breakwater/fetch keeps its default pipeline and leaves the other policies out', async () => {
    const code = await bundle(['index', 'fetch/index'], "import { resilientFetch } from './dist/fetch/index.js'; console.log(resilientFetch);");
    expect(code).toContain('ERR_BREAKWATER_FAILURE_RESPONSE');
    expect(code).toContain('the circuit is open'); // the default pipeline's breaker
    const kinds = (list: string[]) => list.filter((kind) => code.includes(`kind="${kind}"`));
    expect(kinds(['retry', 'circuit-breaker', 'timeout', 'keyed'])).toEqual(['retry', 'circuit-breaker', 'timeout', 'keyed']);
    expect(kinds(['bulkhead', 'hedge', 'fallback', 'throttle', 'rate-limiter', 'adaptive-limit', 'chaos'])).toEqual([]);
  }, 120_000);

  it('`import { httpGate, gateListener }` from breakwater/http keeps its bulkhead and adaptive limit and leaves the other policies and prom-client out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'breakwater-shake-'));
    try {
      await buildSources(join(dir, 'dist'), ['index', 'http/index'], ['esm']);
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', sideEffects: false }));
      const result = await build({
        stdin: { contents: "import { httpGate, gateListener } from './dist/http/index.js'; console.log(httpGate, gateListener);", resolveDir: dir },
        bundle: true,
        format: 'esm',
        platform: 'node',
        write: false,
        minify: true,
        logLevel: 'silent',
      });
      const code = result.outputFiles[0]!.text;
      expect(code).toContain('kind="http-gate"');
      const kinds = (list: string[]) => list.filter((kind) => code.includes(`kind="${kind}"`));
      expect(kinds(['bulkhead', 'adaptive-limit'])).toEqual(['bulkhead', 'adaptive-limit']);
      expect(kinds(['retry', 'circuit-breaker', 'timeout', 'keyed', 'hedge', 'fallback', 'throttle', 'rate-limiter', 'chaos'])).toEqual([]);
      expect(code).not.toContain('prom-client');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
