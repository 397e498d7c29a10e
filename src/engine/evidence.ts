/** Evidence of a system's health (CPU, memory, critical services) for the judge, and which services are critical. */
import type { TargetOs } from '../machines/patch.machine.ts';
import type { Db } from '../persistence/db.ts';
import type { Evidence } from '../services/judge.ts';
import { instanceMatcher, PrometheusUnavailable, QUERIES } from '../services/prometheus/client.ts';
import type { TeamChecks } from '../services/judge/testJudge.ts';
import { SaltUnavailable } from '../services/salt/client.ts';
import { parseHealthcheckReturn } from '../services/salt/states.ts';
import { loadCriticalServices, loadTeamHealthchecks } from '../services/settings.ts';
import { saltCall, type EngineDeps } from './deps.ts';

/**
 * The teams' application checks on one system: `state.apply spm.healthcheck` through the Salt
 * API, each `spm_healthcheck_<name>` state's result (salt-states/README.md). Null when switched
 * off; `{ error }` when they could not run (the SLS missing on the master or failing to render,
 * the minion not answering) — the judge then says inconclusive, never pass.
 * @throws TransientError when the Salt API is unreachable (the validation is retried)
 */
export async function teamHealthchecks(e: EngineDeps, minion: string): Promise<TeamChecks | null> {
  const policy = await loadTeamHealthchecks(e.db);
  if (!policy.enabled) return null;
  const r = await saltCall(() => e.salt.local<unknown>([minion], 'state.apply', [policy.sls]));
  if (!(minion in r.returned)) return { error: `${minion} did not answer state.apply ${policy.sls}` };
  try {
    return { checks: parseHealthcheckReturn(r.returned[minion]) };
  } catch (raw) {
    return { error: `state.apply ${policy.sls} on ${minion}: ${(raw as Error).message}` };
  }
}

/**
 * Evidence for several systems with a constant number of calls: CPU and memory from Prometheus;
 * the critical services' state live from Salt `service.status` (Prometheus samples are up to a
 * scrape interval old — a service restored a second ago may still look failed there), and from
 * Prometheus' `node_systemd_unit_state` for what Salt could not answer. With neither, a service is
 * unknown (null) and the judge says inconclusive.
 */
export async function collectEvidence(
  e: EngineDeps,
  minions: string[],
  services: string[],
  windowS: number,
): Promise<Map<string, Evidence>> {
  const out = new Map<string, Evidence>();
  const takenAt = new Date().toISOString();
  for (const m of minions)
    out.set(m, {
      source: { metrics: null, services: null },
      cpuPercent: null,
      memoryPercent: null,
      services: Object.fromEntries(services.map((s) => [s, null])),
      takenAt,
      notes: [],
    });
  if (minions.length === 0) return out;

  if (services.length > 0) {
    try {
      for (const s of services) {
        const r = await e.salt.local<boolean>(minions, 'service.status', [s]);
        for (const [m, active] of Object.entries(r.returned)) {
          const ev = out.get(m);
          if (!ev) continue;
          ev.services[s] = active === true;
          ev.source.services = 'salt';
        }
        for (const m of r.missing) out.get(m)?.notes.push(`Salt: ${m} did not answer service.status ${s}`);
      }
    } catch (raw) {
      if (!(raw instanceof SaltUnavailable)) throw raw;
      for (const ev of out.values()) ev.notes.push(`Salt unavailable: ${raw.message}`);
      e.logger.warn({ err: raw.message }, 'Salt unavailable: service states from Prometheus only');
    }
  }

  if (!e.prometheus) {
    for (const ev of out.values()) ev.notes.push('Prometheus not configured');
    return out;
  }
  const sel = instanceMatcher(minions);
  try {
    const [up, cpu, mem, units] = await Promise.all([
      e.prometheus.vector(QUERIES.up(sel)),
      e.prometheus.vector(QUERIES.cpuPercent(sel, windowS)),
      e.prometheus.vector(QUERIES.memoryPercent(sel)),
      e.prometheus.vector(QUERIES.activeUnits(sel)),
    ]);
    const upNow = new Set(up.filter((x) => x.value === 1).map((x) => x.labels.instance));
    for (const [m, ev] of out) {
      if (!upNow.has(m)) {
        ev.notes.push('Prometheus: target down or not scraped');
        continue;
      }
      const c = cpu.find((x) => x.labels.instance === m)?.value;
      const x = mem.find((y) => y.labels.instance === m)?.value;
      ev.cpuPercent = c === undefined || Number.isNaN(c) ? null : Math.round(c * 100) / 100;
      ev.memoryPercent = x === undefined || Number.isNaN(x) ? null : Math.round(x * 100) / 100;
      if (ev.cpuPercent !== null || ev.memoryPercent !== null) ev.source.metrics = 'prometheus';
      const mine = units.filter((u) => u.labels.instance === m);
      for (const s of services) {
        if (ev.services[s] !== null) continue;
        const u = mine.find((y) => y.labels.name === s);
        if (u === undefined) continue;
        ev.services[s] = u.value === 1;
        ev.source.services = ev.source.services ?? 'prometheus';
      }
    }
  } catch (raw) {
    if (!(raw instanceof PrometheusUnavailable)) throw raw;
    for (const ev of out.values()) ev.notes.push(`Prometheus unavailable: ${raw.message}`);
    e.logger.warn({ err: raw.message }, 'Prometheus unavailable: no CPU/memory evidence');
  }
  return out;
}

export const servicesFor = async (db: Db, os: TargetOs | string): Promise<string[]> =>
  (await loadCriticalServices(db))[os] ?? [];
