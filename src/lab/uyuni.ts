/**
 * The lab UYUNI: an XML-RPC server at `/rpc/api` over loopback, built on the `xmlrpc` package's
 * serializer and deserializer, following reference/integrations-api.md:
 * - session keys `<n>x<64 hex>`, sliding expiry; an unknown or expired key is fault -1
 *   "Could not find session with id: N";
 * - methods resolved by name and argument count; otherwise fault -1 "Could not find method: …";
 * - unknown system -208 "No such system"; unknown advisory -208 "The patch X cannot be found.";
 * - null struct members omitted; dateTime.iso8601 without a time zone.
 * Knobs: per-call latency, an injected fault for the next call of a method, a malformed reply,
 * dropped connections, the form of the errata dates (`dateForm`: each form a real server
 * generation sends). Every call is counted by method.
 * Never imported by production code (src/lab).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Fleet, LabErrata } from './fleet.ts';
import { uyuniHandlers } from './uyuniHandlers.ts';
import {
  Fault,
  type Handler,
  type LabAction,
  type LabActionEvent,
  type LabClmEnvironment,
  type LabDateForm,
  type LabUyuniOptions,
  labDate,
  omitNulls,
} from './uyuniModel.ts';

export {
  LAB_DATE_FORMS,
  type LabActionEvent,
  type LabClmEnvironment,
  type LabDateForm,
  type LabUyuniOptions,
  labDate,
} from './uyuniModel.ts';

const require = createRequire(import.meta.url);
const Serializer = require('xmlrpc/lib/serializer') as {
  serializeMethodResponse(v: unknown): string;
  serializeFault(f: unknown): string;
};
const Deserializer = require('xmlrpc/lib/deserializer') as new () => {
  deserializeMethodCall(s: IncomingMessage, cb: (err: Error | null, method: string, params: unknown[]) => void): void;
};

export class LabUyuni {
  readonly calls = new Map<string, number>();
  logins = 0;
  logouts = 0;
  /** The next call of `method` answers this fault (or a malformed body / a dropped connection). */
  readonly failNext = new Map<string, { code: number; message: string } | 'malformed' | 'drop'>();
  // Members without `private` are read by the handler table (uyuniHandlers.ts).
  readonly sessions = new Map<string, { id: number; expires: number }>();
  private nextSession = 1;
  private readonly errataByName: Map<string, LabErrata>;
  readonly errataById: Map<number, LabErrata>;
  readonly o: Required<LabUyuniOptions>;
  readonly actions = new Map<number, LabAction>();
  nextAction = 5000;
  /** Scenario knob: applying this advisory fails on these systems (empty set: on every system). */
  readonly failApply = new Map<string, Set<number>>();
  /** Scenario knob: applying this advisory hangs (the action is picked up and never finishes). */
  readonly hangApply = new Set<string>();
  /** Scenario knob: applying this advisory is never picked up (the minion does not check in): it stays Queued. */
  readonly queuedApply = new Set<string>();
  /** Knob: record every call (method, session key, time) in `callLog` (off by default: long runs). */
  recordCalls = false;
  readonly callLog: { method: string; key: string | null; at: number }[] = [];
  /** Knob: the form of the errata dates in replies (see `LabDateForm`). */
  dateForm: LabDateForm = 'sql';
  /** Scenario knob: UYUNI is down (connections are dropped) until this time (epoch ms). */
  downUntil = 0;
  /** Scenario knob: probability that a call's connection is dropped (a flaky network). */
  dropRate = 0;
  /**
   * Scenario knob: these methods are carried out at once but answered only after this many ms
   * (a UYUNI that outlives its caller's timeout: the action exists, the answer comes too late).
   */
  readonly answerDelayMs = new Map<string, number>();
  /** Listeners told when a system of an action is picked up and when it finishes (the lab world applies errata). */
  readonly onAction: ((ev: LabActionEvent) => void)[] = [];
  /** Installed packages per system, answered by `system.listPackages` (set by the lab world). */
  packagesOf: (sid: number) => { name: string; version: string; release: string; epoch: string; arch: string }[] =
    () => [];
  /** CLM projects: label → environments in path order. */
  readonly clm = new Map<string, LabClmEnvironment[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server: Server | undefined;
  fleet: Fleet;

  constructor(fleet: Fleet, opts: LabUyuniOptions = {}) {
    this.fleet = fleet;
    this.o = {
      user: opts.user ?? 'admin',
      password: opts.password ?? 'admin',
      latencyMs: opts.latencyMs ?? 0,
      sessionTtlMs: opts.sessionTtlMs ?? 3_600_000,
      pickupMs: opts.pickupMs ?? 50,
      runMs: opts.runMs ?? 100,
    };
    this.errataByName = new Map(fleet.errata.map((e) => [e.advisoryName, e]));
    this.errataById = new Map(fleet.errata.map((e) => [e.id, e]));
  }

  count(method: string): number {
    return this.calls.get(method) ?? 0;
  }

  totalCalls(): number {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }

  /** Expire every session now (the session cleanup job ran). */
  expireSessions(): void {
    this.sessions.clear();
  }

  /** Change an advisory's update date (a new version was published). */
  bumpErrata(name: string, updateDate: string): void {
    const e = this.errataByName.get(name);
    if (!e) throw new Error(`no errata ${name}`);
    e.updateDate = updateDate;
  }

  user(key: unknown): void {
    if (typeof key !== 'string' || !/^[1-9][0-9]*x[a-f0-9]{64}$/.test(key)) throw new Fault(-1, 'Invalid session key');
    const s = this.sessions.get(key);
    if (!s || s.expires < Date.now()) {
      this.sessions.delete(key);
      throw new Fault(-1, `Could not find session with id: ${key.split('x')[0]}`);
    }
    s.expires = Date.now() + this.o.sessionTtlMs; // sliding
  }

  system(sid: unknown) {
    const s = typeof sid === 'number' ? this.fleet.systems.find((x) => x.id === sid) : undefined;
    if (!s) throw new Fault(-208, 'No such system');
    return s;
  }

  errata(name: unknown): LabErrata {
    const e = typeof name === 'string' ? this.errataByName.get(name) : undefined;
    if (!e) throw new Fault(-208, `The patch ${String(name)} cannot be found.`);
    return e;
  }

  overview(e: LabErrata) {
    const f = this.dateForm;
    if (f === 'legacy')
      return {
        id: e.id,
        date: labDate(e.updateDate, f),
        advisory_synopsis: e.synopsis,
        advisory_type: e.type,
        advisory_name: e.advisoryName,
      };
    return {
      id: e.id,
      issue_date: labDate(e.issueDate, f),
      date: labDate(e.updateDate, f),
      update_date: labDate(e.updateDate, f),
      advisory_synopsis: e.synopsis,
      advisory_type: e.type,
      advisory_status: 'stable',
      advisory_name: e.advisoryName,
      reboot: e.rebootSuggested,
    };
  }

  scheduleApply(sids: unknown, errataIds: unknown, earliest: unknown): number[] {
    if (!Array.isArray(sids) || !Array.isArray(errataIds))
      throw new Fault(-1, 'Could not find method: scheduleApplyErrata with params of these types');
    for (const sid of sids) this.system(sid);
    const errata = errataIds.map((id) => {
      const e = typeof id === 'number' ? this.errataById.get(id) : undefined;
      if (!e) throw new Fault(-208, `The patch ${String(id)} cannot be found.`);
      return e;
    });
    // One action for all systems (UYUNI may group them differently: callers must not assume 1:1).
    const id = this.nextAction++;
    const systems = new Map<
      number,
      { failMessage: string | null; cancelled: boolean; hang?: boolean; queued?: boolean }
    >();
    for (const sid of sids as number[]) {
      const failing = errata.find((e) => {
        const f = this.failApply.get(e.advisoryName);
        return f !== undefined && (f.size === 0 || f.has(sid));
      });
      systems.set(sid, {
        failMessage: failing ? `Failed: ${failing.packages[0]!.name} could not be installed (lab)` : null,
        cancelled: false,
        hang: errata.some((e) => this.hangApply.has(e.advisoryName)),
        queued: errata.some((e) => this.queuedApply.has(e.advisoryName)),
      });
    }
    this.addAction({
      id,
      type: 'Patch Update',
      name: `Patch Update: ${errata.map((e) => e.advisoryName).join(', ')}`,
      earliest: earliest instanceof Date ? earliest : new Date(),
      createdAt: Date.now(),
      errataIds: errata.map((e) => e.id),
      systems,
    });
    return [id];
  }

  /** Record an action and tell the listeners when each system picks it up and finishes. */
  addAction(a: LabAction): void {
    this.actions.set(a.id, a);
    const start = Math.max(0, a.earliest.getTime() - Date.now());
    const emit = (sid: number, outcome: LabActionEvent['outcome']) => {
      for (const l of this.onAction)
        l({ id: a.id, type: a.type, errataIds: a.errataIds, packageIds: a.packageIds ?? [], systemId: sid, outcome });
    };
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        fn();
      }, ms);
      t.unref();
      this.timers.add(t);
    };
    later(start + this.o.pickupMs, () => {
      for (const [sid, st] of a.systems) if (!st.cancelled && !st.queued) emit(sid, 'picked_up');
      const run = a.runMs ?? this.o.runMs;
      if (!Number.isFinite(run)) return; // never finishes (a host that never comes back)
      later(run, () => {
        for (const [sid, st] of a.systems)
          if (!st.cancelled && !st.hang && !st.queued) emit(sid, st.failMessage === null ? 'completed' : 'failed');
      });
    });
  }

  /** A system's reboot action runs until the host is back: the lab world calls this when it is (or never). */
  setActionRunMs(actionId: number, runMs: number): void {
    const a = this.actions.get(actionId);
    if (a) a.runMs = runMs;
  }

  /** Actions of a type for a system (tests: "exactly once"). */
  actionsOfType(type: string, sid?: number): number {
    return [...this.actions.values()].filter((a) => a.type === type && (sid === undefined || a.systems.has(sid)))
      .length;
  }

  /** Actions scheduled so far (tests assert "exactly once"). */
  actionsFor(advisoryName: string): number {
    const e = this.errataByName.get(advisoryName);
    return e ? [...this.actions.values()].filter((a) => a.errataIds.includes(e.id)).length : 0;
  }

  promotions = 0;

  /** How long a reboot action of this system runs; the lab world sets it (Infinity: the host never returns). */
  rebootRunMs: (sid: number) => number = () => this.o.runMs;

  clmEnvs(label: unknown): LabClmEnvironment[] {
    const envs = typeof label === 'string' ? this.clm.get(label) : undefined;
    if (!envs) throw new Fault(2401, `Content Project not found: ${String(label)}`);
    return envs;
  }

  /** One action per system (reference §1.5: `int[]` actionIds, one per system). */
  schedulePackageInstall(sids: unknown, pkgIds: unknown, earliest: unknown): number[] {
    if (!Array.isArray(sids) || !Array.isArray(pkgIds))
      throw new Fault(-1, 'Could not find method: schedulePackageInstall with params of these types');
    for (const sid of sids) this.system(sid);
    const known = new Set(this.fleet.errata.flatMap((e) => e.packages.map((p) => p.id)));
    for (const p of pkgIds)
      if (typeof p !== 'number' || (!known.has(p) && !this.extraPackageIds.has(p)))
        throw new Fault(-1, `Invalid package: ${String(p)}`);
    return (sids as number[]).map((sid) => {
      const id = this.nextAction++;
      this.addAction({
        id,
        type: 'Package Install',
        name: `Package Install/Upgrade`,
        earliest: earliest instanceof Date ? earliest : new Date(),
        createdAt: Date.now(),
        errataIds: [],
        packageIds: pkgIds as number[],
        systems: new Map([[sid, { failMessage: null, cancelled: false }]]),
      });
      return id;
    });
  }
  /** Package ids the lab knows besides the errata's (older builds, for downgrades). */
  readonly extraPackageIds = new Set<number>();

  /** Handlers keyed `method/argc`. */
  /** Handlers keyed `method/argc`. */
  private readonly handlers: Record<string, Handler> = uyuniHandlers(this);

  login(user: unknown, password: unknown): string {
    if (user !== this.o.user || password !== this.o.password)
      throw new Fault(2950, 'Either the password or username is incorrect.');
    this.logins++;
    const id = this.nextSession++;
    const key = `${id}x${randomBytes(32).toString('hex')}`;
    this.sessions.set(key, { id, expires: Date.now() + this.o.sessionTtlMs });
    return key;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST' || req.url !== '/rpc/api') {
      res.writeHead(404);
      res.end();
      return;
    }
    new Deserializer().deserializeMethodCall(req, (err, method, params) => {
      const reply = (body: string) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(body);
      };
      if (err)
        return reply(
          Serializer.serializeFault({ faultCode: -1, faultString: `unhandled internal exception: ${err.message}` }),
        );
      if (this.downUntil > Date.now() || (this.dropRate > 0 && Math.random() < this.dropRate)) {
        this.dropped++;
        return req.socket.destroy();
      }
      this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
      if (this.recordCalls)
        this.callLog.push({
          method,
          key: typeof params[0] === 'string' && method !== 'auth.login' ? params[0] : null,
          at: Date.now(),
        });
      const inject = this.failNext.get(method);
      if (inject !== undefined) this.failNext.delete(method);
      const run = () => {
        if (inject === 'drop') return req.socket.destroy();
        if (inject === 'malformed')
          return reply('<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>id');
        if (inject) return reply(Serializer.serializeFault({ faultCode: inject.code, faultString: inject.message }));
        const h = this.handlers[`${method}/${params.length}`];
        try {
          if (!h)
            throw new Fault(
              -1,
              `Could not find method: ${method.split('.').pop()} in class: ${method.split('.')[0]} with params: [${params.map((p) => typeof p).join(', ')}]`,
            );
          const value = omitNulls(h(...params));
          this.afterCall?.(method); // the effect happened; the caller may never hear of it (crash tests)
          const late = this.answerDelayMs.get(method);
          if (late !== undefined) setTimeout(() => reply(Serializer.serializeMethodResponse(value)), late);
          else reply(Serializer.serializeMethodResponse(value));
        } catch (raw) {
          const f =
            raw instanceof Fault ? raw : new Fault(-1, `unhandled internal exception: ${(raw as Error).message}`);
          reply(Serializer.serializeFault({ faultCode: f.faultCode, faultString: f.faultString }));
        }
      };
      if (this.o.latencyMs > 0) setTimeout(run, this.o.latencyMs);
      else run();
    });
  }

  serve(port = 0): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    return new Promise((resolve) =>
      this.server!.listen(port, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`),
      ),
    );
  }

  /** Told after a call's effect happened and before it is answered (crash tests kill the caller here). */
  afterCall: ((method: string) => void) | undefined;
  /** Calls refused while down or dropped by `dropRate`. */
  dropped = 0;

  close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
