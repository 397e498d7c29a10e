/**
 * The contract between the orchestrator and `salt-states/`: SLS names, pillar keys, the state ids
 * each SLS renders and their module functions, and pure parsers of Salt's `state.apply` return.
 *
 * `salt-states/` is installed on the Salt master as the `spm` directory of a `file_roots` root, so
 * `salt-states/snapshot/create.sls` is the SLS `spm.snapshot.create` (salt-states/README.md).
 * test/saltStates.render.test.ts renders every SLS for Ubuntu, Debian and RHEL grains and checks the
 * rendered state ids and functions against {@link SALT_STATES}.
 *
 * Return shape (reference §2, saltstack/salt#41197): per minion, a mapping
 * `"<mod>_|-<id>_|-<name>_|-<fun>" → { result: true|false|null, comment, changes, name, __id__,
 * __run_num__, __sls__, start_time, duration }`; a render or compile error comes back as a list of
 * strings instead. `result: null` is "would change" under `test=True`.
 *
 * The engine applies `spm.healthcheck` in every validation (`engine/evidence.ts`
 * `teamHealthchecks`, through `SaltClient.local(minions, 'state.apply', [sls])`); snapshots, reboot
 * and service checks still go through execution modules (snapper, cmd.run, service.status).
 */
import { HEALTHCHECK_ID_PREFIX, SERVICE_ID_PREFIX } from './statesParse.ts';

export * from './statesParse.ts';

/** Where `salt-states/` lives in the master's `file_roots`: SLS names start with it. */
export const SLS_NAMESPACE = 'spm';

/** Snapshot descriptions are this prefix + the effect key (the same as `SaltClient.snapshotsOnce`). */
export const SNAPSHOT_DESCRIPTION_PREFIX = 'spm-orchestrator ';

/** Pillar keys the states read (colon-delimited, as `pillar.get` takes them). */
export const PILLAR_KEYS = {
  snapshotKey: 'spm:snapshot:key',
  snapshotNumber: 'spm:snapshot:number',
  snapshotConfig: 'spm:snapshot:config',
  snapshotCleanupAlgorithm: 'spm:snapshot:cleanup_algorithm',
  snapshotRestoreMethod: 'spm:snapshot:restore_method',
  snapshotDeleteKeys: 'spm:snapshot:delete_keys',
  snapshotKeepKeys: 'spm:snapshot:keep_keys',
  retentionMaxCount: 'spm:snapshot:retention:max_count',
  retentionMaxAgeDays: 'spm:snapshot:retention:max_age_days',
  services: 'spm:services',
  healthchecks: 'spm:healthchecks',
} as const;

export interface StateDoc {
  /** The state id; `<unit>`, `<name>` and `<n>` stand for the pillar entry and its position. */
  id: string;
  /** `module.function` as written in the SLS. */
  fun: string;
  /** When this state is the one rendered. */
  when: string;
  /** What the orchestrator reads from its return. */
  reads: string;
}

export interface SlsDoc {
  sls: string;
  /** Path under `salt-states/`. */
  file: string;
  pillar: readonly string[];
  states: readonly StateDoc[];
}

const P = PILLAR_KEYS;

/** Every SLS the orchestrator applies, what it renders, and what the orchestrator reads back. */
export const SALT_STATES: readonly SlsDoc[] = [
  {
    sls: 'spm.snapshot.create',
    file: 'snapshot/create.sls',
    pillar: [P.snapshotKey, P.snapshotConfig, P.snapshotCleanupAlgorithm],
    states: [
      {
        id: 'spm_snapshot_create',
        fun: 'cmd.script',
        when: `${P.snapshotKey} given`,
        reads: 'stdout snapshot=<n>, created=yes|no',
      },
      {
        id: 'spm_snapshot_create',
        fun: 'test.fail_without_changes',
        when: `${P.snapshotKey} missing`,
        reads: 'result false, comment',
      },
    ],
  },
  {
    sls: 'spm.snapshot.restore',
    file: 'snapshot/restore.sls',
    pillar: [P.snapshotKey, P.snapshotNumber, P.snapshotConfig, P.snapshotRestoreMethod],
    states: [
      {
        id: 'spm_snapshot_restore',
        fun: 'cmd.script',
        when: `${P.snapshotKey} or ${P.snapshotNumber} given`,
        reads: 'stdout snapshot=<n>, method=, takes_effect=after_reboot|now',
      },
      {
        id: 'spm_snapshot_restore',
        fun: 'test.fail_without_changes',
        when: 'neither given',
        reads: 'result false, comment',
      },
    ],
  },
  {
    sls: 'spm.snapshot.delete',
    file: 'snapshot/delete.sls',
    pillar: [P.snapshotConfig, P.snapshotDeleteKeys, P.snapshotKeepKeys, P.retentionMaxCount, P.retentionMaxAgeDays],
    states: [
      {
        id: 'spm_snapshot_delete',
        fun: 'cmd.script',
        when: 'always',
        reads: 'stdout deleted=, kept=, failed= (snapshot numbers)',
      },
    ],
  },
  {
    sls: 'spm.validation.reboot_check',
    file: 'validation/reboot_check.sls',
    pillar: [],
    states: [
      {
        id: 'spm_reboot_check',
        fun: 'cmd.run',
        when: 'os_family Debian or RedHat',
        reads: 'stdout reboot_required=yes|no',
      },
      {
        id: 'spm_reboot_check',
        fun: 'test.fail_without_changes',
        when: 'other os_family',
        reads: 'result false, comment',
      },
    ],
  },
  {
    sls: 'spm.validation.service_check',
    file: 'validation/service_check.sls',
    pillar: [P.services],
    states: [
      {
        id: `${SERVICE_ID_PREFIX}<unit>`,
        fun: 'cmd.run',
        when: 'per unit listed',
        reads: 'result (active), stdout (the unit state)',
      },
      {
        id: `${SERVICE_ID_PREFIX}invalid_<n>`,
        fun: 'test.fail_without_changes',
        when: 'entry n is not a unit name',
        reads: 'result false, comment',
      },
      {
        id: 'spm_service_check',
        fun: 'test.succeed_without_changes',
        when: 'no units listed',
        reads: 'nothing (no services)',
      },
    ],
  },
  {
    sls: 'spm.healthcheck',
    file: 'healthcheck.sls',
    pillar: [P.healthchecks],
    states: [
      { id: `${HEALTHCHECK_ID_PREFIX}<name>`, fun: 'http.query', when: 'type http', reads: 'result, comment' },
      {
        id: `${HEALTHCHECK_ID_PREFIX}<name>`,
        fun: 'cmd.run',
        when: 'type tcp or command',
        reads: 'result, comment, exit code and output',
      },
      {
        id: `${HEALTHCHECK_ID_PREFIX}<name>`,
        fun: 'test.fail_without_changes',
        when: 'check misconfigured',
        reads: 'result false, comment',
      },
      {
        id: `${HEALTHCHECK_ID_PREFIX}invalid_<n>`,
        fun: 'test.fail_without_changes',
        when: 'name n is not a valid name',
        reads: 'result false, comment',
      },
      {
        id: 'spm_healthcheck',
        fun: 'test.succeed_without_changes',
        when: 'no checks configured',
        reads: 'nothing (no checks)',
      },
    ],
  },
];

/** The documented (id, fun) pairs of one SLS, with `<…>` placeholders as regular expressions. */
export function documentedStates(sls: string): { id: RegExp; fun: string }[] {
  const doc = SALT_STATES.find((s) => s.sls === sls);
  if (!doc) throw new Error(`unknown SLS ${sls}`);
  return doc.states.map((s) => ({
    id: new RegExp(
      `^${s.id
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/<n>/g, '\\d+')
        .replace(/<(unit|name)>/g, '.+')}$`,
    ),
    fun: s.fun,
  }));
}

/** Pillar for one `state.apply` call (merged by Salt over the minion's own pillar). */
export const callPillar = {
  snapshotCreate: (key: string) => ({ spm: { snapshot: { key } } }),
  snapshotRestore: (which: { key: string } | { number: number }, method?: 'rollback' | 'undochange') => ({
    spm: { snapshot: { ...which, ...(method ? { restore_method: method } : {}) } },
  }),
  snapshotDelete: (opts: { deleteKeys?: string[]; keepKeys?: string[] }) => ({
    spm: { snapshot: { delete_keys: opts.deleteKeys ?? [], keep_keys: opts.keepKeys ?? [] } },
  }),
};
