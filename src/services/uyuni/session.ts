/** UYUNI sessions: the shared session key of one cycle and the typed per-cycle handle (see client.ts). */
import { z } from 'zod';
import type { UyuniClient } from './client.ts';
import {
  type ActionedSystem,
  actionedSystemSchema,
  clmEnvironmentSchema,
  errataDetailsSchema,
  errataOverviewSchema,
  groupSchema,
  installedPackageSchema,
  packageSchema,
  scheduledActionSchema,
  systemEventSchema,
  systemOverviewSchema,
  UyuniReplyError,
} from './schemas.ts';

/** A logged-in session key, shared by the handles of one cycle; re-logged in once on expiry. */
export class SessionKey {
  key: string;
  /** Logged out (or being): nothing may be sent with it any more, and no re-login. */
  ended = false;
  private relogging: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  constructor(key: string) {
    this.key = key;
  }

  /** Re-login once for all workers that hit the expired key at the same time. */
  async relogin(login: () => Promise<string>): Promise<void> {
    const stale = this.key;
    this.relogging ??= login()
      .then((k) => {
        this.key = k;
      })
      .finally(() => {
        this.relogging = undefined;
      });
    if (this.key === stale) await this.relogging;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  /** Every call made with this key has settled. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

export class UyuniSession {
  /** @internal */
  readonly core: SessionKey;
  private closed = false;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly client: UyuniClient;
  constructor(client: UyuniClient, core: SessionKey) {
    this.client = client;
    this.core = core;
  }

  get key(): string {
    return this.core.key;
  }

  /** Calls may still be sent: neither this handle's cycle nor the key has ended. */
  get open(): boolean {
    return !this.closed && !this.core.ended;
  }

  /** @internal */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return this.core.track(p);
  }

  /** Refuse further calls and wait for the ones already made to settle (each is bounded by the call timeout). */
  async close(): Promise<void> {
    this.closed = true;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private async typed<T extends z.ZodType>(method: string, params: unknown[], schema: T): Promise<z.infer<T>> {
    const reply = await this.client.sessionCall(this, method, params);
    const parsed = schema.safeParse(reply);
    if (!parsed.success) throw new UyuniReplyError(method, parsed.error.issues);
    return parsed.data;
  }

  listAllGroups() {
    return this.typed('systemgroup.listAllGroups', [], z.array(groupSchema));
  }
  listSystemsMinimal(group: string) {
    return this.typed('systemgroup.listSystemsMinimal', [group], z.array(systemOverviewSchema));
  }
  getRelevantErrata(systemId: number) {
    return this.typed('system.getRelevantErrata', [systemId], z.array(errataOverviewSchema));
  }
  listCves(advisory: string) {
    return this.typed('errata.listCves', [advisory], z.array(z.string()));
  }
  listPackages(advisory: string) {
    return this.typed('errata.listPackages', [advisory], z.array(packageSchema));
  }
  getDetails(advisory: string) {
    return this.typed('errata.getDetails', [advisory], errataDetailsSchema);
  }

  /**
   * Apply errata to systems (overload 4: sids, errataIds, earliest, allowModules). Returns action
   * ids: not one per system or errata — resolve systems per action with `actionSystems`.
   */
  scheduleApplyErrata(
    systemIds: number[],
    errataIds: number[],
    opts: { earliest?: Date; allowModules?: boolean } = {},
  ) {
    return this.typed(
      'system.scheduleApplyErrata',
      [systemIds, errataIds, opts.earliest ?? new Date(), opts.allowModules ?? false],
      z.array(z.number().int()),
    );
  }
  scheduleReboot(systemId: number, earliest: Date = new Date()) {
    return this.typed('system.scheduleReboot', [systemId, earliest], z.number().int());
  }
  /** Where each system of an action stands (systems move from in progress to completed or failed). */
  async actionSystems(
    actionId: number,
  ): Promise<{ inProgress: ActionedSystem[]; completed: ActionedSystem[]; failed: ActionedSystem[] }> {
    const list = z.array(actionedSystemSchema);
    const [inProgress, completed, failed] = await Promise.all([
      this.typed('schedule.listInProgressSystems', [actionId], list),
      this.typed('schedule.listCompletedSystems', [actionId], list),
      this.typed('schedule.listFailedSystems', [actionId], list),
    ]);
    return { inProgress, completed, failed };
  }
  listInProgressActions() {
    return this.typed('schedule.listInProgressActions', [], z.array(scheduledActionSchema));
  }
  /** Fails (UYUNI: UnsupportedOperationException) when a system already picked the action up. */
  cancelActions(actionIds: number[]) {
    return this.typed('schedule.cancelActions', [actionIds], z.number().int());
  }
  listSystemEvents(systemId: number) {
    return this.typed('system.listSystemEvents', [systemId], z.array(systemEventSchema));
  }
  /** Install packages by id (a lower build is a downgrade); one action per system. */
  schedulePackageInstall(systemIds: number[], packageIds: number[], earliest: Date = new Date()) {
    return this.typed('system.schedulePackageInstall', [systemIds, packageIds, earliest], z.array(z.number().int()));
  }
  listInstalledPackages(systemId: number) {
    return this.typed('system.listPackages', [systemId], z.array(installedPackageSchema));
  }
  listProjectEnvironments(projectLabel: string) {
    return this.typed('contentmanagement.listProjectEnvironments', [projectLabel], z.array(clmEnvironmentSchema));
  }
  lookupEnvironment(projectLabel: string, envLabel: string) {
    return this.typed('contentmanagement.lookupEnvironment', [projectLabel, envLabel], clmEnvironmentSchema);
  }
  /** Copies `envLabel` into its successor (to fill PROD, promote TEST). Asynchronous: poll lookupEnvironment. */
  promoteProject(projectLabel: string, envLabel: string) {
    return this.typed('contentmanagement.promoteProject', [projectLabel, envLabel], z.number().int());
  }
}
