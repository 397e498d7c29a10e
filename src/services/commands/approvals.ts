/**
 * Approvers' decisions on an entry waiting for one: APPROVE, REJECT, SNOOZE (until a date or for a
 * number of days, within a year), one at a time or as a batch with a result per item.
 *
 * APPROVE is checked against the approval policy before it is sent (the machine refuses the same
 * cases, so a race cannot slip through): an approver who queued, tested, retried or forced the
 * entry gets 403 `self_approval`, one who already approved this round 409 `already_approved`;
 * nothing changes and the refusal is audited. The number of distinct approvers is the policy's for
 * the errata as it is now (a severity raised by NVD since queueing counts); the answer says how
 * many are still missing. The approval is bound to the production groups the errata targets as
 * it is given (`target_groups` in the answer): a deployment reaching another group voids it.
 */
import { AppError, coerceError } from '../../errors.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import { approvalRefusal, approvalsMissing, type PatchContext } from '../../machines/patch.machine.ts';
import type { Clock } from '../../persistence/clock.ts';
import type { Db } from '../../persistence/db.ts';
import { insertAudit } from '../../persistence/sql/audit.ts';
import { getErrataSeverityAndScore } from '../../persistence/sql/errataFacts.ts';
import { listTargetGroups } from '../../persistence/sql/systems.ts';
import { isTransient } from '../../transient.ts';
import { riskLevel } from '../score.ts';
import { approvalsFor, loadApprovalPolicy } from '../settings.ts';

const DAY_MS = 86_400_000;
/** A snooze may last at most this many days (a year, and a day of slack for time zones). */
const MAX_SNOOZE_DAYS = 366;

/** What deciding needs: the actors, the clock for a snooze given in days, the database for the policy. */
export interface DecisionDeps {
  db: Db;
  actors: ActorHost;
  clock: Clock;
}

/** One approver decision, as the API's bodies give it. */
export type Decision =
  | { action: 'approve'; reason?: string | undefined }
  | { action: 'reject'; reason: string }
  | { action: 'snooze'; reason: string; until?: string | undefined; days?: number | undefined };

/** When a snooze ends: `until` (ISO-8601) or `days` from now; in the future and within a year. */
function snoozeUntil(d: { until?: string | undefined; days?: number | undefined }, now: number): number {
  const until = d.until !== undefined ? Date.parse(d.until) : now + (d.days ?? 0) * DAY_MS;
  if (!(until > now)) {
    throw new AppError(400, 'validation_failed', 'snooze until must be in the future', [
      { path: 'until', message: 'must be in the future' },
    ]);
  }
  if (until > now + MAX_SNOOZE_DAYS * DAY_MS) {
    throw new AppError(400, 'validation_failed', 'snooze until must be within a year', [
      { path: 'until', message: 'must be within 366 days' },
    ]);
  }
  return until;
}

/** A refused decision changed nothing; its audit row says who was refused and why. */
async function auditRefusal(db: Db, m: EventMeta, id: number, status: number, code: string) {
  if (!m.audit) return;
  try {
    await insertAudit(db, {
      ...m.audit.record,
      outcome: 'denied',
      statusCode: status,
      targetType: 'queue_entry',
      targetId: String(id),
      details: { event: 'APPROVE', error: code },
    });
  } catch {
    throw new AppError(503, 'audit_unavailable', 'the audit log cannot be written: nothing was done; retry later');
  }
  m.audit.written++;
}

const REFUSALS = {
  self_approval: {
    status: 403,
    message: (by: string, as: string[]) =>
      `${by} ${as.join(' and ')} this entry: separation of duties needs another approver`,
  },
  already_approved: {
    status: 409,
    message: (by: string) => `${by} already approved this entry: it needs a second, distinct approver`,
  },
} as const;

/**
 * APPROVE under the policy: refused (nothing sent) when `approvalRefusal` says so, else sent with
 * the number of approvers the errata needs now.
 */
async function approve(deps: DecisionDeps, id: number, reason: string | undefined, m: EventMeta) {
  const by = m.actor;
  const cur = await deps.actors.contextOf(id);
  if (cur === null) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
  const policy = await loadApprovalPolicy(deps.db);
  const ctx: PatchContext = {
    ...cur.context,
    separationOfDuties: cur.context.separationOfDuties === true || policy.separation_of_duties,
  };
  const refusal = approvalRefusal(ctx, by);
  if (refusal !== null) {
    const as = [...new Set((ctx.involved ?? []).filter((p) => p.by === by).map((p) => p.as))];
    const r = REFUSALS[refusal];
    await auditRefusal(deps.db, m, id, r.status, refusal);
    throw new AppError(r.status, refusal, r.message(by, as), {
      by,
      involved_as: as,
      approvals_missing: approvalsMissing(ctx),
    });
  }
  const errata = await getErrataSeverityAndScore(deps.db, ctx.errataId);
  const gate = approvalsFor(policy, {
    severity: errata?.severity ?? null,
    riskLevel: errata?.success_score == null ? null : riskLevel(errata.success_score),
  });
  // The approval covers the production groups the errata targets now, and no group added later.
  const groups = [...(await listTargetGroups(deps.db, ctx.errataId, ctx.targetOs))];
  const res = await deps.actors.send(
    id,
    { type: 'APPROVE', by, requiredApprovals: gate.required, groups, ...(reason ? { reason } : {}) },
    m,
  );
  const after = await deps.actors.contextOf(id);
  const approvals = after?.context.approvals ?? [];
  return {
    ...res,
    approvals_required: after?.context.requiredApprovals ?? gate.required,
    approvals_missing: after ? approvalsMissing(after.context) : 0,
    approved_by: approvals.map((a) => a.by),
    target_groups: groups,
  };
}

/**
 * Send one decision to the entry's actor; answered once the transition is committed.
 * @example
 * const res = await decide(deps, 12, { action: 'snooze', reason: 'change board', days: 3 }, meta);
 */
export function decide(deps: DecisionDeps, id: number, d: Decision, m: EventMeta) {
  const by = m.actor;
  if (d.action === 'approve') return approve(deps, id, d.reason, m);
  if (d.action === 'reject') return deps.actors.send(id, { type: 'REJECT', by, reason: d.reason }, m);
  return deps.actors.send(id, { type: 'SNOOZE', by, reason: d.reason, until: snoozeUntil(d, deps.clock.now()) }, m);
}

/**
 * Decide many entries in order; a refused item (a 4xx, or a 503 of its own) is reported and the
 * rest go on. Any other error (the database lost mid-batch) is reported on its item — whether it
 * committed is not known: `outcome_unknown`, read the entry — and the items after it are not
 * attempted (`not_attempted`); the decisions before it are committed and said so. Never thrown:
 * an answer of "nothing changed" would hide the items that did.
 * @example
 * const { succeeded, failed, results } = await decideBatch(deps, [{ id: 12, action: 'approve' }], meta);
 */
export async function decideBatch(deps: DecisionDeps, items: readonly (Decision & { id: number })[], m: EventMeta) {
  const results: {
    id: number;
    action: Decision['action'];
    ok: boolean;
    status?: string;
    error?: { code: string; message: string; details?: unknown };
  }[] = [];
  let broken: string | null = null;
  for (const it of items) {
    if (broken !== null) {
      results.push({
        id: it.id,
        action: it.action,
        ok: false,
        error: { code: 'not_attempted', message: `not attempted: an earlier item failed (${broken}); send it again` },
      });
      continue;
    }
    try {
      if (it.action === 'snooze' && (it.until === undefined) === (it.days === undefined)) {
        throw new AppError(400, 'validation_failed', 'give exactly one of until or days');
      }
      const r = await decide(deps, it.id, it, m);
      results.push({ id: it.id, action: it.action, ok: true, status: r.status });
    } catch (raw) {
      if (!(raw instanceof AppError)) {
        broken = coerceError(raw).message.slice(0, 300);
        results.push({
          id: it.id,
          action: it.action,
          ok: false,
          error: {
            code: 'outcome_unknown',
            message: `${isTransient(raw) ? 'the database was unreachable' : 'an internal error'} while deciding this entry (${broken}): it may or may not have been recorded; read the entry before sending it again`,
          },
        });
        continue;
      }
      results.push({
        id: it.id,
        action: it.action,
        ok: false,
        error: { code: raw.code, message: raw.message, details: raw.details },
      });
    }
  }
  const ok = results.filter((r) => r.ok).length;
  return { succeeded: ok, failed: results.length - ok, results };
}
