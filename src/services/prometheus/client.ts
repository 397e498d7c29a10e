/**
 * Prometheus HTTP API client (ky): instant and range queries with a timeout, the response envelope
 * validated (reference §3: values are strings, including "NaN"), and the queries the test engine
 * needs (design §9 with the reference's metric names: `node_cpu_seconds_total`,
 * `node_memory_MemAvailable_bytes`, `node_systemd_unit_state`, textfile `node_reboot_required`).
 * An unreachable Prometheus, a 503 or a timeout is `PrometheusUnavailable` (the judge falls back to
 * Salt); a 400/422 is a bad query (a bug, never retried).
 */
import ky, { HTTPError, TimeoutError } from 'ky';
import { z } from 'zod';

export interface PrometheusConfig {
  url: string;
  timeoutMs: number;
}

export class PrometheusUnavailable extends Error {
  readonly transient = true;
}

const sample = z.tuple([z.number(), z.string()]);
const envelope = z.object({
  status: z.enum(['success', 'error']),
  data: z.object({ resultType: z.enum(['vector', 'matrix', 'scalar', 'string']), result: z.unknown() }).optional(),
  errorType: z.string().optional(),
  error: z.string().optional(),
});
const vector = z.array(z.object({ metric: z.record(z.string(), z.string()), value: sample }));
const matrix = z.array(z.object({ metric: z.record(z.string(), z.string()), values: z.array(sample) }));

export interface VectorSample {
  labels: Record<string, string>;
  value: number;
}

/** Escape a label value for a PromQL string literal. */
export function promString(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * A label matcher for one or several instances (`instance="a"` or `instance=~"a|b"`, regex
 * metacharacters escaped), so that the queries below cost one call whatever the number of hosts.
 */
export function instanceMatcher(instances: string[]): string {
  return instances.length === 1
    ? `instance=${promString(instances[0]!)}`
    : `instance=~${promString(instances.map((i) => i.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'))}`;
}

/** The queries of design §9 with the reference's metric names, for an instance matcher. */
export const QUERIES = {
  up: (sel: string) => `up{${sel}}`,
  cpuPercent: (sel: string, windowS: number) =>
    `100 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",${sel}}[${windowS}s])) * 100`,
  memoryPercent: (sel: string) =>
    `(1 - node_memory_MemAvailable_bytes{${sel}} / node_memory_MemTotal_bytes{${sel}}) * 100`,
  activeUnits: (sel: string) => `node_systemd_unit_state{${sel},state="active"}`,
} as const;

export class PrometheusClient {
  private readonly http: typeof ky;
  queries = 0;

  constructor(cfg: PrometheusConfig) {
    this.http = ky.create({ prefix: cfg.url.replace(/\/+$/, ''), timeout: cfg.timeoutMs, retry: 0 });
  }

  private async call(
    path: 'api/v1/query' | 'api/v1/query_range',
    params: Record<string, string>,
  ): Promise<{ resultType: string; result: unknown }> {
    this.queries++;
    let body: unknown;
    try {
      body = await this.http.post(path, { body: new URLSearchParams(params) }).json();
    } catch (raw) {
      if (raw instanceof HTTPError) {
        const status = raw.response.status;
        let detail = '';
        try {
          detail = ((await raw.response.json()) as { error?: string }).error ?? '';
        } catch {
          /* not JSON */
        }
        if (status === 400 || status === 422)
          throw new Error(
            `Prometheus rejected the query (${status}): ${detail || raw.message} — query: ${params.query}`,
          );
        throw new PrometheusUnavailable(`Prometheus answered ${status}${detail ? `: ${detail}` : ''}`, { cause: raw });
      }
      if (raw instanceof TimeoutError) throw new PrometheusUnavailable('Prometheus: no answer in time', { cause: raw });
      throw new PrometheusUnavailable(`Prometheus unreachable: ${(raw as Error).message}`, { cause: raw });
    }
    const parsed = envelope.safeParse(body);
    if (!parsed.success)
      throw new Error(
        `Prometheus: unexpected reply: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
      );
    if (parsed.data.status === 'error' || !parsed.data.data)
      throw new Error(`Prometheus error ${parsed.data.errorType ?? ''}: ${parsed.data.error ?? 'no data'}`);
    return parsed.data.data;
  }

  /** An instant query returning a vector (numbers parsed; "NaN" stays NaN). */
  async vector(query: string, at?: Date): Promise<VectorSample[]> {
    const data = await this.call('api/v1/query', { query, ...(at ? { time: (at.getTime() / 1000).toFixed(3) } : {}) });
    if (data.resultType !== 'vector')
      throw new Error(`Prometheus: expected a vector for ${query}, got ${data.resultType}`);
    const parsed = vector.safeParse(data.result);
    if (!parsed.success) throw new Error(`Prometheus: malformed vector for ${query}`);
    return parsed.data.map((s) => ({ labels: s.metric, value: Number(s.value[1]) }));
  }

  async range(
    query: string,
    start: Date,
    end: Date,
    stepS: number,
  ): Promise<{ labels: Record<string, string>; values: [number, number][] }[]> {
    const data = await this.call('api/v1/query_range', {
      query,
      start: (start.getTime() / 1000).toFixed(3),
      end: (end.getTime() / 1000).toFixed(3),
      step: String(stepS),
    });
    const parsed = matrix.safeParse(data.result);
    if (!parsed.success) throw new Error(`Prometheus: malformed matrix for ${query}`);
    return parsed.data.map((s) => ({
      labels: s.metric,
      values: s.values.map(([t, v]) => [t, Number(v)] as [number, number]),
    }));
  }
}
