/**
 * The real `PatchPorts`: test phases and production against UYUNI (XML-RPC), Salt (salt-api) and
 * Prometheus, notifications through the outbox.
 */
import type { PatchPorts } from '../machines/effects.ts';
import type { EffectInput } from '../machines/patch.machine.ts';
import type { EngineDeps } from './deps.ts';
import { notifyPorts } from './notify.ts';
import { promotionPorts } from './promotion.ts';
import { rollbackPorts } from './rollbacks.ts';
import { rolloutPorts } from './rollout.ts';
import { reconcileTest, testPorts } from './testPhase.ts';
import { testRollbackPorts } from './testRollback.ts';

export type { EngineDeps } from './deps.ts';

/**
 * The engine's ports, for `makeEffectActors`.
 * @example
 * const ports = createEnginePorts({ db, logger, uyuni, salt, prometheus, onNotify: () => notifier.nudge() });
 */
export function createEnginePorts(e: EngineDeps & { onNotify?: () => void }): PatchPorts {
  return {
    ...testPorts(e),
    ...testRollbackPorts(e),
    ...promotionPorts(e),
    ...rolloutPorts(e),
    ...rollbackPorts(e),
    ...notifyPorts(e),
    async reconcile(name, input) {
      return (await reconcileTest(e, name, input as EffectInput)) as never;
    },
  };
}
