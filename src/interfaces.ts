/**
 * Shared types and the project's vocabulary.
 *
 * Terminology
 * - **errata** (advisory): an update UYUNI says applies to some systems (USN `6757-2`, `DSA-5600-1`,
 *   `RHSA-2024:1234`). Cached in `errata_cache`.
 * - **patch entry** (queue entry): one errata × one target OS in `patch_test_queue`; the unit the
 *   orchestrator tests, approves and rolls out.
 * - **actor**: the live XState actor of one patch entry, hosted by the actor host.
 * - **snapshot**: the actor's `getPersistedSnapshot()`, stored on the entry with its `machine_version`.
 * - **revision**: a counter on the entry, +1 per persisted write; writes are fenced by it.
 * - **lease / owner epoch**: which replica owns an entry's actor (`owner_id`, `lease_until`), and a
 *   fencing token (`owner_epoch`) bumped at each claim; a stale owner's writes match no row.
 * - **transition**: one persisted state change, journalled in `patch_transitions` (hash-chained).
 * - **timer**: a durable deadline in `timers`, derived from the snapshot; the scheduler fires it.
 * - **effect**: an external action (apply errata, snapshot, reboot, …) run under an idempotency key
 *   `entry:attempt:step` recorded in `effects`, reconciled before it is ever repeated.
 * - **lane**: a test system's queue (concurrency 1).
 */
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Db } from './persistence/db.ts';

/** Process-wide lifecycle state, read by health and by loops. */
export interface Lifecycle {
  state: 'starting' | 'running' | 'stopping' | 'stopped';
}

/** The dependencies compiled once at boot and passed explicitly (STYLE rule 2). */
export interface BaseDeps {
  config: Config;
  logger: Logger;
  db: Db;
  version: string;
  startedAt: number;
  lifecycle: Lifecycle;
}
