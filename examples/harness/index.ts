/**
 * The demo harness: services written once, run on real HTTP or on an
 * in-memory transport under FakeClock; fault timelines; a steady-rate load
 * generator; stats; an SVG chart writer; result files. See
 * /work/notes/harness-ready.md and docs/incidents/ for how demos use it.
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
  summarize,
  summarizeEndpoints,
  timeToRecoverMs,
  type Window,
} from './stats.ts';
export { type ChartPanel, type ChartSeries, type ChartShade, type ChartSpec, escapeXml, niceTicks, PALETTE, renderChart } from './svg.ts';
export { type Cell, displayPath, formatTable, ms, pct, RESULTS_ROOT, writeResults } from './results.ts';

/** What `npm run demo -- <name> [args...]` passes to a demo's `run`. */
export interface DemoOptions {
  /** Arguments after the demo's name. */
  readonly argv: readonly string[];
  /** Where to create the results folder (default examples/results). */
  readonly resultsRoot?: string;
  /** Printing (default console.log). */
  readonly log?: (line: string) => void;
}

/** The shape of every demo module: `examples/<name>/demo.ts` exports `run`. */
export interface DemoModule {
  /** Runs the demo; resolves with the results folder's absolute path. Must not call process.exit. */
  run(options: DemoOptions): Promise<string | void>;
}
