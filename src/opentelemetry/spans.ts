/**
 * Span events: what the policies of an attached pipeline did for a call, added
 * to the span that is active where the policy acts, which is the caller's span
 * (the policies act in the call's own async context). When no span is active,
 * or it is not recording, a listener does nothing more than look.
 */
import { type Attributes, type AttributeValue, type Span, trace } from '@opentelemetry/api';
import type { Disposer } from '../core/events.ts';
import type { CallRecorder, Outcome } from '../core/timing.ts';
import { CAUSES, causeIndex, type GateLike, on, STATES, stateIndex, type Unit } from '../prometheus/policies.ts';
import { ATTR } from './instruments.ts';

/** The names of the span events Breakwater adds. @internal */
export const SPAN_EVENTS = [
  'breakwater.call',
  'breakwater.retry',
  'breakwater.retry.give_up',
  'breakwater.retry.budget_exhausted',
  'breakwater.circuit.rejected',
  'breakwater.circuit.state_change',
  'breakwater.bulkhead.rejected',
  'breakwater.fallback',
  'breakwater.hedge',
  'breakwater.hedge.won',
  'breakwater.hedge.budget_exhausted',
  'breakwater.throttle.rejected',
  'breakwater.adaptive_limit.rejected',
  'breakwater.rate_limit.delayed',
  'breakwater.rate_limit.rejected',
  'breakwater.chaos.injected',
  'breakwater.rollout.exposure',
  'breakwater.rollout.experiment_failed',
  'breakwater.rollout.rollback',
  'breakwater.http.shed',
] as const;

type SpanEventName = (typeof SPAN_EVENTS)[number];

/** The recording span of the current context, if any. */
function recordingSpan(): Span | undefined {
  const span = trace.getActiveSpan();
  return span !== undefined && span.isRecording() ? span : undefined;
}

/**
 * The `error.type` of an error (OpenTelemetry's convention): its string `code`
 * when it has one (`ERR_BREAKWATER_TIMEOUT`, `ECONNRESET`), else its class name.
 * Never a message: those carry ids and URLs.
 */
export function errorType(error: unknown): string {
  try {
    if (typeof error === 'object' && error !== null) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && code !== '') return code;
      const name = (error as { name?: unknown }).name;
      if (typeof name === 'string' && name !== '') return name;
    }
  } catch {
    // A hostile object: fall through.
  }
  return '_OTHER';
}

/** A circuit state written as in the metrics (`half_open`). */
function stateName(state: unknown): string {
  const i = typeof state === 'string' ? stateIndex(state) : -1;
  return i >= 0 ? STATES[i]! : String(state);
}

/** Adds the span event of each call of an attached pipeline: its outcome and duration. @internal */
export class SpanRecorder implements CallRecorder {
  readonly #pipeline: string;

  constructor(pipeline: string) {
    this.#pipeline = pipeline;
  }

  record(outcome: Outcome, durationMs: number): void {
    const span = recordingSpan();
    if (span === undefined) return;
    span.addEvent('breakwater.call', { [ATTR.PIPELINE]: this.#pipeline, [ATTR.OUTCOME]: outcome, 'breakwater.duration_ms': durationMs });
  }
}

/** Subscribes the span-event listeners of `unit`'s policies, pushing each disposer to `disposers`. @internal */
export function addSpanEvents(unit: Unit, disposers: Disposer[]): void {
  const pipeline = unit.pipeline.name!;
  /** Subscribes a listener that adds event `name` with the attributes `describe` gives for the payload. */
  const add = <E>(event: ((listener: (e: E) => void) => Disposer) | undefined, name: SpanEventName, describe: (e: E) => Record<string, AttributeValue>): void => {
    if (typeof event !== 'function') return;
    on(event, (payload: E) => {
      const span = recordingSpan();
      if (span === undefined) return;
      const attributes: Attributes = { [ATTR.PIPELINE]: pipeline, ...describe(payload) };
      span.addEvent(name, attributes);
    }, disposers);
  };
  type Payload = Record<string, unknown> | undefined;
  const attempt = (e: Payload): Record<string, AttributeValue> => (typeof e?.attempt === 'number' ? { 'breakwater.attempt': e.attempt } : {});
  for (const breaker of unit.breakers) {
    add<Payload>(breaker.onReject as never, 'breakwater.circuit.rejected', (e) => ({ [ATTR.CIRCUIT_STATE]: stateName(e?.state) }));
    add<Payload>(breaker.onStateChange as never, 'breakwater.circuit.state_change', (e) => ({
      [ATTR.CIRCUIT_STATE]: stateName(e?.to),
      'breakwater.circuit.previous_state': stateName(e?.from),
      ...(typeof e?.reason === 'string' ? { 'breakwater.circuit.reason': e.reason } : {}),
    }));
  }
  for (const bulkhead of unit.bulkheads) {
    add<Payload>(bulkhead.onReject as never, 'breakwater.bulkhead.rejected', (e) => ({ 'breakwater.bulkhead.reason': String(e?.reason) }));
  }
  for (const retry of unit.retries) {
    add<Payload>(retry.onRetry as never, 'breakwater.retry', (e) => ({
      ...attempt(e),
      ...(typeof e?.delayMs === 'number' ? { 'breakwater.retry.delay_ms': e.delayMs } : {}),
      'error.type': errorType(e?.error),
    }));
    const r = retry as { onGiveUp?: unknown; onBudgetExhausted?: unknown };
    add<Payload>(r.onGiveUp as never, 'breakwater.retry.give_up', (e) => ({
      ...(typeof e?.attempts === 'number' ? { 'breakwater.attempts': e.attempts } : {}),
      'breakwater.retry.reason': String(e?.reason),
      'error.type': errorType(e?.error),
    }));
    add<Payload>(r.onBudgetExhausted as never, 'breakwater.retry.budget_exhausted', (e) => ({ 'error.type': errorType(e?.error) }));
  }
  for (const f of unit.fallbacks) {
    add<Payload>(f.onFallback as never, 'breakwater.fallback', (e) => ({
      [ATTR.FALLBACK_CAUSE]: CAUSES[causeIndex(e?.error)]!,
      'error.type': errorType(e?.error),
    }));
  }
  for (const h of unit.hedges) {
    add<Payload>(h.onHedge as never, 'breakwater.hedge', (e) => ({
      ...attempt(e),
      ...(typeof e?.afterMs === 'number' ? { 'breakwater.hedge.after_ms': e.afterMs } : {}),
    }));
    add<Payload>(h.onHedgeWon as never, 'breakwater.hedge.won', attempt);
    add<Payload>(h.onBudgetExhausted as never, 'breakwater.hedge.budget_exhausted', attempt);
  }
  for (const t of unit.throttles) {
    add<Payload>(t.onReject as never, 'breakwater.throttle.rejected', (e): Record<string, AttributeValue> =>
      typeof e?.probability === 'number' ? { 'breakwater.throttle.probability': e.probability } : {},
    );
  }
  for (const l of unit.limits) {
    add<Payload>(l.onReject as never, 'breakwater.adaptive_limit.rejected', (e) => ({ 'breakwater.adaptive_limit.reason': String(e?.reason) }));
  }
  for (const r of unit.rateLimiters) {
    // Only a wait is worth an event: an admission at once is every call.
    if (typeof r.onAdmit === 'function') {
      on(r.onAdmit, (e) => {
        const waitedMs = e?.waitedMs ?? 0;
        if (waitedMs > 0) recordingSpan()?.addEvent('breakwater.rate_limit.delayed', { [ATTR.PIPELINE]: pipeline, 'breakwater.rate_limit.waited_ms': waitedMs });
      }, disposers);
    }
    add<Payload>(r.onReject as never, 'breakwater.rate_limit.rejected', () => ({}));
  }
  for (const c of unit.chaos) {
    add<Payload>(c.onInjected as never, 'breakwater.chaos.injected', (e) => ({ [ATTR.CHAOS_KIND]: String(e?.kind) }));
  }
  for (const r of unit.rollouts) {
    add<Payload>(r.onExposure as never, 'breakwater.rollout.exposure', () => ({}));
    add<Payload>(r.onExperimentFailed as never, 'breakwater.rollout.experiment_failed', (e) => ({ 'error.type': errorType(e?.error) }));
    add<Payload>(r.onRollback as never, 'breakwater.rollout.rollback', (e) => ({ [ATTR.ROLLBACK_REASON]: String(e?.reason).replace('-', '_') }));
  }
}

/**
 * Subscribes the `breakwater.http.shed` span event of a gate: a shed request
 * is refused in the request handler's own async context, so the active span is
 * the server span of that request (when the service's HTTP instrumentation
 * made one). Admitted requests have no event: that is every request.
 * @internal
 */
export function addShedEvents(gate: GateLike, disposers: Disposer[]): void {
  const onShed = (gate as { onShed?: unknown }).onShed;
  if (typeof onShed !== 'function') return;
  on(onShed as (listener: (e: { class?: unknown } | undefined) => void) => Disposer, (e) => {
    const span = recordingSpan();
    if (span === undefined) return;
    span.addEvent('breakwater.http.shed', { [ATTR.GATE]: gate.name, [ATTR.GATE_CLASS]: String(e?.class) });
  }, disposers);
}
