/**
 * The services of the feature-flag demo, written once for both transports:
 *
 * ```
 * load ── users  GET /visit ── shop  GET /recommendations   (stable, or the experiment: the flag decides)
 *                  └ (a confused user, later) ── support  POST /tickets ── shop  POST /signals
 * scenario ── shop  POST /flag   (the misconfiguration at 20 %; in the "before" run, the person who turns it off)
 * ```
 *
 * - `shop` serves recommendations in two versions. The experimental version is
 *   slower and fails at a rate, both injected with `chaos` (a latency and a fault
 *   policy, on whenever the experiment runs), and it confuses users.
 * - `users` stands for the people behind the requests: one visit per request; a
 *   user shown the experiment files a ticket with probability `ticketRate`, a
 *   while later (`ticketDelayMs`); one shown the stable version with `baseTicketRate`.
 * - `support` takes the tickets and reports each one to `shop` as a health signal
 *   of the version the user saw: the signal the guarded rollout judges by.
 *
 * `variant: 'before'` is the code of the incident: the flag's share is read per
 * request, and that share of users get the experiment, with nothing watching.
 * `variant: 'after'` puts a Breakwater `rollout` in front of both versions: the
 * jump is ramped, the experiment runs behind its own breaker with the stable
 * version as its fallback, and it is rolled back from its error rate or its
 * ticket rate. Every number is in demo milliseconds; `MINUTES_PER_SECOND` says how
 * much real time one second stands for.
 */
import { chaos } from '../../src/chaos/index.ts';
import { pipeline, type RandomSource, rollout, type RolloutRollback, type RolloutShareEvent } from '../../src/index.ts';
import type { HttpResponse, ServiceSpec } from '../harness/index.ts';

/** Which code the shop runs. */
export type Variant = 'before' | 'after';

/** One second of the demo stands for this many minutes of the incident. */
export const MINUTES_PER_SECOND = 3;

/** Every number of the demo, in one visible place (demo ms unless the name says otherwise). */
export interface FeatureFlagConfig {
  /** Time the stable version takes to answer. */
  readonly stableWorkMs: number;
  /** Time the experimental version takes (the chaos latency policy adds the difference). */
  readonly experimentalWorkMs: number;
  /** Share of experimental answers that fail (the chaos fault policy). */
  readonly experimentalErrorRate: number;
  /** Share of users shown the experiment who file a ticket. */
  readonly ticketRate: number;
  /** Share of users shown the stable version who file a ticket anyway. */
  readonly baseTicketRate: number;
  /** How long after the visit a ticket arrives. */
  readonly ticketDelayMs: number;
  /** after: the rollout's ramp: at most `rampStep` more of the calls per `rampEveryMs`. */
  readonly rampStep: number;
  readonly rampEveryMs: number;
  /** after: experimental calls in the health window before the experiment is judged. */
  readonly minimumCalls: number;
  /** after: how much worse than the stable version's the error rate and the ticket rate may be. */
  readonly errorRateMargin: number;
  readonly signalRateMargin: number;
  /** after: the health window. */
  readonly windowMs: number;
}

/** The configuration of the demo and the tests. */
export const DEFAULT_CONFIG: FeatureFlagConfig = Object.freeze({
  stableWorkMs: 20,
  experimentalWorkMs: 120,
  experimentalErrorRate: 0.1,
  ticketRate: 0.3,
  baseTicketRate: 0.002,
  ticketDelayMs: 1_000,
  rampStep: 0.05,
  rampEveryMs: 2_000,
  minimumCalls: 20,
  errorRateMargin: 0.05,
  signalRateMargin: 0.05,
  windowMs: 10_000,
});

/** What the services report to the scenario as it happens, in ms since the deployment started. */
export interface FeatureFlagHooks {
  /** A visit reached the experimental version. */
  readonly onExposure?: (atMs: number) => void;
  /** A ticket reached support. */
  readonly onTicket?: (variant: 'experimental' | 'stable', atMs: number) => void;
  /** after: the share in force changed. */
  readonly onShareChange?: (event: RolloutShareEvent, atMs: number) => void;
  /** after: the rollout rolled the experiment back. */
  readonly onRollback?: (rollback: RolloutRollback, atMs: number) => void;
}

/** Options of {@link featureFlagServices}. */
export interface FeatureFlagServicesOptions {
  readonly variant: Variant;
  readonly config?: FeatureFlagConfig;
  readonly hooks?: FeatureFlagHooks;
  /** Random source of the experiment's faults (default: the service's). */
  readonly faultRandom?: RandomSource;
  /** Random source of the decisions of users shown the experiment to file a ticket (default: the service's). */
  readonly ticketRandom?: RandomSource;
}

/** Thrown by the experimental version when the chaos fault hits: the shop answers 500 (before) or falls back (after). */
export class ExperimentFailedError extends Error {
  override readonly name = 'ExperimentFailedError';
  constructor() {
    super('the experimental recommendations failed');
  }
}

interface Recommendations {
  readonly variant: 'experimental' | 'stable';
  readonly items: readonly string[];
}

function shop(options: FeatureFlagServicesOptions, config: FeatureFlagConfig): ServiceSpec {
  const hooks = options.hooks ?? {};
  return {
    name: 'shop',
    create(env) {
      const flag = { share: 0 };
      const stable = async (signal: AbortSignal): Promise<Recommendations> => {
        await env.sleep(config.stableWorkMs, signal);
        return { variant: 'stable', items: ['bestsellers', 'recently viewed'] };
      };
      // The experimental version: what makes it slow and failing is injected with chaos,
      // on whenever it runs (a game day would switch `enabled` from a flag).
      const experimentFaults = pipeline(
        chaos({ kind: 'latency', ms: config.experimentalWorkMs - config.stableWorkMs, injectionRate: 1, enabled: true, clock: env.clock }),
        chaos({ kind: 'fault', error: () => new ExperimentFailedError(), injectionRate: config.experimentalErrorRate, enabled: true, random: options.faultRandom ?? env.random }),
      );
      const experimental = (signal: AbortSignal): Promise<Recommendations> => {
        hooks.onExposure?.(env.elapsedMs());
        return experimentFaults.execute(async ({ signal: inner }) => {
          await env.sleep(config.stableWorkMs, inner);
          return { variant: 'experimental' as const, items: ['you might also like', 'because you looked at'] };
        }, { signal });
      };

      let serve: (signal: AbortSignal) => Promise<Recommendations>;
      let report: (variant: 'experimental' | 'stable') => void = () => {};
      if (options.variant === 'before') {
        // The incident's code: the flag's share of users get the experiment, nothing watches it.
        serve = (signal) => (env.random() < flag.share ? experimental(signal) : stable(signal));
      } else {
        const guard = rollout<Recommendations>({
          experimental: ({ signal }) => experimental(signal),
          share: () => flag.share,
          rampStep: config.rampStep,
          rampEveryMs: config.rampEveryMs,
          minimumCalls: config.minimumCalls,
          errorRateMargin: config.errorRateMargin,
          signalRateMargin: config.signalRateMargin,
          window: { ms: config.windowMs, buckets: 5 },
          clock: env.clock,
          random: env.random,
        });
        guard.onShareChange((event) => hooks.onShareChange?.(event, env.elapsedMs()));
        guard.onRollback((rollback) => hooks.onRollback?.(rollback, env.elapsedMs()));
        const recommendations = env.instrument(pipeline({ name: 'recommendations', clock: env.clock }, guard));
        serve = (signal) => recommendations.execute(({ signal: inner }) => stable(inner), { signal });
        report = (variant) => guard.report(variant);
      }

      return async (request, context): Promise<HttpResponse> => {
        if (request.method === 'POST' && request.path === '/flag') {
          const share = (request.body as { share?: unknown } | undefined)?.share;
          if (typeof share !== 'number') return { status: 400, body: { error: 'body must be { share: number }' } };
          flag.share = share; // a flag store takes what it is given: that is the incident
          return { status: 204 };
        }
        if (request.method === 'POST' && request.path === '/signals') {
          const variant = (request.body as { variant?: unknown } | undefined)?.variant;
          if (variant !== 'experimental' && variant !== 'stable') return { status: 400, body: { error: 'unknown variant' } };
          report(variant);
          return { status: 204 };
        }
        if (request.method === 'GET' && request.path.startsWith('/recommendations')) {
          try {
            const answer = await serve(context.signal);
            return { status: 200, headers: { 'x-variant': answer.variant }, body: answer };
          } catch (error) {
            if (error instanceof ExperimentFailedError) return { status: 500, headers: { 'x-variant': 'experimental' }, body: { error: error.message } };
            throw error;
          }
        }
        return { status: 404, body: { error: 'not found' } };
      };
    },
  };
}

function users(options: FeatureFlagServicesOptions, config: FeatureFlagConfig): ServiceSpec {
  return {
    name: 'users',
    create(env) {
      const experimentRandom = options.ticketRandom ?? env.random;
      const fileTicket = async (variant: 'experimental' | 'stable', user: string): Promise<void> => {
        try {
          await env.sleep(config.ticketDelayMs);
          await env.call('support', { method: 'POST', path: '/tickets', body: { variant, user } });
        } catch {
          // the deployment closed before the ticket went out
        }
      };
      return async (request, context) => {
        const user = /user=([^&]+)/.exec(request.path)?.[1] ?? 'anonymous';
        const response = await context.call('shop', { method: 'GET', path: `/recommendations?user=${user}` }, { signal: context.signal });
        const variant = response.headers?.['x-variant'];
        if (response.status === 200 && (variant === 'experimental' || variant === 'stable')) {
          const files = variant === 'experimental' ? experimentRandom() < config.ticketRate : env.random() < config.baseTicketRate;
          if (files) void fileTicket(variant, user);
        }
        return response;
      };
    },
  };
}

function support(options: FeatureFlagServicesOptions): ServiceSpec {
  const hooks = options.hooks ?? {};
  return {
    name: 'support',
    create(env) {
      return async (request) => {
        const variant = (request.body as { variant?: unknown } | undefined)?.variant;
        if (variant !== 'experimental' && variant !== 'stable') return { status: 400, body: { error: 'unknown variant' } };
        hooks.onTicket?.(variant, env.elapsedMs());
        await env.call('shop', { method: 'POST', path: '/signals', body: { variant } });
        return { status: 201 };
      };
    },
  };
}

/** The three services of one run. */
export function featureFlagServices(options: FeatureFlagServicesOptions): ServiceSpec[] {
  const config = options.config ?? DEFAULT_CONFIG;
  return [shop(options, config), users(options, config), support(options)];
}
