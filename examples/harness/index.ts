/**
 * The demo harness: services written once, run on real HTTP or on an
 * in-memory transport under FakeClock; fault timelines; a steady-rate load
 * generator; stats; an SVG chart writer (every series visible, degraded
 * answers shaded, breaker states drawn as a band); progress lines while a
 * phase runs; the "how to read this" block under a table; result files.
 * A new demo: `examples/<name>/demo.ts` exporting `run` (see {@link DemoModule}),
 * an entry in examples/demos.ts, and its write-up in docs/incidents/<name>.md.
 */
export type {
  CallOptions,
  Fault,
  FaultWindow,
  Handler,
  HttpRequest,
  HttpResponse,
  RequestContext,
  RequestRecord,
  ServiceEnv,
  ServiceSpec,
} from './types.ts';
export { type FaultDecision, faultEndMs, faultIntensity, FaultPlan } from './faults.ts';
export { deploy, type DeployOptions, type Deployment, type HarnessErrorBody, retryAfterHeader } from './deploy.ts';
export { drive, type LoadOptions, type LoadResult, type OfferedRequest, runLoad } from './load.ts';
export {
  amplification,
  buildSeries,
  countIn,
  type EndpointStats,
  peakRatePerSecond,
  percentile,
  type RecoveryOptions,
  type RunSeries,
  type StateChange,
  type StateSpan,
  stateSpans,
  summarize,
  summarizeEndpoints,
  timeToRecoverMs,
  type Window,
} from './stats.ts';
export {
  BREAKER_STATE_COLORS,
  type ChartArea,
  type ChartPanel,
  type ChartSeries,
  type ChartShade,
  type ChartSpec,
  type ChartStateBand,
  type ChartStateRow,
  escapeXml,
  niceTicks,
  PALETTE,
  renderChart,
} from './svg.ts';
export { type Cell, displayPath, formatTable, howToRead, incidentDoc, ms, pct, REPO_ROOT, RESULTS_ROOT, wrapText, writeResults } from './results.ts';
export { answerAreas, breakerBand, pointsOf } from './charts.ts';
export { numberOption } from './argv.ts';
export { type InspectedPanel, inspectChart, pathPoints } from './svg-inspect.ts';
import type { Terminal } from './progress.ts';
export { type DemoConsole, demoConsole, type LiveCounts, liveCounts, type ProgressHandle, type ProgressOptions, type Terminal } from './progress.ts';

/** What `npm run demo -- <name> [args...]` passes to a demo's `run`. */
export interface DemoOptions {
  /** Arguments after the demo's name. */
  readonly argv: readonly string[];
  /** Where to create the results folder (default examples/results). */
  readonly resultsRoot?: string;
  /** Printing (default console.log). */
  readonly log?: (line: string) => void;
  /**
   * Where progress lines go (default: process.stdout when `log` is not given;
   * otherwise plain lines through `log`). On a TTY they are rewritten in place.
   */
  readonly terminal?: Terminal;
}

/** The shape of every demo module: `examples/<name>/demo.ts` exports `run`. */
export interface DemoModule {
  /** Runs the demo; resolves with the results folder's absolute path. Must not call process.exit. */
  run(options: DemoOptions): Promise<string | void>;
}
