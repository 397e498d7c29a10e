/**
 * Projections: rows derived from transitions, written in the same transaction as the snapshot and
 * journal so they can never disagree with it (an approval without its transition, or the reverse,
 * is impossible).
 */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import type { StateValue } from 'xstate';
import { statusOf, type PatchContext, type PatchEvent } from '../../machines/patch.machine.ts';
import type { TransitionWrite } from './entries.ts';

export interface ProjectionItem {
  event: PatchEvent | { type: string };
  value: StateValue;
  context: PatchContext;
  transition: TransitionWrite;
}

const APPROVAL_ACTION: Record<string, 'approved' | 'rejected' | 'snoozed'> = {
  APPROVE: 'approved',
  REJECT: 'rejected',
  SNOOZE: 'snoozed',
};

function testResult(status: string, ctx: PatchContext): string {
  if (['testing', 'needs_reboot', 'rebooting', 'pending_retry'].includes(status)) return 'running';
  if (ctx.test.verdict === 'pass') return 'passed';
  if (ctx.test.verdict === 'inconclusive') return 'inconclusive';
  if (ctx.failure?.reason.startsWith('aborted')) return 'aborted';
  if (ctx.test.verdict === 'fail' || ['failed', 'rolled_back'].includes(status)) return 'failed';
  return 'error';
}

/** Whether a batch carries an event that writes a projection row of its own (approvals). */
export function needsProjection(items: ProjectionItem[]): boolean {
  return items.some((it) => APPROVAL_ACTION[(it.event as { type: string }).type] !== undefined);
}

/** What the test record depends on: when it is unchanged, the record is not rewritten. */
export function testProjectionSignature(status: string, ctx: PatchContext): string {
  return ctx.attempt < 1
    ? ''
    : JSON.stringify([
        status,
        ctx.attempt,
        ctx.testSystem,
        ctx.test,
        ctx.failure,
        ctx.rollback,
        ctx.attention?.phase ?? null,
      ]);
}

/**
 * @param writeTest false when the test record's inputs did not change (see testProjectionSignature).
 */
export async function applyProjections(
  tx: DatabaseTransactionConnection,
  entryId: number,
  items: ProjectionItem[],
  firstSeq: number,
  writeTest = true,
): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    const ev = it.event as PatchEvent;
    const action = APPROVAL_ACTION[ev.type];
    // A decision that moved the entry, or one approval of several (the entry stays pending_approval).
    if (action !== undefined && (it.transition.from_state !== it.transition.to_state || ev.type === 'APPROVE')) {
      const reason = 'reason' in ev ? (ev.reason ?? null) : null;
      const until = ev.type === 'SNOOZE' ? new Date(ev.until).toISOString() : null;
      await tx.query(sql.unsafe`
        INSERT INTO patch_approvals (queue_id, errata_id, action, approved_by, reason, snooze_until, ip_address, user_agent, request_id, transition_seq)
        VALUES (${entryId}, ${it.context.errataId}, ${action}, ${it.transition.actor}, ${reason}, ${until}::timestamptz,
                ${it.transition.ip_address}, ${it.transition.user_agent}, ${it.transition.request_id}, ${firstSeq + i})`);
    }
  }

  // The test record of the current attempt mirrors the context after the batch.
  if (!writeTest) return;
  const last = items[items.length - 1]!;
  const ctx = last.context;
  if (ctx.attempt < 1) return;
  const status = statusOf(last.value);
  const result = testResult(status, ctx);
  const rollbackType = ctx.rollback?.scope === 'test' ? ctx.rollback.type : null;
  const rollbackStatus =
    rollbackType !== null && status === 'rolled_back'
      ? 'completed'
      : ctx.attention?.phase === 'test_rollback'
        ? 'failed'
        : null;
  const startedAt = new Date(ctx.test.startedAt ?? last.transition.at).toISOString();
  const previous = (await tx.maybeOneFirst(
    sql.unsafe`SELECT result FROM patch_tests WHERE queue_id = ${entryId} AND attempt = ${ctx.attempt}`,
  )) as string | null;
  const finishedAt = result === 'running' ? null : new Date(ctx.test.finishedAt ?? last.transition.at).toISOString();
  const testId = await tx.oneFirst(sql.unsafe`
    INSERT INTO patch_tests (queue_id, errata_id, attempt, test_system_id, test_system_name, snapshot_id, snapshot_type, started_at, completed_at,
                             duration_seconds, result, failure_reason, required_reboot, reboot_successful, test_config, rollback_type, rollback_status)
    VALUES (${entryId}, ${ctx.errataId}, ${ctx.attempt}, ${ctx.testSystem?.id ?? null}, ${ctx.testSystem?.name ?? null}, ${ctx.test.snapshotId},
            ${ctx.test.snapshotId ? 'snapper' : null}, ${startedAt}::timestamptz, ${finishedAt}::timestamptz,
            CASE WHEN ${finishedAt}::timestamptz IS NULL THEN NULL ELSE extract(epoch FROM (${finishedAt}::timestamptz - ${startedAt}::timestamptz))::int END,
            ${result}, ${result === 'passed' ? null : (ctx.failure?.reason ?? ctx.attention?.reason ?? null)}, ${ctx.test.rebootRequired === true},
            ${ctx.test.rebootRequired === true ? ctx.test.verdict !== null : null}, ${sql.jsonb(ctx.settings as never)}, ${rollbackType}, ${rollbackStatus})
    ON CONFLICT (queue_id, attempt) DO UPDATE SET
      snapshot_id = excluded.snapshot_id, snapshot_type = excluded.snapshot_type, completed_at = excluded.completed_at,
      duration_seconds = excluded.duration_seconds, result = excluded.result, failure_reason = excluded.failure_reason,
      required_reboot = excluded.required_reboot, reboot_successful = excluded.reboot_successful,
      rollback_type = coalesce(excluded.rollback_type, patch_tests.rollback_type), rollback_status = coalesce(excluded.rollback_status, patch_tests.rollback_status),
      test_system_id = excluded.test_system_id, test_system_name = excluded.test_system_name
    RETURNING id`);
  await tx.query(
    sql.unsafe`UPDATE patch_test_queue SET test_id = ${testId as number} WHERE id = ${entryId} AND test_id IS DISTINCT FROM ${testId as number}`,
  );
  // The score learns: a test that just reached a verdict counts once in the errata's history.
  if ((previous === null || previous === 'running') && (result === 'passed' || result === 'failed')) {
    await tx.query(sql.unsafe`
      INSERT INTO patch_risk_profile (errata_id, times_tested, times_failed, last_failure_reason)
      VALUES (${ctx.errataId}, 1, ${result === 'failed' ? 1 : 0}, ${result === 'failed' ? (ctx.failure?.reason ?? null) : null})
      ON CONFLICT (errata_id) DO UPDATE SET times_tested = patch_risk_profile.times_tested + 1,
        times_failed = patch_risk_profile.times_failed + excluded.times_failed,
        last_failure_reason = coalesce(excluded.last_failure_reason, patch_risk_profile.last_failure_reason), updated_at = now()`);
  }
}
