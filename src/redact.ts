/**
 * Redaction of secrets in what is journalled or shown: event payloads, contexts sent to the
 * inspector, the context in the API's entry detail.
 */

/** Keys whose values are never journalled in clear. */
const SECRET_KEYS = /password|secret|token|authorization|cookie|api_?key/i;

/**
 * A copy of `value` with every secret-looking key's value replaced (six levels deep at most).
 * @example
 * redactPayload({ by: 'ops', api_key: 'x' }) // { by: 'ops', api_key: '[redacted]' }
 */
export function redactPayload(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactPayload(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      SECRET_KEYS.test(k) ? '[redacted]' : redactPayload(v, depth + 1),
    ]),
  );
}
