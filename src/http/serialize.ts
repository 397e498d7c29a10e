/** Rows to API JSON: epoch-ms timestamp columns become ISO-8601 strings (UTC). */
const TIME_KEY = /(_at|_until|_since|^at)$/;

export function toApi<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => toApi(v)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = typeof v === 'number' && TIME_KEY.test(k) && Number.isFinite(v) ? new Date(v).toISOString() : v;
  }
  return out as T;
}
