import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { pipeline, timeout } from '../src/index.ts';
import {
  buildSeries,
  deploy,
  drive,
  renderChart,
  runLoad,
  type ServiceSpec,
  summarizeEndpoints,
  timeToRecoverMs,
} from '../examples/harness/index.ts';

/** A two-service topology: front calls back with a 100 ms timeout. */
function topology(): ServiceSpec[] {
  const back: ServiceSpec = {
    name: 'back',
    create: () => async (_req, ctx) => {
      await ctx.sleep(5, ctx.signal);
      return { status: 200, body: { ok: true } };
    },
  };
  const front: ServiceSpec = {
    name: 'front',
    workers: 4,
    queue: 2,
    create: (env) => {
      const guard = env.instrument(pipeline({ name: 'back', clock: env.clock }, timeout({ ms: 100, clock: env.clock })));
      return async (req, ctx) => {
        if (req.path === '/local') return { status: 200, body: 'local' };
        try {
          const res = await guard.execute(({ signal }) => ctx.call('back', { method: 'GET', path: '/' }, { signal }), {
            signal: ctx.signal,
          });
          return { status: res.status, body: res.body };
        } catch {
          return { status: 504, body: { error: 'back timed out' } };
        }
      };
    },
  };
  return [back, front];
}

describe('demo harness (memory transport)', () => {
  it('runs services on a FakeClock with network latency, faults and a worker pool', async () => {
    const clock = new FakeClock();
    const d = await deploy(topology(), {
      transport: 'memory',
      clock,
      random: seededRandom(1),
      networkLatencyMs: 2,
      faults: [{ service: 'back', fromMs: 1000, toMs: 2000, fault: { kind: 'hang' } }],
    });
    const load = runLoad(d, {
      durationMs: 3000,
      ratePerSecond: 200,
      concurrency: 100,
      clientTimeoutMs: 1000,
      random: seededRandom(2),
      next: (i) => ({
        endpoint: i % 2 === 0 ? 'remote' : 'local',
        service: 'front',
        request: { method: 'GET', path: i % 2 === 0 ? '/remote' : '/local' },
      }),
    });
    const { records } = await drive(clock, load);
    await d.close();
    expect(records).toHaveLength(600);
    // Before the fault: front (2 ms) + back (2 ms network + 5 ms work) = 9 ms.
    const early = records.filter((r) => r.startMs < 1000 && r.endpoint === 'remote');
    expect(early.every((r) => r.ok && r.latencyMs === 9)).toBe(true);
    // During the hang: the 100 ms timeout answers 504 at 2 + 100 ms...
    const during = records.filter((r) => r.startMs >= 1000 && r.startMs < 1900 && r.endpoint === 'remote');
    expect(during.every((r) => r.status === 504 || r.status === 503)).toBe(true);
    // ...and the 4-worker pool with a 2-deep queue sheds the rest of the load with 503,
    // including the local endpoint: that is the shared-pool effect the auth demo relies on.
    const local = records.filter((r) => r.startMs >= 1000 && r.startMs < 2000 && r.endpoint === 'local');
    expect(local.some((r) => r.status === 503)).toBe(true);
    const late = records.filter((r) => r.startMs >= 2200);
    expect(late.every((r) => r.ok)).toBe(true);
    expect(timeToRecoverMs(records, { recoveredAtMs: 2000 })).toBeLessThanOrEqual(250);
    expect(d.arrivals('back').length).toBeGreaterThan(0);
    const stats = summarizeEndpoints(records);
    expect(stats.map((s) => s.endpoint)).toEqual(['remote', 'local', 'all']);
  });

  it('error faults answer without running the handler; ramps fade out', async () => {
    const clock = new FakeClock();
    const d = await deploy(topology(), {
      transport: 'memory',
      clock,
      random: seededRandom(3),
      faults: [{ service: 'front', fromMs: 0, toMs: 500, recoveryRampMs: 1000, fault: { kind: 'error', status: 500 } }],
    });
    const { records } = await drive(
      clock,
      runLoad(d, {
        durationMs: 2000,
        ratePerSecond: 100,
        concurrency: 10,
        clientTimeoutMs: 500,
        next: () => ({ endpoint: 'local', service: 'front', request: { method: 'GET', path: '/local' } }),
      }),
    );
    await d.close();
    const share = (from: number, to: number): number => {
      const inRange = records.filter((r) => r.startMs >= from && r.startMs < to);
      return inRange.filter((r) => r.status === 500).length / inRange.length;
    };
    expect(share(0, 500)).toBe(1);
    expect(share(500, 1000)).toBeGreaterThan(share(1000, 1500));
    expect(share(1500, 2000)).toBe(0);
  });

  it('an error fault with retryAfterMs answers Retry-After in whole seconds, rounded up', async () => {
    const clock = new FakeClock();
    const d = await deploy(topology(), {
      transport: 'memory',
      clock,
      faults: [
        { service: 'back', fromMs: 0, toMs: 1_000, fault: { kind: 'error', status: 503, retryAfterMs: 1_500 } },
        { service: 'front', fromMs: 0, toMs: 1_000, fault: { kind: 'error', status: 503 } },
      ],
    });
    const back = await drive(clock, d.call('back', { method: 'GET', path: '/' }));
    const front = await drive(clock, d.call('front', { method: 'GET', path: '/local' }));
    await d.close();
    expect(back).toMatchObject({ status: 503, headers: { 'retry-after': '2' } });
    expect(front.status).toBe(503);
    expect(front.headers?.['retry-after']).toBeUndefined();
    await expect(
      deploy(topology(), {
        transport: 'memory',
        clock,
        faults: [{ service: 'back', fromMs: 0, toMs: 1, fault: { kind: 'error', retryAfterMs: -1 } }],
      }),
    ).rejects.toThrow(/retryAfterMs/);
  });

  it('client timeouts abort the request and are recorded with status 0', async () => {
    const clock = new FakeClock();
    const d = await deploy(topology(), {
      transport: 'memory',
      clock,
      faults: [{ service: 'front', fromMs: 0, toMs: 10_000, fault: { kind: 'hang' } }],
    });
    const { records } = await drive(
      clock,
      runLoad(d, {
        durationMs: 100,
        ratePerSecond: 100,
        concurrency: 5,
        clientTimeoutMs: 300,
        next: () => ({ endpoint: 'x', service: 'front', request: { method: 'GET', path: '/local' } }),
      }),
    );
    await d.close();
    expect(records.every((r) => r.status === 0 && r.error === 'client-timeout' && r.latencyMs === 300)).toBe(true);
  });
});

describe('demo harness (http transport)', () => {
  it('serves the same services over node:http with /metrics', async () => {
    const d = await deploy(topology(), { transport: 'http' });
    try {
      const res = await d.call('front', { method: 'GET', path: '/remote' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true });
      const metrics = await fetch(`${d.urls.front}/metrics`);
      expect(await metrics.text()).toContain('breakwater_calls_total{pipeline="back",outcome="success"} 1');
    } finally {
      await d.close();
    }
  });
});

describe('chart writer', () => {
  it('renders series into an SVG document', () => {
    const series = buildSeries(
      [{ id: 0, endpoint: 'a', startMs: 10, endMs: 20, latencyMs: 10, status: 200, ok: true, degraded: false }],
      { auth: [5, 15, 300] },
      { bucketMs: 100, untilMs: 400 },
    );
    expect(series.arrivalsRps.auth).toEqual([20, 0, 0, 10]);
    const svg = renderChart({
      title: 'T <&>',
      panels: [{ title: 'p', series: [{ name: 'auth', points: series.tSeconds.map((t, i) => [t, series.arrivalsRps.auth![i]!]) }], shades: [{ fromX: 0.1, toX: 0.2, label: 'outage' }] }],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('T &lt;&amp;&gt;');
    expect(svg).toContain('data-name="auth"');
    expect(svg).toContain('class="shade"');
  });
});
