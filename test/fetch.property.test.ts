/**
 * breakwater/fetch's invariants over random servers, methods and pipelines, in
 * virtual time: an in-memory `fetch` on a FakeClock stands in for the network.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constant, exponential, hedge, type Policy, type RetryEvent, timeout } from '../src/index.ts';
import { fetchRetry, type FetchFunction, resilientFetch } from '../src/fetch/index.ts';
import { FakeClock, seededRandom } from '../src/testing/index.ts';

/** What the fake server does with the n-th request it gets. */
type Answer =
  | { readonly kind: 'status'; readonly code: number; readonly afterMs: number; readonly retryAfterS: number | undefined }
  | { readonly kind: 'network'; readonly afterMs: number }
  | { readonly kind: 'hang' };

const answer: fc.Arbitrary<Answer> = fc.oneof(
  fc.record({
    kind: fc.constant('status' as const),
    code: fc.constantFrom(200, 201, 404, 409, 429, 500, 502, 503),
    afterMs: fc.integer({ min: 0, max: 80 }),
    retryAfterS: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('network' as const), afterMs: fc.integer({ min: 0, max: 80 }) }),
  fc.constant({ kind: 'hang' as const }),
);

interface Sent {
  readonly method: string;
  response?: Response;
  cancelled: boolean;
}

/** An in-memory server behind a `fetch`: answers on the fake clock, honours the request's signal. */
function fakeNetwork(clock: FakeClock, answers: readonly Answer[]): { fetch: FetchFunction; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: FetchFunction = (input, init) => {
    const record: Sent = { method: init?.method ?? 'GET', cancelled: false };
    sent.push(record);
    const plan = answers[(sent.length - 1) % answers.length]!;
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let timer: unknown;
      const onAbort = (): void => {
        clock.cancel(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (plan.kind === 'hang') return;
      timer = clock.schedule(() => {
        signal?.removeEventListener('abort', onAbort);
        if (plan.kind === 'network') return reject(new TypeError('fetch failed'));
        const body = new ReadableStream<Uint8Array>({
          pull: (controller) => controller.enqueue(new Uint8Array(8)), // a body that never ends
          cancel: () => void (record.cancelled = true),
        });
        const headers: Record<string, string> = plan.retryAfterS === undefined ? {} : { 'retry-after': String(plan.retryAfterS) };
        resolve((record.response = new Response(body, { status: plan.code, headers })));
      }, plan.afterMs);
      void input;
    });
  };
  return { fetch, sent };
}

describe('resilientFetch (properties)', () => {
  it('sends a request that may not be replayed once, others at most maxAttempts × (1 + hedges) times; cancels every body but the answer; waits what Retry-After asks, capped; leaves no timer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          answers: fc.array(answer, { minLength: 1, maxLength: 8 }),
          method: fc.constantFrom('GET', 'PUT', 'DELETE', 'POST', 'PATCH'),
          idempotencyKey: fc.boolean(),
          maxAttempts: fc.integer({ min: 1, max: 4 }),
          backoffMs: fc.integer({ min: 0, max: 50 }),
          exponentialBackoff: fc.boolean(),
          maxRetryAfterMs: fc.integer({ min: 0, max: 3_000 }),
          hedgeMs: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
          timeoutMs: fc.option(fc.integer({ min: 1, max: 120 }), { nil: undefined }),
          abortAfterMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
          seed: fc.integer(),
        }),
        async (cfg) => {
          const clock = new FakeClock();
          const network = fakeNetwork(clock, cfg.answers);
          const retries: RetryEvent[] = [];
          const policies = (): Policy<never>[] => {
            const retry = fetchRetry({
              clock,
              random: seededRandom(cfg.seed),
              maxAttempts: cfg.maxAttempts,
              maxRetryAfterMs: cfg.maxRetryAfterMs,
              backoff: cfg.exponentialBackoff ? exponential({ initialMs: Math.max(1, cfg.backoffMs), maxMs: 200 }) : constant({ ms: cfg.backoffMs }),
            });
            retry.onRetry((event) => retries.push(event));
            const layers: Policy<never>[] = [retry];
            if (cfg.hedgeMs !== undefined) layers.push(hedge({ clock, delayMs: cfg.hedgeMs, maxExtraLoad: 1 }));
            if (cfg.timeoutMs !== undefined) layers.push(timeout({ clock, ms: cfg.timeoutMs }));
            return layers;
          };
          const api = resilientFetch({ name: 'prop', fetch: network.fetch, policies });
          const controller = new AbortController();
          if (cfg.abortAfterMs !== undefined) clock.schedule(() => controller.abort(new Error('caller gave up')), cfg.abortAfterMs);
          const init: RequestInit = { method: cfg.method, signal: controller.signal, ...(cfg.method === 'GET' ? {} : { body: 'payload' }) };
          if (cfg.idempotencyKey) init.headers = { 'Idempotency-Key': 'k' };

          let outcome: { ok: true; response: Response } | { ok: false; error: unknown } | undefined;
          api('https://dep.example/x', init).then(
            (response) => (outcome = { ok: true, response }),
            (error: unknown) => (outcome = { ok: false, error }),
          );
          // Hanging requests never end on their own: stop the caller at the end at the latest.
          for (let i = 0; i < 200 && outcome === undefined; i++) if (!(await clock.next())) break;
          if (outcome === undefined) controller.abort(new Error('end of test'));
          await clock.runAll();
          await clock.flush();
          expect(outcome).toBeDefined();

          const replayable = ['GET', 'PUT', 'DELETE'].includes(cfg.method) || cfg.idempotencyKey;
          const perAttempt = cfg.hedgeMs === undefined ? 1 : 2;
          if (replayable) expect(network.sent.length).toBeLessThanOrEqual(cfg.maxAttempts * perAttempt);
          else expect(network.sent.length).toBe(1);

          // Every response but the one the caller got has its body cancelled; the caller's is untouched.
          const kept = outcome!.ok ? outcome!.response : undefined;
          for (const s of network.sent) {
            if (s.response === undefined) continue;
            expect(s.cancelled).toBe(s.response !== kept);
          }
          if (kept !== undefined) expect(network.sent.some((s) => s.response === kept)).toBe(true);

          // A retry after a response with Retry-After waits at least what it asks, capped.
          for (const event of retries) {
            const error = event.error as { retryAfterMs?: number };
            if (typeof error.retryAfterMs === 'number') expect(event.delayMs).toBeGreaterThanOrEqual(Math.min(error.retryAfterMs, cfg.maxRetryAfterMs));
            expect(event.delayMs).toBeLessThanOrEqual(Math.max(200, cfg.backoffMs, cfg.maxRetryAfterMs));
          }
          if (!replayable) expect(retries).toEqual([]);
          expect(clock.pendingTimers).toBe(0);
          await kept?.body?.cancel();
        },
      ),
      { numRuns: 150 },
    );
  });
});
