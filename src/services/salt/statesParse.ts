/**
 * Pure parsers of Salt's `state.apply` return for the SLS of `salt-states/` (see states.ts for the
 * contract and the return shape), and the state id prefixes they read.
 */
import { z } from 'zod';

/** State ids of the per-item states start with these prefixes, followed by the pillar name. */
export const HEALTHCHECK_ID_PREFIX = 'spm_healthcheck_';
export const SERVICE_ID_PREFIX = 'spm_service_';

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
