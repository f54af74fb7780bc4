/**
 * A small span recorder, the part of Jaeger this demo needs: every service
 * records a span per request it serves and per call it makes to the outside
 * world, timed with the demo's clock (the system clock on real HTTP, a
 * FakeClock in tests), and the trace of one request is printed as a tree.
 *
 * Context travels between services in a W3C-style `traceparent` header
 * (`00-<trace id>-<parent span id>-01`), so the same code works over real HTTP
 * and over the in-memory transport.
 */
import type { Clock } from '../../src/index.ts';

/** Name of the header that carries the trace context between services. */
export const TRACEPARENT_HEADER = 'traceparent';

/** What a span records. Times are the demo clock's milliseconds. */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  /** The span this one ran inside, or `undefined` for the root of a trace. */
  readonly parentSpanId: string | undefined;
  /** The service that recorded the span. */
  readonly service: string;
  /** What it did: `POST /checkout`, `POST api.payments.example/v1/charges`, … */
  readonly operation: string;
  /** `server` for a request the service handled, `client` for a call it made to an uninstrumented system. */
  readonly kind: 'server' | 'client' | 'internal';
  readonly startMs: number;
  /** `undefined` while the span is still open. */
  endMs: number | undefined;
  status: 'ok' | 'error';
}

/** The trace context one span hands to the work it starts. */
export interface TraceContext {
  readonly traceId: string;
  readonly spanId: string;
}

/** Options of {@link SpanRecorder}. */
export interface SpanRecorderOptions {
  /** Clock used to time spans. */
  readonly clock: Clock;
  /** Keep at most this many traces (oldest dropped first). Default 5,000. */
  readonly maxTraces?: number;
}

/** An open span: end it exactly once. */
export interface ActiveSpan extends TraceContext {
  /** Closes the span now; later calls are ignored. */
  end(status?: 'ok' | 'error'): void;
}

/**
 * Collects spans from every service of the demo, like a tracing backend would.
 * All services run in one process, so they share one recorder.
 */
export class SpanRecorder {
  readonly #clock: Clock;
  readonly #maxTraces: number;
  readonly #traces = new Map<string, SpanRecord[]>();
  #nextId = 1;

  constructor(options: SpanRecorderOptions) {
    this.#clock = options.clock;
    this.#maxTraces = options.maxTraces ?? 5_000;
  }

  /** Starts a span, as a child of `parent` when given, else as the root of a new trace. */
  start(service: string, operation: string, parent: TraceContext | undefined, kind: SpanRecord['kind'] = 'server'): ActiveSpan {
    const traceId = parent?.traceId ?? this.#id(32);
    const record: SpanRecord = {
      traceId,
      spanId: this.#id(16),
      parentSpanId: parent?.spanId,
      service,
      operation,
      kind,
      startMs: this.#clock.now(),
      endMs: undefined,
      status: 'ok',
    };
    let spans = this.#traces.get(traceId);
    if (spans === undefined) {
      spans = [];
      this.#traces.set(traceId, spans);
      if (this.#traces.size > this.#maxTraces) {
        const oldest = this.#traces.keys().next().value;
        if (oldest !== undefined) this.#traces.delete(oldest);
      }
    }
    spans.push(record);
    const clock = this.#clock;
    return {
      traceId: record.traceId,
      spanId: record.spanId,
      end(status = 'ok') {
        if (record.endMs !== undefined) return;
        record.endMs = clock.now();
        record.status = status;
      },
    };
  }

  /** Runs `work` inside a new span, ending it when the work settles (status `error` if it throws). */
  async span<T>(
    service: string,
    operation: string,
    parent: TraceContext | undefined,
    work: (context: TraceContext) => T | PromiseLike<T>,
    kind: SpanRecord['kind'] = 'server',
  ): Promise<T> {
    const span = this.start(service, operation, parent, kind);
    try {
      const value = await work(span);
      span.end('ok');
      return value;
    } catch (error) {
      span.end('error');
      throw error;
    }
  }

  /** The spans of one trace, in the order they started. */
  trace(traceId: string): readonly SpanRecord[] {
    return [...(this.#traces.get(traceId) ?? [])].sort((a, b) => a.startMs - b.startMs);
  }

  /** The root spans of every trace recorded by `service` for `operation`, finished ones only. */
  roots(service: string, operation?: string): SpanRecord[] {
    const out: SpanRecord[] = [];
    for (const spans of this.#traces.values()) {
      const root = spans.find((s) => s.parentSpanId === undefined);
      if (root === undefined || root.endMs === undefined || root.service !== service) continue;
      if (operation !== undefined && root.operation !== operation) continue;
      out.push(root);
    }
    return out;
  }

  /** Forgets every recorded trace. */
  clear(): void {
    this.#traces.clear();
  }

  #id(hexDigits: number): string {
    // Sequential ids are enough here (and reproducible under a FakeClock).
    return (this.#nextId++).toString(16).padStart(hexDigits, '0');
  }
}

/** Encodes a trace context as a `traceparent` header value. */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-01`;
}

/** Decodes a `traceparent` header value; `undefined` when it is absent or malformed. */
export function parseTraceparent(value: string | undefined | null): TraceContext | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(value.trim());
  if (match === null) return undefined;
  return { traceId: match[1]!, spanId: match[2]! };
}

/** One row of a printed trace: a span with its depth, offset and own time. */
export interface TraceRow {
  readonly span: SpanRecord;
  /** Nesting depth: 0 for the root. */
  readonly depth: number;
  /** Start relative to the root span, in ms. */
  readonly offsetMs: number;
  readonly durationMs: number;
  /** Time inside this span not covered by its children (their union), in ms. */
  readonly selfMs: number;
}

/**
 * Orders a trace depth-first (children by start time) and computes each span's
 * offset from the root, duration and self time. Open spans are ignored.
 */
export function traceRows(spans: readonly SpanRecord[]): TraceRow[] {
  const done = spans.filter((s) => s.endMs !== undefined);
  const root = done.find((s) => s.parentSpanId === undefined);
  if (root === undefined) return [];
  const children = new Map<string, SpanRecord[]>();
  for (const span of done) {
    if (span.parentSpanId === undefined) continue;
    const list = children.get(span.parentSpanId) ?? [];
    list.push(span);
    children.set(span.parentSpanId, list);
  }
  const rows: TraceRow[] = [];
  const visit = (span: SpanRecord, depth: number): void => {
    const kids = (children.get(span.spanId) ?? []).sort((a, b) => a.startMs - b.startMs);
    const durationMs = span.endMs! - span.startMs;
    rows.push({ span, depth, offsetMs: span.startMs - root.startMs, durationMs, selfMs: durationMs - coveredMs(span, kids) });
    for (const kid of kids) visit(kid, depth + 1);
  };
  visit(root, 0);
  return rows;
}

/** The length of the union of the children's intervals, clipped to the parent's. */
function coveredMs(parent: SpanRecord, kids: readonly SpanRecord[]): number {
  let covered = 0;
  let cursor = parent.startMs;
  for (const kid of kids) {
    const from = Math.max(cursor, kid.startMs);
    const to = Math.min(parent.endMs!, kid.endMs!);
    if (to > from) {
      covered += to - from;
      cursor = to;
    }
  }
  return covered;
}

/**
 * The span that took the most time of its own (ignoring its children): where
 * the request's time actually went.
 */
export function culprit(rows: readonly TraceRow[]): TraceRow | undefined {
  let best: TraceRow | undefined;
  for (const row of rows) if (best === undefined || row.selfMs > best.selfMs) best = row;
  return best;
}

/**
 * Renders a trace as an indented table with a timeline bar per span, the way a
 * trace viewer shows it.
 */
export function renderTrace(spans: readonly SpanRecord[], options: { barWidth?: number } = {}): string {
  const rows = traceRows(spans);
  if (rows.length === 0) return '(no finished spans)';
  const barWidth = options.barWidth ?? 32;
  const total = Math.max(rows[0]!.durationMs, 1e-9);
  const ms = (v: number): string => `${Math.round(v).toLocaleString('en-US')} ms`;
  const labels = rows.map((r) => `${'  '.repeat(r.depth)}${r.span.service}`);
  const serviceWidth = Math.max(7, ...labels.map((l) => l.length));
  const operationWidth = Math.max(9, ...rows.map((r) => r.span.operation.length));
  const header =
    `${'service'.padEnd(serviceWidth)}  ${'operation'.padEnd(operationWidth)}  ${'start'.padStart(9)}  ` +
    `${'duration'.padStart(9)}  ${'self'.padStart(9)}  timeline`;
  const lines = [header, '-'.repeat(header.length + barWidth - 8)];
  rows.forEach((row, i) => {
    const from = Math.min(barWidth - 1, Math.floor((row.offsetMs / total) * barWidth));
    const width = Math.max(1, Math.round((row.durationMs / total) * barWidth));
    const bar = ' '.repeat(from) + '#'.repeat(Math.min(width, barWidth - from));
    const flag = row.span.status === 'error' ? ' (error)' : '';
    lines.push(
      `${labels[i]!.padEnd(serviceWidth)}  ${row.span.operation.padEnd(operationWidth)}  ${`+${ms(row.offsetMs)}`.padStart(9)}  ` +
        `${ms(row.durationMs).padStart(9)}  ${ms(row.selfMs).padStart(9)}  |${bar.padEnd(barWidth)}|${flag}`,
    );
  });
  return lines.join('\n');
}
