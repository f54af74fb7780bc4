/**
 * Subjects of the scale scenario: many calls submitted at once through a
 * bulkhead with a queue. The work yields to the event loop once (like a call
 * waiting for I/O), so the bulkhead really holds calls back.
 */
import { cockatielBulkhead } from './peers.ts';
import { bulkhead, fallback, pipeline, retry, timeout } from '../../src/index.ts';
import pLimit from 'p-limit';
import { defaultBreaker } from './breakwater.ts';
import { TIMEOUT_MS } from './peers.ts';
import type { Library } from './subject.ts';
import { ioWork } from './work.ts';

/** How many calls run at once in every bounded subject. */
export const SCALE_CONCURRENCY = 1_000;

/** A way to run `calls` calls; `create` returns the call, sized for that many. */
export interface ScaleSubject {
  readonly label: string;
  readonly library: Library;
  readonly create: (calls: number) => () => unknown;
  readonly dispose?: () => void;
}

export const scaleSubjects: Record<string, ScaleSubject> = {
  bare: {
    label: 'bare calls, no limit (all run at once)',
    library: 'baseline',
    create: () => ioWork,
  },
  'bw.bulkhead': {
    label: 'Breakwater bulkhead',
    library: 'breakwater',
    create: (calls) => {
      const b = bulkhead({ maxConcurrent: SCALE_CONCURRENCY, maxQueue: calls });
      return () => b.execute(ioWork);
    },
  },
  'bw.pipeline': {
    label: 'Breakwater full pipeline (bulkhead queue outside retry, breaker, timeout)',
    library: 'breakwater',
    create: (calls) => {
      const breaker = defaultBreaker();
      const p = pipeline(
        { name: 'scale' },
        fallback({ value: 0 }),
        bulkhead({ maxConcurrent: SCALE_CONCURRENCY, maxQueue: calls }),
        retry({ maxAttempts: 3 }),
        breaker,
        timeout({ ms: TIMEOUT_MS }),
      );
      return () => p.execute(ioWork);
    },
  },
  'cockatiel.bulkhead': {
    label: 'cockatiel bulkhead',
    library: 'cockatiel',
    create: (calls) => {
      const b = cockatielBulkhead(SCALE_CONCURRENCY, calls);
      return () => b.execute(ioWork);
    },
  },
  'p-limit': {
    label: 'p-limit',
    library: 'p-limit',
    create: () => {
      const limit = pLimit(SCALE_CONCURRENCY);
      return () => limit(ioWork);
    },
  },
};
