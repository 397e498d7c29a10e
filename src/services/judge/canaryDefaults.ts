/**
 * The window judge's configuration (see canary.ts): metric and policy types, the default policy,
 * the default metric list seeded from the test thresholds, and the query template.
 */

export type Direction = 'increase_bad' | 'decrease_bad' | 'both';

export interface AllowedEffect {
  value: number;
  /** 'absolute': the metric's own units; 'relative': a fraction of |median(baseline)| (0.5 = 50 %; 0 when that median is 0). */
  unit: 'absolute' | 'relative';
}

export interface CanaryMetric {
  /** Unique key, also the key of the windows passed to `judgeCanary`. */
  name: string;
  /**
   * PromQL for a range query. `$INSTANCE` is the instance label value (see `renderQuery`),
   * `$RANGE` the rate() range: the engine's query step, so that consecutive points do not overlap.
   */
  query: string;
  direction: Direction;
  allowedEffect: AllowedEffect;
  /** Share of the score (> 0). */
  weight: number;
  /** High/low fails the verdict alone. */
  critical: boolean;
  /** May be absent on a host (no textfile collector, no NIC but lo): no data is then not a reason for inconclusive — unless it vanished after the patch. */
  optional: boolean;
  /** Fewer samples than this in either window → no_data. */
  minSamples: number;
  /** Unit for the explanations ("points", "units", "errors/s"). */
  unit?: string;
}

export interface CanaryPolicy {
  /** Score ≥ this → pass (0–100). */
  passScore: number;
  /** Score ≥ this → marginal, below → fail. */
  marginalScore: number;
  /** Two-sided confidence of the shift's interval (0.95: each bad direction tested at 2.5 %). */
  confidence: number;
  /** Inflate the test's variance for serially correlated windows (see the module comment). */
  serialCorrelation: boolean;
}

/**
 * Pass at 95, marginal from 75: with the default weights any one non-critical metric beyond its
 * allowance (7–13 % of the weight) lands in marginal, more than a quarter of the measured weight
 * beyond its allowance fails. A 95 % interval; no
 * serial-correlation correction (see the module comment).
 */
export const DEFAULT_CANARY_POLICY: CanaryPolicy = {
  passScore: 95,
  marginalScore: 75,
  confidence: 0.95,
  serialCorrelation: false,
};

/** The serial-correlation correction never leaves a window fewer effective samples than this. */
export const MIN_EFFECTIVE_SAMPLES = 5;

/* ------------------------------------------------------------------ default metrics */

/** The limits of `orchestrator_config.test_thresholds` that seed the allowed effects. */
export interface SeedThresholds {
  cpu_delta_percent: number;
  memory_delta_percent: number;
  max_failed_services: number;
}

/**
 * The default metric list: design §9's queries (CPU, memory, services running / failed, reboot
 * required) with the node_exporter names of `src/services/prometheus/client.ts` and
 * `prometheus/rules/spm.rules.yml`, plus load and network errors. CPU and memory keep the hard
 * limits they had in the instant judge (critical, allowed effect = the threshold); failed units
 * are critical with no rise allowed; the rest score.
 *
 * @example
 * defaultCanaryMetrics({ cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0 })
 */
export function defaultCanaryMetrics(
  t: SeedThresholds = { cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0 },
): CanaryMetric[] {
  return [
    {
      name: 'cpu_busy_percent',
      unit: 'points',
      query: '100 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",instance="$INSTANCE"}[$RANGE])) * 100',
      direction: 'increase_bad',
      allowedEffect: { value: t.cpu_delta_percent, unit: 'absolute' },
      weight: 3,
      critical: true,
      optional: false,
      minSamples: 10,
    },
    {
      name: 'memory_used_percent',
      unit: 'points',
      query:
        '(1 - avg_over_time(node_memory_MemAvailable_bytes{instance="$INSTANCE"}[$RANGE]) / avg_over_time(node_memory_MemTotal_bytes{instance="$INSTANCE"}[$RANGE])) * 100',
      direction: 'increase_bad',
      allowedEffect: { value: t.memory_delta_percent, unit: 'absolute' },
      weight: 3,
      critical: true,
      optional: false,
      minSamples: 10,
    },
    {
      // Units failed at any scrape of the step (max_over_time), so a restart loop between two
      // points is still seen; `or … 0 *` keeps a 0 when none failed, as the recording rule does.
      name: 'failed_units',
      unit: 'units',
      query:
        'count by (instance) (max_over_time(node_systemd_unit_state{state="failed",instance="$INSTANCE"}[$RANGE]) == 1) or on (instance) (0 * group by (instance) (max_over_time(node_systemd_unit_state{instance="$INSTANCE"}[$RANGE])))',
      direction: 'increase_bad',
      allowedEffect: { value: t.max_failed_services, unit: 'absolute' },
      weight: 4,
      critical: true,
      optional: false,
      minSamples: 10,
    },
    {
      // Services active at every scrape of the step (min_over_time): a timer's short run is not a
      // new service, a flapping one is missing. Services by name: node_exporter's `type` label is
      // the service's Type= (simple, forking, …), not the unit type. `or … 0 *`: none running is 0.
      name: 'running_services',
      unit: 'services',
      query:
        'count by (instance) (min_over_time(node_systemd_unit_state{state="active",name=~".+[.]service",instance="$INSTANCE"}[$RANGE]) == 1) or on (instance) (0 * group by (instance) (max_over_time(node_systemd_unit_state{instance="$INSTANCE"}[$RANGE])))',
      direction: 'decrease_bad',
      allowedEffect: { value: 0, unit: 'absolute' },
      weight: 2,
      critical: false,
      optional: false,
      minSamples: 10,
    },
    {
      // Textfile collector metric: hosts without the script have none.
      name: 'reboot_required',
      unit: '',
      query: 'max_over_time(node_reboot_required{instance="$INSTANCE"}[$RANGE])',
      direction: 'increase_bad',
      allowedEffect: { value: 0, unit: 'absolute' },
      weight: 1,
      critical: false,
      optional: true,
      minSamples: 10,
    },
    {
      // Run queue per CPU, so that one allowed effect fits small and large hosts.
      name: 'load1_per_cpu',
      unit: 'per CPU',
      query:
        'avg_over_time(node_load1{instance="$INSTANCE"}[$RANGE]) / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle",instance="$INSTANCE"})',
      direction: 'increase_bad',
      allowedEffect: { value: 0.5, unit: 'absolute' },
      weight: 1,
      critical: false,
      optional: true,
      minSamples: 10,
    },
    {
      // Error rates may not rise at all; hosts with only `lo` have no series.
      name: 'network_errors_per_second',
      unit: 'errors/s',
      query:
        'sum by (instance) (rate(node_network_receive_errs_total{device!="lo",instance="$INSTANCE"}[$RANGE]) + rate(node_network_transmit_errs_total{device!="lo",instance="$INSTANCE"}[$RANGE]))',
      direction: 'increase_bad',
      allowedEffect: { value: 0, unit: 'absolute' },
      weight: 1,
      critical: false,
      optional: true,
      minSamples: 10,
    },
  ];
}

/**
 * A metric's query for one instance: `$INSTANCE` becomes the label value escaped for a PromQL
 * string, `$RANGE` the rate() range in seconds.
 *
 * @example renderQuery('up{instance="$INSTANCE"}', { instance: 'web01', rangeS: 60 }) // 'up{instance="web01"}'
 */
export function renderQuery(query: string, at: { instance: string; rangeS: number }): string {
  const escaped = at.instance.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return query.replaceAll('$INSTANCE', escaped).replaceAll('$RANGE', `${Math.max(1, Math.round(at.rangeS))}s`);
}
