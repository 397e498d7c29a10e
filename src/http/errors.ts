/**
 * The JSON error envelope `{"error":{"code","message","details"}}`. Bad input is a 4xx with a
 * message that says what is wrong; a dependency that is unreachable for a moment is a 503 with
 * Retry-After; an unexpected failure is a 500 with a generic message and the request id (the cause
 * goes to the log, never to the client).
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AppError, coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { isTransient } from '../transient.ts';

export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

export function errorBody(code: string, message: string, details: unknown = null): ErrorBody {
  return { error: { code, message, details } };
}

export function errorResponse(
  c: Context,
  status: number,
  code: string,
  message: string,
  details: unknown = null,
  headers?: Record<string, string>,
) {
  return c.json(errorBody(code, message, details), status as ContentfulStatusCode, headers);
}

/** Hono `onError` handler. */
export function makeErrorHandler(logger: Logger) {
  return function onError(raw: unknown, c: Context) {
    const requestId = c.get('requestId' as never) as string | undefined;
    if (raw instanceof AppError) {
      return errorResponse(c, raw.status, raw.code, raw.message, raw.details);
    }
    if (raw instanceof HTTPException) {
      const status = raw.status;
      const code =
        status === 413
          ? 'payload_too_large'
          : status === 401
            ? 'unauthorized'
            : status === 403
              ? 'forbidden'
              : 'http_error';
      const message = status === 413 ? 'request body is too large' : raw.message || 'request refused';
      return errorResponse(c, status, code, message);
    }
    const err = coerceError(raw);
    // The database (or another dependency) unreachable for a moment: 503 and when to try again,
    // not a 500 — and nothing was answered as done that was not (writes answer after commit).
    if (isTransient(raw)) {
      logger.warn(
        { err: err.message, requestId, method: c.req.method, path: c.req.path },
        'request failed: a dependency is unreachable',
      );
      return errorResponse(
        c,
        503,
        'unavailable',
        'a dependency (the database) is unreachable for the moment; retry shortly',
        { request_id: requestId ?? null },
        { 'Retry-After': '5' },
      );
    }
    logger.error({ err, requestId, method: c.req.method, path: c.req.path }, 'unhandled error in request');
    return errorResponse(c, 500, 'internal_error', 'internal error; see the server log', {
      request_id: requestId ?? null,
    });
  };
}
