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

const require = createRequire(import.meta.url);
const Serializer = require('xmlrpc/lib/serializer') as {
  serializeMethodResponse(v: unknown): string;
  serializeFault(f: unknown): string;
};
const Deserializer = require('xmlrpc/lib/deserializer') as new () => {
  deserializeMethodCall(s: IncomingMessage, cb: (err: Error | null, method: string, params: unknown[]) => void): void;
};

class Fault {
  readonly faultCode: number;
  readonly faultString: string;
  constructor(code: number, message: string) {
    this.faultCode = code;
    this.faultString = message;
  }
}

/** Drop null/undefined members, as UYUNI's SerializerHelper does. */
function omitNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(omitNulls) as T;
  if (v === null || typeof v !== 'object' || v instanceof Date) return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== null && x !== undefined)
      .map(([k, x]) => [k, omitNulls(x)]),
  ) as T;
}

export interface LabUyuniOptions {
  user?: string;
  password?: string;
  latencyMs?: number;
  sessionTtlMs?: number;
  /** Action timing: Queued → Picked Up after `pickupMs`, → Completed/Failed `runMs` later. */
  pickupMs?: number;
  runMs?: number;
}

interface LabAction {
  id: number;
  type: string;
  name: string;
  earliest: Date;
  createdAt: number;
  errataIds: number[];
  /** Per system: whether it fails (and why), was cancelled, or hangs (never finishes). */
  systems: Map<number, { failMessage: string | null; cancelled: boolean; hang?: boolean }>;
  /** Run time of this action (a reboot runs as long as the host is away). */
  runMs?: number;
  /** Package ids of a package install action. */
  packageIds?: number[];
}

/** What the rest of the lab world learns about an action: per system, when it finished. */
export interface LabActionEvent {
  id: number;
  type: string;
  errataIds: number[];
  packageIds: number[];
  systemId: number;
  outcome: 'picked_up' | 'completed' | 'failed';
}

export interface LabClmEnvironment {
  id: number;
  label: string;
  name: string;
  version: number;
  status: string;
}

type Handler = (...args: unknown[]) => unknown;

/**
 * How the lab sends errata dates (`ErrataOverview.date/issue_date/update_date`, `errata.getDetails`):
 * - `sql`: `2026-11-01 10:00:00` strings (newest UYUNI, the default);
 * - `datetime`: `dateTime.iso8601` without zone (`20261101T10:00:00`), as Spacewalk-lineage servers;
 * - `iso`: ISO 8601 strings in UTC (`2026-11-01T10:00:00Z`);
 * - `date`: date-only strings (`2026-11-01`);
 * - `short`: the locale short date of `errata.getDetails` (`11/1/26`);
 * - `legacy`: the old serializer: only `date`, a `dateTime.iso8601`, and no `issue_date`,
 *   `update_date`, `advisory_status`, `reboot`.
 */
export type LabDateForm = 'sql' | 'datetime' | 'iso' | 'date' | 'short' | 'legacy';
export const LAB_DATE_FORMS: readonly LabDateForm[] = ['sql', 'datetime', 'iso', 'date', 'short', 'legacy'];

/** A fleet date (`yyyy-MM-dd HH:mm:ss`) in the given form. */
export function labDate(wall: string, form: LabDateForm): string | Date {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(wall);
  if (!m) return wall;
  const [y, mo, d, h, mi, sec] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  switch (form) {
    case 'sql':
      return wall;
    // A local-time Date: the xmlrpc serializer writes its local wall clock without a zone, as UYUNI's Redstone does.
    case 'datetime':
    case 'legacy':
      return new Date(y, mo - 1, d, h, mi, sec);
    case 'iso':
      return `${wall.slice(0, 10)}T${wall.slice(11)}Z`;
    case 'date':
      return wall.slice(0, 10);
    case 'short':
      return `${mo}/${d}/${String(y % 100).padStart(2, '0')}`;
  }
}

export class LabUyuni {
  readonly calls = new Map<string, number>();
  logins = 0;
  logouts = 0;
  /** The next call of `method` answers this fault (or a malformed body / a dropped connection). */
  readonly failNext = new Map<string, { code: number; message: string } | 'malformed' | 'drop'>();
  private readonly sessions = new Map<string, { id: number; expires: number }>();
  private nextSession = 1;
  private readonly errataByName: Map<string, LabErrata>;
  private readonly errataById: Map<number, LabErrata>;
  private readonly o: Required<LabUyuniOptions>;
  private readonly actions = new Map<number, LabAction>();
  private nextAction = 5000;
  /** Scenario knob: applying this advisory fails on these systems (empty set: on every system). */
  readonly failApply = new Map<string, Set<number>>();
  /** Scenario knob: applying this advisory hangs (the action is picked up and never finishes). */
  readonly hangApply = new Set<string>();
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

  private user(key: unknown): void {
    if (typeof key !== 'string' || !/^[1-9][0-9]*x[a-f0-9]{64}$/.test(key)) throw new Fault(-1, 'Invalid session key');
    const s = this.sessions.get(key);
    if (!s || s.expires < Date.now()) {
      this.sessions.delete(key);
      throw new Fault(-1, `Could not find session with id: ${key.split('x')[0]}`);
    }
    s.expires = Date.now() + this.o.sessionTtlMs; // sliding
  }

  private system(sid: unknown) {
    const s = typeof sid === 'number' ? this.fleet.systems.find((x) => x.id === sid) : undefined;
    if (!s) throw new Fault(-208, 'No such system');
    return s;
  }

  private errata(name: unknown): LabErrata {
    const e = typeof name === 'string' ? this.errataByName.get(name) : undefined;
    if (!e) throw new Fault(-208, `The patch ${String(name)} cannot be found.`);
    return e;
  }

  private overview(e: LabErrata) {
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

  /** Where a system stands in an action now: Queued → Picked Up → Completed / Failed. */
  private actionStatus(a: LabAction, sid: number): 'Queued' | 'Picked Up' | 'Completed' | 'Failed' {
    const st = a.systems.get(sid)!;
    if (st.cancelled) return 'Failed';
    const age = Date.now() - Math.max(a.createdAt, a.earliest.getTime());
    if (age < this.o.pickupMs) return 'Queued';
    if (st.hang || age < this.o.pickupMs + (a.runMs ?? this.o.runMs)) return 'Picked Up';
    return st.failMessage === null ? 'Completed' : 'Failed';
  }

  private actionedSystems(actionId: unknown, want: 'in_progress' | 'completed' | 'failed') {
    const a = typeof actionId === 'number' ? this.actions.get(actionId) : undefined;
    if (!a) throw new Fault(-1, `unhandled internal exception: Could not find action with id: ${String(actionId)}`);
    const out = [];
    for (const [sid, st] of a.systems) {
      const status = this.actionStatus(a, sid);
      const bucket = status === 'Completed' ? 'completed' : status === 'Failed' ? 'failed' : 'in_progress';
      if (bucket !== want) continue;
      const sys = this.fleet.systems.find((x) => x.id === sid)!;
      out.push({
        server_id: sid,
        server_name: sys.name,
        base_channel: `lab-${sys.os}`,
        timestamp: bucket === 'in_progress' ? null : new Date(),
        message:
          status === 'Completed'
            ? 'Applied patches'
            : status === 'Failed'
              ? st.cancelled
                ? 'Canceled'
                : st.failMessage
              : null,
      });
    }
    return out;
  }

  private scheduleApply(sids: unknown, errataIds: unknown, earliest: unknown): number[] {
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
    const systems = new Map<number, { failMessage: string | null; cancelled: boolean; hang?: boolean }>();
    for (const sid of sids as number[]) {
      const failing = errata.find((e) => {
        const f = this.failApply.get(e.advisoryName);
        return f !== undefined && (f.size === 0 || f.has(sid));
      });
      systems.set(sid, {
        failMessage: failing ? `Failed: ${failing.packages[0]!.name} could not be installed (lab)` : null,
        cancelled: false,
        hang: errata.some((e) => this.hangApply.has(e.advisoryName)),
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
  private addAction(a: LabAction): void {
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
      for (const [sid, st] of a.systems) if (!st.cancelled) emit(sid, 'picked_up');
      const run = a.runMs ?? this.o.runMs;
      if (!Number.isFinite(run)) return; // never finishes (a host that never comes back)
      later(run, () => {
        for (const [sid, st] of a.systems)
          if (!st.cancelled && !st.hang) emit(sid, st.failMessage === null ? 'completed' : 'failed');
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

  private clmEnvs(label: unknown): LabClmEnvironment[] {
    const envs = typeof label === 'string' ? this.clm.get(label) : undefined;
    if (!envs) throw new Fault(2401, `Content Project not found: ${String(label)}`);
    return envs;
  }

  /** One action per system (reference §1.5: `int[]` actionIds, one per system). */
  private schedulePackageInstall(sids: unknown, pkgIds: unknown, earliest: unknown): number[] {
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
  private readonly handlers: Record<string, Handler> = {
    'auth.login/2': (user, password) => this.login(user, password),
    'auth.login/3': (user, password) => this.login(user, password),
    'auth.logout/1': (key) => {
      this.user(key);
      this.sessions.delete(key as string);
      this.logouts++;
      return 1;
    },
    'api.getVersion/0': () => '25',
    'systemgroup.listAllGroups/1': (key) => {
      this.user(key);
      return this.fleet.groups.map((g) => ({
        id: g.id,
        name: g.name,
        description: `${g.os} systems`,
        system_count: this.fleet.systems.filter((s) => s.group === g.name).length,
        org_id: 1,
      }));
    },
    'systemgroup.listSystemsMinimal/2': (key, name) => {
      this.user(key);
      if (!this.fleet.groups.some((g) => g.name === name))
        throw new Fault(-1, `unhandled internal exception: Unable to locate or access server group: ${String(name)}`);
      return this.fleet.systems
        .filter((s) => s.group === name)
        .map((s) => ({
          id: s.id,
          name: s.name,
          last_checkin: new Date(Date.UTC(2026, 10, 20, 8, 0, 0)),
          extra_pkg_count: 0,
          outdated_pkg_count: s.relevant.length,
          created: null,
        }));
    },
    'system.getRelevantErrata/2': (key, sid) => {
      this.user(key);
      if (Array.isArray(sid))
        return sid.map((id) => ({
          system_id: String(id),
          errata: this.system(id).relevant.map((e) => this.overview(this.errataById.get(e)!)),
        }));
      return this.system(sid).relevant.map((e) => this.overview(this.errataById.get(e)!));
    },
    'system.scheduleApplyErrata/3': (key, sids, errataIds) => {
      this.user(key);
      return this.scheduleApply(Array.isArray(sids) ? sids : [sids], errataIds, undefined);
    },
    'system.scheduleApplyErrata/5': (key, sids, errataIds, earliest) => {
      this.user(key);
      return this.scheduleApply(Array.isArray(sids) ? sids : [sids], errataIds, earliest);
    },
    'system.scheduleReboot/3': (key, sid, earliest) => {
      this.user(key);
      // raw lookup in UYUNI: an unknown system is an unhandled internal exception, not -208
      const s = typeof sid === 'number' ? this.fleet.systems.find((x) => x.id === sid) : undefined;
      if (!s) throw new Fault(-1, `unhandled internal exception: No server found with id ${String(sid)}`);
      const id = this.nextAction++;
      this.addAction({
        id,
        type: 'System reboot',
        name: 'System reboot',
        earliest: earliest instanceof Date ? earliest : new Date(),
        createdAt: Date.now(),
        errataIds: [],
        systems: new Map([[s.id, { failMessage: null, cancelled: false }]]),
        runMs: this.rebootRunMs(s.id),
      });
      return id;
    },
    'system.schedulePackageInstall/4': (key, sids, pkgIds, earliest) => {
      this.user(key);
      return this.schedulePackageInstall(sids, pkgIds, earliest);
    },
    'system.schedulePackageInstall/5': (key, sids, pkgIds, earliest) => {
      this.user(key);
      return this.schedulePackageInstall(sids, pkgIds, earliest);
    },
    'system.listPackages/2': (key, sid) => {
      this.user(key);
      const s = this.system(sid);
      return this.packagesOf(s.id).map((p) => ({
        name: p.name,
        version: p.version,
        release: p.release,
        epoch: p.epoch,
        arch: p.arch,
        installtime: new Date(Date.UTC(2026, 0, 1)),
      }));
    },
    'contentmanagement.listProjectEnvironments/2': (key, label) => {
      this.user(key);
      return this.clmEnvs(label).map((e, i, all) => ({
        id: e.id,
        label: e.label,
        name: e.name,
        description: '',
        version: e.version,
        status: e.status,
        contentProjectLabel: label,
        previousEnvironmentLabel: all[i - 1]?.label ?? null,
        nextEnvironmentLabel: all[i + 1]?.label ?? null,
      }));
    },
    'contentmanagement.lookupEnvironment/3': (key, label, envLabel) => {
      this.user(key);
      const env = this.clmEnvs(label).find((e) => e.label === envLabel);
      if (!env) throw new Fault(2401, `Environment not found: ${String(envLabel)}`);
      return {
        id: env.id,
        label: env.label,
        name: env.name,
        description: '',
        version: env.version,
        status: env.status,
        contentProjectLabel: label,
      };
    },
    'contentmanagement.promoteProject/3': (key, label, envLabel) => {
      this.user(key);
      const envs = this.clmEnvs(label);
      const i = envs.findIndex((e) => e.label === envLabel);
      // A missing env is wrapped (by a UYUNI bug) in EntityExistsFaultException.
      if (i < 0) throw new Fault(2402, `Entity exists: environment ${String(envLabel)} not found`);
      const next = envs[i + 1];
      if (!next) throw new Fault(2403, `Environment ${String(envLabel)} does not have successor`);
      if ([envs[i], next, envs[i + 2]].some((e) => e?.status === 'building'))
        throw new Fault(2403, 'Build/Promote already in progress');
      next.status = 'building';
      next.version = envs[i]!.version;
      const t = setTimeout(() => (next.status = 'built'), this.o.runMs);
      t.unref();
      this.promotions++;
      return 1;
    },
    'schedule.listInProgressSystems/2': (key, actionId) => {
      this.user(key);
      return this.actionedSystems(actionId, 'in_progress');
    },
    'schedule.listCompletedSystems/2': (key, actionId) => {
      this.user(key);
      return this.actionedSystems(actionId, 'completed');
    },
    'schedule.listFailedSystems/2': (key, actionId) => {
      this.user(key);
      return this.actionedSystems(actionId, 'failed');
    },
    'schedule.listInProgressActions/1': (key) => {
      this.user(key);
      return [...this.actions.values()]
        .filter((a) => [...a.systems.keys()].some((sid) => ['Queued', 'Picked Up'].includes(this.actionStatus(a, sid))))
        .map((a) => ({
          id: a.id,
          name: a.name,
          type: a.type,
          earliest: a.earliest,
          completedSystems: 0,
          failedSystems: 0,
          inProgressSystems: a.systems.size,
        }));
    },
    'schedule.cancelActions/2': (key, ids) => {
      this.user(key);
      if (!Array.isArray(ids)) throw new Fault(-1, 'Could not find method: cancelActions');
      for (const id of ids) {
        const a = this.actions.get(id as number);
        if (!a) continue; // unknown ids are skipped silently
        if ([...a.systems.keys()].some((sid) => this.actionStatus(a, sid) !== 'Queued')) {
          throw new Fault(
            -1,
            'unhandled internal exception: java.lang.UnsupportedOperationException: cannot cancel an action that has been picked up',
          );
        }
      }
      for (const id of ids)
        for (const st of this.actions.get(id as number)?.systems.values() ?? []) st.cancelled = true;
      return 1;
    },
    'system.listSystemEvents/2': (key, sid) => {
      this.user(key);
      const s = this.system(sid);
      return [...this.actions.values()]
        .filter((a) => a.systems.has(s.id))
        .map((a) => {
          const status = this.actionStatus(a, s.id);
          const st = a.systems.get(s.id)!;
          return {
            id: a.id,
            action_type: a.type,
            name: a.name,
            failed_count: [...a.systems.keys()].filter((x) => this.actionStatus(a, x) === 'Failed').length,
            successful_count: [...a.systems.keys()].filter((x) => this.actionStatus(a, x) === 'Completed').length,
            earliest_action: a.earliest.toString(),
            archived: 0,
            created_date: new Date(a.createdAt),
            pickup_date: status === 'Queued' ? null : new Date(a.createdAt + this.o.pickupMs),
            completed_date: status === 'Completed' || status === 'Failed' ? new Date() : null,
            result_msg:
              status === 'Completed'
                ? 'Applied patches'
                : status === 'Failed'
                  ? st.cancelled
                    ? 'Canceled'
                    : st.failMessage
                  : null,
          };
        });
    },
    'errata.getDetails/2': (key, name) => {
      this.user(key);
      const e = this.errata(name);
      const legacy = this.dateForm === 'legacy';
      return {
        id: e.id,
        issue_date: legacy ? null : labDate(e.issueDate, this.dateForm),
        update_date: legacy ? null : labDate(e.updateDate, this.dateForm),
        advisory_status: legacy ? null : 'stable',
        vendor_advisory: '',
        product: e.os,
        errataFrom: '',
        solution: '',
        description: `${e.synopsis}.`,
        synopsis: e.synopsis,
        topic: '',
        references: '',
        notes: '',
        type: e.type,
        reboot_suggested: e.rebootSuggested,
        restart_suggested: false,
      };
    },
    'errata.listCves/2': (key, name) => {
      this.user(key);
      return this.errata(name).cves;
    },
    'errata.listPackages/2': (key, name) => {
      this.user(key);
      return this.errata(name).packages.map((p) => ({
        id: p.id,
        name: p.name,
        epoch: p.epoch,
        version: p.version,
        release: p.release,
        arch_label: p.arch,
        providing_channels: [`lab-${this.errata(name).os}`],
        build_host: 'lab',
        description: p.name,
        checksum: 'x',
        checksum_type: 'sha256',
        vendor: 'lab',
        summary: p.name,
        cookie: '',
        license: 'GPL',
        path: '',
        file: `${p.name}.pkg`,
        build_date: '2026-01-01',
        last_modified_date: '2026-01-01',
        size: p.size,
        payload_size: p.size,
      }));
    },
  };

  private login(user: unknown, password: unknown): string {
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
