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
 * Not wired into the engine yet: the engine applies states through `SaltClient.local(minions,
 * 'state.apply', [sls], { pillar })` once it uses them.
 */
import { z } from 'zod';

/** Where `salt-states/` lives in the master's `file_roots`: SLS names start with it. */
export const SLS_NAMESPACE = 'spm';

/** Snapshot descriptions are this prefix + the effect key (the same as `SaltClient.snapshotsOnce`). */
export const SNAPSHOT_DESCRIPTION_PREFIX = 'spm-orchestrator ';

/** State ids of the per-item states start with these prefixes, followed by the pillar name. */
export const HEALTHCHECK_ID_PREFIX = 'spm_healthcheck_';
export const SERVICE_ID_PREFIX = 'spm_service_';

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

// --- Parsing the state.apply return --------------------------------------------------------------

/** A render or compile error: Salt answered a list of strings instead of state results. */
export class SaltStateError extends Error {
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`Salt could not run the states: ${errors.join('; ').slice(0, 500)}`);
    this.errors = errors;
  }
}

export interface StateResult {
  /** The return key, `<mod>_|-<id>_|-<name>_|-<fun>`. */
  key: string;
  id: string;
  /** `module.function`, e.g. `cmd.run`. */
  fun: string;
  name: string;
  result: boolean | null;
  comment: string;
  changes: Record<string, unknown>;
  runNum: number;
}

const stateEntry = z
  .object({
    result: z.boolean().nullable(),
    comment: z.union([z.string(), z.array(z.string())]).optional(),
    changes: z.record(z.string(), z.unknown()).optional(),
    name: z.string().optional(),
    __id__: z.string().optional(),
    __run_num__: z.number().optional(),
  })
  .passthrough();

/**
 * One minion's `state.apply` return as results in run order.
 * @throws SaltStateError when Salt answered a list of strings (render or compile errors)
 * @throws Error when the value has neither shape (e.g. "ERROR: …" from a minion)
 */
export function stateResults(minionReturn: unknown): StateResult[] {
  if (Array.isArray(minionReturn) && minionReturn.every((e) => typeof e === 'string'))
    throw new SaltStateError(minionReturn as string[]);
  if (minionReturn === null || typeof minionReturn !== 'object' || Array.isArray(minionReturn)) {
    throw new Error(`state.apply: unexpected return ${JSON.stringify(minionReturn)?.slice(0, 200)}`);
  }
  const out: StateResult[] = [];
  for (const [key, raw] of Object.entries(minionReturn)) {
    const parsed = stateEntry.safeParse(raw);
    if (!parsed.success) throw new Error(`state.apply: unexpected result under ${JSON.stringify(key.slice(0, 120))}`);
    const e = parsed.data;
    const parts = key.split('_|-');
    const mod = parts[0] ?? '';
    const fn = parts.length >= 4 ? parts[parts.length - 1]! : '';
    out.push({
      key,
      id: e.__id__ ?? parts[1] ?? key,
      fun: `${mod}.${fn}`,
      name: e.name ?? parts.slice(2, -1).join('_|-'),
      result: e.result,
      comment: Array.isArray(e.comment) ? e.comment.join('\n') : (e.comment ?? ''),
      changes: e.changes ?? {},
      runNum: e.__run_num__ ?? Number.MAX_SAFE_INTEGER,
    });
  }
  return out.sort((a, b) => a.runNum - b.runNum || a.key.localeCompare(b.key));
}

/** `key=value` lines of a cmd.run / cmd.script state's stdout (repeated keys keep every value). */
export function stdoutFields(r: StateResult): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const stdout = typeof r.changes.stdout === 'string' ? r.changes.stdout : '';
  for (const line of stdout.split('\n')) {
    const m = /^([a-z_][a-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1]!, [...(fields.get(m[1]!) ?? []), m[2]!]);
  }
  return fields;
}

/** The comment, with a command's exit code and the start of its error output when it failed. */
function describe(r: StateResult): string {
  const { retcode, stderr, stdout } = r.changes as { retcode?: unknown; stderr?: unknown; stdout?: unknown };
  if (r.result === true || typeof retcode !== 'number') return r.comment;
  const output = (
    typeof stderr === 'string' && stderr.trim() !== '' ? stderr : typeof stdout === 'string' ? stdout : ''
  ).trim();
  return `${r.comment} (exit ${retcode}${output ? `: ${output.slice(0, 300)}` : ''})`;
}

function one(results: StateResult[], id: string): StateResult {
  const r = results.find((x) => x.id === id);
  if (!r)
    throw new Error(`state.apply: no result for state ${id} (got ${results.map((x) => x.id).join(', ') || 'none'})`);
  return r;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  comment: string;
}

/**
 * The team checks of `spm.healthcheck`, one per `spm_healthcheck_<name>` state, in run order.
 * `ok` only when Salt says `result: true` (a `null` under `test=True` is not a pass). A misconfigured
 * check is a failed check. No checks configured → [].
 * @throws SaltStateError when the SLS did not render
 */
export function parseHealthcheckReturn(stateApplyReturn: unknown): CheckResult[] {
  return stateResults(stateApplyReturn)
    .filter((r) => r.id.startsWith(HEALTHCHECK_ID_PREFIX) && r.id.length > HEALTHCHECK_ID_PREFIX.length)
    .map((r) => ({ name: r.id.slice(HEALTHCHECK_ID_PREFIX.length), ok: r.result === true, comment: describe(r) }));
}

/** `spm.validation.service_check`: per unit, active or not, and the state systemctl reported. */
export function parseServiceCheckReturn(stateApplyReturn: unknown): (CheckResult & { state: string })[] {
  return stateResults(stateApplyReturn)
    .filter((r) => r.id.startsWith(SERVICE_ID_PREFIX) && r.id.length > SERVICE_ID_PREFIX.length)
    .map((r) => {
      const stdout = typeof r.changes.stdout === 'string' ? r.changes.stdout.trim() : '';
      return {
        name: r.id.slice(SERVICE_ID_PREFIX.length),
        ok: r.result === true,
        state: stdout || 'unknown',
        comment: describe(r),
      };
    });
}

/** `spm.validation.reboot_check`: `rebootRequired` is null when the check could not run. */
export function parseRebootCheckReturn(stateApplyReturn: unknown): {
  ok: boolean;
  rebootRequired: boolean | null;
  reasons: string[];
  comment: string;
} {
  const r = one(stateResults(stateApplyReturn), 'spm_reboot_check');
  const answer = stdoutFields(r).get('reboot_required')?.[0];
  const ok = r.result === true && (answer === 'yes' || answer === 'no');
  return {
    ok,
    rebootRequired: ok ? answer === 'yes' : null,
    reasons: stdoutFields(r).get('reason') ?? [],
    comment: describe(r),
  };
}

/** `spm.snapshot.create`: the snapshot number, and whether this call took it (false: it existed). */
export function parseSnapshotCreateReturn(stateApplyReturn: unknown): {
  ok: boolean;
  number: number | null;
  created: boolean | null;
  comment: string;
} {
  const r = one(stateResults(stateApplyReturn), 'spm_snapshot_create');
  const f = stdoutFields(r);
  const n = Number(f.get('snapshot')?.[0]);
  const ok = r.result === true && Number.isInteger(n) && n > 0;
  return { ok, number: ok ? n : null, created: ok ? f.get('created')?.[0] === 'yes' : null, comment: describe(r) };
}

/** `spm.snapshot.restore`: which snapshot, how, and whether a reboot is needed for it to take effect. */
export function parseSnapshotRestoreReturn(stateApplyReturn: unknown): {
  ok: boolean;
  number: number | null;
  method: string | null;
  needsReboot: boolean | null;
  comment: string;
} {
  const r = one(stateResults(stateApplyReturn), 'spm_snapshot_restore');
  const f = stdoutFields(r);
  const n = Number(f.get('snapshot')?.[0]);
  const ok = r.result === true && Number.isInteger(n) && n > 0;
  return {
    ok,
    number: ok ? n : null,
    method: ok ? (f.get('method')?.[0] ?? null) : null,
    needsReboot: ok ? f.get('takes_effect')?.[0] === 'after_reboot' : null,
    comment: describe(r),
  };
}

/** `spm.snapshot.delete`: snapshot numbers deleted, kept and failed. */
export function parseSnapshotDeleteReturn(stateApplyReturn: unknown): {
  ok: boolean;
  deleted: number[];
  kept: number[];
  failed: number[];
  comment: string;
} {
  const r = one(stateResults(stateApplyReturn), 'spm_snapshot_delete');
  const f = stdoutFields(r);
  const nums = (k: string) =>
    (f.get(k)?.[0] ?? '')
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  return {
    ok: r.result === true,
    deleted: nums('deleted'),
    kept: nums('kept'),
    failed: nums('failed'),
    comment: describe(r),
  };
}
