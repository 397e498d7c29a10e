/**
 * Salt API client (ky, rest_cherrypy): token login and refresh (before expiry, and once on 401),
 * `local` (synchronous) and `local_async` + `GET /jobs/<jid>`. Minions missing from a reply did not
 * respond: every result says which targeted minions are missing (reference §2, salt#25469).
 * Used for snapshots (snapper, with a description that carries the effect key so that a retried
 * snapshot is found instead of taken twice), service status, package versions, reboots.
 */
import ky, { HTTPError, TimeoutError } from 'ky';
import { z } from 'zod';

export interface SaltConfig {
  url: string;
  user: string;
  password: string;
  eauth: string;
  timeoutMs?: number;
}

export class SaltUnavailable extends Error {
  readonly transient = true;
}

export interface LocalResult<T> {
  returned: Record<string, T>;
  /** Targeted minions that did not answer (not responding). */
  missing: string[];
}

const loginReply = z.object({
  return: z.array(z.object({ token: z.string().min(1), expire: z.number(), start: z.number() })).min(1),
});
const lowstateReply = z.object({ return: z.array(z.unknown()) });
const asyncReply = z.object({ jid: z.string(), minions: z.array(z.string()) });
const jobReply = z.object({
  info: z.array(z.object({ Minions: z.array(z.string()).optional() }).passthrough()),
  return: z.array(z.record(z.string(), z.unknown())),
});
/** Salt's `disk.usage` (df -P): per mount point, the 1K-block counts as strings. */
const diskUsage = z.record(
  z.string(),
  z
    .object({
      filesystem: z.string().optional(),
      '1K-blocks': z.union([z.string(), z.number()]),
      used: z.union([z.string(), z.number()]),
      available: z.union([z.string(), z.number()]),
    })
    .passthrough(),
);
const snapshotList = z.array(
  z.object({ id: z.number(), description: z.string().optional(), type: z.string().optional() }),
);

export class SaltClient {
  private token: { value: string; expiresAt: number } | null = null;
  private readonly http: typeof ky;
  private readonly cfg: SaltConfig;
  logins = 0;

  constructor(cfg: SaltConfig) {
    this.cfg = cfg;
    this.http = ky.create({ prefix: cfg.url.replace(/\/+$/, ''), timeout: cfg.timeoutMs ?? 30_000, retry: 0 });
  }

  private async login(): Promise<string> {
    let body: unknown;
    try {
      body = await this.http
        .post('login', {
          json: { username: this.cfg.user, password: this.cfg.password, eauth: this.cfg.eauth },
          headers: { accept: 'application/json' },
        })
        .json();
    } catch (raw) {
      if (raw instanceof HTTPError && raw.response.status === 401)
        throw new Error('Salt API login refused (401): check SALT_USER, SALT_PASSWORD, SALT_EAUTH');
      throw this.unavailable('login', raw);
    }
    const parsed = loginReply.safeParse(body);
    if (!parsed.success) throw new Error(`Salt API login: unexpected reply: ${parsed.error.issues[0]?.message ?? ''}`);
    const t = parsed.data.return[0]!;
    this.logins++;
    // Refresh a minute before the master's expiry.
    this.token = { value: t.token, expiresAt: (t.expire - 60) * 1000 };
    return t.token;
  }

  private unavailable(what: string, raw: unknown): Error {
    if (raw instanceof TimeoutError) return new SaltUnavailable(`Salt API ${what}: no answer in time`);
    if (raw instanceof HTTPError)
      return raw.response.status >= 500
        ? new SaltUnavailable(`Salt API ${what}: HTTP ${raw.response.status}`)
        : new Error(`Salt API ${what}: HTTP ${raw.response.status}`);
    return new SaltUnavailable(`Salt API ${what}: ${(raw as Error).message}`);
  }

  private async authed<T>(what: string, fn: (token: string) => Promise<T>): Promise<T> {
    const token = this.token && this.token.expiresAt > Date.now() ? this.token.value : await this.login();
    try {
      return await fn(token);
    } catch (raw) {
      if (raw instanceof HTTPError && raw.response.status === 401) {
        const fresh = await this.login();
        try {
          return await fn(fresh);
        } catch (again) {
          throw this.unavailable(what, again);
        }
      }
      throw this.unavailable(what, raw);
    }
  }

  private async lowstate(chunk: Record<string, unknown>): Promise<unknown> {
    const body = await this.authed(String(chunk.fun), (token) =>
      this.http.post('', { json: [chunk], headers: { 'X-Auth-Token': token, accept: 'application/json' } }).json(),
    );
    const parsed = lowstateReply.safeParse(body);
    if (!parsed.success || parsed.data.return.length !== 1)
      throw new Error(`Salt API ${String(chunk.fun)}: unexpected reply`);
    return parsed.data.return[0];
  }

  /** Run `fun` on a list of minions and wait for the answers. */
  async local<T = unknown>(
    minions: string[],
    fun: string,
    arg: unknown[] = [],
    kwarg: Record<string, unknown> = {},
  ): Promise<LocalResult<T>> {
    const ret = await this.lowstate({ client: 'local', tgt: minions, tgt_type: 'list', fun, arg, kwarg });
    const returned = (ret && typeof ret === 'object' ? ret : {}) as Record<string, T>;
    return { returned, missing: minions.filter((m) => !(m in returned)) };
  }

  /** Start `fun` without waiting; look the job up with `job(jid)`. */
  async localAsync(
    minions: string[],
    fun: string,
    arg: unknown[] = [],
    kwarg: Record<string, unknown> = {},
  ): Promise<{ jid: string; minions: string[] }> {
    const parsed = asyncReply.safeParse(
      await this.lowstate({ client: 'local_async', tgt: minions, tgt_type: 'list', fun, arg, kwarg }),
    );
    if (!parsed.success) throw new Error(`Salt API ${fun} (async): unexpected reply`);
    return parsed.data;
  }

  async job<T = unknown>(jid: string): Promise<LocalResult<T>> {
    const body = await this.authed(`jobs/${jid}`, (token) =>
      this.http.get(`jobs/${jid}`, { headers: { 'X-Auth-Token': token, accept: 'application/json' } }).json(),
    );
    const parsed = jobReply.safeParse(body);
    if (!parsed.success) throw new Error(`Salt API jobs/${jid}: unexpected reply`);
    const targeted = parsed.data.info[0]?.Minions ?? [];
    const returned = (parsed.data.return[0] ?? {}) as Record<string, T>;
    return { returned, missing: targeted.filter((m) => !(m in returned)) };
  }

  /**
   * A snapper snapshot whose description carries `key` on each minion; where one with that
   * description exists already (a retried effect), its number is returned instead of taking
   * another. Two calls whatever the number of minions. A minion that does not answer is an error
   * (no snapshot, no patch).
   */
  async snapshotsOnce(minions: string[], key: string): Promise<Map<string, { id: number; created: boolean }>> {
    const description = `spm-orchestrator ${key}`;
    const out = new Map<string, { id: number; created: boolean }>();
    if (minions.length === 0) return out;
    const list = await this.local(minions, 'snapper.list_snapshots', [], { config: 'root' });
    if (list.missing.length > 0) throw new SaltUnavailable(`not responding: ${list.missing.join(', ')}`);
    for (const m of minions) {
      const known = snapshotList.safeParse(list.returned[m]);
      const found = known.success ? known.data.find((x) => x.description === description) : undefined;
      if (found) out.set(m, { id: found.id, created: false });
    }
    const todo = minions.filter((m) => !out.has(m));
    if (todo.length === 0) return out;
    const made = await this.local<number>(todo, 'snapper.create_snapshot', [], {
      config: 'root',
      snapshot_type: 'single',
      description,
      cleanup_algorithm: 'number',
    });
    if (made.missing.length > 0) throw new SaltUnavailable(`not responding: ${made.missing.join(', ')}`);
    for (const m of todo) {
      const id = made.returned[m];
      if (typeof id !== 'number') throw new Error(`snapper.create_snapshot on ${m} failed: ${JSON.stringify(id)}`);
      out.set(m, { id, created: true });
    }
    return out;
  }

  async snapshotOnce(minion: string, key: string): Promise<{ id: number; created: boolean }> {
    return (await this.snapshotsOnce([minion], key)).get(minion)!;
  }

  /**
   * Delete snapper snapshots on a minion (Salt's `snapper.delete_snapshot`, `snapshots_ids`). Only
   * ever called with numbers the orchestrator took (their description carries its prefix).
   */
  async deleteSnapshots(minion: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    const r = await this.local<unknown>([minion], 'snapper.delete_snapshot', [], {
      snapshots_ids: ids,
      config: 'root',
    });
    if (r.missing.length > 0) throw new SaltUnavailable(`not responding: ${minion}`);
    const out = r.returned[minion];
    if (typeof out === 'string') throw new Error(`snapper.delete_snapshot on ${minion} failed: ${out.slice(0, 200)}`);
  }

  /** Snapper's snapshot list per minion (id, description). */
  async listSnapshots(minions: string[]): Promise<LocalResult<{ id: number; description?: string | undefined }[]>> {
    const list = await this.local(minions, 'snapper.list_snapshots', [], { config: 'root' });
    const returned: Record<string, { id: number; description?: string | undefined }[]> = {};
    for (const [m, v] of Object.entries(list.returned)) {
      const parsed = snapshotList.safeParse(v);
      if (!parsed.success)
        throw new Error(`snapper.list_snapshots on ${m}: unexpected reply ${JSON.stringify(v).slice(0, 200)}`);
      returned[m] = parsed.data;
    }
    return { returned, missing: list.missing };
  }

  /**
   * How full each minion's snapshot storage is (0–1): Salt's `disk.usage` for the filesystem of
   * `/.snapshots` (snapper's subvolume, when mounted on its own) or else `/`, as used ÷ (used +
   * available) — df's own "capacity" without its rounding. A minion whose answer has neither mount
   * is left out (and logged by the caller).
   * @example await salt.snapshotSpace(['test-01']) // { returned: { 'test-01': 0.42 }, missing: [] }
   */
  async snapshotSpace(minions: string[]): Promise<LocalResult<number>> {
    const r = await this.local(minions, 'disk.usage');
    const returned: Record<string, number> = {};
    for (const [m, v] of Object.entries(r.returned)) {
      const parsed = diskUsage.safeParse(v);
      if (!parsed.success) throw new Error(`disk.usage on ${m}: unexpected reply ${JSON.stringify(v).slice(0, 200)}`);
      const fs = parsed.data['/.snapshots'] ?? parsed.data['/'];
      if (!fs) continue;
      const used = Number(fs.used);
      const total = used + Number(fs.available);
      if (Number.isFinite(used) && total > 0) returned[m] = used / total;
    }
    return { returned, missing: r.missing };
  }
}
