/**
 * UYUNI sync: groups with the configured prefixes → their systems → relevant errata per system →
 * CVEs only for Security Advisories not already cached → one transaction that inserts new errata
 * and updates known ones (never their description). One session (one login, one logout) per run,
 * bounded concurrency, one run at a time (a second trigger gets the running run's progress). A run
 * that fails half-way changes nothing in the cache and records its error.
 */
import { coerceError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../persistence/db.ts';
import {
  existingErrata,
  finishSyncRun,
  insertErrata,
  replaceSystems,
  startSyncRun,
  updateErrata,
  type SyncedErrata,
} from '../../persistence/sql/errata.ts';
import type { ErrataOverview, UyuniClient } from './client.ts';

/** OS of a system group from its name (`test-ubuntu-2404` → ubuntu); null when it names none. */
export function osFromGroup(name: string): 'ubuntu' | 'debian' | 'rhel' | null {
  const n = name.toLowerCase();
  if (n.includes('ubuntu')) return 'ubuntu';
  if (n.includes('debian')) return 'debian';
  if (/rhel|redhat|red-hat|centos|rocky|alma|oracle/.test(n)) return 'rhel';
  return null;
}

export interface SyncProgress {
  phase: 'groups' | 'systems' | 'errata' | 'cves' | 'saving' | 'done';
  groups: number;
  systems: number;
  errata: number;
}

export interface SyncReport {
  runId: number;
  status: 'completed' | 'failed';
  durationMs: number;
  calls: Record<string, number>;
  logins: number;
  logouts: number;
  groups: number;
  systems: number;
  errata: { total: number; new: number; updated: number; unchanged: number };
  /** Errata whose version (update date) changed: failed/rejected entries of them re-queue. */
  versionChanged: string[];
  newErrata: string[];
  skippedGroups: string[];
  error: string | null;
}

export class SyncAlreadyRunning extends Error {
  readonly progress: SyncProgress | null;
  constructor(progress: SyncProgress | null) {
    super('a sync is already running');
    this.progress = progress;
  }
}

export class UyuniSync {
  private progress: SyncProgress | null = null;
  private readonly o: { db: Db; logger: Logger; uyuni: UyuniClient; prefixes: string[]; testPrefix: string };
  /** @param opts.testPrefix groups starting with it hold test systems (default `test-`); the others production systems. */
  constructor(opts: { db: Db; logger: Logger; uyuni: UyuniClient; prefixes: string[]; testPrefix?: string }) {
    this.o = { ...opts, testPrefix: opts.testPrefix ?? 'test-' };
  }

  get running(): SyncProgress | null {
    return this.progress;
  }

  /**
   * @param opts.after runs after a completed sync, inside the sync's UYUNI session (the risk
   *   profiling of the errata it queues reuses it: one login and one logout per cycle); its
   *   failure is logged and does not fail the sync.
   */
  async run(
    trigger: 'startup' | 'schedule' | 'api' | 'lab',
    opts: { after?: (report: SyncReport) => Promise<void> } = {},
  ): Promise<SyncReport> {
    if (this.progress) throw new SyncAlreadyRunning(this.progress);
    const progress: SyncProgress = { phase: 'groups', groups: 0, systems: 0, errata: 0 };
    this.progress = progress;
    try {
      const started = await startSyncRun(this.o.db, trigger);
      if (started === null) throw new SyncAlreadyRunning(null);
      return await this.runRecorded(started.id, progress, opts.after);
    } finally {
      this.progress = null;
    }
  }

  private async runRecorded(
    runId: number,
    progress: SyncProgress,
    after?: (report: SyncReport) => Promise<void>,
  ): Promise<SyncReport> {
    const { db, uyuni, logger } = this.o;
    const t0 = performance.now();
    const before = { calls: { ...uyuni.stats.calls }, logins: uyuni.stats.logins, logouts: uyuni.stats.logouts };
    const skippedGroups: string[] = [];
    let report: Omit<SyncReport, 'runId' | 'status' | 'durationMs' | 'calls' | 'logins' | 'logouts' | 'error'> = {
      groups: 0,
      systems: 0,
      errata: { total: 0, new: 0, updated: 0, unchanged: 0 },
      versionChanged: [],
      newErrata: [],
      skippedGroups,
    };
    let error: string | null = null;
    const summary = (): SyncReport => {
      const calls: Record<string, number> = {};
      for (const [m, n] of Object.entries(uyuni.stats.calls))
        if (n - (before.calls[m] ?? 0) > 0) calls[m] = n - (before.calls[m] ?? 0);
      return {
        runId,
        status: error === null ? 'completed' : 'failed',
        durationMs: Math.round(performance.now() - t0),
        calls,
        logins: uyuni.stats.logins - before.logins,
        logouts: uyuni.stats.logouts - before.logouts,
        error,
        ...report,
      };
    };
    try {
      // One session for the whole cycle: collecting, then `after` (its nested withSession reuses it).
      await uyuni.withSession(async () => {
        const collected = await uyuni.withSession(async (s) => {
          const groups = (await s.listAllGroups()).filter((g) => this.o.prefixes.some((p) => g.name.startsWith(p)));
          progress.groups = groups.length;
          progress.phase = 'systems';
          const byGroup = await Promise.all(
            groups.map(async (g) => ({ g, os: osFromGroup(g.name), systems: await s.listSystemsMinimal(g.name) })),
          );
          const systems = byGroup.flatMap(({ g, os, systems }) => {
            if (os === null) {
              skippedGroups.push(g.name);
              return [];
            }
            return systems.map((sys) => ({
              id: sys.id,
              os,
              name: sys.name,
              group: g.name,
              lastCheckin: sys.last_checkin instanceof Date ? sys.last_checkin : null,
            }));
          });
          progress.systems = systems.length;
          progress.phase = 'errata';
          const found = new Map<string, { o: ErrataOverview; os: string; systems: number[] }>();
          await Promise.all(
            systems.map(async (sys) => {
              for (const o of await s.getRelevantErrata(sys.id)) {
                const e = found.get(o.advisory_name);
                if (e) e.systems.push(sys.id);
                else found.set(o.advisory_name, { o, os: sys.os, systems: [sys.id] });
              }
              progress.errata = found.size;
            }),
          );
          const known = new Map((await existingErrata(db, [...found.keys()])).map((r) => [r.errata_id, r]));
          progress.phase = 'cves';
          // Incremental: CVEs only for Security Advisories the cache does not know yet.
          const needCves = [...found.values()].filter(
            (e) => !known.has(e.o.advisory_name) && e.o.advisory_type === 'Security Advisory',
          );
          const cves = new Map<string, string[]>();
          await Promise.all(
            needCves.map(async (e) => cves.set(e.o.advisory_name, await s.listCves(e.o.advisory_name))),
          );
          return { found, known, cves, groups: groups.length, systems: systems.length, systemRows: systems };
        });

        progress.phase = 'saving';
        const rows: SyncedErrata[] = [...collected.found.values()].map(({ o, os, systems }) => ({
          errataId: o.advisory_name,
          uyuniId: o.id,
          synopsis: o.advisory_synopsis ?? '',
          advisoryType: o.advisory_type,
          advisoryStatus: o.advisory_status ?? null,
          targetOs: os,
          systemIds: [...new Set(systems)].sort((a, b) => a - b),
          issueDate: o.issue_date ?? null,
          updateDate: o.update_date ?? o.date ?? null,
          version: o.update_date ?? o.date ?? null,
          rebootSuggested: o.reboot === true,
          cves: collected.cves.get(o.advisory_name) ?? (o.advisory_type === 'Security Advisory' ? null : []),
        }));
        const fresh = rows.filter((r) => !collected.known.has(r.errataId));
        const changed = rows.filter((r) => {
          const k = collected.known.get(r.errataId);
          return (
            k !== undefined &&
            (k.errata_version !== r.version ||
              k.synopsis !== r.synopsis ||
              k.advisory_status !== r.advisoryStatus ||
              k.affected_system_ids.join() !== r.systemIds.join())
          );
        });
        await db.transaction(async (tx) => {
          await insertErrata(tx, fresh);
          await updateErrata(tx, changed);
          await replaceSystems(
            tx,
            collected.systemRows.map((x) => ({
              id: x.id,
              name: x.name,
              group: x.group,
              os: x.os,
              lastCheckin: x.lastCheckin,
              role: x.group.startsWith(this.o.testPrefix) ? ('test' as const) : ('prod' as const),
            })),
          );
        });
        report = {
          groups: collected.groups,
          systems: collected.systems,
          errata: {
            total: rows.length,
            new: fresh.length,
            updated: changed.length,
            unchanged: rows.length - fresh.length - changed.length,
          },
          versionChanged: changed
            .filter((r) => collected.known.get(r.errataId)!.errata_version !== r.version)
            .map((r) => r.errataId),
          newErrata: fresh.map((r) => r.errataId),
          skippedGroups,
        };
        progress.phase = 'done';
        if (after)
          await after(summary()).catch((raw) =>
            logger.error({ err: coerceError(raw).message, runId }, 'after-sync work failed'),
          );
      });
    } catch (raw) {
      error = coerceError(raw).message;
      logger.error({ err: error, runId }, 'UYUNI sync failed; the errata cache is unchanged');
    }
    const full = summary();
    const { runId: _r, status: _s, error: _e, ...stats } = full;
    await finishSyncRun(db, runId, full.status, stats, error);
    return full;
  }
}
