/**
 * One run of the auth cascade: deploy the topology (real HTTP or in memory),
 * offer steady load, break auth on a timeline, and collect what happened.
 * The demo and the property tests both call {@link runScenario}.
 */
import type { RandomSource, StateChangeEvent } from '../../src/index.ts';
import { FakeClock, seededRandom } from '../../src/testing/index.ts';
import { type Deployment, deploy, drive, type FaultWindow, type RequestRecord, runLoad } from '../harness/index.ts';
import { type AuthCascadeConfig, authCascadeServices, DEFAULT_CONFIG, DEPENDENTS, ENDPOINTS, type Variant } from './topology.ts';

/** How auth breaks: answers 503 at once, never answers, or answers after `slowMs`. */
export type AuthFaultMode = 'errors' | 'hang' | 'slow';

/** The timeline of a run, ms since the deployment started. */
export interface Timeline {
  /** Load is offered on `[0, durationMs)`. */
  readonly durationMs: number;
  /** Auth breaks at `outageFromMs`... */
  readonly outageFromMs: number;
  /** ...and is fully back at `outageToMs + recoveryRampMs`. */
  readonly outageToMs: number;
  /** Slow recovery: the fault fades out linearly over this long (default 0). */
  readonly recoveryRampMs?: number;
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  readonly transport: 'http' | 'memory';
  readonly variant: Variant;
  readonly mode: AuthFaultMode;
  readonly timeline: Timeline;
  /** Offered requests per second. */
  readonly ratePerSecond: number;
  /** `slow` mode: added latency of auth, ms (default 3000). */
  readonly slowMs?: number;
  /** The user's patience (client timeout), ms (default 2000). */
  readonly clientTimeoutMs?: number;
  /** In-flight bound of the load generator (p-limit, default 256). */
  readonly concurrency?: number;
  readonly config?: AuthCascadeConfig;
  /** Seed for the memory run's randomness (default 1). */
  readonly seed?: number;
  /** Called once the services are up (the demo prints the /metrics URLs). */
  readonly onDeployed?: (deployment: Deployment) => void | Promise<void>;
  /** Called after the load, before the deployment closes (the demo scrapes /metrics). */
  readonly beforeClose?: (deployment: Deployment) => void | Promise<void>;
  /** Called with each request's record as it completes (the demo's progress line). */
  readonly onRecord?: (record: RequestRecord) => void;
  /** Called at each breaker transition, as it happens (after only). */
  readonly onBreakerTransition?: (transition: BreakerTransition) => void;
}

/** A breaker transition seen during the run. */
export interface BreakerTransition {
  readonly service: string;
  readonly from: StateChangeEvent['from'];
  readonly to: StateChangeEvent['to'];
  readonly atMs: number;
}

/** Everything a run produced. */
export interface ScenarioResult {
  readonly options: ScenarioOptions;
  readonly config: AuthCascadeConfig;
  readonly records: readonly RequestRecord[];
  /** Arrival times at each service (ms since start). */
  readonly arrivals: Readonly<Record<string, readonly number[]>>;
  readonly breakerTransitions: readonly BreakerTransition[];
  /** When auth broke and when it was fully back (end of the ramp). */
  readonly outage: { readonly fromMs: number; readonly toMs: number };
  /** Wall-clock duration of the run, ms (meaningful for http only). */
  readonly wallMs: number;
}

/** The fault windows of a run. */
export function authFaults(mode: AuthFaultMode, timeline: Timeline, slowMs = 3000): FaultWindow[] {
  const fault =
    mode === 'errors'
      ? ({ kind: 'error', status: 503 } as const)
      : mode === 'hang'
        ? ({ kind: 'hang' } as const)
        : ({ kind: 'latency', addMs: slowMs } as const);
  return [
    {
      service: 'auth',
      fromMs: timeline.outageFromMs,
      toMs: timeline.outageToMs,
      recoveryRampMs: timeline.recoveryRampMs ?? 0,
      fault,
    },
  ];
}

/** Picks endpoint and user for request `index`. */
function offer(random: RandomSource, users: number) {
  const total = ENDPOINTS.reduce((sum, e) => sum + e.weight, 0);
  return (_index: number) => {
    let pick = random() * total;
    let endpoint = ENDPOINTS[ENDPOINTS.length - 1]!;
    for (const e of ENDPOINTS) {
      if ((pick -= e.weight) < 0) {
        endpoint = e;
        break;
      }
    }
    const user = Math.floor(random() * users);
    return {
      endpoint: endpoint.label,
      service: 'gateway',
      request: {
        method: endpoint.method,
        path: endpoint.path,
        headers: { authorization: `Bearer u${user}` },
        ...(endpoint.method === 'POST' ? { body: { cart: 'c1' } } : {}),
      },
    };
  };
}

/** Runs one scenario end to end and closes everything it started. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const config = options.config ?? DEFAULT_CONFIG;
  const { timeline } = options;
  const transitions: BreakerTransition[] = [];
  const services = authCascadeServices(options.variant, config, {
    breakerStateChange: (service, event, atMs) => {
      const transition = { service, from: event.from, to: event.to, atMs };
      transitions.push(transition);
      options.onBreakerTransition?.(transition);
    },
  });
  const seed = options.seed ?? 1;
  const memory = options.transport === 'memory';
  const clock = memory ? new FakeClock() : undefined;
  const deployment = await deploy(services, {
    transport: options.transport,
    ...(clock !== undefined ? { clock, random: seededRandom(seed) } : {}),
    faults: authFaults(options.mode, timeline, options.slowMs),
  });
  const wallStart = performance.now();
  try {
    await options.onDeployed?.(deployment);
    const loadRandom = memory ? seededRandom(seed + 1) : Math.random;
    const load = runLoad(deployment, {
      durationMs: timeline.durationMs,
      ratePerSecond: options.ratePerSecond,
      concurrency: options.concurrency ?? 256,
      clientTimeoutMs: options.clientTimeoutMs ?? 2000,
      random: loadRandom,
      next: offer(loadRandom, config.users),
      ...(options.onRecord !== undefined ? { onRecord: options.onRecord } : {}),
    });
    const { records } = clock !== undefined ? await drive(clock, load) : await load;
    await options.beforeClose?.(deployment);
    const arrivals: Record<string, readonly number[]> = {};
    for (const name of ['gateway', 'auth', ...DEPENDENTS]) arrivals[name] = [...deployment.arrivals(name)];
    return {
      options,
      config,
      records,
      arrivals,
      breakerTransitions: transitions,
      outage: { fromMs: timeline.outageFromMs, toMs: timeline.outageToMs + (timeline.recoveryRampMs ?? 0) },
      wallMs: performance.now() - wallStart,
    };
  } finally {
    await deployment.close();
  }
}
