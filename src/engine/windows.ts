/**
 * The window judge's evidence from Prometheus (issue 13): per configured metric, the samples of a
 * range query over a window — the baseline before the patch, the post window after stabilisation —
 * at the policy's step (also the `$RANGE` of rate(), so that consecutive points do not overlap).
 *
 * - **Baseline**: the `baseline_window_seconds` before now, but never reaching back before the
 *   last rollback of another test on the same system (its samples show a state that is gone:
 *   the other patch's effects, the rollback itself). The step waits, polling once a step,
 *   until every required (non-optional) metric has its `min_samples` there — a system Prometheus
 *   only just started to scrape has none — and says so in its phase row
 *   (`patch_test_phases.evidence.waiting_for_samples: "n/N"`). After `baseline_wait_seconds` (at
 *   most 80 % of the step timeout) it gives up for now with a transient error: the machine retries
 *   the step later; the patch is never applied on a baseline of nothing.
 * - **Post window**: from the start of validation (the end of the stabilise / settle wait) for
 *   `post_window_seconds` (at most 80 % of the step timeout); validation sleeps until it is over.
 *   The start is written in the phase row at the first run, so a re-run after a crash judges the
 *   same window.
 *
 * Windows are in configured seconds: `test_thresholds.time_scale_ms` (the lab, tests) shrinks them
 * like every other wait; the queries then use the real step.
 *
 * `prometheusScrapes(prometheus, instance)` answers whether Prometheus scrapes a system (`up == 1`)
 * — for a lane, before it starts a test there.
 */
import { TransientError } from '../machines/effects.ts';
import { notePhaseProgress, phaseEvidence } from '../persistence/sql/phases.ts';
import { renderQuery, type CanaryMetric } from '../services/judge/canary.ts';
import { PrometheusUnavailable, promString, type PrometheusClient } from '../services/prometheus/client.ts';
import type { CanaryPolicyConfig, Thresholds } from '../services/settings.ts';
import type { EngineDeps } from './deps.ts';
import { sleep, timing } from './timing.ts';

/** The windows in real milliseconds. */
export interface WindowTiming {
  baselineMs: number;
  postMs: number;
  stepMs: number;
  baselineWaitMs: number;
  /** Why a window is shorter than configured (the step timeout), if it is. */
  notes: string[];
}

/**
 * The policy's windows in real time (time-scaled), kept inside the step timeout.
 * @example windowTiming(thresholds, policy) // { baselineMs: 900_000, postMs: 900_000, stepMs: 60_000, baselineWaitMs: 1_200_000, notes: [] }
 */
export function windowTiming(t: Thresholds, p: CanaryPolicyConfig): WindowTiming {
  const { unitMs } = timing(t);
  const room = Math.floor(t.step_timeout_seconds * 0.8);
  const notes: string[] = [];
  if (p.post_window_seconds > room)
    notes.push(`post window shortened to ${room} s (80 % of step_timeout_seconds ${t.step_timeout_seconds})`);
  return {
    baselineMs: p.baseline_window_seconds * unitMs,
    postMs: Math.min(p.post_window_seconds, room) * unitMs,
    stepMs: p.step_seconds * unitMs,
    baselineWaitMs: Math.min(p.baseline_wait_seconds, room) * unitMs,
    notes,
  };
}

/** The samples of one window: what was asked and what Prometheus had. */
export interface SampledWindow {
  /** The first and last evaluation point (ISO), the step and the rate() range (real seconds). */
  start: string;
  end: string;
  step_seconds: number;
  range_seconds: number;
  /** Per metric, the values at the evaluation points that had one (NaN and gaps dropped). */
  samples: Record<string, number[]>;
  notes: string[];
}

/** The stored baseline window: with the metrics it sampled, so validation asks the same queries. */
export interface BaselineWindow extends SampledWindow {
  metrics: CanaryMetric[];
  /** How long the baseline waited for samples (real seconds), and the sample counts it waited from. */
  waited_seconds: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One window of every metric for one instance, ending at `endMs`: floor(length / step) points.
 * @example const w = await sampleWindow(prom, metrics, 'web01', Date.now(), 900_000, 60_000);
 */
export async function sampleWindow(
  prom: PrometheusClient,
  metrics: readonly CanaryMetric[],
  instance: string,
  endMs: number,
  lengthMs: number,
  stepMs: number,
): Promise<SampledWindow> {
  const stepS = stepMs / 1000;
  const n = Math.max(1, Math.floor(lengthMs / stepMs));
  const start = endMs - (n - 1) * stepMs;
  const notes: string[] = [];
  const series = await Promise.all(
    metrics.map((m) =>
      prom.range(renderQuery(m.query, { instance, rangeS: stepS }), new Date(start), new Date(endMs), stepS),
    ),
  );
  const samples: Record<string, number[]> = {};
  metrics.forEach((m, i) => {
    const all = series[i]!;
    const mine = all.find((s) => s.labels.instance === instance) ?? (all.length === 1 ? all[0] : undefined);
    if (all.length > 1) notes.push(`${m.name}: the query returned ${all.length} series; aggregate it by instance`);
    samples[m.name] = (mine?.values ?? []).map(([, v]) => v).filter(Number.isFinite);
  });
  return {
    start: iso(start),
    end: iso(endMs),
    step_seconds: stepS,
    range_seconds: Math.max(1, Math.round(stepS)),
    samples,
    notes,
  };
}

const unavailable = (raw: unknown): never => {
  if (raw instanceof PrometheusUnavailable) throw new TransientError(raw.message, { cause: raw });
  throw raw;
};

/**
 * The required metrics that do not yet have their samples in a window, weakest first.
 * @example shortOf(metrics, w) // [{ name: 'cpu_busy_percent', have: 3, need: 10 }]
 */
export function shortOf(
  metrics: readonly CanaryMetric[],
  w: SampledWindow,
): { name: string; have: number; need: number }[] {
  return metrics
    .filter((m) => !m.optional)
    .map((m) => ({ name: m.name, have: w.samples[m.name]?.length ?? 0, need: m.minSamples }))
    .filter((x) => x.have < x.need)
    .sort((a, b) => a.have / a.need - b.have / b.need);
}

/**
 * Whether Prometheus scrapes a system now (`up{instance=…} == 1`); true when no Prometheus is
 * configured (nothing to wait for). Never throws: an unreachable Prometheus is a reason.
 * @example
 * const r = await prometheusScrapes(prometheus, 'ubuntu-2404-test-01.lab');
 * if (!r.scraped) pause(r.reason); // 'Prometheus does not scrape ubuntu-2404-test-01.lab (up == 0)'
 */
export async function prometheusScrapes(
  prometheus: PrometheusClient | undefined,
  instance: string,
): Promise<{ scraped: boolean; reason: string | null }> {
  if (!prometheus) return { scraped: true, reason: null };
  try {
    const up = await prometheus.vector(`up{instance=${promString(instance)}}`);
    if (up.length === 0) return { scraped: false, reason: `Prometheus does not scrape ${instance} (no up series)` };
    if (!up.some((s) => s.value === 1))
      return { scraped: false, reason: `Prometheus does not scrape ${instance} (up == 0)` };
    return { scraped: true, reason: null };
  } catch (raw) {
    return { scraped: false, reason: `Prometheus: ${(raw as Error).message}` };
  }
}

/**
 * The baseline window, once Prometheus has enough samples for every required metric (see the
 * module comment); the progress is written into the phase row while it waits.
 * @example const w = await baselineWindow(e, { key, instance: 'web01', metrics, timing }, signal);
 */
export async function baselineWindow(
  e: EngineDeps & { prometheus: PrometheusClient },
  a: { key: string; instance: string; metrics: CanaryMetric[]; timing: WindowTiming; notBefore?: Date | null },
  signal?: AbortSignal,
): Promise<BaselineWindow> {
  const started = Date.now();
  let noted = '';
  const from = a.notBefore ? a.notBefore.getTime() : -Infinity;
  const fromNote = a.notBefore
    ? [`the baseline starts after the last rollback on this system (${a.notBefore.toISOString()})`]
    : [];
  for (;;) {
    const now = Date.now();
    const length = Math.min(a.timing.baselineMs, now - from);
    const w =
      length < a.timing.stepMs
        ? {
            start: iso(now),
            end: iso(now),
            step_seconds: a.timing.stepMs / 1000,
            range_seconds: Math.max(1, Math.round(a.timing.stepMs / 1000)),
            samples: {},
            notes: [],
          }
        : await sampleWindow(e.prometheus, a.metrics, a.instance, now, length, a.timing.stepMs).catch(unavailable);
    const short = shortOf(a.metrics, w);
    const waited = Math.round((Date.now() - started) / 100) / 10;
    if (short.length === 0)
      return { ...w, notes: [...a.timing.notes, ...fromNote, ...w.notes], metrics: a.metrics, waited_seconds: waited };
    const weakest = short[0]!;
    const progress = {
      waiting_for_samples: `${weakest.have}/${weakest.need}`,
      short: Object.fromEntries(short.map((s) => [s.name, `${s.have}/${s.need}`])),
      waiting_since: iso(started),
      ...(a.notBefore ? { window_from: a.notBefore.toISOString() } : {}),
    };
    const text = JSON.stringify(progress.short);
    if (text !== noted) {
      const scrape = await prometheusScrapes(e.prometheus, a.instance);
      await notePhaseProgress(e.db, a.key, 'baseline', {
        ...progress,
        ...(scrape.reason ? { scrape: scrape.reason } : {}),
      });
      noted = text;
    }
    if (Date.now() - started >= a.timing.baselineWaitMs) {
      const list = short.map((s) => `${s.name} ${s.have}/${s.need}`).join(', ');
      throw new TransientError(`waiting for Prometheus: not enough baseline samples after ${waited} s (${list})`);
    }
    await sleep(a.timing.stepMs, signal);
  }
}

/**
 * The post window: from the first start of this validation for the post window's length; sleeps
 * until it is over (plus a little for the last scrape to land), then samples it.
 * @example const w = await postWindow(e, { key, instance: 'web01', metrics, timing }, signal);
 */
export async function postWindow(
  e: EngineDeps & { prometheus: PrometheusClient },
  a: { key: string; instance: string; metrics: CanaryMetric[]; timing: WindowTiming },
  signal?: AbortSignal,
): Promise<SampledWindow> {
  const prev = (await phaseEvidence(e.db, a.key, 'validate')) as { post_window?: { start?: string } } | null;
  const known = prev?.post_window?.start ? Date.parse(prev.post_window.start) : Number.NaN;
  const startMs = Number.isFinite(known) ? known : Date.now();
  const endMs = startMs + a.timing.postMs;
  if (!Number.isFinite(known)) {
    await notePhaseProgress(e.db, a.key, 'validate', { post_window: { start: iso(startMs), end: iso(endMs) } });
  }
  const readyAt = endMs + Math.min(a.timing.stepMs, 5000);
  if (Date.now() < readyAt) await sleep(readyAt - Date.now(), signal);
  const w = await sampleWindow(e.prometheus, a.metrics, a.instance, endMs, a.timing.postMs, a.timing.stepMs).catch(
    unavailable,
  );
  return { ...w, notes: [...a.timing.notes, ...w.notes] };
}
