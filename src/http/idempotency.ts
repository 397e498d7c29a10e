/**
 * `Idempotency-Key` on mutating requests: a retried request (same token, same key, same body)
 * gets the first answer without a second transition. The same key with another request is 422;
 * a retry while the first is still running is 409.
 */
import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { BaseDeps } from '../interfaces.ts';
import { claimIdempotencyKey, releaseIdempotencyKey, storeIdempotentResponse } from '../persistence/sql/idempotency.ts';
import type { ApiEnv } from './context.ts';
import { errorResponse } from './errors.ts';

export function idempotency(deps: BaseDeps): MiddlewareHandler<ApiEnv> {
  return async function idempotency(c, next) {
    const key = c.req.header('idempotency-key');
    if (key === undefined || !['POST', 'PUT', 'PATCH', 'DELETE'].includes(c.req.method)) return next();
    // Keys belong to a token; the dashboard's proxy sign-in (in-process, token id 0) sends none.
    if (c.get('principal').tokenId === 0) return next();
    if (!/^[\x21-\x7e]{1,200}$/.test(key))
      return errorResponse(
        c,
        400,
        'invalid_idempotency_key',
        'Idempotency-Key must be 1–200 printable ASCII characters',
      );
    const body = await c.req.raw.clone().text();
    const requestHash = createHash('sha256').update(`${c.req.method} ${c.req.path}\n${body}`).digest('hex');
    const p = c.get('principal');
    const existing = await claimIdempotencyKey(deps.db, {
      tokenId: p.tokenId,
      key,
      method: c.req.method,
      path: c.req.path,
      requestHash,
    });
    if (existing !== null) {
      if (existing.request_hash !== requestHash)
        return errorResponse(c, 422, 'idempotency_key_reuse', 'this Idempotency-Key was used for a different request');
      if (existing.status_code === null)
        return errorResponse(
          c,
          409,
          'request_in_progress',
          'a request with this Idempotency-Key is still being processed',
        );
      return c.json(existing.response as object, existing.status_code as 200, { 'Idempotent-Replayed': 'true' });
    }
    await next();
    if (c.res.status >= 500) {
      await releaseIdempotencyKey(deps.db, p.tokenId, key);
      return;
    }
    const text = await c.res.clone().text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = { body: text };
    }
    await storeIdempotentResponse(deps.db, p.tokenId, key, c.res.status, json);
  };
}
