/** An Idempotency-Key claimed by a request that died does not answer 409 for ever (issue 11). */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimIdempotencyKey,
  STALE_IDEMPOTENCY_CLAIM_SECONDS,
  storeIdempotentResponse,
} from '../src/persistence/sql/idempotency.ts';
import { createTestDatabase } from './helpers/db.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let tokenId: number;
beforeAll(async () => {
  t = await createTestDatabase();
  const g = await issueToken(t.db, 'x', 'admin');
  tokenId = g.row.id;
});
afterAll(async () => t.drop());

const claim = (key: string, requestHash: string) =>
  claimIdempotencyKey(t.db, { tokenId, key, method: 'POST', path: '/api/v1/rollback', requestHash });
const age = (key: string, seconds: number) =>
  t.db.query(
    sql.unsafe`UPDATE idempotency_keys SET created_at = now() - make_interval(secs => ${seconds}) WHERE key = ${key}`,
  );

describe('stale idempotency claims', () => {
  it('a fresh unanswered claim is still in progress; a stale one is taken over by the same request', async () => {
    expect(await claim('k1', 'h1')).toBeNull();
    expect(await claim('k1', 'h1')).toMatchObject({ status_code: null });
    await age('k1', STALE_IDEMPOTENCY_CLAIM_SECONDS + 5);
    expect(await claim('k1', 'h1')).toBeNull();
    // Taken over: it is fresh again.
    expect(await claim('k1', 'h1')).toMatchObject({ status_code: null });
  });

  it('never takes over another request’s claim, nor an answered one', async () => {
    expect(await claim('k2', 'h2')).toBeNull();
    await age('k2', STALE_IDEMPOTENCY_CLAIM_SECONDS + 5);
    expect(await claim('k2', 'other')).toMatchObject({ request_hash: 'h2' });
    expect(await claim('k3', 'h3')).toBeNull();
    await storeIdempotentResponse(t.db, tokenId, 'k3', 201, { ok: true });
    await age('k3', STALE_IDEMPOTENCY_CLAIM_SECONDS + 5);
    expect(await claim('k3', 'h3')).toMatchObject({ status_code: 201, response: { ok: true } });
  });
});
