/**
 * breakwater/prometheus against a real Prometheus server: it scrapes a small
 * in-process HTTP server that drives traffic through a few pipelines, loads
 * docs/prometheus/alerts.yml, and then every alert expression and every panel
 * query of docs/grafana/breakwater.json is evaluated through the HTTP query API.
 *
 * Prometheus scrapes on the wall clock, so this test uses real time (loopback
 * only, a 1 s scrape interval, deadlines instead of sleeps). test/prometheus-setup.ts
 * finds prometheus (or installs Debian's package); where it cannot be had, this suite
 * is skipped with one line saying why, and under CI the run fails instead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constant,
  adaptiveLimit,
  fallback,
  gradient,
  hedge,
  rateLimiter,
  throttle,
  pipeline,
  retry,
  rollout,
  retryBudget,
  timeout,
  type Pipeline,
} from '../src/index.ts';
import { chaos } from '../src/chaos/index.ts';
import { httpGate } from '../src/http/index.ts';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { fleetRateLimiter, redisFleet, type RedisFleet } from '../src/redis/index.ts';
import { prometheusTools } from './prometheus-tools.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const PROMETHEUS = prometheusTools().prometheus;
const skip = PROMETHEUS === undefined;
const ALERTS = join(root, 'docs/prometheus/alerts.yml');
const DASHBOARD = join(root, 'docs/grafana/breakwater.json');

/** The `expr:` values of alerts.yml, by alert name (single-line or `|` blocks). */
function alertExpressions(): Map<string, string> {
  const lines = readFileSync(ALERTS, 'utf8').split('\n');
  const found = new Map<string, string>();
  let alert: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const name = /^\s*- alert:\s*(\S+)/.exec(line);
    if (name) alert = name[1];
    const expr = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!expr || alert === undefined) continue;
    if (expr[2] !== '|') {
      found.set(alert, expr[2]!);
      continue;
    }
    const indent = expr[1]!.length;
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || /^\s*/.exec(lines[i + 1]!)![0].length > indent)) {
      body.push(lines[++i]!.trim());
    }
    found.set(alert, body.join('\n').trim());
  }
  return found;
}

/** The panel queries of the dashboard, with Grafana's variables substituted. */
function panelQueries(): { panel: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) =>
    panel.targets.map((t) => ({
      panel: panel.title,
      expr: t.expr
        .replaceAll('$pipeline', '.*')
        .replaceAll('$gate', '.*')
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '1m')
        .replaceAll('$__interval', '5s'),
    })),
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined, or throws at the deadline. */
async function until<T>(what: string, deadline: number, probe: () => Promise<T | undefined>, log: () => string): Promise<T> {
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what} (last error: ${String(last)})\nprometheus log:\n${log()}`);
}

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

describe.skipIf(skip)('a real Prometheus server', () => {
  let prometheus: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let server: Server | undefined;
  let traffic: ReturnType<typeof setInterval> | undefined;
  let fleet: RedisFleet | undefined;
  let dir: string | undefined;
  let base = '';
  let log = '';
  const inFlight = new Set<Promise<unknown>>();

  async function query(expr: string): Promise<QueryResult> {
    const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await response.json()) as QueryResult;
  }

  beforeAll(async () => {
    const deadline = Date.now() + 25_000;

    // The service: pipelines built so that every alert condition holds.
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const slow = (ms: number, signal: AbortSignal): Promise<string> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve('ok'), ms);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      });
    // inventory: its breaker opens and stays open (long cooldown).
    const inventory = pipeline(
      { name: 'inventory' },
      fallback({ value: 'stale' }),
      circuitBreaker({ minimumCalls: 2, halfOpenAfterMs: 600_000 }),
      timeout({ ms: 1_000 }),
    );
    // search: one slot, no queue, calls take 30 ms and come five at a time.
    const search = pipeline({ name: 'search' }, bulkhead({ maxConcurrent: 1, maxQueue: 0 }), timeout({ ms: 1_000 }));
    // payments: failing, with retries refused by an empty budget.
    const payments = pipeline(
      { name: 'payments' },
      retry({ maxAttempts: 3, backoff: constant({ ms: 1 }), budget: retryBudget({ ratio: 0, minPerSecond: 0 }) }),
      timeout({ ms: 1_000 }),
    );
    // profile: half of the calls run past a 5 ms deadline; retried once.
    const profile = pipeline({ name: 'profile' }, retry({ maxAttempts: 2, backoff: constant({ ms: 1 }) }), timeout({ ms: 5 }));
    // auth: the README's pipeline, fallback outermost, during a complete outage of its
    // dependency: every call is answered by the fallback, none ends in failure, and the
    // documented error ratio and the fallback alert must still see the outage.
    const auth = pipeline(
      { name: 'auth' },
      fallback({ value: { user: 'anonymous' } }),
      bulkhead({ maxConcurrent: 50, maxQueue: 100 }),
      retry({ maxAttempts: 3, budget: retryBudget({ ratio: 0.2 }) }),
      circuitBreaker({ failureRateThreshold: 0.5, halfOpenAfterMs: 5_000, minimumCalls: 5 }),
      timeout({ ms: 500 }),
    );
    // game: a game day left on (chaos latency), hedged.
    const game = pipeline(
      { name: 'game' },
      hedge({ delayMs: 5, maxExtraLoad: 0.5 }), // every call is slow: half the hedges are over budget
      chaos({ kind: 'latency', ms: 10, injectionRate: 1, enabled: true }),
    );
    // crowded: an overloaded dependency: the adaptive limit holds one call at a time and
    // refuses the rest, and the one it admits is refused, so the throttle backs off.
    const crowded = pipeline(
      { name: 'crowded' },
      adaptiveLimit({ algorithm: gradient(), minLimit: 1, maxLimit: 1, initialLimit: 1 }),
      throttle({ minimumRequests: 1 }),
      rateLimiter({ ratePerSecond: 1_000, maxQueue: 10 }),
    );
    // flags: a guarded rollout whose experiment always fails (rolled back), and whose flag then gives 20 instead of 0.2.
    const flag = { share: 1 };
    const flags = pipeline(
      { name: 'flags' },
      rollout({ experimental: () => Promise.reject(new Error('new code broke')), share: () => flag.share, rampStep: 1, minimumCalls: 3 }),
    );
    // slowing: half of its calls take 300 ms, past the slow-call alert's 250 ms.
    const slowing = pipeline({ name: 'slowing' }, timeout({ ms: 1_000 }));
    // partner: a fleet-wide limit whose Redis never answers, so it decides alone (fleet_degraded 1).
    const unreachable = { eval: () => new Promise(() => {}), evalsha: () => new Promise(() => {}) };
    fleet = redisFleet({ redis: unreachable, prefix: 'prometheus-server' });
    const partner = pipeline({ name: 'partner' }, fleetRateLimiter(fleet, { name: 'partner', ratePerSecond: 1_000 }));
    metrics.attach(inventory, search, payments, profile, auth, game, crowded, flags, slowing, partner);
    // edge: an HTTP admission gate with one slot, offered three requests at a time: two of three are shed.
    const edge = httpGate({ name: 'edge', maxConcurrent: 1 });
    metrics.attachGate(edge);

    const run = (p: Pipeline<unknown>, work: (signal: AbortSignal) => Promise<unknown>): void => {
      const call = p.execute(({ signal }) => work(signal)).catch(() => undefined);
      inFlight.add(call);
      void call.finally(() => inFlight.delete(call));
    };
    let tick = 0;
    const burst = (): void => {
      tick++;
      run(inventory, () => Promise.reject(new Error('inventory down')));
      for (let i = 0; i < 5; i++) run(search, (signal) => slow(30, signal));
      run(payments, () => Promise.reject(new Error('card processor down')));
      run(profile, (signal) => slow(tick % 2 === 0 ? 50 : 1, signal));
      for (let i = 0; i < 3; i++) run(auth, () => Promise.reject(new Error('auth upstream down')));
      run(game, (signal) => slow(1, signal));
      for (let i = 0; i < 5; i++) run(crowded, (signal) => slow(30, signal).then(() => Promise.reject(new Error('503 overloaded'))));
      run(flags, () => Promise.resolve('stable'));
      for (let i = 0; i < 3; i++) {
        const permit = edge.tryAcquire();
        if (permit !== undefined) setTimeout(() => permit.release(), 30);
      }
      if (tick === 10) flag.share = 20;
      run(slowing, (signal) => slow(tick % 2 === 0 ? 300 : 1, signal));
    };
    burst();
    traffic = setInterval(burst, 100);

    server = createServer((request, response) => {
      if (request.url !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;

    dir = mkdtempSync(join(tmpdir(), 'breakwater-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(ALERTS)}`,
        'scrape_configs:',
        '  - job_name: breakwater',
        '    static_configs:',
        `      - targets: [${JSON.stringify(target)}]`,
        '',
      ].join('\n'),
    );

    // A free port can be taken between the probe and Prometheus binding it: retry once.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      log = '';
      const child = spawn(
        PROMETHEUS!,
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(dir, `data-${attempt}`)}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      prometheus = child;
      child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
      let died = false;
      exited = new Promise<void>((resolve) => child.once('exit', () => {
        died = true;
        resolve();
      }));
      try {
        await until('Prometheus to be ready', deadline, async () => {
          if (died) throw new Error('prometheus exited');
          const response = await fetch(`${base}/-/ready`);
          return response.ok ? true : undefined;
        }, () => log);
        break;
      } catch (error) {
        child.kill('SIGKILL');
        await exited;
        if (attempt >= 2 || !/address already in use/.test(log)) throw error;
      }
    }

    // Wait for a few scrapes, so rate() over 1m has several samples.
    await until(
      'three scrapes of the target',
      deadline,
      async () => {
        const result = await query('count_over_time(breakwater_calls_total{pipeline="search",outcome="success"}[1m])');
        const samples = Number(result.data?.result[0]?.value[1] ?? 0);
        return samples >= 3 ? samples : undefined;
      },
      () => log,
    );
  }, 30_000);

  afterAll(async () => {
    if (traffic !== undefined) clearInterval(traffic);
    await fleet?.close();
    if (prometheus !== undefined && prometheus.exitCode === null && prometheus.signalCode === null) {
      prometheus.kill('SIGTERM');
      const killer = setTimeout(() => prometheus?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await Promise.all(inFlight);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }, 15_000);

  it('scrapes the target', async () => {
    const result = await query('up{job="breakwater"}');
    expect(result.status).toBe('success');
    expect(result.data!.result.map((r) => r.value[1])).toEqual(['1']);
  });

  const alerts = alertExpressions();
  it('finds the fifteen alert expressions', () => {
    expect([...alerts.keys()].sort()).toEqual([
      'BreakwaterAdaptiveLimitRejections',
      'BreakwaterAnsweredByFallbacks',
      'BreakwaterBulkheadRejections',
      'BreakwaterChaosInjecting',
      'BreakwaterCircuitOpen',
      'BreakwaterDependencyErrors',
      'BreakwaterFleetDegraded',
      'BreakwaterHedgeBudgetExhausted',
      'BreakwaterHighTimeoutRatio',
      'BreakwaterHttpShedding',
      'BreakwaterRetryBudgetExhausted',
      'BreakwaterRolloutFlagRefused',
      'BreakwaterRolloutRolledBack',
      'BreakwaterSlowCalls',
      'BreakwaterThrottling',
    ]);
  });

  const firing: Record<string, string> = {
    BreakwaterCircuitOpen: 'inventory',
    BreakwaterBulkheadRejections: 'search',
    BreakwaterRetryBudgetExhausted: 'payments',
    BreakwaterHighTimeoutRatio: 'profile',
    BreakwaterDependencyErrors: 'auth',
    BreakwaterAnsweredByFallbacks: 'auth',
    BreakwaterChaosInjecting: 'game',
    BreakwaterThrottling: 'crowded',
    BreakwaterAdaptiveLimitRejections: 'crowded',
    BreakwaterHedgeBudgetExhausted: 'game',
    BreakwaterRolloutRolledBack: 'flags',
    BreakwaterRolloutFlagRefused: 'flags',
    BreakwaterSlowCalls: 'slowing',
    BreakwaterFleetDegraded: 'partner',
    BreakwaterHttpShedding: 'edge', // a gate: its series carry `gate`, not `pipeline`
  };
  it.each([...alerts])('alert %s: the expression parses and holds for the pipeline built to trip it', async (name, expr) => {
    const result = await query(expr);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('success');
    expect(result.data!.result.map((r) => r.metric.pipeline ?? r.metric.gate)).toContain(firing[name]);
  });

  it('loads the rules, evaluates them without error, and has every alert pending', async () => {
    await until(
      'all fifteen alerts pending',
      Date.now() + 10_000,
      async () => {
        const response = (await (await fetch(`${base}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
        const active = new Set(response.data.alerts.map((a) => a.labels.alertname));
        return Object.keys(firing).every((a) => active.has(a)) ? true : undefined;
      },
      () => log,
    );
    const rules = (await (await fetch(`${base}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const all = rules.data.groups.flatMap((g) => g.rules);
    expect(all).toHaveLength(15);
    for (const rule of all) expect(rule.health, `${rule.name}: ${rule.lastError}`).toBe('ok');
  });

  it('a full outage behind the README pipeline: the naive error ratio reads 0, the documented one reads all of it', async () => {
    const naive = await query(
      'sum by (pipeline) (rate(breakwater_calls_total{pipeline="auth",outcome=~"failure|timeout|rejected"}[1m])) / sum by (pipeline) (rate(breakwater_calls_total{pipeline="auth",outcome!="cancelled"}[1m]))',
    );
    expect(Number(naive.data!.result[0]!.value[1])).toBe(0);
    const documented = await query(alerts.get('BreakwaterDependencyErrors')!.replace(/\s*>\s*0\.2\s*$/, '').replace(/\[5m\]/g, '[1m]'));
    const auth = documented.data!.result.find((r) => r.metric.pipeline === 'auth');
    expect(Number(auth!.value[1])).toBeGreaterThan(0.9); // every call (rates of two counters scraped a moment apart)
    // and the fallbacks say what they covered for: the breaker's refusals, once it opened
    const causes = await query('sum by (cause) (increase(breakwater_fallbacks_total{pipeline="auth"}[1m])) > 0');
    expect(causes.data!.result.map((r) => r.metric.cause).sort()).toContain('circuit_open');
    const refusals = await query('sum(increase(breakwater_circuit_rejections_total{pipeline="auth"}[1m]))');
    expect(Number(refusals.data!.result[0]!.value[1])).toBeGreaterThan(0);
  });

  const panels = panelQueries();
  it.each(panels.map((p) => [p.panel, p.expr] as const))('panel "%s": the query parses and returns data', async (_panel, expr) => {
    const result = await query(expr);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('success');
    expect(result.data!.result.length).toBeGreaterThan(0);
  });
});
