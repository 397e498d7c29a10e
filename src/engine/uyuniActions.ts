/**
 * UYUNI actions: waiting for their per-system results, recording the ids an effect scheduled, and
 * finding the action a crashed run scheduled but never recorded (reconciliation).
 */
import { isTransient } from '../transient.ts';
import type { Db } from '../persistence/db.ts';
import { addEffectActions, getEffectRef, listEffectRefsForSystem } from '../persistence/sql/effects.ts';
import { listDeploymentActionIds } from '../persistence/sql/rollout.ts';
import { uyuniCall, type EngineDeps } from './deps.ts';
import { sleep } from './timing.ts';

/**
 * The action ids this orchestrator already knows for a system (recorded under other effect keys or
 * deployment rows). An action for the same advisory/type on that system that is not among them —
 * and newer than all of them (UYUNI action ids only grow) — was scheduled by the crashed run.
 * @example (await knownActionIds(db, 1001)).has(55)
 */
export async function knownActionIds(db: Db, systemId: number): Promise<Set<number>> {
  const refs = await listEffectRefsForSystem(db, systemId);
  const rows = await listDeploymentActionIds(db, systemId);
  const ids = new Set<number>(rows);
  for (const r of refs) for (const id of (r as { actionIds?: number[] }).actionIds ?? []) ids.add(id);
  return ids;
}

/**
 * Record the UYUNI action ids an effect scheduled, right after scheduling (before its result is recorded).
 * @example await recordActions(db, input.key, [1001], [55]);
 */
export async function recordActions(db: Db, key: string, systemIds: number[], actionIds: number[]): Promise<void> {
  await addEffectActions(db, key, systemIds, actionIds);
}

/**
 * Action ids this effect key already recorded (it scheduled them before a crash).
 * @example const [actionId] = await ownActions(db, input.key);
 */
export async function ownActions(db: Db, key: string): Promise<number[]> {
  const ref = await getEffectRef(db, key);
  return ((ref as { actionIds?: number[] } | null)?.actionIds ?? []).filter((x) => Number.isInteger(x));
}

/**
 * An action for this system that matches and that no recorded effect or deployment owns.
 * @example await findUnclaimedAction(e, 1001, (ev) => ev.action_type === 'System reboot') // 57 | null
 */
export async function findUnclaimedAction(
  e: EngineDeps,
  systemId: number,
  match: (ev: { action_type?: string | undefined; name?: string | undefined }) => boolean,
): Promise<number | null> {
  const known = await knownActionIds(e.db, systemId);
  const newestKnown = Math.max(0, ...known);
  const events = await uyuniCall(e, (s) => s.listSystemEvents(systemId));
  const mine = events.filter((ev) => match(ev) && !known.has(ev.id) && ev.id > newestKnown).map((ev) => ev.id);
  return mine.length > 0 ? Math.max(...mine) : null;
}

/**
 * Wait until every system has left "in progress" in every action; per-system outcome and message.
 * Three calls per action per poll, whatever the number of systems.
 * @example const outcome = await awaitActions(e, [55], [1001], pollMs, signal); // Map { 1001 => { ok, message } }
 */
export async function awaitActions(
  e: EngineDeps,
  actionIds: number[],
  systemIds: number[],
  pollMs: number,
  signal: AbortSignal,
): Promise<Map<number, { ok: boolean; message: string }>> {
  const outcome = new Map<number, { ok: boolean; message: string }>();
  const wanted = new Set(systemIds);
  for (;;) {
    for (const id of actionIds) {
      const r = await uyuniCall(e, (s) => s.actionSystems(id));
      for (const c of r.completed) {
        if (wanted.has(c.server_id)) outcome.set(c.server_id, { ok: true, message: c.message ?? 'Completed' });
      }
      for (const f of r.failed) {
        if (wanted.has(f.server_id)) outcome.set(f.server_id, { ok: false, message: f.message ?? 'Failed' });
      }
    }
    if ([...wanted].every((sid) => outcome.has(sid))) return outcome;
    await sleep(pollMs, signal);
  }
}

/**
 * Before a test system is rolled back, none of the test's UYUNI actions may still be pending
 * there: an apply that runs after the rollback would leave the errata installed on a system the
 * journal says is clean (issue 11). A queued action is cancelled (`schedule.cancelActions`); one
 * that is picked up cannot be (UYUNI refuses) and is waited for, up to `maxWaitMs`.
 * @returns the actions cancelled, and those waited for until they ended
 * @throws Error (permanent) when one still runs after `maxWaitMs`: rolling back under it would be undone by it
 * @example await settleActions(e, [55], 1001, pollMs, 60_000, signal) // { cancelled: [55], waited: [] }
 */
export async function settleActions(
  e: EngineDeps,
  actionIds: readonly number[],
  systemId: number,
  pollMs: number,
  maxWaitMs: number,
  signal: AbortSignal,
): Promise<{ cancelled: number[]; waited: number[] }> {
  const pending = async (id: number) =>
    (await uyuniCall(e, (s) => s.actionSystems(id))).inProgress.some((x) => x.server_id === systemId);
  const cancelled: number[] = [];
  const running: number[] = [];
  for (const id of actionIds) {
    if (!(await pending(id))) continue;
    try {
      await uyuniCall(e, (s) => s.cancelActions([id]));
      cancelled.push(id);
    } catch (raw) {
      if (isTransient(raw)) throw raw;
      running.push(id); // picked up meanwhile: UYUNI cannot cancel it, wait for its end
    }
  }
  const deadline = performance.now() + maxWaitMs;
  let left = running;
  while (left.length > 0) {
    const still: number[] = [];
    for (const id of left) if (await pending(id)) still.push(id);
    left = still;
    if (left.length === 0) break;
    if (performance.now() > deadline) {
      throw new Error(
        `UYUNI action${left.length > 1 ? 's' : ''} ${left.join(', ')} of this test still run${left.length > 1 ? '' : 's'} on the test system (picked up, not cancellable): not rolling back under ${left.length > 1 ? 'them' : 'it'}`,
      );
    }
    await sleep(pollMs, signal);
  }
  return { cancelled, waited: running };
}
