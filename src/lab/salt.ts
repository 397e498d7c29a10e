/**
 * The lab Salt API (salt-api rest_cherrypy shape, reference §2): `POST /login` (401 on bad
 * credentials; token in the body and `X-Auth-Token`), `POST /` with a JSON list of lowstate chunks
 * (400 "Lowstates must be a list", 401 for a missing, malformed or expired token), clients `local`
 * and `local_async`, `GET /jobs/<jid>`. Minions that are down are simply absent from results.
 * Functions: test.ping, service.status, pkg.version, cmd.run, snapper.create_snapshot /
 * list_snapshots, system.reboot (the minion is away for `rebootMs`), state.apply of the SLS the
 * engine applies (`saltStates.ts`).
 * Never imported by production code (src/lab).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type LabMinion, serviceActive, touchCpu, newMinion } from './minion.ts';
import { LAB_INSTALLED_SLS, labStateApply } from './saltStates.ts';

export {
  type LabApplied,
  type LabMinion,
  activeEffects,
  serviceActive,
  cpuPercent,
  memPercent,
  droppedMetrics,
  gaussian,
  touchCpu,
  newMinion,
} from './minion.ts';

export class LabSalt {
  readonly minions = new Map<string, LabMinion>();
  readonly calls = new Map<string, number>();
  private readonly tokens = new Map<string, number>(); // token → expires (epoch ms)
  private readonly jobs = new Map<
    string,
    {
      fun: string;
      args: unknown[];
      minions: string[];
      result: Record<string, unknown>;
      start: string;
      target: string;
      tgtType: string;
    }
  >();
  private server: Server | undefined;
  tokenTtlMs = 12 * 3600_000;
  /** Scenario knob: the Salt API is down (connections dropped) until this time (epoch ms). */
  downUntil = 0;
  /** Lowstate chunks received (API calls, whatever the number of minions each targets). */
  requests = 0;
  /** Told after a call's effect happened and before it is answered (crash tests kill the caller here). */
  afterCall: ((fun: string) => void) | undefined;
  /** Scenario knob: calls of these functions are dropped (the API goes down when they are asked). */
  readonly dropFuns = new Set<string>();
  rebootMs = 200;
  /** Scenario knob: the SLS the master has (`state.apply` of any other answers "No matching sls found"). */
  installedSls: string[] = [...LAB_INSTALLED_SLS];

  private readonly creds: { username: string; password: string };

  constructor(minionIds: string[], creds = { username: 'salt', password: 'salt' }) {
    this.creds = creds;
    for (const id of minionIds)
      this.minions.set(
        id,
        newMinion(
          id,
          ['ssh.service', 'cron.service', 'nginx.service'],
          [
            ['openssl', '3.0.13-0ubuntu3'],
            ['nginx', '1.24.0-2ubuntu7'],
          ],
        ),
      );
  }

  /** Effects the minions received, by key (`snapshot|minion|description`, `pkg_install|minion|pkgs`, …). */
  readonly effects = new Map<string, number>();
  private countEffect(key: string): void {
    this.effects.set(key, (this.effects.get(key) ?? 0) + 1);
  }

  /** Reboot a minion now: away for `rebootMs` (or for ever), boots into a pending snapper rollback. */
  reboot(m: LabMinion, neverReturns = false): void {
    touchCpu(m);
    m.downUntil = neverReturns ? Infinity : Date.now() + this.rebootMs;
    m.rebootRequired = false;
    m.bootTime = Date.now();
    if (m.pendingRollback !== null) {
      const snap = m.snapshots.find((s) => s.id === m.pendingRollback);
      if (snap) {
        m.packages = new Map(snap.state.packages);
        m.applied = snap.state.applied.map((a) => ({ ...a }));
      }
      m.pendingRollback = null;
    }
  }

  count(fun: string): number {
    return this.calls.get(fun) ?? 0;
  }

  expireTokens(): void {
    this.tokens.clear();
  }

  isUp(m: LabMinion): boolean {
    if (!m.up) return false;
    if (m.downUntil > Date.now()) return false;
    return true;
  }

  private targets(tgt: unknown, tgtType: unknown): LabMinion[] {
    const all = [...this.minions.values()];
    if (tgtType === 'list') {
      const ids = Array.isArray(tgt) ? tgt : String(tgt).split(',');
      return all.filter((m) => ids.includes(m.id));
    }
    const re = new RegExp(
      `^${String(tgt ?? '*')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    return all.filter((m) => re.test(m.id));
  }

  private exec(m: LabMinion, fun: string, args: unknown[], kwarg: Record<string, unknown>): unknown {
    this.calls.set(fun, (this.calls.get(fun) ?? 0) + 1);
    switch (fun) {
      case 'test.ping':
        return true;
      case 'status.uptime': {
        // As Salt's status.uptime on Linux: `seconds` from /proc/uptime, truncated; the boot time
        // is the host's own clock minus that (`since_t` whole seconds, `since_iso` local, no zone).
        const seconds = Math.floor(Math.max(0, Date.now() - m.bootTime) / 1000);
        const since = Math.floor((Date.now() + m.clockOffsetMs) / 1000) - seconds;
        const days = Math.floor(seconds / 86400);
        const rest = seconds % 86400;
        return {
          seconds,
          since_iso: new Date(since * 1000).toISOString().slice(0, 19),
          since_t: since,
          days,
          time: `${Math.floor(rest / 3600)}:${String(Math.floor((rest % 3600) / 60)).padStart(2, '0')}`,
          users: 0,
        };
      }
      case 'service.status':
        return serviceActive(m, String(args[0]));
      case 'pkg.version': {
        if (args.length === 1) return m.packages.get(String(args[0])) ?? '';
        return Object.fromEntries(args.map((a) => [String(a), m.packages.get(String(a)) ?? '']));
      }
      case 'pkg.install': {
        // pkgs=[{name: version}] (a lower version is a downgrade, as zypper/yum/apt do it).
        const pkgs = (Array.isArray(kwarg.pkgs) ? kwarg.pkgs : []) as Record<string, string>[];
        const changes: Record<string, { old: string; new: string }> = {};
        touchCpu(m);
        for (const p of pkgs)
          for (const [name, version] of Object.entries(p)) {
            changes[name] = { old: m.packages.get(name) ?? '', new: version };
            m.packages.set(name, version);
          }
        this.countEffect(`pkg_install|${m.id}|${JSON.stringify(pkgs)}`);
        return changes;
      }
      case 'pkg.remove': {
        const names = (Array.isArray(kwarg.pkgs) ? kwarg.pkgs : args) as string[];
        touchCpu(m);
        const changes: Record<string, { old: string; new: string }> = {};
        for (const n of names) {
          changes[n] = { old: m.packages.get(n) ?? '', new: '' };
          m.packages.delete(n);
        }
        this.countEffect(`pkg_remove|${m.id}|${names.join(',')}`);
        return changes;
      }
      case 'cmd.run': {
        const cmd = String(args[0]);
        if (cmd.includes('reboot-required')) return m.rebootRequired ? 'yes' : 'no';
        const rb = /snapper(?: -c \S+)? rollback (\d+)/.exec(cmd);
        if (rb) {
          const n = Number(rb[1]);
          if (!m.snapshots.some((s) => s.id === n)) return `Snapshot '${n}' not found.`;
          // As snapper does: a read-only backup of the current state and a writable copy of #n, used at the next boot.
          this.snapshot(m, 'single', 'rollback backup of #current');
          this.snapshot(m, 'single', `writable copy of #${n}`);
          m.pendingRollback = n;
          this.countEffect(`snapper_rollback|${m.id}|${n}`);
          return `Creating read-only snapshot of current system. (Snapshot ${m.snapshots.length - 1}.)\nCreating read-write snapshot of snapshot ${n}. (Snapshot ${m.snapshots.length}.)\nSetting default subvolume to snapshot ${m.snapshots.length}.`;
        }
        return '';
      }
      case 'snapper.create_snapshot': {
        const description = String(kwarg.description ?? `salt job ${Date.now()}`);
        this.countEffect(`snapshot|${m.id}|${description}`);
        return this.snapshot(m, String(kwarg.snapshot_type ?? 'single'), description);
      }
      case 'snapper.delete_snapshot': {
        // As Salt's module: snapshots_ids=[…], config=…; answers {config: {ids, status: 'deleted'}}.
        const ids = (Array.isArray(kwarg.snapshots_ids) ? kwarg.snapshots_ids : [kwarg.snapshots_ids]).map(Number);
        const config = String(kwarg.config ?? 'root');
        const unknown = ids.filter((id) => !m.snapshots.some((x) => x.id === id));
        if (unknown.length > 0) return `ERROR: snapper delete: snapshot ${unknown.join(', ')} does not exist`;
        for (const id of ids) this.countEffect(`snapshot_delete|${m.id}|${id}`);
        m.snapshots = m.snapshots.filter((x) => !ids.includes(x.id));
        return { [config]: { ids, status: 'deleted' } };
      }
      case 'snapper.list_snapshots':
        return m.snapshots.map((s) => ({
          id: s.id,
          type: s.type,
          timestamp: s.timestamp,
          user: 'root',
          description: s.description,
          cleanup: 'number',
          userdata: s.userdata,
        }));
      case 'disk.usage': {
        // As Salt's disk.usage on Linux (df -P): per mount point, 1K-block counts as strings.
        const blocks = 41_943_040; // 40 GiB
        const used = Math.round(blocks * Math.min(1, m.diskBaseUsedRatio + 0.01 * m.snapshots.length));
        const fs = (mount: string, dev: string, b: number, u: number) => ({
          [mount]: {
            filesystem: dev,
            '1K-blocks': String(b),
            used: String(u),
            available: String(b - u),
            capacity: `${Math.ceil((u / b) * 100)}%`,
          },
        });
        return { ...fs('/', '/dev/vda2', blocks, used), ...fs('/boot/efi', '/dev/vda1', 524_288, 6_200) };
      }
      case 'state.apply':
        return labStateApply(m, args, this.installedSls);
      case 'system.reboot':
        this.countEffect(`reboot|${m.id}`);
        this.reboot(m);
        return null;
      default:
        return `'${fun}' is not available.`;
    }
  }

  private snapshot(m: LabMinion, type: string, description: string): number {
    const id = m.snapshots.length + 1;
    m.snapshots.push({
      id,
      type,
      description,
      timestamp: Math.floor(Date.now() / 1000),
      userdata: { salt_jid: 'lab' },
      state: { packages: new Map(m.packages), applied: m.applied.map((a) => ({ ...a })) },
    });
    return id;
  }

  private runLocal(chunk: Record<string, unknown>): Record<string, unknown> {
    const fun = String(chunk.fun);
    const args = Array.isArray(chunk.arg) ? chunk.arg : chunk.arg === undefined ? [] : [chunk.arg];
    const kwarg = (chunk.kwarg ?? {}) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const m of this.targets(chunk.tgt, chunk.tgt_type))
      if (this.isUp(m)) out[m.id] = this.exec(m, fun, args, kwarg);
    return out;
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(typeof payload === 'string' ? payload : JSON.stringify(payload));
    };
    const url = req.url ?? '/';
    if (req.method === 'POST' && url === '/login') {
      let c: Record<string, unknown> = {};
      try {
        c = req.headers['content-type']?.includes('json')
          ? JSON.parse(body)
          : Object.fromEntries(new URLSearchParams(body));
      } catch {
        return send(400, { status: 400, return: 'Could not parse the request body' });
      }
      if (c.username !== this.creds.username || c.password !== this.creds.password)
        return send(401, { status: 401, return: 'Could not authenticate using provided credentials' });
      const token = randomBytes(20).toString('hex');
      const start = Date.now() / 1000;
      this.tokens.set(token, Date.now() + this.tokenTtlMs);
      return send(
        200,
        {
          return: [
            {
              token,
              expire: start + this.tokenTtlMs / 1000,
              start,
              user: c.username,
              eauth: c.eauth ?? 'pam',
              perms: ['.*'],
            },
          ],
        },
        { 'X-Auth-Token': token },
      );
    }
    if (req.method === 'GET' && url === '/')
      return send(200, { return: 'Welcome', clients: ['local', 'local_async', 'runner'] });
    const token = req.headers['x-auth-token'];
    if (typeof token !== 'string' || !/^[0-9a-f]+$/.test(token))
      return send(401, { status: 401, return: 'Invalid token' });
    const exp = this.tokens.get(token);
    if (exp === undefined || exp < Date.now()) return send(401, { status: 401, return: 'Please log in' });
    if (req.method === 'POST' && url === '/') {
      let chunks: unknown;
      try {
        chunks = JSON.parse(body);
      } catch {
        return send(400, { status: 400, return: 'Could not parse the request body' });
      }
      if (!Array.isArray(chunks)) return send(400, { status: 400, return: 'Lowstates must be a list' });
      if (chunks.some((c: Record<string, unknown>) => this.dropFuns.has(String(c.fun))))
        return void req.socket.destroy();
      const results = chunks.map((chunk: Record<string, unknown>) => {
        if (chunk.client === 'local') return this.runLocal(chunk);
        if (chunk.client === 'local_async') {
          const jid = `2026${Date.now()}${randomBytes(2).toString('hex')}`;
          const targeted = this.targets(chunk.tgt, chunk.tgt_type).map((m) => m.id);
          const result = this.runLocal(chunk);
          this.jobs.set(jid, {
            fun: String(chunk.fun),
            args: (chunk.arg as unknown[]) ?? [],
            minions: targeted,
            result,
            start: new Date().toISOString(),
            target: String(chunk.tgt),
            tgtType: String(chunk.tgt_type ?? 'glob'),
          });
          return { jid, minions: targeted };
        }
        return `Client '${String(chunk.client)}' is not available`;
      });
      this.requests += chunks.length;
      for (const c of chunks as Record<string, unknown>[]) this.afterCall?.(String(c.fun));
      return send(200, { return: results });
    }
    const job = /^\/jobs\/(\w+)$/.exec(url);
    if (req.method === 'GET' && job) {
      const j = this.jobs.get(job[1]!);
      if (!j) return send(200, { info: [{}], return: [{}] });
      return send(200, {
        info: [
          {
            Arguments: j.args,
            Function: j.fun,
            Minions: j.minions,
            Result: Object.fromEntries(Object.entries(j.result).map(([k, v]) => [k, { return: v }])),
            'Start Time': j.start,
            Target: j.target,
            'Target-type': j.tgtType,
            User: 'salt',
            jid: job[1],
          },
        ],
        return: [j.result],
      });
    }
    return send(404, { status: 404, return: 'Not found' });
  }

  serve(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (this.downUntil > Date.now()) return void req.socket.destroy(); // the Salt master is down
        this.handle(req, res, body);
      });
    });
    return new Promise((resolve) =>
      this.server!.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`),
      ),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
