/** Queries of the integration-status family: the shared "NVD unreachable since …" (sql/0009). */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export const INTEGRATION_STATES = ['unknown', 'reachable', 'unreachable'] as const;

const statusRow = z.object({
  state: z.enum(INTEGRATION_STATES),
  since: z.number().nullable(),
  last_error: z.string().nullable(),
  retry_at: z.number().nullable(),
  failures: z.number(),
  message: z.string(),
  updated_at: z.number(),
});
export type IntegrationStatusRow = z.infer<typeof statusRow>;

/**
 * Record what an integration's client says now (one row per integration, replaced).
 * @example await saveIntegrationStatus(db, 'nvd', nvd.status());
 */
export function saveIntegrationStatus(
  db: Db,
  name: 'nvd',
  s: {
    state: (typeof INTEGRATION_STATES)[number];
    since: Date | null;
    lastError: string | null;
    retryAt: Date | null;
    failures: number;
    message: string;
  },
) {
  const at = (d: Date | null) => (d === null ? null : d.toISOString());
  return db.query(sql.unsafe`
    INSERT INTO integration_status (name, state, since, last_error, retry_at, failures, message, updated_at)
    VALUES (${name}, ${s.state}, ${at(s.since)}, ${s.lastError}, ${at(s.retryAt)}, ${s.failures}, ${s.message}, now())
    ON CONFLICT (name) DO UPDATE SET state = excluded.state, since = excluded.since, last_error = excluded.last_error,
      retry_at = excluded.retry_at, failures = excluded.failures, message = excluded.message, updated_at = now()`);
}

/** @example await loadIntegrationStatus(db, 'nvd') // { state: 'unreachable', message: 'NVD unreachable since …', … } | null */
export function loadIntegrationStatus(db: Db, name: 'nvd') {
  return db.maybeOne(sql.type(statusRow)`
    SELECT state, (extract(epoch FROM since) * 1000)::float8 AS since, last_error,
           (extract(epoch FROM retry_at) * 1000)::float8 AS retry_at, failures, message,
           (extract(epoch FROM updated_at) * 1000)::float8 AS updated_at
    FROM integration_status WHERE name = ${name}`);
}
