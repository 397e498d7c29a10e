-- The window judge (issue 13): the metrics validation compares before and after the patch, and its policy.
--
-- canary_metrics: one entry per metric — a PromQL range query ($INSTANCE: the system's instance label,
-- $RANGE: the rate() range, the query step), the bad direction, the allowed effect (absolute, in the
-- metric's units, or relative to the baseline median), its weight in the score, whether it is critical
-- (beyond its allowance it fails the test alone) or optional (absent on some hosts: no data is then
-- not a reason for inconclusive, unless it vanished after the patch), and the samples a window needs.
-- Seeded with design §9's queries (CPU, memory, failed / running services, reboot required) plus load
-- and network errors, as defaultCanaryMetrics() in src/services/judge/canary.ts; a team adds its own.
-- CPU and memory keep the instant judge's limits (test_thresholds: 20 / 15 points) as allowed effects;
-- from now on these rows, not test_thresholds, set them.
--
-- canary_policy: pass and marginal scores, the interval's confidence, the serial-correlation
-- correction, and the windows in seconds (scaled by test_thresholds.time_scale_ms in the lab):
-- 15 minutes of baseline before the patch and of post window after stabilisation at a 60 s step,
-- and how long the baseline waits for Prometheus to have its samples before the step is retried.
INSERT INTO orchestrator_config (key, value, description) VALUES
('canary_metrics', '[
  {
    "name": "cpu_busy_percent",
    "query": "100 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\",instance=\"$INSTANCE\"}[$RANGE])) * 100",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 20,
      "unit": "absolute"
    },
    "weight": 3,
    "critical": true,
    "optional": false,
    "min_samples": 10,
    "unit": "points"
  },
  {
    "name": "memory_used_percent",
    "query": "(1 - avg_over_time(node_memory_MemAvailable_bytes{instance=\"$INSTANCE\"}[$RANGE]) / avg_over_time(node_memory_MemTotal_bytes{instance=\"$INSTANCE\"}[$RANGE])) * 100",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 15,
      "unit": "absolute"
    },
    "weight": 3,
    "critical": true,
    "optional": false,
    "min_samples": 10,
    "unit": "points"
  },
  {
    "name": "failed_units",
    "query": "count by (instance) (max_over_time(node_systemd_unit_state{state=\"failed\",instance=\"$INSTANCE\"}[$RANGE]) == 1) or on (instance) (0 * group by (instance) (max_over_time(node_systemd_unit_state{instance=\"$INSTANCE\"}[$RANGE])))",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 0,
      "unit": "absolute"
    },
    "weight": 4,
    "critical": true,
    "optional": false,
    "min_samples": 10,
    "unit": "units"
  },
  {
    "name": "running_services",
    "query": "count by (instance) (min_over_time(node_systemd_unit_state{state=\"active\",name=~\".+[.]service\",instance=\"$INSTANCE\"}[$RANGE]) == 1) or on (instance) (0 * group by (instance) (max_over_time(node_systemd_unit_state{instance=\"$INSTANCE\"}[$RANGE])))",
    "direction": "decrease_bad",
    "allowed_effect": {
      "value": 0,
      "unit": "absolute"
    },
    "weight": 2,
    "critical": false,
    "optional": false,
    "min_samples": 10,
    "unit": "services"
  },
  {
    "name": "reboot_required",
    "query": "max_over_time(node_reboot_required{instance=\"$INSTANCE\"}[$RANGE])",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 0,
      "unit": "absolute"
    },
    "weight": 1,
    "critical": false,
    "optional": true,
    "min_samples": 10,
    "unit": ""
  },
  {
    "name": "load1_per_cpu",
    "query": "avg_over_time(node_load1{instance=\"$INSTANCE\"}[$RANGE]) / on (instance) count by (instance) (node_cpu_seconds_total{mode=\"idle\",instance=\"$INSTANCE\"})",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 0.5,
      "unit": "absolute"
    },
    "weight": 1,
    "critical": false,
    "optional": true,
    "min_samples": 10,
    "unit": "per CPU"
  },
  {
    "name": "network_errors_per_second",
    "query": "sum by (instance) (rate(node_network_receive_errs_total{device!=\"lo\",instance=\"$INSTANCE\"}[$RANGE]) + rate(node_network_transmit_errs_total{device!=\"lo\",instance=\"$INSTANCE\"}[$RANGE]))",
    "direction": "increase_bad",
    "allowed_effect": {
      "value": 0,
      "unit": "absolute"
    },
    "weight": 1,
    "critical": false,
    "optional": true,
    "min_samples": 10,
    "unit": "errors/s"
  }
]', 'Metrics the window judge compares (issue 13)'),
('canary_policy', '{
  "pass_score": 95,
  "marginal_score": 75,
  "confidence": 0.95,
  "serial_correlation": false,
  "baseline_window_seconds": 900,
  "post_window_seconds": 900,
  "step_seconds": 60,
  "baseline_wait_seconds": 1200
}', 'Window judge: scores, confidence and windows (issue 13)')
ON CONFLICT (key) DO NOTHING;
