/**
 * What a demo prints while a phase runs: a progress line with the elapsed and
 * total time and a live figure chosen by the demo.
 *
 * On a terminal (a TTY) one line is rewritten in place about every second; in
 * a pipe, a log file or a test, plain lines are printed every few seconds
 * instead (no carriage returns). Updates are timed on the clock the phase
 * runs on: wall time on real HTTP, virtual time under `FakeClock`.
 */
import type { Clock } from '../../src/index.ts';
import type { RequestRecord } from './types.ts';

/** Where a demo writes when it writes to a terminal: `process.stdout`, or a fake one in tests. */
export interface Terminal {
  write(text: string): unknown;
  /** True on a terminal: progress is rewritten in place. */
  readonly isTTY?: boolean;
  /** Width in characters; a progress line is cut to fit, so that it never wraps. */
  readonly columns?: number;
}

/** Options of {@link DemoConsole.progress}. */
export interface ProgressOptions {
  /** The phase, such as `errors/before`. */
  readonly label: string;
  /** The clock the phase runs on (the deployment's). */
  readonly clock: Clock;
  /** ms since the phase started. */
  readonly elapsedMs: () => number;
  /** How long the phase is planned to take, ms. Past it, the line says so (a phase may drain a backlog). */
  readonly totalMs: number;
  /** The live figure, such as `last second: 64% answered OK`; called at each update. */
  readonly figure?: (elapsedMs: number) => string;
  /** Update interval on a terminal, ms (default 1000). */
  readonly everyMs?: number;
  /** Interval of plain lines when not on a terminal, ms (default 3000). */
  readonly plainEveryMs?: number;
}

/** A running progress line. */
export interface ProgressHandle {
  /** Stops updating and removes the line from a terminal (the demo then prints its summary). Idempotent. */
  stop(): void;
}

/** A demo's printing: whole lines, and progress lines while a phase runs. */
export interface DemoConsole {
  /** Prints a line (on a terminal, above the progress line). */
  log(line: string): void;
  /** Starts a progress line for a phase. */
  progress(options: ProgressOptions): ProgressHandle;
  /** True when progress is rewritten in place. */
  readonly tty: boolean;
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

function bar(share: number, width = 16): string {
  const filled = Math.round(Math.min(1, Math.max(0, share)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** The text of one progress update. */
function progressText(options: ProgressOptions, tty: boolean): string {
  const elapsed = options.elapsedMs();
  const total = options.totalMs;
  const time =
    elapsed < total + 250 ? `${seconds(Math.min(elapsed, total))} of ${seconds(total)}` : `${seconds(elapsed)} (the ${seconds(total)} of load are over)`;
  const figure = options.figure?.(elapsed);
  return `  ... ${options.label}  ${tty ? `${bar(elapsed / total)} ` : ''}${time}${figure === undefined || figure === '' ? '' : `  |  ${figure}`}`;
}

/**
 * The console of a demo run. With `log` given and no `terminal` (tests), every
 * line, progress included, goes to `log` as plain lines. By default lines go
 * to `console.log` and progress to `process.stdout`, rewritten in place when
 * it is a terminal.
 */
export function demoConsole({ log, terminal }: { log?: ((line: string) => void) | undefined; terminal?: Terminal | undefined } = {}): DemoConsole {
  const term: Terminal | undefined = terminal ?? (log === undefined ? process.stdout : undefined);
  const print = log ?? ((line: string) => console.log(line));
  const tty = term?.isTTY === true;
  let shown: (() => string) | undefined; // the progress line on screen, if any
  const clear = (): void => {
    if (shown !== undefined) term!.write('\r\x1b[2K');
  };
  const draw = (): void => {
    if (shown === undefined) return;
    const width = Math.max(20, (term!.columns ?? 120) - 1);
    const text = shown();
    term!.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
  };
  return {
    tty,
    log(line) {
      if (tty && shown !== undefined) {
        clear();
        term!.write(`${line}\n`);
        draw();
      } else {
        print(line);
      }
    },
    progress(options) {
      const { clock } = options;
      let timer: unknown;
      let stopped = false;
      const every = tty ? (options.everyMs ?? 1000) : (options.plainEveryMs ?? 3000);
      const tick = (): void => {
        if (stopped) return;
        if (tty) draw();
        else print(progressText(options, false));
        timer = clock.schedule(tick, every);
      };
      if (tty) {
        shown = () => progressText(options, true);
        draw();
      }
      timer = clock.schedule(tick, every);
      return {
        stop() {
          if (stopped) return;
          stopped = true;
          clock.cancel(timer);
          if (tty) {
            clear();
            shown = undefined;
          }
        },
      };
    },
  };
}

/** Requests that completed within a recent window, for a live figure. */
export interface LiveCounts {
  /** Requests that completed in the window. */
  readonly answered: number;
  /** ...with a 2xx... */
  readonly ok: number;
  /** ...of which degraded. */
  readonly degraded: number;
  /** Slowest of them, ms (NaN when none). */
  readonly slowestMs: number;
}

/**
 * Counts the records that completed in `(nowMs - windowMs, nowMs]`, scanning
 * from the end: `records` must be in completion order (as `onRecord` sees them).
 */
export function liveCounts(records: readonly RequestRecord[], nowMs: number, windowMs = 1000): LiveCounts {
  let answered = 0;
  let ok = 0;
  let degraded = 0;
  let slowestMs = Number.NaN;
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i]!;
    if (r.endMs <= nowMs - windowMs) break;
    if (r.endMs > nowMs) continue;
    answered++;
    if (r.ok) ok++;
    if (r.ok && r.degraded) degraded++;
    if (!(r.latencyMs <= slowestMs)) slowestMs = r.latencyMs;
  }
  return { answered, ok, degraded, slowestMs };
}
