/** The notify effect: the approvers' messages (approval needed, approved) queued in the outbox. */
import type { Effects } from '../machines/patch.machine.ts';
import { enqueueAlert } from '../services/alerts.ts';
import type { EngineDeps } from './deps.ts';

export function notifyPorts(e: EngineDeps & { onNotify?: () => void }) {
  return {
    async notify(input: Effects['notify']['in']) {
      const pending = input.kind === 'pending_approval';
      await enqueueAlert(e.db, {
        type: input.kind,
        key: input.key,
        errataId: input.errataId,
        queueId: input.entryId,
        subject: pending
          ? `Approval needed: ${input.errataId} (${input.targetOs}) passed its test`
          : `Approved: ${input.errataId} (${input.targetOs}) goes to production`,
        body: pending
          ? `${input.errataId} passed its test on ${input.testSystem?.name ?? 'the test system'}. ` +
            'Review the evidence and approve, reject or snooze it.\n' +
            `GET /api/v1/tests?errata_id=${encodeURIComponent(input.errataId)}`
          : `${input.errataId} was approved; it will be promoted and deployed in the next maintenance window.`,
      });
      e.onNotify?.();
      return {};
    },
  };
}
