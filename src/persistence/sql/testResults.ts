/** Queries of the patch_tests family: one row per test attempt, with its baseline and validation evidence. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const idRow = z.object({ id: z.number() });

/**
 * Create an attempt's test row; null when it exists already. The projection may insert the same
 * row concurrently: then this INSERT waits for it and does nothing, and only a new statement's
 * snapshot ({@link getTestId}) sees the committed row.
 * @example const id = (await insertTestRow(db, 7, 1, 'USN-1')) ?? (await getTestId(db, 7, 1));
 */
export function insertTestRow(db: Db, queueId: number, attempt: number, errataId: string) {
  return db.maybeOneFirst(sql.type(idRow)`
    INSERT INTO patch_tests (queue_id, errata_id, attempt, result)
    VALUES (${queueId}, ${errataId}, ${attempt}, 'running')
    ON CONFLICT (queue_id, attempt) DO NOTHING RETURNING id`);
}

/** @example const id = await getTestId(db, 7, 1); */
export function getTestId(db: Db, queueId: number, attempt: number) {
  return db.oneFirst(sql.type(idRow)`SELECT id FROM patch_tests WHERE queue_id = ${queueId} AND attempt = ${attempt}`);
}

/**
 * Store the evidence and package versions taken before the patch (what validation compares with
 * and what a package rollback restores).
 * @example await setTestBaseline(db, testId, { evidence, services: evidence.services, packages });
 */
export function setTestBaseline(
  db: Db,
  testId: number,
  b: { evidence: unknown; services: unknown; packages: unknown },
) {
  return db.query(sql.unsafe`
    UPDATE patch_tests SET baseline_metrics = ${sql.jsonb(b.evidence as never)},
      services_baseline = ${sql.jsonb(b.services as never)},
           package_versions_before = ${sql.jsonb(b.packages as never)}
    WHERE id = ${testId}`);
}

const baselineRow = z.object({
  baseline_metrics: z.unknown().nullable(),
  package_versions_before: z.unknown().nullable(),
});

/** @example const b = await getTestBaseline(db, 7, 1); // { baseline_metrics, package_versions_before } | null */
export function getTestBaseline(db: Db, queueId: number, attempt: number) {
  return db.maybeOne(sql.type(baselineRow)`
    SELECT baseline_metrics, package_versions_before FROM patch_tests
    WHERE queue_id = ${queueId} AND attempt = ${attempt}`);
}

/** @example await setTestValidation(db, 7, 1, { post, services: post.services, checks, failedServices: [] }); */
export function setTestValidation(
  db: Db,
  queueId: number,
  attempt: number,
  v: { post: unknown; services: unknown; checks: unknown; failedServices: string[] },
) {
  return db.query(sql.unsafe`
    UPDATE patch_tests SET post_patch_metrics = ${sql.jsonb(v.post as never)},
      services_post_patch = ${sql.jsonb(v.services as never)},
           metrics_delta = ${sql.jsonb(v.checks as never)}, failed_services = ${sql.array(v.failedServices, 'text')}
    WHERE queue_id = ${queueId} AND attempt = ${attempt}`);
}

const judgementRow = z.object({ metrics_delta: z.unknown().nullable(), test_system_name: z.string().nullable() });

/**
 * The judgement validation stored for an attempt (`metrics_delta`), for the approval message.
 * @example const j = await getTestJudgement(db, 7, 1); // { metrics_delta: { verdict: 'marginal', … }, test_system_name }
 */
export function getTestJudgement(db: Db, queueId: number, attempt: number) {
  return db.maybeOne(sql.type(judgementRow)`
    SELECT metrics_delta, test_system_name FROM patch_tests WHERE queue_id = ${queueId} AND attempt = ${attempt}`);
}
