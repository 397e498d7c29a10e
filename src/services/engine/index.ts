/**
 * The real `PatchPorts`: test phases and production against UYUNI (XML-RPC), Salt (salt-api) and
 * Prometheus, notifications through the outbox.
 */
import type { PatchPorts } from '../../machines/effects.ts';
import type { EffectInput, Effects } from '../../machines/patch.machine.ts';
import { enqueueAlert } from './notifier.ts';
import { prodPorts } from './prodPorts.ts';
import type { EngineDeps } from './support.ts';
import { reconcileTest, testPorts } from './testPorts.ts';

export type { EngineDeps } from './support.ts';

export function createEnginePorts(e: EngineDeps & { onNotify?: () => void }): PatchPorts {
  const test = testPorts(e);
  const prod = prodPorts(e);
  return {
    ...test,
    ...prod,
    async notify(input: Effects['notify']['in']) {
      const pending = input.kind === 'pending_approval';
      await enqueueAlert(e.db, {
        type: input.kind, key: input.key, errataId: input.errataId, queueId: input.entryId,
        subject: pending ? `Approval needed: ${input.errataId} (${input.targetOs}) passed its test` : `Approved: ${input.errataId} (${input.targetOs}) goes to production`,
        body: pending
          ? `${input.errataId} passed its test on ${input.testSystem?.name ?? 'the test system'}. Review the evidence and approve, reject or snooze it.\nGET /api/v1/tests?errata_id=${encodeURIComponent(input.errataId)}`
          : `${input.errataId} was approved; it will be promoted and deployed in the next maintenance window.`,
      });
      e.onNotify?.();
      return {};
    },
    async reconcile(name, input) {
      return (await reconcileTest(e, name, input as EffectInput)) as never;
    },
  };
}
