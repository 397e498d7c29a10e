/**
 * The judge (pure): compares baseline and post-patch evidence against the test thresholds and
 * returns pass / fail / inconclusive with every check's numbers (design §4, DESIGN.md §4):
 *
 * - CPU delta (percentage points of busy CPU) ≤ `cpu_delta_percent`;
 * - memory delta (percentage points of used memory) ≤ `memory_delta_percent`;
 * - failed services (critical services that were active at baseline and are not now) ≤ `max_failed_services`.
 *
 * Metrics come from Prometheus; when Prometheus was unreachable the service checks come from Salt
 * and the metric checks are marked unavailable. Any check failing → fail. No check with evidence →
 * inconclusive. **A pass is never produced without evidence**: at least the service check must
 * have been measured on both sides.
 */

export interface Evidence {
  /** Where the numbers came from. */
  source: { metrics: 'prometheus' | null; services: 'prometheus' | 'salt' | null };
  cpuPercent: number | null;
  memoryPercent: number | null;
  /** Critical service → active? (null: unknown). */
  services: Record<string, boolean | null>;
  /** Package versions (before the patch: for a package rollback). */
  packages?: Record<string, string>;
  rebootRequired?: boolean | null;
  takenAt: string;
  notes: string[];
}

export interface JudgeThresholds {
  cpu_delta_percent: number;
  memory_delta_percent: number;
  max_failed_services: number;
}

export interface Check {
  check: 'cpu_delta_percent' | 'memory_delta_percent' | 'failed_services';
  baseline: number | null;
  post: number | null;
  delta: number | null;
  limit: number;
  ok: boolean | null;
  detail?: string;
}

export interface Verdict {
  verdict: 'pass' | 'fail' | 'inconclusive';
  reason: string | null;
  checks: Check[];
  failedServices: string[];
}

const round = (x: number) => Math.round(x * 100) / 100;

function metricCheck(check: Check['check'], baseline: number | null, post: number | null, limit: number): Check {
  if (baseline === null || post === null)
    return { check, baseline, post, delta: null, limit, ok: null, detail: 'no metric on one side' };
  const delta = round(post - baseline);
  return { check, baseline: round(baseline), post: round(post), delta, limit, ok: delta <= limit };
}

/**
 * The critical services' check: services active at baseline and not active now (a service already
 * down at baseline is not blamed; unknown on either side: not counted). `ok: null` when no service
 * was measured on both sides.
 * @example servicesCheck({ nginx: true }, { nginx: false }, 0) // { check: { ok: false, … }, failedServices: ['nginx'] }
 */
export function servicesCheck(
  baseline: Record<string, boolean | null>,
  post: Record<string, boolean | null>,
  limit: number,
): { check: Check; failedServices: string[] } {
  const measured = Object.keys(baseline).filter(
    (s) => baseline[s] !== null && post[s] !== undefined && post[s] !== null,
  );
  const failedServices = measured.filter((s) => baseline[s] === true && post[s] === false).sort();
  const check: Check =
    measured.length === 0
      ? {
          check: 'failed_services',
          baseline: null,
          post: null,
          delta: null,
          limit,
          ok: null,
          detail: 'no service status on one side',
        }
      : {
          check: 'failed_services',
          baseline: 0,
          post: failedServices.length,
          delta: failedServices.length,
          limit,
          ok: failedServices.length <= limit,
          ...(failedServices.length ? { detail: failedServices.join(', ') } : {}),
        };
  return { check, failedServices };
}

/**
 * @example
 * judge(baseline, post, { cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0 })
 */
export function judge(baseline: Evidence | null, post: Evidence | null, t: JudgeThresholds): Verdict {
  if (baseline === null || post === null) {
    return {
      verdict: 'inconclusive',
      reason: `no evidence: ${baseline === null ? 'baseline' : 'post-patch'} could not be collected`,
      checks: [],
      failedServices: [],
    };
  }
  const checks: Check[] = [
    metricCheck('cpu_delta_percent', baseline.cpuPercent, post.cpuPercent, t.cpu_delta_percent),
    metricCheck('memory_delta_percent', baseline.memoryPercent, post.memoryPercent, t.memory_delta_percent),
  ];
  const { check: serviceCheck, failedServices } = servicesCheck(
    baseline.services,
    post.services,
    t.max_failed_services,
  );
  checks.push(serviceCheck);

  const failing = checks.filter((c) => c.ok === false);
  if (failing.length > 0) {
    const reason = failing
      .map((c) =>
        c.check === 'failed_services'
          ? `service(s) failed after the patch: ${failedServices.join(', ')}`
          : `${c.check.replace('_percent', '')} ${c.delta} points > ${c.limit}`,
      )
      .join('; ');
    return { verdict: 'fail', reason, checks, failedServices };
  }
  if (serviceCheck.ok === null) {
    // Metrics alone never pass a patch: a broken service is what hurts production.
    return {
      verdict: 'inconclusive',
      reason: 'no evidence: the critical services could not be checked (Prometheus and Salt unavailable)',
      checks,
      failedServices,
    };
  }
  return { verdict: 'pass', reason: null, checks, failedServices };
}
