/** The notify effect: the approvers' messages (approval needed, approved) queued in the outbox. */
import type { Effects } from '../machines/patch.machine.ts';
import { getTestJudgement } from '../persistence/sql/testResults.ts';
import { enqueueAlert, judgementText } from '../services/alerts.ts';
import type { EngineDeps } from './deps.ts';

export function notifyPorts(e: EngineDeps & { onNotify?: () => void }) {
  return {
    async notify(input: Effects['notify']['in']) {
      const pending = input.kind === 'pending_approval';
      // The approvers read the judge's numbers in the message; a marginal verdict says so first.
      const judged = pending ? await getTestJudgement(e.db, input.entryId, input.attempt) : null;
      const evidence = judgementText(judged?.metrics_delta ?? null);
      const marginal = (judged?.metrics_delta as { verdict?: string } | null)?.verdict === 'marginal';
      await enqueueAlert(e.db, {
        type: input.kind,
        key: input.key,
        errataId: input.errataId,
        queueId: input.entryId,
        subject: pending
          ? marginal
            ? `Approval needed: ${input.errataId} (${input.targetOs}) MARGINAL test result, a human decides`
            : `Approval needed: ${input.errataId} (${input.targetOs}) passed its test`
          : `Approved: ${input.errataId} (${input.targetOs}) goes to production`,
        body: pending
          ? `${input.errataId} ${marginal ? 'was judged marginal' : 'passed its test'} on ${input.testSystem?.name ?? 'the test system'}. ` +
            'Review the evidence and approve, reject or snooze it.\n' +
            `GET /api/v1/queue/${input.entryId} · dashboard /ui/entries/${input.entryId}` +
            (evidence ? `\n\n${evidence}` : '')
          : `${input.errataId} was approved; it will be promoted and deployed in the next maintenance window.`,
      });
      e.onNotify?.();
      return {};
    },
  };
}
