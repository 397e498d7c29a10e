/**
 * NVD CVE API 2.0 client (ky): the real severity of a CVE from its CVSS base score.
 *
 * - Preference: `cvssMetricV40` → `cvssMetricV31` → `cvssMetricV30` → `cvssMetricV2`; within one
 *   version the Primary entry from nvd@nist.gov, then any Primary, then Secondary.
 * - Buckets: 9.0+ Critical, 7.0+ High, 4.0+ Medium, > 0 Low, 0 None.
 * - Rate limit: without a key about one request per 6 s (NVD: 10 per rolling 60 s); with `apiKey`
 *   (header) faster. HTTP 403 and 429 are throttling: back off (jittered, growing) and try again.
 * - An unknown CVE answers 200 with `totalResults: 0`: that is "not found", cached as such.
 * - A malformed answer is an error that names the CVE and the field, never a crash.
 * - NVD unreachable (no route, DNS, refused, timeout, HTTP 5xx: air-gapped sites): the client
 *   records "NVD unreachable since …" (`status()`), throws `NvdUnreachableError` and, for a growing
 *   backoff (5 min doubling to 6 h, jittered), answers every request with that error at once
 *   without touching the network; the first answer from NVD after that clears it.
 */
import ky, { HTTPError, NetworkError, TimeoutError } from 'ky';
import { z } from 'zod';
import { backoffDelay } from '../../transient.ts';

export type CvssSeverity = 'Critical' | 'High' | 'Medium' | 'Low' | 'None';

export interface CveScore {
  cveId: string;
  found: boolean;
  baseScore: number | null;
  severity: CvssSeverity | null;
  cvssVersion: string | null;
  vector: string | null;
}

export const CVE_ID = /^CVE-\d{4}-\d{4,}$/;

/** 9.0+ Critical, 7.0+ High, 4.0+ Medium, > 0 Low, 0 None. */
export function severityOf(score: number): CvssSeverity {
  if (score >= 9) return 'Critical';
  if (score >= 7) return 'High';
  if (score >= 4) return 'Medium';
  if (score > 0) return 'Low';
  return 'None';
}

const SEVERITY_RANK: Record<string, number> = { None: 0, Unknown: 0, Low: 1, Medium: 2, High: 3, Critical: 4 };
/** The highest of several severities (an errata is as severe as its worst CVE). */
export function highestSeverity(severities: readonly (string | null)[]): string | null {
  let best: string | null = null;
  for (const s of severities)
    if (s !== null && (best === null || (SEVERITY_RANK[s] ?? -1) > (SEVERITY_RANK[best] ?? -1))) best = s;
  return best;
}

const metricEntry = z.object({
  source: z.string().optional(),
  type: z.string().optional(),
  cvssData: z.object({
    version: z.string().optional(),
    vectorString: z.string().optional(),
    baseScore: z.number().min(0).max(10),
  }),
});
const nvdResponse = z.object({
  totalResults: z.number().int().min(0),
  vulnerabilities: z.array(
    z.object({ cve: z.object({ id: z.string(), metrics: z.record(z.string(), z.array(z.unknown())).optional() }) }),
  ),
});

const VERSION_KEYS = [
  ['cvssMetricV40', '4.0'],
  ['cvssMetricV31', '3.1'],
  ['cvssMetricV30', '3.0'],
  ['cvssMetricV2', '2.0'],
] as const;

/** Pick the CVSS score of an NVD `cve` object by the preference order (pure). */
export function pickScore(cveId: string, metrics: Record<string, unknown[]> | undefined): CveScore {
  for (const [key, version] of VERSION_KEYS) {
    const raw = metrics?.[key];
    if (!raw || raw.length === 0) continue;
    const entries = raw.map((e, i) => {
      const parsed = metricEntry.safeParse(e);
      if (!parsed.success)
        throw new Error(
          `NVD ${cveId}: metrics.${key}[${i}] is malformed: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`,
        );
      return parsed.data;
    });
    const best =
      entries.find((e) => e.type === 'Primary' && e.source === 'nvd@nist.gov') ??
      entries.find((e) => e.type === 'Primary') ??
      entries[0]!;
    const score = best.cvssData.baseScore;
    return {
      cveId,
      found: true,
      baseScore: score,
      severity: severityOf(score),
      cvssVersion: best.cvssData.version ?? version,
      vector: best.cvssData.vectorString ?? null,
    };
  }
  return { cveId, found: true, baseScore: null, severity: null, cvssVersion: null, vector: null };
}

/** The system error code (ECONNREFUSED, ENOTFOUND, …) somewhere in a fetch failure's causes. */
function networkCode(raw: Error): string {
  const seen = new Set<unknown>();
  const queue: unknown[] = [raw];
  let deepest = raw.message;
  while (queue.length > 0) {
    const e = queue.shift() as { code?: unknown; cause?: unknown; errors?: unknown[]; message?: unknown } | null;
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.code === 'string' && /^E[A-Z_]+$|^UND_ERR/.test(e.code)) return e.code;
    if (typeof e.message === 'string' && e.message !== '') deepest = e.message;
    queue.push(e.cause, ...(Array.isArray(e.errors) ? e.errors : []));
  }
  return deepest;
}

export interface NvdClientOptions {
  baseUrl?: string;
  apiKey?: string | undefined;
  /** Minimum spacing between requests; default 6000 ms without a key, 600 ms with one. */
  minIntervalMs?: number;
  timeoutMs?: number;
  /** Throttling (403/429) retries before giving up on a CVE for this run. */
  maxThrottleRetries?: number;
  /** First throttling backoff; doubles each time (jittered). */
  throttleBackoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** First backoff after NVD was found unreachable; doubles per failed attempt (jittered) up to `unreachableBackoffMaxMs`. */
  unreachableBackoffMs?: number;
  unreachableBackoffMaxMs?: number;
  now?: () => number;
}

export class NvdThrottledError extends Error {
  readonly transient = true;
}

/** NVD cannot be reached (or is backing off after that): transient, the UYUNI severities stay. */
export class NvdUnreachableError extends Error {
  readonly transient = true;
  /** True when no request was made (still inside the backoff). */
  readonly backingOff: boolean;
  constructor(message: string, backingOff: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NvdUnreachableError';
    this.backingOff = backingOff;
  }
}

/** Whether NVD answers, as this client last saw it. */
export interface NvdStatus {
  state: 'unknown' | 'reachable' | 'unreachable';
  /** Since when it is in this state (null while unknown). */
  since: Date | null;
  lastError: string | null;
  /** While unreachable: no request before this time. */
  retryAt: Date | null;
  /** Consecutive failed attempts. */
  failures: number;
  /** One line for status pages: `NVD unreachable since 2026-12-01T19:00:00.000Z (…); next try after …`. */
  message: string;
}

/**
 * @example
 * const nvd = new NvdClient({ apiKey: process.env.NVD_API_KEY });
 * const s = await nvd.fetchScore('CVE-2024-6387'); // { severity: 'High', baseScore: 8.1, … }
 */
export class NvdClient {
  private readonly o: Required<Omit<NvdClientOptions, 'apiKey'>> & { apiKey: string | undefined };
  private nextSlot = 0;
  private chain: Promise<void> = Promise.resolve();
  requests = 0;
  private reach: Omit<NvdStatus, 'message'> = {
    state: 'unknown',
    since: null,
    lastError: null,
    retryAt: null,
    failures: 0,
  };

  /** Whether NVD answered last time, since when, and when the next attempt may be made. */
  status(): NvdStatus {
    const r = this.reach;
    const message =
      r.state === 'unknown'
        ? 'NVD not contacted yet'
        : r.state === 'reachable'
          ? `NVD reachable since ${r.since!.toISOString()}`
          : `NVD unreachable since ${r.since!.toISOString()} (${r.lastError}); next try after ${r.retryAt!.toISOString()}`;
    return { ...r, message };
  }

  private reachable(): void {
    if (this.reach.state !== 'reachable')
      this.reach = { state: 'reachable', since: new Date(this.o.now()), lastError: null, retryAt: null, failures: 0 };
  }

  private unreachable(cveId: string, why: string, cause: unknown): NvdUnreachableError {
    const failures = this.reach.state === 'unreachable' ? this.reach.failures + 1 : 1;
    const backoff = backoffDelay(failures, {
      baseMs: this.o.unreachableBackoffMs,
      maxMs: this.o.unreachableBackoffMaxMs,
      jitter: 0.2,
    });
    const since = this.reach.state === 'unreachable' ? this.reach.since! : new Date(this.o.now());
    this.reach = { state: 'unreachable', since, lastError: why, retryAt: new Date(this.o.now() + backoff), failures };
    return new NvdUnreachableError(`NVD ${cveId}: ${why}; ${this.status().message}`, false, { cause });
  }

  constructor(opts: NvdClientOptions = {}) {
    this.o = {
      baseUrl: (opts.baseUrl ?? 'https://services.nvd.nist.gov/rest/json/cves/2.0').replace(/\/+$/, ''),
      apiKey: opts.apiKey,
      minIntervalMs: opts.minIntervalMs ?? (opts.apiKey ? 600 : 6000),
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxThrottleRetries: opts.maxThrottleRetries ?? 5,
      throttleBackoffMs: opts.throttleBackoffMs ?? 30_000,
      sleep: opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      unreachableBackoffMs: opts.unreachableBackoffMs ?? 5 * 60_000,
      unreachableBackoffMaxMs: opts.unreachableBackoffMaxMs ?? 6 * 3600_000,
      now: opts.now ?? Date.now,
    };
  }

  /** Requests are serialised and spaced by `minIntervalMs` (NVD's rolling-window limit). */
  private async slot(): Promise<void> {
    const turn = this.chain.then(async () => {
      const wait = this.nextSlot - Date.now();
      if (wait > 0) await this.o.sleep(wait);
      this.nextSlot = Date.now() + this.o.minIntervalMs;
    });
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  async fetchScore(cveId: string): Promise<CveScore> {
    if (!CVE_ID.test(cveId)) throw new Error(`NVD: ${JSON.stringify(cveId)} is not a CVE id`);
    if (this.reach.state === 'unreachable' && this.o.now() < this.reach.retryAt!.getTime()) {
      throw new NvdUnreachableError(`NVD ${cveId}: not asked, ${this.status().message}`, true);
    }
    for (let attempt = 0; ; attempt++) {
      await this.slot();
      this.requests++;
      try {
        const body = await ky
          .get(this.o.baseUrl, {
            searchParams: { cveId },
            headers: this.o.apiKey ? { apiKey: this.o.apiKey } : {},
            timeout: this.o.timeoutMs,
            retry: 0,
          })
          .json<unknown>();
        this.reachable();
        const parsed = nvdResponse.safeParse(body);
        if (!parsed.success)
          throw new Error(
            `NVD ${cveId}: unexpected answer: ${parsed.error.issues.map((x) => `${x.path.join('.') || '(root)'}: ${x.message}`).join('; ')}`,
          );
        const vuln = parsed.data.vulnerabilities.find((v) => v.cve.id === cveId);
        if (parsed.data.totalResults === 0 || !vuln)
          return { cveId, found: false, baseScore: null, severity: null, cvssVersion: null, vector: null };
        return pickScore(cveId, vuln.cve.metrics as Record<string, unknown[]> | undefined);
      } catch (raw) {
        const status = raw instanceof HTTPError ? raw.response.status : null;
        if (status !== null && status < 500) this.reachable(); // it answered, if only to say no
        if (status === 403 || status === 429) {
          if (attempt >= this.o.maxThrottleRetries)
            throw new NvdThrottledError(`NVD ${cveId}: still throttled (HTTP ${status}) after ${attempt + 1} attempts`);
          const backoff = backoffDelay(attempt + 1, {
            baseMs: this.o.throttleBackoffMs,
            maxMs: Number.POSITIVE_INFINITY,
            jitter: 0.25,
          });
          await this.o.sleep(backoff);
          continue;
        }
        if (raw instanceof TimeoutError) throw this.unreachable(cveId, `no answer within ${this.o.timeoutMs} ms`, raw);
        if (status !== null && status >= 500) throw this.unreachable(cveId, `HTTP ${status}`, raw);
        if (raw instanceof NetworkError || (raw instanceof TypeError && /fetch failed/i.test(raw.message)))
          throw this.unreachable(cveId, networkCode(raw), raw);
        if (status !== null) throw new Error(`NVD ${cveId}: HTTP ${status}`);
        throw raw;
      }
    }
  }
}
