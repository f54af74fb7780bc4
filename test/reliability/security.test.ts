/**
 * The security review, as tests (docs/security.md explains the threat model):
 * - the core has zero runtime dependencies: package.json declares none, and the
 *   bundles built from the sources import nothing but relative chunks and
 *   `node:` builtins, except `breakwater/prometheus`, which imports its optional
 *   peer prom-client (the service's own copy);
 * - `npm audit --omit=dev` is clean (it needs the registry: a network failure
 *   fails this test with a clear message unless BREAKWATER_SKIP_AUDIT=1);
 * - no code is evaluated dynamically (eval, new Function, vm, string timers,
 *   computed dynamic imports) anywhere in src/ or in the bundles;
 * - metric label values come only from configuration: work that fails with
 *   hostile messages, opossum breaker names and every outcome never put a
 *   byte of their text into a label.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import CircuitBreaker from 'opossum';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bulkhead, circuitBreaker, constant, fallback, pipeline, retry, timeout } from '../../src/index.ts';
import { fromOpossum, runWork } from '../../src/opossum/index.ts';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { FakeClock } from '../../src/testing/index.ts';
import { buildSources } from '../helpers.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, ext);
    return ext.test(name) ? [path] : [];
  });
}

/** Removes comments (and the text of string literals that could hide them) so the scans read code only. */
function codeOnly(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:\\'"`])\/\/.*$/gm, '$1');
}

// ---------------------------------------------------------------------------
// Zero runtime dependencies

/** Every module specifier a bundle imports or requires. */
function specifiers(code: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) found.push(m[1]!);
  return found;
}

/** Computed (non-literal) module loads, which a scan of specifiers cannot see. */
function computedLoads(code: string): string[] {
  return [...code.matchAll(/\b(?:require|import)\s*\(\s*(?!["'])[^)]{0,40}/g)].map((m) => m[0]);
}

let bundleDir = '';
let bundles: { file: string; code: string }[] = [];

beforeAll(async () => {
  // Built into a scratch directory from the sources as they are now (not dist/,
  // which another test may be rebuilding), with the entry points of the package.
  bundleDir = mkdtempSync(join(tmpdir(), 'breakwater-bundle-'));
  await buildSources(bundleDir, ['index', 'testing/index', 'prometheus/index', 'opossum/index', 'opentelemetry/index'], ['esm', 'cjs']);
  bundles = filesUnder(bundleDir, /\.(c?js)$/).map((file) => ({ file: relative(bundleDir, file), code: readFileSync(file, 'utf8') }));
}, 120_000);

afterAll(() => {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

describe('dependencies', () => {
  it('package.json declares no runtime dependency (prom-client is an optional peer)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const field of ['dependencies', 'optionalDependencies', 'bundleDependencies', 'bundledDependencies']) {
      expect(pkg[field] ?? {}, field).toEqual({});
    }
    expect(pkg.peerDependenciesMeta).toMatchObject({ 'prom-client': { optional: true }, '@opentelemetry/api': { optional: true } });
  });

  it('the bundles import only their own chunks and Node builtins (and breakwater/prometheus and breakwater/opentelemetry their peers)', () => {
    expect(bundles.map((b) => b.file)).toEqual(expect.arrayContaining(['index.js', 'index.cjs', 'prometheus/index.js', 'opossum/index.js', 'opentelemetry/index.js']));
    for (const { file, code } of bundles) {
      // The build writes builtins without the node: prefix (tsup's removeNodeProtocol), so both spellings are builtins.
      const foreign = specifiers(code).filter((s) => !s.startsWith('./') && !s.startsWith('../') && !s.startsWith('node:') && !builtinModules.includes(s));
      const peers = file.startsWith('prometheus/') ? ['prom-client'] : file.startsWith('opentelemetry/') ? ['@opentelemetry/api'] : [];
      expect(
        foreign.filter((s) => !peers.includes(s)),
        `${file} imports a package`,
      ).toEqual([]);
      expect(computedLoads(code), `${file} loads a computed module`).toEqual([]);
    }
  });

  it('the scan sees a bare import when there is one', () => {
    expect(specifiers(`import { a } from "left-pad"; const b = require('lodash'); await import('x');`)).toEqual(['left-pad', 'x', 'lodash']);
    expect(computedLoads('const m = require(name);')).toHaveLength(1);
  });

  it('npm audit --omit=dev is clean', async () => {
    let stdout = '';
    try {
      ({ stdout } = await run(npm, ['audit', '--omit=dev', '--json'], { cwd: root, encoding: 'utf8', timeout: 120_000 }));
    } catch (error) {
      // npm audit exits non-zero both for findings and for failures: read its JSON either way.
      stdout = (error as { stdout?: string }).stdout ?? '';
      if (stdout.trim() === '') throw error;
    }
    const report = JSON.parse(stdout) as { message?: string; error?: unknown; metadata?: { vulnerabilities?: Record<string, number> } };
    if (report.metadata === undefined) {
      const reason = report.message ?? JSON.stringify(report.error);
      if (process.env.BREAKWATER_SKIP_AUDIT === '1') {
        console.warn(`npm audit skipped (BREAKWATER_SKIP_AUDIT=1): ${reason}`);
        return;
      }
      throw new Error(
        `npm audit could not reach the registry (${reason}). It needs network access to the npm registry; ` +
          'CI has it. To run the suite offline, set BREAKWATER_SKIP_AUDIT=1.',
      );
    }
    expect(report.metadata.vulnerabilities?.total).toBe(0);
  }, 150_000);
});

// ---------------------------------------------------------------------------
// No dynamic code evaluation

const DYNAMIC_CODE: readonly [string, RegExp][] = [
  ['eval', /(?<![.\w])eval\s*\(/],
  ['new Function', /\bnew\s+Function\b/],
  ['Function constructor call', /(?<![.\w])Function\s*\(/],
  ['the vm module', /\bfrom\s*["'](?:node:)?vm["']|require\s*\(\s*["'](?:node:)?vm["']\s*\)|\bvm\.(?:runIn|Script|compile)/],
  ['a string timer', /\bset(?:Timeout|Interval|Immediate)\s*\(\s*["'`]/],
  ['a computed dynamic import', /\bimport\s*\(\s*(?!["'])/],
  ['child_process', /["'](?:node:)?child_process["']/],
];

describe('no dynamic code evaluation', () => {
  it('none in src/', () => {
    const files = filesUnder(join(root, 'src'), /\.ts$/);
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const code = codeOnly(readFileSync(file, 'utf8'));
      for (const [what, pattern] of DYNAMIC_CODE) expect(pattern.test(code), `${what} in ${relative(root, file)}`).toBe(false);
    }
  });

  it('none in the bundles', () => {
    for (const { file, code } of bundles) {
      for (const [what, pattern] of DYNAMIC_CODE) expect(pattern.test(codeOnly(code)), `${what} in ${file}`).toBe(false);
    }
  });

  it('the scan finds each of them when present', () => {
    const samples = ['eval("1")', 'const f = new Function("a", "return a")', 'Function("return this")()', "import vm from 'node:vm'", 'setTimeout("alert(1)", 10)', 'await import(name)', "require('child_process')"];
    samples.forEach((sample, i) => expect(DYNAMIC_CODE[i]![1].test(sample), sample).toBe(true));
    // ... and is not fooled by words in comments or by method names.
    expect(DYNAMIC_CODE.some(([, p]) => p.test(codeOnly('// never eval() here\nschedule.evaluate(x); obj.Function(1);')))).toBe(false);
  });
});

// ---------------------------------------------------------------------------
// Metric labels come only from configuration

const HOSTILE = [
  'x"} 1\nbreakwater_calls_total{pipeline="evil",outcome="success"} 1e9\n# ',
  '</script><script>alert(1)</script>',
  '${process.exit(1)}',
  '\u0000\u202e\ud83d\ude00 label',
  'a'.repeat(10_000),
  '{{pipeline}}',
];

describe('metric labels', () => {
  it('take their values only from configuration, whatever the errors say', async () => {
    const clock = new FakeClock();
    const registry = new Registry();
    const hostileBreaker = new CircuitBreaker(runWork, { name: HOSTILE[0]!, timeout: false, resetTimeout: 60_000, volumeThreshold: 1_000_000 });
    const opossumPolicy = fromOpossum(hostileBreaker);
    // Opens now and then (on the hostile errors) and recovers quickly, so every outcome occurs.
    const breaker = circuitBreaker({ window: { kind: 'count', calls: 10 }, minimumCalls: 10, failureRateThreshold: 1, halfOpenAfterMs: 10, clock });
    const inner = pipeline({ name: 'inner-opossum', clock }, opossumPolicy);
    const guarded = pipeline(
      { name: 'labels-test', clock },
      fallback({ value: 'fb', handle: (e) => e instanceof Error && e.message.startsWith('fallback:') }),
      bulkhead({ maxConcurrent: 2, maxQueue: 1, clock }),
      retry({ maxAttempts: 2, backoff: constant({ ms: 1 }), clock }),
      breaker,
      timeout({ ms: 20, clock }),
      inner,
    );
    const metrics = prometheusMetrics({ registry, labels: { region: 'eu-1' } });
    metrics.attach(guarded);

    // Work that fails with every hostile text, as an Error message, a name, a code, a cause, a bare string.
    const failures: (() => unknown)[] = HOSTILE.flatMap((text) => [
      () => {
        throw new Error(text);
      },
      () => {
        const e = new Error('plain');
        e.name = text;
        (e as { code?: string }).code = text;
        (e as { cause?: unknown }).cause = text;
        throw e;
      },
      () => Promise.reject(text),
      () => {
        throw new Error(`fallback:${text}`);
      },
      () => new Promise(() => {}),
    ]);
    const settled: Promise<unknown>[] = [];
    for (let i = 0; i < failures.length; i++) {
      const controller = new AbortController();
      settled.push(guarded.execute(() => failures[i]!() as never, { signal: controller.signal }).catch(() => undefined));
      if (i % 7 === 0) controller.abort(HOSTILE[i % HOSTILE.length]);
      await clock.advance(30);
    }
    for (let i = 0; i < 20; i++) await clock.advance(30);
    await Promise.all(settled);

    const text = await registry.metrics();
    const json = await registry.getMetricsAsJSON();
    const allowed: Record<string, Set<string>> = {
      pipeline: new Set(['labels-test', 'inner-opossum']),
      region: new Set(['eu-1']),
      outcome: new Set(['success', 'failure', 'timeout', 'rejected', 'fallback', 'cancelled']),
      state: new Set(['closed', 'open', 'half_open', 'isolated']),
      to: new Set(['closed', 'open', 'half_open', 'isolated']),
      cause: new Set(['failure', 'timeout', 'circuit_open', 'bulkhead_full', 'rejected']),
      kind: new Set(['fault', 'latency', 'outcome']),
    };
    let labelled = 0;
    for (const family of json) {
      for (const value of family.values) {
        for (const [name, labelValue] of Object.entries(value.labels)) {
          labelled++;
          if (name === 'le') {
            expect(labelValue === '+Inf' || Number.isFinite(Number(labelValue)), `le="${String(labelValue)}"`).toBe(true);
            continue;
          }
          expect(allowed[name], `label name ${name} on ${family.name}`).toBeDefined();
          expect(allowed[name]!.has(String(labelValue)), `${family.name}{${name}="${String(labelValue).slice(0, 60)}"}`).toBe(true);
        }
      }
    }
    expect(labelled).toBeGreaterThan(50);
    // Not one hostile text anywhere in the exposition, and every sample line is well formed.
    for (const hostile of HOSTILE) expect(text.includes(hostile.slice(0, 30))).toBe(false);
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      expect(line).toMatch(/^[a-z_:]+(?:\{(?:[a-z_]+="[A-Za-z0-9_.:/+-]*",?)*\})? [-+0-9.eEInfa]+$/);
    }
    // The calls really went through every path (otherwise the check proves nothing).
    const calls = json.find((f) => f.name === 'breakwater_calls_total')!.values.filter((v) => v.labels.pipeline === 'labels-test');
    const nonZero = new Set(calls.filter((v) => v.value > 0).map((v) => v.labels.outcome));
    expect([...nonZero].sort()).toEqual(expect.arrayContaining(['cancelled', 'fallback', 'failure', 'rejected', 'timeout']));
    hostileBreaker.shutdown();
    opossumPolicy.dispose();
  });

  it('are validated when a pipeline is attached, and frozen from then on', async () => {
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const p = pipeline({ name: 'frozen' }, timeout({ ms: 1_000 }));
    metrics.attach(p);
    // A name changed afterwards (the property is writable at run time) cannot reach the labels.
    (p as { name: string | undefined }).name = 'evil"} 1';
    await p.execute(() => 'ok');
    const text = await registry.metrics();
    expect(text).toContain('pipeline="frozen"');
    expect(text).not.toContain('evil');
    // A name changed before attaching is checked at attach time.
    const q = pipeline({ name: 'ok' });
    (q as { name: string | undefined }).name = 'bad name\n';
    expect(() => metrics.attach(q)).toThrow(TypeError);
    expect(() => metrics.attach(q)).toThrow(/is not a valid label value/);
  });
});
