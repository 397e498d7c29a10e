/**
 * Reachability probes for the health endpoint and `doctor`: each answers `connected`,
 * `unreachable` (with the reason) or `not configured`, within a timeout, and never throws.
 */
import http from 'node:http';
import https from 'node:https';
import type { Config } from '../config.ts';
import type { Db } from '../persistence/db.ts';
import { selectOne } from '../persistence/sql/probes.ts';

/** `unknown`: not contacted yet (NVD, which is not probed per request). */
export type ProbeStatus = 'connected' | 'unreachable' | 'not configured' | 'unknown';
export interface ProbeResult {
  status: ProbeStatus;
  detail?: string;
  latency_ms?: number;
}

/** A small HTTP(S) request with a hard timeout and an optional TLS-verification switch. */
export function httpRequest(
  url: string,
  opts: { method?: string; body?: string; headers?: Record<string, string>; verifyTls?: boolean; timeoutMs: number },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.request(
      u,
      {
        method: opts.method ?? 'GET',
        headers: {
          ...(opts.headers ?? {}),
          ...(opts.body !== undefined ? { 'content-length': Buffer.byteLength(opts.body) } : {}),
        },
        rejectUnauthorized: opts.verifyTls ?? true,
        timeout: opts.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= 1_000_000) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Run a check: `connected` (with its detail and latency) or `unreachable` with the reason; never throws. */
export async function timed(fn: () => Promise<string | undefined>): Promise<ProbeResult> {
  const t0 = performance.now();
  try {
    const detail = await fn();
    return { status: 'connected', latency_ms: Math.round(performance.now() - t0), ...(detail ? { detail } : {}) };
  } catch (raw) {
    const err = raw as NodeJS.ErrnoException;
    return {
      status: 'unreachable',
      detail: err.code ? `${err.code}: ${err.message}` : err.message,
      latency_ms: Math.round(performance.now() - t0),
    };
  }
}

export function probeDatabase(db: Db, timeoutMs = 2000): Promise<ProbeResult> {
  return timed(async () => {
    await Promise.race([
      selectOne(db),
      new Promise((_, rej) => setTimeout(() => rej(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    return undefined;
  });
}

/** UYUNI: `api.getVersion` needs no session, so it proves the XML-RPC endpoint answers. */
export function probeUyuni(cfg: Config['uyuni'], timeoutMs = 3000): Promise<ProbeResult> {
  if (cfg === undefined) return Promise.resolve({ status: 'not configured' });
  return timed(async () => {
    const body = '<?xml version="1.0"?><methodCall><methodName>api.getVersion</methodName><params/></methodCall>';
    const res = await httpRequest(`${cfg.url}/rpc/api`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/xml' },
      verifyTls: cfg.verifySsl,
      timeoutMs,
    });
    if (res.status !== 200 || !res.body.includes('<methodResponse>'))
      throw new Error(`HTTP ${res.status}, not an XML-RPC answer`);
    const v = /<string>([^<]*)<\/string>/.exec(res.body)?.[1];
    return v ? `api ${v}` : undefined;
  });
}

/** Salt API (rest_cherrypy): `GET /` answers 200 without a token. */
export function probeSalt(cfg: Config['salt'], timeoutMs = 3000): Promise<ProbeResult> {
  if (cfg === undefined) return Promise.resolve({ status: 'not configured' });
  return timed(async () => {
    const res = await httpRequest(`${cfg.url}/`, {
      headers: { accept: 'application/json' },
      verifyTls: cfg.verifySsl,
      timeoutMs,
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return undefined;
  });
}

/** Prometheus: `/-/ready` is 200 once the server can serve queries. */
export function probePrometheus(cfg: Config['prometheus'], timeoutMs = 3000): Promise<ProbeResult> {
  if (cfg === undefined) return Promise.resolve({ status: 'not configured' });
  return timed(async () => {
    const res = await httpRequest(`${cfg.url}/-/ready`, { timeoutMs });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return undefined;
  });
}
