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

/**
 * A URL with what makes it a credential hidden: user info, path, query and fragment (a Slack or
 * Teams webhook URL is its own secret), keeping the scheme and host so the reader knows where it
 * points.
 * @example
 * redactUrlSecret('https://hooks.slack.com/services/T0/B0/xyz') // 'https://hooks.slack.com/[redacted]'
 */
export function redactUrlSecret(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/[redacted]`;
  } catch {
    return '[redacted]';
  }
}

/**
 * `text` with every occurrence of each secret replaced by `[redacted]` (secrets shorter than 4
 * characters are left: they would match everywhere). Linear in the text per secret.
 * @example
 * scrubSecrets('POST https://hooks.example/abc failed', ['https://hooks.example/abc']) // 'POST [redacted] failed'
 */
export function scrubSecrets(text: string, secrets: readonly (string | undefined | null)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}
