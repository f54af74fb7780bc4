import { describe, expect, it } from 'vitest';
import { FakeClock, seededRandom } from '../src/testing/index.ts';
import { pipeline, timeout } from '../src/index.ts';
import {
  answerAreas,
  breakerBand,
  buildSeries,
  demoConsole,
  deploy,
  drive,
  howToRead,
  inspectChart,
  liveCounts,
  type RequestRecord,
  renderChart,
  runLoad,
  type ServiceSpec,
  stateSpans,
  summarizeEndpoints,
  timeToRecoverMs,
  wrapText,
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

function record(id: number, startMs: number, endMs: number, status: number, degraded = false, endpoint = 'a'): RequestRecord {
  return { id, endpoint, startMs, endMs, latencyMs: endMs - startMs, status, ok: status >= 200 && status < 300, degraded };
}

describe('chart writer: every series can be seen', () => {
  const flat = (name: string, y: number) => ({ name, points: [0, 1, 2, 3, 4].map((x) => [x, y] as const) });

  it('lines at the top or bottom of the axis stay inside the frame, and equal lines are drawn apart', () => {
    const names = ['catalog /products', 'reviews', 'profile', 'orders', 'recommendations'];
    const svg = renderChart({
      title: 't',
      panels: [{ title: 'after', yMin: 0, yMax: 100, separateOverlaps: true, series: [...names.slice(0, 4).map((n) => flat(n, 100)), flat(names[4]!, 0)] }],
    });
    const [panel] = inspectChart(svg);
    const { frame } = panel!;
    expect(panel!.series.map((s) => s.name)).toEqual(names);
    for (const s of panel!.series) {
      expect(s.points).toHaveLength(5);
      for (const [, y] of s.points) {
        expect(y).toBeGreaterThan(frame.y + 1); // off the frame's top edge...
        expect(y).toBeLessThan(frame.y + frame.height - 1); // ...and off its bottom edge
      }
    }
    // The four lines at 100% lie side by side: four distinct heights, at least 2 px apart.
    const tops = panel!.series.slice(0, 4).map((s) => s.points[0]![1]).sort((a, b) => a - b);
    for (let i = 1; i < tops.length; i++) expect(tops[i]! - tops[i - 1]!).toBeGreaterThanOrEqual(2);
    expect(panel!.legend).toEqual(names);
  });

  it('without separateOverlaps, equal lines coincide (what the option is for)', () => {
    const [panel] = inspectChart(renderChart({ title: 't', panels: [{ title: 'p', yMax: 100, series: [flat('a', 100), flat('b', 100)] }] }));
    expect(panel!.series[0]!.points).toEqual(panel!.series[1]!.points);
  });

  it('shades degraded answers as a hatched area of their own, stacked on the full answers', () => {
    const records = [record(0, 0, 10, 200), record(1, 0, 10, 200, true), record(2, 0, 10, 503), record(3, 0, 10, 200, true)];
    const series = buildSeries(records, {}, { bucketMs: 1000, untilMs: 1000 });
    expect(series.answers).toEqual({ full: [0.25], degraded: [0.5], failed: [0.25] });
    expect(series.degradedRate.a).toEqual([0.5]);
    const svg = renderChart({ title: 't', panels: [{ title: 'p', yMax: 100, series: [], areas: answerAreas(series) }] });
    const [panel] = inspectChart(svg);
    expect(panel!.areas.map((a) => a.name)).toEqual(['all endpoints: answered in full', 'all endpoints: answered, degraded']);
    expect(panel!.legend).toEqual(['all endpoints: answered in full', 'all endpoints: answered, degraded']);
    expect(svg).toMatch(/<pattern id="hatch-/);
  });

  it("draws a breaker's states over time as a band, brief states included, with a legend", () => {
    const changes = [
      { atMs: 2_000, to: 'open' },
      { atMs: 3_000, to: 'half-open' },
      { atMs: 3_002, to: 'open' }, // a trial call that failed at once: 2 ms of half-open
      { atMs: 4_000, to: 'half-open' },
      { atMs: 4_200, to: 'closed' },
    ];
    expect(stateSpans(changes, { untilMs: 6_000 })).toEqual([
      { fromMs: 0, toMs: 2_000, state: 'closed' },
      { fromMs: 2_000, toMs: 3_000, state: 'open' },
      { fromMs: 3_000, toMs: 3_002, state: 'half-open' },
      { fromMs: 3_002, toMs: 4_000, state: 'open' },
      { fromMs: 4_000, toMs: 4_200, state: 'half-open' },
      { fromMs: 4_200, toMs: 6_000, state: 'closed' },
    ]);
    const svg = renderChart({
      title: 't',
      panels: [{ title: 'p', series: [flat('calls', 10)], states: breakerBand([{ label: 'catalog', changes }, { label: 'orders', changes: [] }], 6_000) }],
    });
    const [panel] = inspectChart(svg);
    expect(panel!.bands.map((b) => b.name)).toEqual(['breaker: catalog', 'breaker: orders']);
    const catalog = panel!.bands[0]!.spans;
    expect(new Set(catalog.map((s) => s.state))).toEqual(new Set(['closed', 'open', 'half-open']));
    // The 2 ms trial call is drawn at least 2 px wide, after its neighbours, so they cannot cover it.
    const brief = catalog.findIndex((s) => s.fromX === 3 && s.toX === 3.002);
    expect(catalog[brief]!.width).toBeGreaterThanOrEqual(2);
    expect(catalog.slice(brief + 1).every((s) => s.width <= 2)).toBe(true);
    expect(panel!.bands[1]!.spans).toEqual([{ state: 'closed', fromX: 0, toX: 6, width: expect.any(Number) }]);
    expect(panel!.legend).toEqual(['calls', 'breaker:', 'closed (calls go through)', 'open (calls refused at once)', 'half-open (trial calls)']);
  });
});

describe('demo console: progress lines and the "how to read this" note', () => {
  it('off a terminal, prints plain progress lines every few seconds of the clock, with elapsed/total and the live figure', async () => {
    const clock = new FakeClock();
    const lines: string[] = [];
    const out = demoConsole({ log: (l) => lines.push(l) });
    expect(out.tty).toBe(false);
    const progress = out.progress({ label: 'errors/before', clock, elapsedMs: () => clock.now(), totalMs: 11_000, figure: () => 'auth got 7 calls' });
    await clock.advance(11_000);
    progress.stop();
    await clock.advance(10_000);
    expect(lines).toEqual([3, 6, 9].map((s) => `  ... errors/before  ${s}.0 s of 11.0 s  |  auth got 7 calls`));
    expect(lines.join('')).not.toContain('\r');
    expect(clock.pendingTimers).toBe(0);
  });

  it('on a terminal, rewrites one line in place every second and removes it when stopped', async () => {
    const clock = new FakeClock();
    const written: string[] = [];
    const out = demoConsole({ terminal: { isTTY: true, columns: 80, write: (t) => written.push(t) }, log: () => {} });
    const progress = out.progress({ label: 'after', clock, elapsedMs: () => clock.now(), totalMs: 4_000, figure: () => 'x'.repeat(200) });
    await clock.advance(3_000);
    out.log('a line above the progress');
    progress.stop();
    const text = written.join('');
    expect(text).not.toMatch(/\.\.\. after[^\r]*\n/); // progress never ends a line of its own
    expect(written.filter((w) => w.startsWith('\r\x1b[2K  ... after')).length).toBeGreaterThanOrEqual(4);
    expect(written.every((w) => w.length <= 80 + 5)).toBe(true); // cut to the terminal's width
    expect(text).toContain('a line above the progress\n');
    expect(written.at(-1)).toBe('\r\x1b[2K');
    expect(clock.pendingTimers).toBe(0);
  });

  it('counts what completed in the last second', () => {
    const records = [record(0, 0, 100, 200), record(1, 0, 1_500, 200, true), record(2, 1_000, 1_800, 503), record(3, 1_900, 2_100, 200)];
    expect(liveCounts(records.slice(0, 3), 2_000)).toEqual({ answered: 2, ok: 1, degraded: 1, slowestMs: 1_500 });
  });

  it('the note wraps its bullets and ends with the link to the incident write-up', () => {
    expect(wrapText('one two three four', 9)).toEqual(['one two', 'three', 'four']);
    const lines = howToRead(['a '.repeat(80).trim(), 'short'], 'auth-cascade', { width: 60 });
    expect(lines[0]).toBe('How to read this');
    expect(lines.every((l) => l.length <= 60 || l.includes('docs/incidents/'))).toBe(true);
    expect(lines.filter((l) => l.startsWith('  - '))).toHaveLength(2);
    expect(lines.at(-1)).toMatch(/docs\/incidents\/auth-cascade\.md$/);
  });
});
