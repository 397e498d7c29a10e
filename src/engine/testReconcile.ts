/** After a crash, the test effects that schedule UYUNI actions find the action they may already have created (see testPhase.ts). */
import type { EffectInput } from '../machines/patch.machine.ts';
import type { EngineDeps } from './deps.ts';
import { systemIdOf } from './errata.ts';
import { findUnclaimedAction, ownActions, recordActions } from './uyuniActions.ts';

/**
 * Reconciliation of the test effects that schedule UYUNI actions (the others are idempotent by construction).
 * @example await reconcileTest(e, 'applyErrata', input) // { actionIds: [55] } | null
 */
export async function reconcileTest(
  e: EngineDeps,
  name: string,
  input: EffectInput & { errataId: string },
): Promise<unknown> {
  if (name !== 'applyErrata' && name !== 'scheduleReboot') return null;
  if (!input.testSystem) return null;
  const sid = await systemIdOf(e.db, input.testSystem.name, input.testSystem.id);
  // Recorded by this very effect before the crash?
  const own = await ownActions(e.db, input.key);
  if (own.length > 0) return name === 'applyErrata' ? { actionIds: own } : { actionId: own[0]! };
  const id =
    name === 'applyErrata'
      ? await findUnclaimedAction(
          e,
          sid,
          (ev) => (ev.name ?? '').includes(input.errataId) && ev.action_type !== 'System reboot',
        )
      : await findUnclaimedAction(e, sid, (ev) => ev.action_type === 'System reboot');
  if (id === null) return null;
  await recordActions(e.db, input.key, [sid], [id]);
  return name === 'applyErrata' ? { actionIds: [id] } : { actionId: id };
}
