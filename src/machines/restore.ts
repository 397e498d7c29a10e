/**
 * Restoring a persisted entry (DESIGN.md §3 rule 4): is its snapshot one this build can restore,
 * and, when it is not, the snapshot of the same entry in needs_attention (quarantine), keeping
 * what can be kept of its context.
 */
import { createActor, type StateValue } from 'xstate';
import { z } from 'zod';
import { coerceError } from '../errors.ts';
import type { Db } from '../persistence/db.ts';
import { writeTransitions, type EntryRow } from '../persistence/sql/entries.ts';
import { DEFAULT_SETTINGS } from '../services/settings.ts';
import { MACHINE_VERSION, statusOf, type PatchContext, type PatchInput, type PatchMachine } from './patch.machine.ts';

const snapshotEnvelope = z.object({
  status: z.enum(['active', 'done', 'error', 'stopped']),
  value: z.union([z.string(), z.record(z.string(), z.unknown())]),
  context: z
    .object({ entryId: z.number(), errataId: z.string(), targetOs: z.string(), settings: z.object({}).passthrough() })
    .passthrough(),
  children: z.record(z.string(), z.unknown()).optional(),
});

export type RestorableSnapshot = z.infer<typeof snapshotEnvelope>;

/** The snapshot when this build can restore it, else why not. */
export function checkRestorable(
  machine: PatchMachine,
  row: EntryRow,
): { parsed: RestorableSnapshot | null; reason: string | null } {
  let reason: string | null = null;
  let parsed: z.infer<typeof snapshotEnvelope> | null = null;
  if (row.machine_version !== MACHINE_VERSION) {
    reason = `machine version ${row.machine_version} is not known to this build (${MACHINE_VERSION})`;
  } else {
    const env = snapshotEnvelope.safeParse(row.snapshot);
    if (!env.success)
      reason = `snapshot is malformed: ${env.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
    else if (env.data.status === 'error' || env.data.status === 'stopped')
      reason = `snapshot has status ${env.data.status}`;
    else if (env.data.context.entryId !== row.id)
      reason = `snapshot belongs to entry ${env.data.context.entryId}, not ${row.id}`;
    else {
      try {
        machine.resolveState({
          value: env.data.value as StateValue,
          context: env.data.context as unknown as PatchContext,
        });
        statusOf(env.data.value as StateValue);
        parsed = env.data;
      } catch (raw) {
        reason = `snapshot state cannot be restored: ${coerceError(raw).message}`;
      }
    }
  }
  return { parsed, reason };
}

/** The entry's snapshot in needs_attention with `reason`: its old context where it is sound. */
export function quarantineSnapshot(
  machine: PatchMachine,
  row: EntryRow,
  fallback: { errata_id: string; target_os: string } | null,
  reason: string,
  at: number,
): unknown {
  const old = (row.snapshot ?? {}) as { context?: Partial<PatchContext> };
  const seed = createActor(machine, {
    input: {
      entryId: row.id,
      errataId: fallback?.errata_id ?? row.errata_id,
      targetOs: (fallback?.target_os ?? row.target_os) as PatchInput['targetOs'],
      settings: DEFAULT_SETTINGS,
    },
  }).getSnapshot().context;
  const context: PatchContext = {
    ...seed,
    ...(isPlainContext(old.context, row.id) ? old.context : {}),
    entryId: row.id,
    attention: { reason, phase: 'test', at },
    retry: null,
    deadlines: {},
  } as PatchContext;
  const resolved = machine.resolveState({ value: 'needs_attention', context });
  const persisted = machine.getPersistedSnapshot(resolved);
  return persisted;
}

function isPlainContext(ctx: unknown, id: number): ctx is Partial<PatchContext> {
  return (
    typeof ctx === 'object' &&
    ctx !== null &&
    (ctx as { entryId?: unknown }).entryId === id &&
    typeof (ctx as { settings?: unknown }).settings === 'object'
  );
}

/** Write the quarantined snapshot with a HYDRATE_FAILED journal row saying why (fenced like any write). */
export function writeQuarantine(
  db: Db,
  ownerId: string,
  row: EntryRow,
  persisted: unknown,
  reason: string,
  at: number,
) {
  return db.transaction((tx) =>
    writeTransitions(tx, {
      entryId: row.id,
      ownerId,
      epoch: row.owner_epoch,
      revision: row.revision,
      snapshotJson: JSON.stringify(persisted),
      status: 'needs_attention',
      stateValue: 'needs_attention',
      statusReason: reason,
      timers: [],
      transitions: [
        {
          event_type: 'HYDRATE_FAILED',
          payload: { reason, machine_version: row.machine_version },
          from_state: row.status,
          to_state: 'needs_attention',
          from_value: null,
          to_value: 'needs_attention',
          actor: 'system',
          ip_address: null,
          user_agent: null,
          request_id: null,
          at,
        },
      ],
    }),
  );
}
