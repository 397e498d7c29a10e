/**
 * Queueing errata: used by `POST /queue` and by the post-sync auto-queue policy. Each errata gets
 * its risk profile (packages fetched from UYUNI on demand) and one new actor per errata × OS, created
 * under the approval policy (`orchestrator_config.approval_policy`: distinct approvers by severity
 * and risk, separation of duties, approval age); an errata that already has a live entry is refused
 * with `already_queued`.
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ActorHost, EventMeta } from '../machines/host.ts';
import type { Settings, TargetOs } from '../machines/patch.machine.ts';
import type { Db } from '../persistence/db.ts';
import { getErrataForQueue } from '../persistence/sql/queue.ts';
import { riskLevel, type ScoreBreakdown } from './score.ts';
import { approvalsFor, loadApprovalPolicy } from './settings.ts';

export interface QueueResult {
  errata_id: string;
  queued: boolean;
  id?: number;
  success_score?: number;
  error?: { code: string; message: string };
}

export interface QueueServiceDeps {
  db: Db;
  logger: Logger;
  actors: ActorHost;
  settings: () => Promise<Settings>;
  /** Risk profiles of the given errata (may call UYUNI); absent = use stored scores. */
  profile?: ((ids: string[]) => Promise<Map<string, ScoreBreakdown>>) | undefined;
}

export async function queueErrata(
  deps: QueueServiceDeps,
  ids: string[],
  opts: { priority: number; notes: string | null },
  meta: EventMeta,
): Promise<QueueResult[]> {
  const known = new Map((await getErrataForQueue(deps.db, ids)).map((e) => [e.errata_id, e]));
  let profiles = new Map<string, ScoreBreakdown>();
  if (deps.profile) {
    try {
      profiles = await deps.profile([...known.keys()]);
    } catch (raw) {
      // Queueing must not depend on UYUNI being up: the stored score (or 50) is used meanwhile.
      deps.logger.warn({ err: coerceError(raw).message }, 'risk profiles could not be computed; using stored scores');
    }
  }
  const settings = await deps.settings();
  // The approval policy as it stands when the errata is queued (the APPROVE command applies it
  // again with the errata's severity and risk at that time: a severity raised since counts).
  const policy = await loadApprovalPolicy(deps.db);
  const results: QueueResult[] = [];
  for (const errataId of ids) {
    const e = known.get(errataId);
    if (!e) {
      results.push({
        errata_id: errataId,
        queued: false,
        error: { code: 'unknown_errata', message: `errata ${errataId} is not in the errata cache (run a sync)` },
      });
      continue;
    }
    const score = profiles.get(errataId)?.score ?? e.success_score ?? 50;
    const gate = approvalsFor(policy, { severity: e.severity, riskLevel: riskLevel(score) });
    try {
      const id = await deps.actors.create(
        {
          errataId,
          errataVersion: e.errata_version,
          targetOs: e.target_os as TargetOs,
          priority: opts.priority,
          successScore: score,
          notes: opts.notes,
          settings: { ...settings, approvalMaxAgeMs: gate.maxAgeMs },
          approvals: { required: gate.required, separationOfDuties: gate.separationOfDuties },
        },
        meta,
      );
      results.push({ errata_id: errataId, queued: true, id, success_score: score });
    } catch (raw) {
      if ((raw as { code?: string }).code === '23505' || /uq_queue_live_errata|unique/i.test((raw as Error).message)) {
        results.push({
          errata_id: errataId,
          queued: false,
          error: { code: 'already_queued', message: `errata ${errataId} already has a live queue entry` },
        });
      } else throw raw;
    }
  }
  return results;
}
