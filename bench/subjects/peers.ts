/**
 * The libraries people use today, configured to do the same work as the
 * Breakwater subjects. Every opossum breaker created here is shut down by the
 * subject's `dispose` (opossum keeps an interval timer per breaker).
 */
import {
  bulkhead as cBulkhead,
  circuitBreaker as cCircuitBreaker,
  ConsecutiveBreaker,
  ConstantBackoff,
  fallback as cFallback,
  handleAll,
  type IDefaultPolicyContext,
  type IPolicy,
  retry as cRetry,
  SamplingBreaker,
  timeout as cTimeout,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import CircuitBreaker from 'opossum';
import PrometheusMetrics from 'opossum-prometheus';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import pTimeout from 'p-timeout';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Subject } from './subject.ts';
import { failingWork, work } from './work.ts';

/** Long enough never to fire during a benchmark. */
export const TIMEOUT_MS = 10_000;
/** Retries as the peers count them: 2 retries = 3 calls in total. */
const RETRIES = 2;

type Work = () => Promise<number>;

/** opossum options that keep a breaker closed however many calls fail (it never reaches its volume threshold). */
export const opossumNeverOpens = { volumeThreshold: Number.MAX_SAFE_INTEGER } as const;

/** An opossum breaker around `fn`, with `fire()` as the call. */
export function opossumSubject(
  id: string,
  label: string,
  options: CircuitBreaker.Options,
  fn: Work = work,
): Subject & { breaker: CircuitBreaker<[], number> } {
  const breaker = new CircuitBreaker(fn, options);
  return { id, label, library: 'opossum', breaker, call: () => breaker.fire(), dispose: () => breaker.shutdown() };
}

/** A cockatiel breaker on a 10 s sampling window (the closest to a failure-rate breaker); `minimumRps: Infinity` keeps it closed. */
export function cockatielSamplingBreaker(neverOpens = false) {
  return cCircuitBreaker(handleAll, {
    halfOpenAfter: 5_000,
    breaker: new SamplingBreaker({ threshold: 0.5, duration: 10_000, ...(neverOpens ? { minimumRps: Infinity } : {}) }),
  });
}

/** A cockatiel breaker that opens on its first failure and stays open for an hour. */
export function cockatielTrippingBreaker() {
  return cCircuitBreaker(handleAll, { halfOpenAfter: 3_600_000, breaker: new ConsecutiveBreaker(1) });
}

/** A cockatiel bulkhead. */
export function cockatielBulkhead(limit: number, queue: number) {
  return cBulkhead(limit, queue);
}

/** The five cockatiel policies, each built as the Breakwater pipeline builds its own. */
export function cockatielFive() {
  return {
    fallback: cFallback(handleAll, 0),
    bulkhead: cBulkhead(1_000, 1_000),
    retry: cRetry(handleAll, { maxAttempts: RETRIES, backoff: new ConstantBackoff(0) }),
    breaker: cockatielSamplingBreaker(),
    timeout: cTimeout(TIMEOUT_MS, TimeoutStrategy.Aggressive),
  };
}

/** cockatiel's `wrap` of the five, outermost first (as the Breakwater pipeline). */
export function cockatielWrapFive(): IPolicy<IDefaultPolicyContext, number> {
  const p = cockatielFive();
  return wrap(p.fallback, p.bulkhead, p.retry, p.breaker, p.timeout) as unknown as IPolicy<IDefaultPolicyContext, number>;
}

function cockatielSubject(id: string, label: string, policy: IPolicy<any, any>, fn: Work = work): Subject {
  return { id, label, library: 'cockatiel', call: () => policy.execute(fn) };
}

/** Each cockatiel policy alone, then the five wrapped, then the five with prom-client metrics. */
export function cockatielSubjects(): Subject[] {
  const p = cockatielFive();
  return [
    cockatielSubject('cockatiel.timeout', 'cockatiel timeout', p.timeout),
    cockatielSubject('cockatiel.fallback', 'cockatiel fallback', p.fallback),
    cockatielSubject('cockatiel.bulkhead', 'cockatiel bulkhead', p.bulkhead),
    cockatielSubject('cockatiel.retry', 'cockatiel retry', p.retry),
    cockatielSubject('cockatiel.breaker', 'cockatiel circuitBreaker', p.breaker),
    cockatielSubject('cockatiel.wrap', 'cockatiel wrap of the five', cockatielWrapFive()),
    cockatielSubject('cockatiel.wrap+prom', 'cockatiel wrap of the five + prom-client', cockatielWithPromClient()),
  ];
}

/**
 * cockatiel's five, wrapped, with the metric families of Breakwater's contract
 * fed from cockatiel's events the way a team would write it: prom-client
 * called in each listener.
 */
export function cockatielWithPromClient(registry = new Registry(), pipelineName = 'bench'): IPolicy<IDefaultPolicyContext, number> {
  const p = cockatielFive();
  const merged = wrap(p.fallback, p.bulkhead, p.retry, p.breaker, p.timeout) as unknown as IPolicy<IDefaultPolicyContext, number>;
  const registers = [registry];
  const calls = new Counter({ name: 'calls_total', help: 'calls', labelNames: ['pipeline', 'outcome'], registers });
  const duration = new Histogram({
    name: 'call_duration_seconds',
    help: 'call duration',
    labelNames: ['pipeline', 'outcome'],
    registers,
  });
  const state = new Gauge({ name: 'circuit_state', help: 'state', labelNames: ['pipeline', 'state'], registers });
  const transitions = new Counter({ name: 'circuit_transitions_total', help: 't', labelNames: ['pipeline', 'to'], registers });
  const rejections = new Counter({ name: 'bulkhead_rejections_total', help: 'r', labelNames: ['pipeline'], registers });
  const retries = new Counter({ name: 'retries_total', help: 'r', labelNames: ['pipeline'], registers });
  const timeouts = new Counter({ name: 'timeouts_total', help: 't', labelNames: ['pipeline'], registers });
  const names = ['closed', 'open', 'half_open', 'isolated'] as const;
  const setState = (index: number): void => {
    names.forEach((name, i) => state.set({ pipeline: pipelineName, state: name }, i === index ? 1 : 0));
  };
  setState(0);
  merged.onSuccess(({ duration: ms }) => {
    calls.inc({ pipeline: pipelineName, outcome: 'success' });
    duration.observe({ pipeline: pipelineName, outcome: 'success' }, ms / 1000);
  });
  merged.onFailure(({ duration: ms }) => {
    calls.inc({ pipeline: pipelineName, outcome: 'failure' });
    duration.observe({ pipeline: pipelineName, outcome: 'failure' }, ms / 1000);
  });
  p.breaker.onStateChange((s) => {
    setState(s);
    transitions.inc({ pipeline: pipelineName, to: names[s] ?? 'closed' });
  });
  p.bulkhead.onReject(() => rejections.inc({ pipeline: pipelineName }));
  p.retry.onRetry(() => retries.inc({ pipeline: pipelineName }));
  p.timeout.onTimeout(() => timeouts.inc({ pipeline: pipelineName }));
  return merged;
}

/**
 * What a team composes by hand today: p-limit around p-retry around an opossum
 * breaker whose action runs the work under p-timeout, opossum-prometheus on
 * the breaker, and a `.catch` as the fallback. opossum's own timeout is off
 * (p-timeout does it).
 */
export function handComposed(fn: Work = work, registry = new Registry()) {
  const limit = pLimit(1_000);
  const breaker = new CircuitBreaker(() => pTimeout(fn(), { milliseconds: TIMEOUT_MS }), {
    timeout: false,
    name: 'bench',
  });
  const metrics = new PrometheusMetrics({ circuits: [breaker], registry });
  const call = (): Promise<number> =>
    limit(() => pRetry(() => breaker.fire(), { retries: RETRIES, minTimeout: 0 })).catch(() => 0);
  return { breaker, limit, metrics, call, dispose: () => breaker.shutdown() };
}

/** The success-path subjects of the peers. */
export function peerSuccessSubjects(): Subject[] {
  const limit = pLimit(1_000);
  const composed = handComposed();
  return [
    opossumSubject('opossum.default', 'opossum fire (default options)', {}),
    opossumSubject('opossum.no-timeout', 'opossum fire (timeout off)', { timeout: false }),
    ...cockatielSubjects(),
    { id: 'p-limit', label: 'p-limit', library: 'p-limit', call: () => limit(work) },
    { id: 'p-retry', label: 'p-retry', library: 'p-retry', call: () => pRetry(work, { retries: RETRIES }) },
    {
      id: 'p-timeout',
      label: 'p-timeout',
      library: 'p-timeout',
      call: () => pTimeout(work(), { milliseconds: TIMEOUT_MS }),
    },
    {
      id: 'hand-composed',
      label: 'p-limit(p-retry(opossum(p-timeout))) + opossum-prometheus',
      library: 'hand-composed',
      call: composed.call,
      dispose: composed.dispose,
    },
  ];
}

/** A retry of three calls with zero backoff, per peer, around always-failing work. */
export function peerRetryExhaustSubjects(fn: Work = failingWork): Subject[] {
  const cockatiel = cRetry(handleAll, { maxAttempts: RETRIES, backoff: new ConstantBackoff(0) });
  return [
    {
      id: 'fail.retry.cockatiel',
      label: 'cockatiel retry, 3 calls, ConstantBackoff(0)',
      library: 'cockatiel',
      call: () => cockatiel.execute(fn),
    },
    {
      id: 'fail.retry.p-retry',
      label: 'p-retry, 3 calls, minTimeout 0',
      library: 'p-retry',
      call: () => pRetry(fn, { retries: RETRIES, minTimeout: 0 }),
    },
  ];
}

export { failingWork };
