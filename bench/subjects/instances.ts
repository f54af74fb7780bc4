/**
 * Long-lived instances for the memory and idle-timer scenarios: each factory
 * builds one breaker (or one whole stack) the way a service holds it per
 * dependency, and makes one successful call through it so that whatever it
 * creates lazily exists too.
 */
import pLimit from 'p-limit';
import { Registry } from 'prom-client';
import { prometheusMetrics } from '../../src/prometheus/index.ts';
import { defaultBreaker, fullPipeline } from './breakwater.ts';
import * as bw from '../../src/index.ts';
import { cockatielSamplingBreaker, cockatielWrapFive, opossumSubject, TIMEOUT_MS } from './peers.ts';
import type { Library } from './subject.ts';
import { RESULT, work } from './work.ts';
import CircuitBreaker from 'opossum';
import pTimeout from 'p-timeout';

/** One held instance. */
export interface Instance {
  /** What must stay reachable for the instance to live. */
  readonly hold: unknown;
  readonly dispose?: () => void;
}

/** Builds instance number `i`. */
export interface InstanceKind {
  readonly label: string;
  readonly library: Library;
  /** 'breaker' rows are checked against the per-breaker target, 'pipeline' rows against the per-pipeline one. */
  readonly shape: 'breaker' | 'pipeline' | 'policy';
  /** Called once per process before the instances (shared state such as one metrics sink). */
  readonly setup?: () => unknown;
  readonly create: (i: number, shared: unknown) => Promise<Instance>;
}

async function expect42(value: unknown, what: string): Promise<void> {
  if ((await value) !== RESULT) throw new Error(`${what}: the call did not resolve with ${RESULT}`);
}

/** One Breakwater policy alone, after one call: where a pipeline's bytes go. */
function policyKind(label: string, make: () => bw.Policy<unknown>): InstanceKind {
  return {
    label,
    library: 'breakwater',
    shape: 'policy',
    create: async () => {
      const policy = make();
      await expect42(policy.execute(work), label);
      return { hold: policy };
    },
  };
}

export const instanceKinds: Record<string, InstanceKind> = {
  'bw.timeout': policyKind('Breakwater timeout', () => bw.timeout({ ms: TIMEOUT_MS })),
  'bw.fallback': policyKind('Breakwater fallback', () => bw.fallback({ value: 0 })),
  'bw.bulkhead': policyKind('Breakwater bulkhead', () => bw.bulkhead({ maxConcurrent: 1_000, maxQueue: 1_000 })),
  'bw.retry': policyKind('Breakwater retry', () => bw.retry({ maxAttempts: 3 })),
  'bw.empty-pipeline': policyKind('Breakwater pipeline with no policy', () => bw.pipeline({ name: 'empty' })),
  'bw.breaker': {
    label: 'Breakwater circuitBreaker',
    library: 'breakwater',
    shape: 'breaker',
    create: async () => {
      const breaker = defaultBreaker();
      await expect42(breaker.execute(work), 'bw.breaker');
      return { hold: breaker };
    },
  },
  'opossum.breaker': {
    label: 'opossum CircuitBreaker (default options)',
    library: 'opossum',
    shape: 'breaker',
    create: async () => {
      const s = opossumSubject('x', 'x', {});
      await expect42(s.call(), 'opossum.breaker');
      return { hold: s.breaker, dispose: s.dispose };
    },
  },
  'cockatiel.breaker': {
    label: 'cockatiel circuitBreaker (SamplingBreaker)',
    library: 'cockatiel',
    shape: 'breaker',
    create: async () => {
      const breaker = cockatielSamplingBreaker();
      await expect42(breaker.execute(work), 'cockatiel.breaker');
      return { hold: breaker };
    },
  },
  'bw.pipeline': {
    label: 'Breakwater full pipeline (5 policies), metrics off',
    library: 'breakwater',
    shape: 'pipeline',
    create: async (i) => {
      const p = fullPipeline(`p${i}`);
      await expect42(p.execute(work), 'bw.pipeline');
      return { hold: p };
    },
  },
  'bw.pipeline+metrics': {
    label: 'Breakwater full pipeline, attached to one shared metrics sink',
    library: 'breakwater',
    shape: 'pipeline',
    setup: () => prometheusMetrics({ registry: new Registry(), maxPipelines: 100_000 }),
    create: async (i, shared) => {
      const p = fullPipeline(`p${i}`);
      (shared as ReturnType<typeof prometheusMetrics>).attach(p);
      await expect42(p.execute(work), 'bw.pipeline+metrics');
      return { hold: p, dispose: () => p.dispose() };
    },
  },
  'cockatiel.wrap': {
    label: 'cockatiel wrap of the five',
    library: 'cockatiel',
    shape: 'pipeline',
    create: async () => {
      const policy = cockatielWrapFive();
      await expect42(policy.execute(work), 'cockatiel.wrap');
      return { hold: policy };
    },
  },
  'hand-composed': {
    label: 'p-limit + opossum breaker (+ stateless p-retry, p-timeout)',
    library: 'hand-composed',
    shape: 'pipeline',
    create: async () => {
      const limit = pLimit(1_000);
      const breaker = new CircuitBreaker(() => pTimeout(work(), { milliseconds: TIMEOUT_MS }), { timeout: false });
      await expect42(limit(() => breaker.fire()), 'hand-composed');
      return { hold: [limit, breaker], dispose: () => breaker.shutdown() };
    },
  },
};
