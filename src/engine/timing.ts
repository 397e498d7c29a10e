/** The engine's clock: how long a configured "second" is (the lab and tests shrink it), and an abortable sleep. */
import type { Thresholds } from '../services/settings.ts';

/** Milliseconds of one configured "second" (the lab and tests shrink it), and the poll interval. */
export function timing(t: Thresholds): { unitMs: number; pollMs: number; windowS: number } {
  const unitMs = t.time_scale_ms ?? 1000;
  return { unitMs, pollMs: Math.max(50, Math.round(t.poll_seconds * unitMs)), windowS: t.metrics_window_seconds };
}

/** Re-exported: the abortable sleep lives beside the backoff (src/transient.ts). */
export { sleep } from '../transient.ts';
