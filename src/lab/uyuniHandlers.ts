/**
 * The lab UYUNI's XML-RPC handler table, keyed `method/argc` (see src/lab/uyuni.ts).
 * Never imported by production code (src/lab).
 */
import type { LabUyuni } from './uyuni.ts';
import { Fault, type Handler, type LabAction, labDate } from './uyuniModel.ts';

/** Where a system stands in an action now: Queued → Picked Up → Completed / Failed. */
export function actionStatus(u: LabUyuni, a: LabAction, sid: number): 'Queued' | 'Picked Up' | 'Completed' | 'Failed' {
  const st = a.systems.get(sid)!;
  if (st.cancelled) return 'Failed';
  const age = Date.now() - Math.max(a.createdAt, a.earliest.getTime());
  if (age < u.o.pickupMs || st.queued) return 'Queued';
  if (st.hang || age < u.o.pickupMs + (a.runMs ?? u.o.runMs)) return 'Picked Up';
  return st.failMessage === null ? 'Completed' : 'Failed';
}

function actionedSystems(u: LabUyuni, actionId: unknown, want: 'in_progress' | 'completed' | 'failed') {
  const a = typeof actionId === 'number' ? u.actions.get(actionId) : undefined;
  if (!a) throw new Fault(-1, `unhandled internal exception: Could not find action with id: ${String(actionId)}`);
  const out = [];
  for (const [sid, st] of a.systems) {
    const status = actionStatus(u, a, sid);
    const bucket = status === 'Completed' ? 'completed' : status === 'Failed' ? 'failed' : 'in_progress';
    if (bucket !== want) continue;
    const sys = u.fleet.systems.find((x) => x.id === sid)!;
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

/** Handlers keyed `method/argc`, over the lab server's state. */
export function uyuniHandlers(u: LabUyuni): Record<string, Handler> {
  return {
    'auth.login/2': (user, password) => u.login(user, password),
    'auth.login/3': (user, password) => u.login(user, password),
    'auth.logout/1': (key) => {
      u.user(key);
      u.sessions.delete(key as string);
      u.logouts++;
      return 1;
    },
    'api.getVersion/0': () => '25',
    'systemgroup.listAllGroups/1': (key) => {
      u.user(key);
      return u.fleet.groups.map((g) => ({
        id: g.id,
        name: g.name,
        description: `${g.os} systems`,
        system_count: u.fleet.systems.filter((s) => s.group === g.name).length,
        org_id: 1,
      }));
    },
    'systemgroup.listSystemsMinimal/2': (key, name) => {
      u.user(key);
      if (!u.fleet.groups.some((g) => g.name === name))
        throw new Fault(-1, `unhandled internal exception: Unable to locate or access server group: ${String(name)}`);
      return u.fleet.systems
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
      u.user(key);
      if (Array.isArray(sid))
        return sid.map((id) => ({
          system_id: String(id),
          errata: u.system(id).relevant.map((e) => u.overview(u.errataById.get(e)!)),
        }));
      return u.system(sid).relevant.map((e) => u.overview(u.errataById.get(e)!));
    },
    'system.scheduleApplyErrata/3': (key, sids, errataIds) => {
      u.user(key);
      return u.scheduleApply(Array.isArray(sids) ? sids : [sids], errataIds, undefined);
    },
    'system.scheduleApplyErrata/5': (key, sids, errataIds, earliest) => {
      u.user(key);
      return u.scheduleApply(Array.isArray(sids) ? sids : [sids], errataIds, earliest);
    },
    'system.scheduleReboot/3': (key, sid, earliest) => {
      u.user(key);
      // raw lookup in UYUNI: an unknown system is an unhandled internal exception, not -208
      const s = typeof sid === 'number' ? u.fleet.systems.find((x) => x.id === sid) : undefined;
      if (!s) throw new Fault(-1, `unhandled internal exception: No server found with id ${String(sid)}`);
      const id = u.nextAction++;
      u.addAction({
        id,
        type: 'System reboot',
        name: 'System reboot',
        earliest: earliest instanceof Date ? earliest : new Date(),
        createdAt: Date.now(),
        errataIds: [],
        systems: new Map([[s.id, { failMessage: null, cancelled: false }]]),
        runMs: u.rebootRunMs(s.id),
      });
      return id;
    },
    'system.schedulePackageInstall/4': (key, sids, pkgIds, earliest) => {
      u.user(key);
      return u.schedulePackageInstall(sids, pkgIds, earliest);
    },
    'system.schedulePackageInstall/5': (key, sids, pkgIds, earliest) => {
      u.user(key);
      return u.schedulePackageInstall(sids, pkgIds, earliest);
    },
    'system.listPackages/2': (key, sid) => {
      u.user(key);
      const s = u.system(sid);
      return u.packagesOf(s.id).map((p) => ({
        name: p.name,
        version: p.version,
        release: p.release,
        epoch: p.epoch,
        arch: p.arch,
        installtime: new Date(Date.UTC(2026, 0, 1)),
      }));
    },
    'contentmanagement.listProjectEnvironments/2': (key, label) => {
      u.user(key);
      return u.clmEnvs(label).map((e, i, all) => ({
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
      u.user(key);
      const env = u.clmEnvs(label).find((e) => e.label === envLabel);
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
      u.user(key);
      const envs = u.clmEnvs(label);
      const i = envs.findIndex((e) => e.label === envLabel);
      // A missing env is wrapped (by a UYUNI bug) in EntityExistsFaultException.
      if (i < 0) throw new Fault(2402, `Entity exists: environment ${String(envLabel)} not found`);
      const next = envs[i + 1];
      if (!next) throw new Fault(2403, `Environment ${String(envLabel)} does not have successor`);
      if ([envs[i], next, envs[i + 2]].some((e) => e?.status === 'building'))
        throw new Fault(2403, 'Build/Promote already in progress');
      next.status = 'building';
      next.version = envs[i]!.version;
      const t = setTimeout(() => (next.status = 'built'), u.o.runMs);
      t.unref();
      u.promotions++;
      return 1;
    },
    'schedule.listInProgressSystems/2': (key, actionId) => {
      u.user(key);
      return actionedSystems(u, actionId, 'in_progress');
    },
    'schedule.listCompletedSystems/2': (key, actionId) => {
      u.user(key);
      return actionedSystems(u, actionId, 'completed');
    },
    'schedule.listFailedSystems/2': (key, actionId) => {
      u.user(key);
      return actionedSystems(u, actionId, 'failed');
    },
    'schedule.listInProgressActions/1': (key) => {
      u.user(key);
      return [...u.actions.values()]
        .filter((a) => [...a.systems.keys()].some((sid) => ['Queued', 'Picked Up'].includes(actionStatus(u, a, sid))))
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
      u.user(key);
      if (!Array.isArray(ids)) throw new Fault(-1, 'Could not find method: cancelActions');
      for (const id of ids) {
        const a = u.actions.get(id as number);
        if (!a) continue; // unknown ids are skipped silently
        if ([...a.systems.keys()].some((sid) => actionStatus(u, a, sid) !== 'Queued')) {
          throw new Fault(
            -1,
            'unhandled internal exception: java.lang.UnsupportedOperationException: cannot cancel an action that has been picked up',
          );
        }
      }
      for (const id of ids) for (const st of u.actions.get(id as number)?.systems.values() ?? []) st.cancelled = true;
      return 1;
    },
    'system.listSystemEvents/2': (key, sid) => {
      u.user(key);
      const s = u.system(sid);
      return [...u.actions.values()]
        .filter((a) => a.systems.has(s.id))
        .map((a) => {
          const status = actionStatus(u, a, s.id);
          const st = a.systems.get(s.id)!;
          return {
            id: a.id,
            action_type: a.type,
            name: a.name,
            failed_count: [...a.systems.keys()].filter((x) => actionStatus(u, a, x) === 'Failed').length,
            successful_count: [...a.systems.keys()].filter((x) => actionStatus(u, a, x) === 'Completed').length,
            earliest_action: a.earliest.toString(),
            archived: 0,
            created_date: new Date(a.createdAt),
            pickup_date: status === 'Queued' ? null : new Date(a.createdAt + u.o.pickupMs),
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
      u.user(key);
      const e = u.errata(name);
      const legacy = u.dateForm === 'legacy';
      return {
        id: e.id,
        issue_date: legacy ? null : labDate(e.issueDate, u.dateForm),
        update_date: legacy ? null : labDate(e.updateDate, u.dateForm),
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
      u.user(key);
      return u.errata(name).cves;
    },
    'errata.listPackages/2': (key, name) => {
      u.user(key);
      return u.errata(name).packages.map((p) => ({
        id: p.id,
        name: p.name,
        epoch: p.epoch,
        version: p.version,
        release: p.release,
        arch_label: p.arch,
        providing_channels: [`lab-${u.errata(name).os}`],
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
}
