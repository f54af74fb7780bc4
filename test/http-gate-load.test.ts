/**
 * The short version of examples/http-gate/load.ts: real servers on loopback
 * (child processes), offered half their capacity and then four times it,
 * with and without the gate. It asserts the shape only, with margins wide
 * enough for a loaded 2-core machine: past capacity the ungated server's
 * requests wait until the client gives up, while the gated one sheds the
 * excess with 503 and answers what it admits well within the client's timeout.
 */
import { describe, expect, it } from 'vitest';
import { runGateLoad } from '../examples/http-gate/load.ts';

describe('the gate under overload (loopback load test, short)', () => {
  it('keeps the p99 of admitted requests bounded at 4x capacity, where the ungated server collapses to the client timeout', async () => {
    const clientTimeoutMs = 1_000;
    const rows = await runGateLoad({ multiples: [0.5, 4], durationMs: 1_500, clientTimeoutMs });
    const row = (multiple: number, gated: boolean) => rows.find((r) => r.multiple === multiple && r.gated === gated)!;
    // Under capacity the gate changes nothing that matters: (almost) all answered 200.
    expect(row(0.5, true).ok).toBeGreaterThanOrEqual(row(0.5, true).sent * 0.9);
    expect(row(0.5, false).ok).toBeGreaterThanOrEqual(row(0.5, false).sent * 0.9);
    const ungated = row(4, false);
    const gated = row(4, true);
    // Without the gate: requests queue behind each other until the client gives up.
    expect(ungated.shed).toBe(0);
    expect(ungated.timedOut).toBeGreaterThan(ungated.sent * 0.3);
    expect(ungated.p99Ms).toBeGreaterThanOrEqual(clientTimeoutMs * 0.9);
    // With it: the excess is refused at once, and what is admitted does not wait.
    expect(gated.shed).toBeGreaterThan(gated.sent * 0.4);
    expect(gated.timedOut).toBeLessThanOrEqual(gated.sent * 0.05);
    expect(gated.p99Ms).toBeLessThan(clientTimeoutMs * 0.6);
    expect(gated.p99Ms).toBeLessThan(ungated.p99Ms / 2);
  }, 60_000);
});
