/**
 * What the test engine's effects share: their dependencies, runtime configuration (read from
 * `orchestrator_config` at each step, validated, so an operator's change applies to the next step),
 * errata facts, evidence collection (Prometheus first, Salt when Prometheus cannot say), and the
 * "already scheduled?" lookup used to reconcile UYUNI actions after a crash.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Logger } from '../../logger.ts';
import { TransientError } from '../../machines/effects.ts';
import type { TargetOs } from '../../machines/patch.machine.ts';
import type { Db } from '../../persistence/db.ts';
import type { Evidence } from '../judge.ts';
import { instanceMatcher, PrometheusUnavailable, QUERIES, type PrometheusClient } from '../prometheus/client.ts';
import { SaltUnavailable, type SaltClient } from '../salt/client.ts';
import {
  loadClm, loadCriticalServices, loadMaintenanceWindows, loadRolloutPolicy, loadTestSystems, loadThresholds, type RolloutPolicy, type Thresholds,
} from '../settings.ts';
import { UyuniUnavailable, type UyuniClient, type UyuniSession } from '../uyuni/client.ts';

export { loadClm, loadCriticalServices, loadMaintenanceWindows, loadRolloutPolicy, loadTestSystems, loadThresholds, type RolloutPolicy, type Thresholds };

export interface EngineDeps {
  db: Db;
  logger: Logger;
  uyuni: UyuniClient;
  salt: SaltClient;
  /** Absent: no Prometheus configured (service checks through Salt only). */
  prometheus?: PrometheusClient | undefined;
}

// ---------------------------------------------------------------------------------------------
// Timing.

/** Milliseconds of one configured "second" (the lab and tests shrink it), and the poll interval. */
export function timing(t: Thresholds): { unitMs: number; pollMs: number; windowS: number } {
  const unitMs = t.time_scale_ms ?? 1000;
  return { unitMs, pollMs: Math.max(50, Math.round(t.poll_seconds * unitMs)), windowS: t.metrics_window_seconds };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    }, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Errata and systems.

const errataRow = z.object({ errata_id: z.string(), uyuni_errata_id: z.number().nullable(), packages: z.unknown().nullable(), target_os: z.string(), reboot_suggested: z.boolean(), affected_system_ids: z.array(z.number()) });
export type ErrataFacts = z.infer<typeof errataRow> & { packageNames: string[] };

/** The errata's UYUNI id and package names (fetched from UYUNI when the cache has none yet). */
export async function errataFacts(e: EngineDeps, errataId: string): Promise<ErrataFacts> {
  const row = await e.db.maybeOne(sql.type(errataRow)`SELECT errata_id, uyuni_errata_id, packages, target_os, reboot_suggested, affected_system_ids FROM errata_cache WHERE errata_id = ${errataId}`);
  if (!row) throw new Error(`errata ${errataId} is not in the errata cache (run a sync)`);
  if (row.uyuni_errata_id === null) throw new Error(`errata ${errataId} has no UYUNI id in the cache (run a sync)`);
  let pkgs = Array.isArray(row.packages) ? (row.packages as { name: string }[]) : null;
  if (pkgs === null) {
    const listed = await uyuniCall(e, (s) => s.listPackages(errataId));
    pkgs = listed.map((p) => ({ name: p.name, size: typeof p.size === 'string' ? Number(p.size) : p.size }));
    await e.db.query(sql.unsafe`UPDATE errata_cache SET packages = ${sql.jsonb(pkgs as never)} WHERE errata_id = ${errataId}`);
  }
  return { ...row, packageNames: [...new Set(pkgs.map((p) => p.name))].sort() };
}

/** A system's UYUNI id from its name (the sync's systems table). */
export async function systemIdOf(db: Db, name: string, given: number | null): Promise<number> {
  if (given !== null) return given;
  const id = await db.maybeOneFirst(sql.type(z.object({ system_id: z.number() }))`SELECT system_id FROM uyuni_systems WHERE name = ${name} ORDER BY role DESC LIMIT 1`);
  if (id === null) throw new Error(`system ${name} is unknown to UYUNI (not in any synced group): set system_id in orchestrator_config.test_systems or run a sync`);
  return id;
}

// ---------------------------------------------------------------------------------------------
// Calls with the error classes the machine understands (TransientError → pending_retry).

export async function uyuniCall<T>(e: EngineDeps, fn: (s: UyuniSession) => Promise<T>): Promise<T> {
  try {
    return await fn(await e.uyuni.shared());
  } catch (raw) {
    if (raw instanceof UyuniUnavailable) throw new TransientError(raw.message, { cause: raw });
    throw raw;
  }
}

export async function saltCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (raw) {
    if (raw instanceof SaltUnavailable) throw new TransientError(raw.message, { cause: raw });
    throw raw;
  }
}

// ---------------------------------------------------------------------------------------------
// Reconciling UYUNI actions.

/**
 * The action ids this orchestrator already knows for a system (recorded under other effect keys or
 * deployment rows). An action for the same advisory/type on that system that is not among them —
 * and newer than all of them (UYUNI action ids only grow) — was scheduled by the crashed run.
 */
export async function knownActionIds(db: Db, systemId: number): Promise<Set<number>> {
  const refs = await db.anyFirst(sql.type(z.object({ ref: z.unknown() }))`
    SELECT external_ref AS ref FROM effects WHERE external_ref @> ${sql.jsonb({ systemIds: [systemId] })}`);
  const rows = await db.anyFirst(sql.type(z.object({ action_id: z.number() }))`
    SELECT action_id FROM patch_deployment_systems WHERE system_id = ${systemId} AND action_id IS NOT NULL`);
  const ids = new Set<number>(rows);
  for (const r of refs) for (const id of ((r as { actionIds?: number[] }).actionIds ?? [])) ids.add(id);
  return ids;
}

/** Record the UYUNI action ids an effect scheduled, right after scheduling (before its result is recorded). */
export async function recordActions(db: Db, key: string, systemIds: number[], actionIds: number[]): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE effects SET external_ref = coalesce(external_ref, '{}'::jsonb) || ${sql.jsonb({ systemIds, actionIds })} WHERE key = ${key}`);
}

/** Action ids this effect key already recorded (it scheduled them before a crash). */
export async function ownActions(db: Db, key: string): Promise<number[]> {
  const ref = await db.maybeOneFirst(sql.type(z.object({ ref: z.unknown() }))`SELECT external_ref AS ref FROM effects WHERE key = ${key}`);
  return ((ref as { actionIds?: number[] } | null)?.actionIds ?? []).filter((x) => Number.isInteger(x));
}

/** An action for this system that matches and that no recorded effect or deployment owns. */
export async function findUnclaimedAction(e: EngineDeps, systemId: number, match: (ev: { action_type?: string | undefined; name?: string | undefined }) => boolean): Promise<number | null> {
  const known = await knownActionIds(e.db, systemId);
  const newestKnown = Math.max(0, ...known);
  const events = await uyuniCall(e, (s) => s.listSystemEvents(systemId));
  const mine = events.filter((ev) => match(ev) && !known.has(ev.id) && ev.id > newestKnown).map((ev) => ev.id);
  return mine.length > 0 ? Math.max(...mine) : null;
}

/**
 * Wait until every system has left "in progress" in every action; per-system outcome and message.
 * Three calls per action per poll, whatever the number of systems.
 */
export async function awaitActions(e: EngineDeps, actionIds: number[], systemIds: number[], pollMs: number, signal: AbortSignal): Promise<Map<number, { ok: boolean; message: string }>> {
  const outcome = new Map<number, { ok: boolean; message: string }>();
  const wanted = new Set(systemIds);
  for (;;) {
    for (const id of actionIds) {
      const r = await uyuniCall(e, (s) => s.actionSystems(id));
      for (const c of r.completed) if (wanted.has(c.server_id)) outcome.set(c.server_id, { ok: true, message: c.message ?? 'Completed' });
      for (const f of r.failed) if (wanted.has(f.server_id)) outcome.set(f.server_id, { ok: false, message: f.message ?? 'Failed' });
    }
    if ([...wanted].every((sid) => outcome.has(sid))) return outcome;
    await sleep(pollMs, signal);
  }
}

// ---------------------------------------------------------------------------------------------
// Evidence.

/**
 * Evidence for several systems with a constant number of calls: CPU and memory from Prometheus;
 * the critical services' state live from Salt `service.status` (Prometheus samples are up to a
 * scrape interval old — a service restored a second ago may still look failed there), and from
 * Prometheus' `node_systemd_unit_state` for what Salt could not answer. With neither, a service is
 * unknown (null) and the judge says inconclusive.
 */
export async function collectEvidence(e: EngineDeps, minions: string[], services: string[], windowS: number): Promise<Map<string, Evidence>> {
  const out = new Map<string, Evidence>();
  const takenAt = new Date().toISOString();
  for (const m of minions) out.set(m, { source: { metrics: null, services: null }, cpuPercent: null, memoryPercent: null, services: Object.fromEntries(services.map((s) => [s, null])), takenAt, notes: [] });
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

/** Installed versions of packages per minion (Salt `pkg.version`; "" = not installed). One call. */
export async function packageVersions(e: EngineDeps, minions: string[], packages: string[]): Promise<{ versions: Map<string, Record<string, string>>; missing: string[] }> {
  if (packages.length === 0) return { versions: new Map(minions.map((m) => [m, {}])), missing: [] };
  const r = await saltCall(() => e.salt.local<Record<string, string> | string>(minions, 'pkg.version', packages));
  const versions = new Map<string, Record<string, string>>();
  for (const [m, v] of Object.entries(r.returned)) versions.set(m, typeof v === 'string' ? { [packages[0]!]: v } : v);
  return { versions, missing: r.missing };
}

/** Reinstall recorded versions (a lower version is a downgrade), remove what was not installed. Only minions whose versions differ are touched. */
export async function restorePackages(e: EngineDeps, before: Map<string, Record<string, string>>): Promise<{ restored: string[]; failed: { minion: string; message: string }[] }> {
  const minions = [...before.keys()];
  const names = [...new Set([...before.values()].flatMap((v) => Object.keys(v)))].sort();
  const { versions: now, missing } = await packageVersions(e, minions, names);
  const failed = missing.map((m) => ({ minion: m, message: 'not responding' }));
  const restored: string[] = [];
  // Group minions by the exact change they need: one Salt call per distinct change.
  const plans = new Map<string, { install: Record<string, string>[]; remove: string[]; minions: string[] }>();
  for (const m of minions) {
    if (missing.includes(m)) continue;
    const want = before.get(m)!;
    const have = now.get(m) ?? {};
    const install = Object.entries(want).filter(([n, v]) => v !== '' && have[n] !== v).map(([n, v]) => ({ [n]: v }));
    const remove = Object.entries(want).filter(([n, v]) => v === '' && (have[n] ?? '') !== '').map(([n]) => n);
    if (install.length === 0 && remove.length === 0) {
      restored.push(m);
      continue;
    }
    const k = JSON.stringify([install, remove]);
    const p = plans.get(k) ?? { install, remove, minions: [] };
    p.minions.push(m);
    plans.set(k, p);
  }
  for (const p of plans.values()) {
    if (p.install.length > 0) await saltCall(() => e.salt.local(p.minions, 'pkg.install', [], { pkgs: p.install }));
    if (p.remove.length > 0) await saltCall(() => e.salt.local(p.minions, 'pkg.remove', [], { pkgs: p.remove }));
  }
  if (plans.size > 0) {
    const check = await packageVersions(e, [...plans.values()].flatMap((p) => p.minions), names);
    for (const p of plans.values()) for (const m of p.minions) {
      const want = before.get(m)!;
      const have = check.versions.get(m);
      const wrong = have === undefined ? ['(no answer)'] : Object.entries(want).filter(([n, v]) => (have[n] ?? '') !== v).map(([n]) => n);
      if (wrong.length === 0) restored.push(m);
      else failed.push({ minion: m, message: `packages not restored: ${wrong.join(', ')}` });
    }
  }
  return { restored, failed };
}

/** Does the host need a reboot? Salt's check (Debian/Ubuntu flag file, RHEL needs-restarting). One call. */
export async function rebootRequired(e: EngineDeps, minions: string[]): Promise<{ required: Map<string, boolean>; missing: string[] }> {
  const cmd = 'if [ -f /var/run/reboot-required ] || { command -v needs-restarting >/dev/null 2>&1 && ! needs-restarting -r >/dev/null 2>&1; }; then echo yes; else echo no; fi';
  const r = await saltCall(() => e.salt.local<string>(minions, 'cmd.run', [cmd], { python_shell: true }));
  return { required: new Map(Object.entries(r.returned).map(([m, out]) => [m, String(out).trim() === 'yes'])), missing: r.missing };
}

export const servicesFor = async (db: Db, os: TargetOs | string): Promise<string[]> => (await loadCriticalServices(db))[os] ?? [];
