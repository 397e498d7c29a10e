/** Run the real daemon as a child process against a test database and a fake world (test/helpers/fakeWorldServe.ts). */
import type { Db } from '../../src/persistence/db.ts';
import { freePort, startChild, waitForHttp, type Child } from './proc.ts';
import { issueToken } from './tokens.ts';

export interface DaemonProc {
  child: Child;
  base: string;
  port: number;
}

export async function spawnDaemon(o: {
  dbUrl: string;
  worldUrl: string;
  instanceId: string;
  port?: number;
  env?: Record<string, string>;
}): Promise<DaemonProc> {
  const port = o.port ?? (await freePort());
  const env = {
    DATABASE_URL: o.dbUrl,
    FAKE_WORLD_URL: o.worldUrl,
    INSTANCE_ID: o.instanceId,
    HTTP_PORT: String(port),
    LOG_LEVEL: 'warn',
    SCHEDULER_POLL_MS: '100',
    LEASE_TTL_SECONDS: '10',
    NODE_ENV: 'test',
    ...(o.env ?? {}),
  };
  const child = startChild([], env, { entry: 'test/helpers/fakeWorldServe.ts' });
  await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
  return { child, base: `http://127.0.0.1:${port}/api/v1`, port };
}

/** The second person of each harness token: who queues, starts tests and retries (see `api`). */
const operatorOf = new Map<string, string>();

/**
 * An admin token for a test harness (person `harness`), with a second admin token of another person
 * (`harness-operator`): separation of duties (issue 12) refuses an approval by whoever queued,
 * tested or retried the entry, so `api` sends those requests as the second person.
 */
export async function adminToken(db: Db): Promise<string> {
  const g = await issueToken(db, 'harness', 'admin');
  const o = await issueToken(db, 'harness-operator', 'admin');
  operatorOf.set(g.token, o.token);
  return g.token;
}

/** The operator's side of the four eyes: queueing, starting a test, retrying. */
const operatorSide = (method: string, path: string) =>
  method === 'POST' && (path === '/queue' || path === '/tests/start' || /^\/queue\/\d+\/retry$/.test(path));

export function api(base: string, token: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const as = operatorSide(method, path) ? (operatorOf.get(token) ?? token) : token;
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${as}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

/**
 * The environment of a daemon wired to the lab's UYUNI and Salt (what every engine test starts):
 * the lab's URLs and credentials, NVD off, plus the test's own settings.
 * @example startChild(['serve'], labEngineEnv(urls, { DATABASE_URL: t.url, HTTP_PORT: String(port), INSTANCE_ID: 'e2e' }))
 */
export function labEngineEnv(
  urls: { uyuni: string; salt: string },
  env: Record<string, string>,
): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    NODE_ENV: 'test',
    UYUNI_URL: urls.uyuni,
    UYUNI_USER: 'admin',
    UYUNI_PASSWORD: 'admin',
    NVD_ENABLED: 'false',
    SALT_API_URL: urls.salt,
    SALT_USER: 'salt',
    SALT_PASSWORD: 'salt',
    ...env,
  };
}
