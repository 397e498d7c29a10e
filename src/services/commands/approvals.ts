/**
 * Approvers' decisions on an entry waiting for one: APPROVE, REJECT, SNOOZE (until a date or for a
 * number of days, within a year), one at a time or as a batch with a result per item.
 */
import { AppError } from '../../errors.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import type { Clock } from '../../persistence/clock.ts';

const DAY_MS = 86_400_000;
/** A snooze may last at most this many days (a year, and a day of slack for time zones). */
const MAX_SNOOZE_DAYS = 366;

/** What deciding needs: the actors, and the clock for a snooze given in days. */
export interface DecisionDeps {
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

/**
 * Send one decision to the entry's actor; answered once the transition is committed.
 * @example
 * const res = await decide(deps, 12, { action: 'snooze', reason: 'change board', days: 3 }, meta);
 */
export function decide(deps: DecisionDeps, id: number, d: Decision, m: EventMeta) {
  const by = m.actor;
  if (d.action === 'approve')
    return deps.actors.send(id, { type: 'APPROVE', by, ...(d.reason ? { reason: d.reason } : {}) }, m);
  if (d.action === 'reject') return deps.actors.send(id, { type: 'REJECT', by, reason: d.reason }, m);
  return deps.actors.send(id, { type: 'SNOOZE', by, reason: d.reason, until: snoozeUntil(d, deps.clock.now()) }, m);
}

/**
 * Decide many entries in order; a refused item (a 4xx) is reported and the rest go on, anything
 * else aborts the batch.
 * @example
 * const { succeeded, failed, results } = await decideBatch(deps, [{ id: 12, action: 'approve' }], meta);
 */
export async function decideBatch(deps: DecisionDeps, items: readonly (Decision & { id: number })[], m: EventMeta) {
  const results = [];
  for (const it of items) {
    try {
      if (it.action === 'snooze' && (it.until === undefined) === (it.days === undefined)) {
        throw new AppError(400, 'validation_failed', 'give exactly one of until or days');
      }
      const r = await decide(deps, it.id, it, m);
      results.push({ id: it.id, action: it.action, ok: true, status: r.status });
    } catch (raw) {
      if (!(raw instanceof AppError)) throw raw;
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
