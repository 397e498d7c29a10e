/** How a transition is written to the journal: a readable payload, and the entry's status reason. */
import type { PatchContext, Status } from './patch.machine.ts';

/** Internal xstate events carry effect outputs; keep the journal readable and small. */
export function summariseInternal(payload: Record<string, unknown>): unknown {
  const out = payload.output as Record<string, unknown> | undefined;
  const error = payload.error as Record<string, unknown> | undefined;
  if (out && typeof out === 'object') {
    const { evidence: _e, ...rest } = out;
    return { output: rest };
  }
  if (error && typeof error === 'object') return { error: { message: error.message, transient: error.transient } };
  return payload;
}

export function statusReason(ctx: PatchContext, status: Status): string | null {
  if (status === 'needs_attention') return ctx.attention?.reason ?? null;
  if (status === 'failed' || status === 'rolled_back') return ctx.resolution ?? ctx.failure?.reason ?? null;
  if (status === 'pending_retry') return ctx.lastError ? `${ctx.lastError.step}: ${ctx.lastError.message}` : null;
  if (status === 'removed') return ctx.resolution;
  if (status === 'rejected' || status === 'snoozed') return ctx.approval?.reason ?? null;
  return null;
}
