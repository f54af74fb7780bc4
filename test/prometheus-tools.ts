/** The suites' side of test/prometheus-setup.ts: the paths of promtool and prometheus. */
import { inject } from 'vitest';
import type { PrometheusTools } from './prometheus-setup.ts';

/**
 * The tools the global setup found or installed; both undefined when the suite must
 * skip (the setup has printed why). Throws when the setup did not look for them, so
 * a suite it does not know about fails instead of skipping in silence.
 */
export function prometheusTools(): PrometheusTools {
  const tools = inject('prometheusTools') as PrometheusTools | undefined;
  if (tools === undefined) {
    throw new Error('test/prometheus-setup.ts did not look for promtool and prometheus: list this file in its SUITES_NEEDING_TOOLS');
  }
  return tools;
}
