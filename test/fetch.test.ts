/**
 * breakwater/fetch against real node:http servers on 127.0.0.1, through the
 * real global fetch (and undici's own fetch and Agent).
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  circuitBreaker,
  type CircuitBreakerPolicy,
  constant,
  hedge,
  isBrokenCircuitError,
  isTimeoutError,
  retry,
  type RetryEvent,
  type RetryPolicy,
  timeout,
  type TimeoutPolicy,
} from '../src/index.ts';
import {
  defaultFetchPolicies,
  FailureResponseError,
  FETCH_DEFAULTS,
  fetchRetry,
  isFailureResponseError,
  isFetchFailure,
  isRetryableFetchError,
  resilientFetch,
  retryAfterMs,
} from '../src/fetch/index.ts';
import { FakeClock } from '../src/testing/index.ts';
import { Registry } from 'prom-client';
import { prometheusMetrics } from '../src/prometheus/index.ts';
import { eventually, type Handler, startServer, type TestServer } from './fetch-servers.ts';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: Handler): Promise<TestServer> {
  const server = await startServer(handler);
  servers.push(server);
  return server;
}

const status =
  (...codes: number[]): Handler =>
  (_req, res, n) => {
    const code = codes[Math.min(n, codes.length) - 1]!;
    res.writeHead(code, { 'content-type': 'text/plain' }).end(`answer ${n}: ${code}`);
  };

/** Retries at once (no backoff), so the tests do not wait. */
const quick = () => [fetchRetry({ backoff: constant({ ms: 0 }) }), circuitBreaker({ handle: isFetchFailure }), timeout({ ms: 5_000 })];
/** The same without a breaker, for tests that fail on purpose many times. */
const noBreaker = () => [fetchRetry({ backoff: constant({ ms: 0 }) }), timeout({ ms: 5_000 })];

describe('resilientFetch: the same arguments and result as fetch', () => {
  it('answers with the response of the server, for a string, a URL and a Request', async () => {
    const server = await serve((req, res) => res.end(`hello ${req.method} ${req.url}`));
    const api = resilientFetch({ name: 'api' });
    expect(await (await api(`${server.url}/a`)).text()).toBe('hello GET /a');
    expect(await (await api(new URL('/b', server.url), { method: 'PUT', body: 'x' })).text()).toBe('hello PUT /b');
    const request = new Request(`${server.url}/c`, { method: 'POST', body: 'payload' });
    expect(await (await api(request)).text()).toBe('hello POST /c');
    expect(server.requests).toEqual(['GET /a', 'PUT /b', 'POST /c']);
  });

  it('creates one pipeline per origin, reuses it, and keeps at most maxOrigins', async () => {
    const a = await serve(status(200));
    const b = await serve(status(200));
    const api = resilientFetch({ name: 'api', maxOrigins: 1 });
    const created: string[] = [];
    api.pipelines.onCreate(({ key }) => created.push(key));
    await (await api(`${a.url}/1`)).text();
    await (await api(`${a.url}/2`)).text();
    expect(created).toEqual([new URL(a.url).host]);
    expect(api.pipelines.get(new URL(a.url).host).name).toBe(`api:${new URL(a.url).host}`);
    await (await api(`${b.url}/1`)).text();
    expect(api.pipelines.keys()).toEqual([new URL(b.url).host]);
    expect(api.pipelines.size).toBe(1);
  });

  it('turns any origin into a valid key: odd characters replaced, long ones shortened with a hash', async () => {
    const server = await serve(status(200));
    const keys: string[] = [];
    const api = resilientFetch({ name: 'api', origin: (url) => `tenant [${url.pathname}] ${'x'.repeat(url.pathname.length * 10)}` });
    api.pipelines.onCreate(({ key }) => keys.push(key));
    await (await api(`${server.url}/one`)).text();
    await (await api(`${server.url}/two`)).text();
    await (await api(`${server.url}/a`)).text();
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(key).toMatch(/^[A-Za-z0-9_.:/-]{1,39}$/);
    expect(keys[0]).not.toBe(keys[1]);
  });

  it('rejects what fetch rejects, and a bad origin key, without sending', async () => {
    const server = await serve(status(200));
    const api = resilientFetch({ name: 'api' });
    await expect(api('/relative')).rejects.toBeInstanceOf(TypeError);
    await expect(api(42 as never)).rejects.toThrow(/must be a URL string, a URL or a Request/);
    const odd = resilientFetch({ name: 'api', origin: () => 7 as never });
    await expect(odd(server.url)).rejects.toThrow('resilientFetch: option "origin" must return a non-empty string; received 7');
    const reason = new Error('already gone');
    await expect(api(server.url, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(server.requests).toEqual([]);
  });

  it('keys IPv6 origins too, one pipeline for each host and port', async () => {
    const api = resilientFetch({ name: 'api', fetch: async () => new Response('ok') });
    await api('http://[::1]:8080/a');
    await api('http://[::1]:8081/a');
    await api('https://api.example.com/b');
    await api('https://api.example.com:443/c');
    expect(api.pipelines.keys()).toEqual(['_::1_:8080', '_::1_:8081', 'api.example.com']);
  });

  it('pins the defaults: retry 3 attempts, breaker counting fetch failures, 10 s timeout per attempt', () => {
    const [retryPolicy, breaker, deadline] = defaultFetchPolicies() as [RetryPolicy, CircuitBreakerPolicy, TimeoutPolicy];
    expect([retryPolicy.kind, breaker.kind, deadline.kind]).toEqual(['retry', 'circuit-breaker', 'timeout']);
    expect(retryPolicy.maxAttempts).toBe(3);
    expect(retryPolicy.backoff).toMatchObject({ kind: 'exponential', initialMs: 100, maxMs: 5_000, jitter: 'full' });
    expect(deadline.ms).toBe(10_000);
    expect(FETCH_DEFAULTS).toEqual({ maxOrigins: 100, timeoutMs: 10_000, maxAttempts: 3, maxRetryAfterMs: 30_000 });
    expect(resilientFetch({ name: 'api' }).pipelines.maxKeys).toBe(100);
    expect(defaultFetchPolicies()[0]).not.toBe(retryPolicy); // fresh instances each time
  });

  it('finds the Idempotency-Key in every form of headers', async () => {
    const server = await serve(status(503, 200, 503, 200, 503, 200));
    const api = resilientFetch({ name: 'api', policies: noBreaker });
    const post = { method: 'POST', body: 'x' };
    expect((await api(server.url, { ...post, headers: new Headers({ 'Idempotency-Key': 'a' }) })).status).toBe(200);
    expect((await api(server.url, { ...post, headers: [['IDEMPOTENCY-KEY', 'b']] })).status).toBe(200);
    expect((await api(new Request(server.url, { ...post, headers: { 'idempotency-key': 'c' } }))).status).toBe(200);
    expect(server.requests).toHaveLength(6);
  });

  it('refuses bad options at construction, naming the option', () => {
    expect(() => resilientFetch({} as never)).toThrow('resilientFetch: option "name" is required');
    expect(() => resilientFetch({ name: 'api', maxOrigins: 0 })).toThrow(/option "maxOrigins" must be an integer/);
    expect(() => resilientFetch({ name: 'my api' })).toThrow(/^resilientFetch: option "name" must be a string of 1 to 60 letters/);
    expect(() => resilientFetch({ name: 'api', isFailure: 500 as never })).toThrow(/option "isFailure" must be a function/);
    expect(() => resilientFetch({ name: 'api', retries: 3 } as never)).toThrow(/unknown option "retries"/);
    expect(() => fetchRetry({ maxRetryAfterMs: -1 })).toThrow(/fetchRetry: option "maxRetryAfterMs"/);
    expect(() => fetchRetry({ maxAttempts: 0 })).toThrow(/retry: option "maxAttempts"/);
  });
});

describe('failure classification', () => {
  it('retries a 5xx and a 429 and answers with the success', async () => {
    const server = await serve(status(503, 429, 200));
    const api = resilientFetch({ name: 'api', policies: quick });
    const response = await api(`${server.url}/x`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('answer 3: 200');
    expect(server.requests).toHaveLength(3);
  });

  it('answers with the last failure response, body intact, when the retries run out, as fetch would', async () => {
    const server = await serve(status(500));
    const api = resilientFetch({ name: 'api', policies: quick });
    const response = await api(`${server.url}/x`);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('answer 3: 500');
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry other 4xx, and they do not count against the breaker', async () => {
    const server = await serve(status(404));
    const breaker = circuitBreaker({ handle: isFetchFailure, minimumCalls: 2, failureRateThreshold: 0.5 });
    const api = resilientFetch({ name: 'api', policies: () => [fetchRetry({ backoff: constant({ ms: 0 }) }), breaker] });
    for (let i = 0; i < 5; i++) expect((await api(`${server.url}/missing`)).status).toBe(404);
    expect(server.requests).toHaveLength(5);
    expect(breaker.state).toBe('closed');
  });

  it('5xx and network errors open the breaker, which then refuses without sending', async () => {
    const server = await serve(status(500));
    const breaker = circuitBreaker({ handle: isFetchFailure, minimumCalls: 2, failureRateThreshold: 0.5 });
    const api = resilientFetch({ name: 'api', policies: () => [breaker] });
    expect((await api(`${server.url}/a`)).status).toBe(500);
    expect((await api(`${server.url}/a`)).status).toBe(500);
    expect(breaker.state).toBe('open');
    await expect(api(`${server.url}/a`)).rejects.toSatisfy(isBrokenCircuitError);
    expect(server.requests).toHaveLength(2);

    const closed = await serve(status(200));
    const url = closed.url;
    await closed.close();
    const down = circuitBreaker({ handle: isFetchFailure, minimumCalls: 1 });
    const offline = resilientFetch({ name: 'offline', policies: () => [down] });
    const error = await offline(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError); // what the bare fetch rejects with
    expect(down.state).toBe('open');
  });

  it('a custom isFailure decides which responses fail', async () => {
    const server = await serve(status(409, 200));
    const api = resilientFetch({ name: 'api', policies: quick, isFailure: (r) => r.status === 409 });
    expect((await api(`${server.url}/x`)).status).toBe(200);
    expect(server.requests).toHaveLength(2);
  });

  it('times out an attempt that gets no headers, and retries it', async () => {
    const server = await serve((_req, res, n) => {
      if (n === 1) return; // never answers; closed with the server
      res.end('late but fine');
    });
    const api = resilientFetch({ name: 'api', policies: () => [fetchRetry({ backoff: constant({ ms: 0 }) }), timeout({ ms: 200 })] });
    const response = await api(`${server.url}/slow`);
    expect(await response.text()).toBe('late but fine');
    expect(server.requests).toHaveLength(2);
  });
});

describe('only requests that may be sent again are retried or hedged', () => {
  it('sends a POST once, and answers with its failure', async () => {
    const server = await serve(status(503, 200));
    const api = resilientFetch({ name: 'api', policies: quick });
    const response = await api(`${server.url}/orders`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(503);
    expect(server.requests).toEqual(['POST /orders']);
  });

  it('does not retry a POST that timed out either', async () => {
    const server = await serve(() => {});
    const api = resilientFetch({ name: 'api', policies: () => [fetchRetry({ backoff: constant({ ms: 0 }) }), timeout({ ms: 100 })] });
    await expect(api(`${server.url}/orders`, { method: 'POST', body: '{}' })).rejects.toSatisfy(isTimeoutError);
    expect(server.requests).toEqual(['POST /orders']);
  });

  it('retries a POST carrying an Idempotency-Key, sending the same body each time', async () => {
    const bodies: string[] = [];
    const server = await serve((req, res, n) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        bodies.push(`${req.headers['idempotency-key']} ${body}`);
        res.writeHead(n < 3 ? 502 : 201).end();
      });
    });
    const api = resilientFetch({ name: 'api', policies: quick });
    const response = await api(`${server.url}/orders`, { method: 'POST', body: 'order-1', headers: { 'Idempotency-Key': 'k1' } });
    expect(response.status).toBe(201);
    const request = new Request(`${server.url}/orders`, { method: 'POST', body: 'order-2', headers: { 'idempotency-key': 'k2' } });
    expect((await api(request)).status).toBe(201);
    expect(bodies).toEqual(['k1 order-1', 'k1 order-1', 'k1 order-1', 'k2 order-2']);
  });

  it('retries what the replayable option allows, but never a streamed body', async () => {
    const server = await serve(status(503, 503, 503, 200));
    const api = resilientFetch({ name: 'api', policies: quick, replayable: ({ method, url }) => method === 'POST' && url.pathname === '/search' });
    expect((await api(`${server.url}/search`, { method: 'POST', body: 'q' })).status).toBe(503);
    expect(server.requests).toHaveLength(3);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('q'));
        controller.close();
      },
    });
    expect((await api(`${server.url}/search`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)).status).toBe(200);
    const server2 = await serve(status(503, 200));
    const stream2 = new ReadableStream({ start: (c) => c.close() });
    expect((await api(`${server2.url}/search`, { method: 'POST', body: stream2, duplex: 'half' } as RequestInit)).status).toBe(503);
    expect(server2.requests).toHaveLength(1);
  });

  it('a retry that ignores replayability still cannot send a POST twice', async () => {
    const server = await serve(status(503, 200));
    const api = resilientFetch({ name: 'api', policies: () => [retry({ backoff: constant({ ms: 0 }) })] });
    expect((await api(`${server.url}/orders`, { method: 'POST', body: '{}' })).status).toBe(503);
    expect(server.requests).toHaveLength(1);
  });

  it('hedges a slow GET, never a POST', async () => {
    const server = await serve((_req, res, n) => {
      setTimeout(() => res.end(`answer ${n}`), n === 1 ? 400 : 0);
    });
    const api = resilientFetch({ name: 'api', policies: () => [hedge({ delayMs: 50, maxExtraLoad: 1 })] });
    expect(await (await api(`${server.url}/get`)).text()).toBe('answer 2');
    expect(server.requests).toEqual(['GET /get', 'GET /get']);
    // The hedge's extra attempt of a POST gets the first attempt's answer, unsent.
    expect(await (await api(`${server.url}/post`, { method: 'POST', body: '{}' })).text()).toBe('answer 3');
    expect(server.requests.filter((r) => r.startsWith('POST'))).toEqual(['POST /post']);
  });
});

describe('Retry-After', () => {
  async function retryDelay(headers: Record<string, string>, options: { maxRetryAfterMs?: number; wallClock?: () => number } = {}): Promise<number> {
    const server = await serve((_req, res, n) => res.writeHead(n === 1 ? 503 : 200, n === 1 ? headers : {}).end());
    const clock = new FakeClock();
    const delays: RetryEvent[] = [];
    const policy = fetchRetry({ clock, backoff: constant({ ms: 10 }), ...(options.maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs: options.maxRetryAfterMs }) });
    policy.onRetry((event) => delays.push(event));
    const api = resilientFetch({ name: 'api', policies: () => [policy], ...(options.wallClock ? { wallClock: options.wallClock } : {}) });
    const pending = api(`${server.url}/x`);
    expect(await eventually(() => delays.length === 1)).toBe(true);
    await clock.advance(delays[0]!.delayMs);
    expect((await pending).status).toBe(200);
    return delays[0]!.delayMs;
  }

  it('in seconds', async () => {
    expect(await retryDelay({ 'retry-after': '2' })).toBe(2_000);
  });

  it('as an HTTP-date, counted from the response Date header', async () => {
    const sent = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(await retryDelay({ date: new Date(sent).toUTCString(), 'retry-after': new Date(sent + 7_000).toUTCString() })).toBe(7_000);
  });

  it('as an HTTP-date without a Date header, counted from the wall clock', async () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    // Node's server adds a Date header by default; a raw header list without it:
    const server = await serve((_req, res, n) => {
      res.sendDate = false;
      res.writeHead(n === 1 ? 503 : 200, n === 1 ? { 'retry-after': new Date(now + 4_000).toUTCString() } : {}).end();
    });
    const clock = new FakeClock();
    const delays: number[] = [];
    const policy = fetchRetry({ clock, backoff: constant({ ms: 10 }) });
    policy.onRetry(({ delayMs }) => delays.push(delayMs));
    const api = resilientFetch({ name: 'api', policies: () => [policy], wallClock: () => now });
    const pending = api(`${server.url}/x`);
    expect(await eventually(() => delays.length === 1)).toBe(true);
    await clock.advance(delays[0]!);
    expect((await pending).status).toBe(200);
    expect(delays).toEqual([4_000]);
  });

  it('capped at maxRetryAfterMs; the backoff wins when it is longer', async () => {
    expect(await retryDelay({ 'retry-after': '3600' })).toBe(30_000);
    expect(await retryDelay({ 'retry-after': '3600' }, { maxRetryAfterMs: 1_500 })).toBe(1_500);
    expect(await retryDelay({ 'retry-after': '0' })).toBe(10);
    expect(await retryDelay({ 'retry-after': 'soon' })).toBe(10);
  });

  it('parses both forms, and ignores malformed values', () => {
    const at = (value: string, date?: string) => retryAfterMs(new Response(null, { headers: { 'retry-after': value, ...(date ? { date } : {}) } }), 1_000_000);
    expect(at('120')).toBe(120_000);
    expect(at(' 5 ')).toBe(5_000);
    expect(at('-1')).toBeUndefined();
    expect(at('1.5')).toBeUndefined();
    expect(at('2026-01-01')).toBeUndefined();
    expect(at('Sunday, 06-Nov-94 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:30 GMT')).toBe(7_000);
    expect(at('Sun Nov  6 08:49:40 1994', 'Sun, 06 Nov 1994 08:49:30 GMT')).toBe(10_000);
    expect(at('Thu, 01 Jan 1970 00:16:50 GMT')).toBe(10_000); // 1,010 s after the epoch, now is 1,000 s
    expect(at('Thu, 01 Jan 1970 00:00:00 GMT')).toBe(0); // in the past
    expect(at('Thu, 01 Jan 1970 00:00:30 GMT', 'Thu, 01 Jan 1970 00:00:10 GMT')).toBe(20_000);
    expect(retryAfterMs(new Response(null), 0)).toBeUndefined();
  });
});

describe('signals', () => {
  it("the caller's abort stops the request and rejects with its reason, unchanged", async () => {
    const server = await serve(() => {});
    const api = resilientFetch({ name: 'api' });
    const controller = new AbortController();
    const pending = api(`${server.url}/hang`, { signal: controller.signal });
    expect(await eventually(() => server.requests.length === 1)).toBe(true);
    const reason = new Error('user went away');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(server.requests).toHaveLength(1);
    expect(await eventually(() => server.open() === 0)).toBe(true);
  });

  it("the caller's abort still stops the body after the response came; a timeout's does not", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      res.write('first part;');
      setTimeout(() => res.end('second part'), 300);
    });
    const api = resilientFetch({ name: 'api', policies: () => [timeout({ ms: 100 })] });
    // The timeout expired while the body was being read: the body is whole.
    expect(await (await api(`${server.url}/a`)).text()).toBe('first part;second part');
    const controller = new AbortController();
    const response = await api(`${server.url}/b`, { signal: controller.signal });
    const reason = new Error('stop reading');
    controller.abort(reason);
    const error: unknown = await response.text().then(() => 'read whole', (e: unknown) => e);
    // How the body's read rejects is undici's: Node 24's passes the reason on, Node 22's
    // rejects with an AbortError. Expect exactly what the bare fetch does on this Node.
    const bareController = new AbortController();
    const bare = await fetch(`${server.url}/c`, { signal: bareController.signal });
    const bareReason = new Error('stop reading');
    bareController.abort(bareReason);
    const bareError: unknown = await bare.text().then(() => 'read whole', (e: unknown) => e);
    expect(bareError).not.toBe('read whole');
    if (bareError === bareReason) expect(error).toBe(reason);
    else expect([(error as Error).name, (error as Error).message]).toEqual([(bareError as Error).name, (bareError as Error).message]);
  });
});

describe('no connection is left held by a discarded response', () => {
  /** 503 with a body that never ends: the connection stays in use until the client cancels the body. */
  const heldOpen: Handler = (_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.write('overloaded, and this body goes on...');
  };

  it('control: the bare fetch, discarding such responses unread, keeps every connection in use', async () => {
    const server = await serve(heldOpen);
    for (let i = 0; i < 5; i++) expect((await fetch(`${server.url}/x`)).status).toBe(503);
    expect(await eventually(() => server.open() === 0, 300)).toBe(false);
    expect(server.open()).toBe(5);
  });

  it('after many failed attempts on a keep-alive server, connections in use come back to zero', async () => {
    const server = await serve(heldOpen);
    const api = resilientFetch({ name: 'api', policies: noBreaker });
    const kept: Response[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await api(`${server.url}/x`);
      expect(response.status).toBe(503);
      kept.push(response);
    }
    expect(server.requests).toHaveLength(30);
    // 20 discarded attempts were cancelled; the 10 answers are the caller's to read or cancel.
    expect(await eventually(() => server.open() === 10)).toBe(true);
    await Promise.all(kept.map((r) => r.body!.cancel()));
    expect(await eventually(() => server.open() === 0)).toBe(true);
  });

  it('the same with concurrent calls, hedges and timeouts in the pipeline', async () => {
    const server = await serve((req, res, n) => {
      if (n % 3 === 0) return; // no headers: the attempt times out
      heldOpen(req, res, n);
    });
    const api = resilientFetch({
      name: 'api',
      policies: () => [fetchRetry({ backoff: constant({ ms: 0 }), maxAttempts: 4 }), hedge({ delayMs: 20, maxExtraLoad: 1 }), timeout({ ms: 150 })],
    });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => api(`${server.url}/x`)));
    for (const result of results) if (result.status === 'fulfilled') await result.value.body?.cancel();
    expect(server.requests.length).toBeGreaterThan(20);
    expect(await eventually(() => server.open() === 0)).toBe(true);
  });

  it("through undici's own fetch and Agent, its connections come back too", async () => {
    const server = await serve(heldOpen);
    const agent = new Agent({ connections: 4 });
    try {
      const api = resilientFetch({ name: 'api', policies: noBreaker, fetch: undiciFetch as never });
      const init = { dispatcher: agent } as RequestInit;
      for (let i = 0; i < 10; i++) {
        const response = await api(`${server.url}/x`, init);
        expect(response.status).toBe(503);
        await response.body!.cancel();
      }
      // With 4 connections at most, 30 attempts only got through because each was given back.
      expect(server.requests).toHaveLength(30);
      expect(await eventually(() => server.open() === 0)).toBe(true);
    } finally {
      await agent.close();
    }
  });
});

describe('metrics', () => {
  it('each origin reports as its own named pipeline: a 404 is a success, a 503 a failure, retries counted', async () => {
    const server = await serve((req, res) => res.writeHead(req.url === '/missing' ? 404 : 503).end());
    const registry = new Registry();
    const metrics = prometheusMetrics({ registry });
    const api = resilientFetch({ name: 'api', policies: noBreaker });
    api.pipelines.onCreate(({ pipeline }) => metrics.attach(pipeline));
    expect((await api(`${server.url}/missing`)).status).toBe(404);
    expect((await api(`${server.url}/down`)).status).toBe(503);
    const text = await registry.metrics();
    const label = `pipeline="api:${new URL(server.url).host}"`;
    expect(text).toContain(`breakwater_calls_total{${label},outcome="success"} 1`);
    expect(text).toContain(`breakwater_calls_total{${label},outcome="failure"} 1`);
    expect(text).toContain(`breakwater_retries_total{${label}} 2`);
    api.pipelines.dispose();
    expect(await registry.metrics()).not.toContain(label);
  });
});

describe('the classification helpers', () => {
  it('isFetchFailure and isRetryableFetchError', () => {
    const response = new Response(null, { status: 503 });
    expect(isFetchFailure(new FailureResponseError(response, undefined, true))).toBe(true);
    expect(isFetchFailure(new TypeError('fetch failed'))).toBe(true);
    expect(isFetchFailure(new DOMException('lost the race', 'AbortError'))).toBe(false);
    expect(isRetryableFetchError(new FailureResponseError(response, undefined, false))).toBe(false);
    expect(isRetryableFetchError(new FailureResponseError(response, undefined, true))).toBe(true);
    expect(isFailureResponseError({ code: 'ERR_BREAKWATER_FAILURE_RESPONSE' })).toBe(false);
  });
});
