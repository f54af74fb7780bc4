/**
 * Building blocks of demo charts, on top of the SVG writer: the breaker-state
 * band, the shaded areas of full and degraded answers, and points from a
 * {@link RunSeries}. Every demo gets the same look from these.
 */
import { type StateChange, stateSpans, type RunSeries } from './stats.ts';
import { BREAKER_STATE_COLORS, type ChartArea, type ChartStateBand } from './svg.ts';

/** Legend text of the breaker states. */
const BREAKER_STATE_LABELS: Readonly<Record<string, string>> = Object.freeze({
  closed: 'closed (calls go through)',
  open: 'open (calls refused at once)',
  'half-open': 'half-open (trial calls)',
});

/**
 * A band with one row per breaker, coloured by its state over `[0, untilMs)`
 * (x in seconds): closed, open, half-open. `changes` are what the breaker's
 * `onStateChange` reported, at ms since the deployment started.
 */
export function breakerBand(
  rows: readonly { readonly label: string; readonly changes: readonly StateChange[] }[],
  untilMs: number,
  title = 'breaker',
): ChartStateBand {
  const used = new Set(rows.flatMap((r) => r.changes.map((c) => c.to)));
  const colors: Record<string, string> = {};
  for (const state of ['closed', 'open', 'half-open', ...(used.has('isolated') ? ['isolated'] : [])]) colors[state] = BREAKER_STATE_COLORS[state]!;
  return {
    title,
    colors,
    labels: BREAKER_STATE_LABELS,
    rows: rows.map((row) => ({
      label: row.label,
      segments: stateSpans(row.changes, { untilMs }).map((s) => ({ fromX: s.fromMs / 1000, toX: s.toMs / 1000, state: s.state })),
    })),
  };
}

/** `[t, y × scale]` points of a bucketed series (null stays null). */
export function pointsOf(series: RunSeries, ys: readonly (number | null)[], scale = 1): [number, number | null][] {
  return series.tSeconds.map((t, i) => {
    const y = ys[i];
    return [t, y === null || y === undefined ? null : y * scale];
  });
}

/**
 * Two stacked areas over all endpoints, in percent: answered in full (from 0),
 * and answered degraded (on top of it, hatched), so that degraded answers are
 * told apart from full ones. What is left up to 100% failed.
 */
export function answerAreas(series: RunSeries, { what = 'all endpoints' }: { what?: string } = {}): ChartArea[] {
  const { full, degraded } = series.answers;
  return [
    {
      name: `${what}: answered in full`,
      color: '#2ca02c',
      opacity: 0.16,
      points: series.tSeconds.map((t, i) => {
        const a = full[i];
        return [t, a === null || a === undefined ? null : 0, a === null || a === undefined ? null : a * 100] as const;
      }),
    },
    {
      name: `${what}: answered, degraded`,
      color: '#e69f00',
      opacity: 0.3,
      hatch: true,
      points: series.tSeconds.map((t, i) => {
        const a = full[i];
        const d = degraded[i];
        return a === null || a === undefined || d === null || d === undefined ? ([t, null, null] as const) : ([t, a * 100, (a + d) * 100] as const);
      }),
    },
  ];
}
