/**
 * The lab Salt's `state.apply`: what a minion answers for the SLS of `salt-states/` that the
 * engine applies, in Salt's return shape (reference §2, salt-states/README.md) — per state a key
 * `"<mod>_|-<id>_|-<name>_|-<fun>"` → `{ result, comment, changes, name, __id__, __run_num__,
 * __sls__, start_time, duration }` — and a list of strings when the SLS is not on the master
 * (`No matching sls found for '…' in env 'base'`), as Salt answers a render error.
 *
 * `spm.healthcheck` renders the team checks of the minion's pillar (`spm:healthchecks`) the way
 * `salt-states/healthcheck.sls` does: in name order (Jinja's dictsort, case-insensitive), one state
 * per check, `test.fail_without_changes` for an invalid name or a misconfigured check, and one
 * `test.succeed_without_changes` marker when there are none. A check passes while the service
 * behind it is active and no applied errata breaks it (`LabScenario.breaksHealthcheck`).
 * Never imported by production code (src/lab).
 */
import { activeEffects, serviceActive, type LabMinion } from './minion.ts';

/** One team check as a lab minion's pillar lists it (the SLS's keys, plus what makes it pass). */
export interface LabHealthcheck {
  type: 'http' | 'tcp' | 'command' | string;
  url?: string;
  status?: number;
  port?: number;
  host?: string;
  command?: string;
  /** The check passes while this unit is active (the application it probes). */
  service?: string;
}

/** SLS names the lab master has in its file_roots (`salt-states/` installed as `spm`). */
export const LAB_INSTALLED_SLS: readonly string[] = ['spm.healthcheck'];

const NAME = /^[A-Za-z0-9_.-]+$/;

/** Salt's `start_time` form: `HH:MM:SS.ffffff`. */
function startTime(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds() * 1000, 6)}`;
}

type Chunk = {
  mod: string;
  fun: string;
  id: string;
  name: string;
  result: boolean;
  comment: string;
  changes?: object;
  data?: unknown;
};

function checkPasses(m: LabMinion, name: string, c: LabHealthcheck): boolean {
  if (c.service !== undefined && !serviceActive(m, c.service)) return false;
  return !activeEffects(m).some((a) => a.breaksHealthcheck === name);
}

function healthcheckChunks(m: LabMinion): Chunk[] {
  const names = Object.keys(m.healthchecks).sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
  if (names.length === 0) {
    const msg = 'no checks in pillar spm:healthchecks';
    return [
      {
        mod: 'test',
        fun: 'succeed_without_changes',
        id: 'spm_healthcheck',
        name: `spm.healthcheck: ${msg}`,
        result: true,
        comment: msg,
      },
    ];
  }
  return names.map((label, i): Chunk => {
    const c = m.healthchecks[label]!;
    const id = `spm_healthcheck_${label}`;
    if (!NAME.test(label)) {
      const msg = `check name ${label} is invalid (letters, digits, _ . - only)`;
      return {
        mod: 'test',
        fun: 'fail_without_changes',
        id: `spm_healthcheck_invalid_${i + 1}`,
        name: `spm.healthcheck: ${msg}`,
        result: false,
        comment: msg,
      };
    }
    const ok = checkPasses(m, label, c);
    if (c.type === 'http' && c.url) {
      const status = c.status ?? 200;
      const got = ok ? status : 503;
      return {
        mod: 'http',
        fun: 'query',
        id,
        name: c.url,
        result: ok,
        comment: ok ? ` Status ${status} was found.` : ` Status ${status} was not found.`,
        changes: {},
        ...(ok ? {} : { data: { status: got } }),
      };
    }
    const port = Number(c.port);
    const command =
      c.type === 'tcp' && Number.isInteger(port) && port > 0 && port < 65536
        ? `timeout 5 bash -c 'exec 3<>/dev/tcp/${c.host ?? '127.0.0.1'}/${port}'`
        : c.type === 'command' && c.command
          ? c.command
          : null;
    if (command === null) {
      const needs = 'needs type http with url, tcp with port 1-65535, or command with command';
      return {
        mod: 'test',
        fun: 'fail_without_changes',
        id,
        name: `spm.healthcheck: check ${label} is misconfigured: ${needs}`,
        result: false,
        comment: `misconfigured: ${needs} (got type ${c.type || 'none'})`,
      };
    }
    const stderr = ok
      ? ''
      : c.type === 'tcp'
        ? `bash: connect: Connection refused\nbash: line 1: /dev/tcp/${c.host ?? '127.0.0.1'}/${port}: Connection refused`
        : `${label}: check failed (lab)`;
    return {
      mod: 'cmd',
      fun: 'run',
      id,
      name: command,
      result: ok,
      comment: `Command "${command}" run`,
      changes: { pid: 4000 + i, retcode: ok ? 0 : 1, stdout: ok ? 'ok' : '', stderr },
    };
  });
}

/**
 * One minion's answer to `state.apply <sls>`.
 * @example labStateApply(minion, ['spm.healthcheck'], LAB_INSTALLED_SLS) // { 'cmd_|-spm_healthcheck_api_|-…_|-run': { result: true, … } }
 */
export function labStateApply(m: LabMinion, args: unknown[], installed: readonly string[]): unknown {
  const sls = String(args[0] ?? '');
  if (!installed.includes(sls) || sls !== 'spm.healthcheck')
    return [`No matching sls found for '${sls}' in env 'base'`];
  const out: Record<string, unknown> = {};
  healthcheckChunks(m).forEach((c, i) => {
    const { mod, fun, id, name, result, comment, changes, ...rest } = c;
    out[`${mod}_|-${id}_|-${name}_|-${fun}`] = {
      name,
      changes: changes ?? {},
      result,
      comment,
      __sls__: sls,
      __run_num__: i,
      start_time: startTime(),
      duration: 1.5 + i,
      __id__: id,
      ...rest,
    };
  });
  return out;
}
