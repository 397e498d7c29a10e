/**
 * salt-states/ without a Salt: every SLS is rendered with nunjucks (a Jinja-compatible renderer)
 * for Ubuntu 24.04, Debian 12 and RHEL 9 grains with the example pillar, parsed as YAML 1.1 (as
 * Salt's PyYAML loader reads it), and its state ids and module functions are checked against the
 * table the engine reads (src/services/salt/states.ts). The shell the states run is executed under
 * bash against fakes of snapper, systemctl and needs-restarting that answer as their manuals
 * document; the TCP and command health checks run for real. The state.apply parsers are checked
 * against returns shaped as Salt documents them.
 *
 * What the Salt stubs provide (and nothing more): `salt['pillar.get']` (colon-delimited lookup with
 * a default, as salt.modules.pillar.get), `grains`, `pillar`, `sls`/`slspath`/`tpldir`, and Salt's
 * Jinja filters `json` (json.dumps, sort_keys), `quote` (shlex.quote) and `regex_match`
 * (re.match → groups or None), and Jinja's own `dictsort` ordering (nunjucks' differs). They do
 * not emulate Jinja's StrictUndefined in conditions: the templates guard every optional pillar
 * value with `is defined` or `default`.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nunjucks from 'nunjucks';
import YAML from 'yaml';
import { newMinion } from '../src/lab/minion.ts';
import { LAB_INSTALLED_SLS, labStateApply, type LabHealthcheck } from '../src/lab/saltStates.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callPillar,
  documentedStates,
  parseHealthcheckReturn,
  parseRebootCheckReturn,
  parseServiceCheckReturn,
  parseSnapshotCreateReturn,
  parseSnapshotDeleteReturn,
  parseSnapshotRestoreReturn,
  SALT_STATES,
  SaltStateError,
  SLS_NAMESPACE,
  SNAPSHOT_DESCRIPTION_PREFIX,
  stateResults,
} from '../src/services/salt/states.ts';

const ROOT = path.resolve('salt-states');

// --- A Jinja environment with Salt's globals and filters (minimal, see the header) ----------------

type Dict = Record<string, unknown>;

/** Python's json.dumps(value, sort_keys=True) with ensure_ascii (Salt's `json` filter). */
function pyJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string')
    return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  return `{${Object.keys(v as Dict)
    .sort()
    .map((k) => `${pyJson(k)}: ${pyJson((v as Dict)[k])}`)
    .join(', ')}}`;
}

/** Python's shlex.quote (Salt's `quote` filter). */
function shQuote(s: unknown): string {
  const t = String(s);
  if (t === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(t)) return t;
  return `'${t.replace(/'/g, `'"'"'`)}'`;
}

/** salt.utils.data.traverse_dict_and_list with ':' (what pillar.get does with a nested key). */
function traverse(data: unknown, key: string, dflt: unknown): unknown {
  let cur: unknown = data;
  for (const part of key.split(':')) {
    if (Array.isArray(cur) && /^\d+$/.test(part) && Number(part) < cur.length) cur = cur[Number(part)];
    else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur) && part in (cur as Dict))
      cur = (cur as Dict)[part];
    else return dflt;
  }
  return cur;
}

const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });
env.addFilter('json', pyJson);
env.addFilter('quote', shQuote);
// Jinja's dictsort (nunjucks' upper-cases, which orders '_' after letters): key order, case folded
// with lower(), compared by code point.
env.addFilter('dictsort', (value: Dict) =>
  Object.entries(value).sort(([a], [b]) => {
    const [x, y] = [a.toLowerCase(), b.toLowerCase()];
    return x < y ? -1 : x > y ? 1 : 0;
  }),
);
env.addFilter('regex_match', (txt: unknown, rgx: string) => {
  // Salt returns match.groups(): a tuple that is falsy when the pattern has no group, which a JS
  // array cannot mimic; the states always capture one group, so insist on it here.
  if (!/\((?!\?)/.test(rgx)) throw new Error(`regex_match without a capture group: ${rgx}`);
  const m = new RegExp(rgx).exec(String(txt));
  return m && m.index === 0 ? m.slice(1) : null;
});

interface Grains {
  os_family: string;
  os: string;
  osmajorrelease: number;
  osfinger: string;
}
const OSES: Record<string, Grains> = {
  'Ubuntu 24.04': { os_family: 'Debian', os: 'Ubuntu', osmajorrelease: 24, osfinger: 'Ubuntu-24.04' },
  'Debian 12': { os_family: 'Debian', os: 'Debian', osmajorrelease: 12, osfinger: 'Debian-12' },
  'RHEL 9': { os_family: 'RedHat', os: 'RedHat', osmajorrelease: 9, osfinger: 'Red Hat Enterprise Linux-9' },
};

/** Render one file of salt-states/ as Salt would for the SLS `spm.<dir>.<name>`. */
function renderFile(file: string, grains: Grains, pillar: Dict): string {
  const sls = `${SLS_NAMESPACE}.${file.replace(/\.sls$/, '').replace(/\//g, '.')}`;
  const slspath = [SLS_NAMESPACE, path.dirname(file)].filter((p) => p !== '.').join('/');
  const ctx = {
    salt: { 'pillar.get': (key: string, dflt: unknown = '') => traverse(pillar, key, dflt) },
    grains,
    pillar,
    sls,
    slspath,
    tpldir: slspath,
    saltenv: 'base',
  };
  return env.renderString(readFileSync(path.join(ROOT, file), 'utf8'), ctx);
}

function parseYaml(text: string): unknown {
  return YAML.parse(text, { version: '1.1', uniqueKeys: true });
}

/** Salt's pillar merge for an override pillar: mappings recurse, anything else is replaced. */
function merge(base: Dict, over: Dict): Dict {
  const out: Dict = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      b && v && typeof b === 'object' && typeof v === 'object' && !Array.isArray(b) && !Array.isArray(v)
        ? merge(b as Dict, v as Dict)
        : v;
  }
  return out;
}

/** The example pillar (salt-states/pillar/spm.sls, itself Jinja over YAML) for one OS. */
function examplePillar(grains: Grains): Dict {
  return parseYaml(renderFile('pillar/spm.sls', grains, {})) as Dict;
}

interface RenderedState {
  id: string;
  fun: string;
  args: Dict;
}

/** Render an SLS, parse it, and check the shape Salt requires: id → { mod.fun: [ {arg: value}, … ] }. */
function render(file: string, grains: Grains, pillar: Dict): RenderedState[] {
  const text = renderFile(file, grains, pillar);
  expect(text, `${file}: no Jinja left`).not.toMatch(/\{\{|\{%|\{#/);
  const doc = parseYaml(text);
  expect(
    doc !== null && typeof doc === 'object' && !Array.isArray(doc),
    `${file}: renders a mapping of state ids`,
  ).toBe(true);
  return Object.entries(doc as Dict).map(([id, body]) => {
    expect(body !== null && typeof body === 'object' && !Array.isArray(body), `${id}: a mapping`).toBe(true);
    const keys = Object.keys(body as Dict);
    expect(keys, `${id}: exactly one module.function`).toHaveLength(1);
    const fun = keys[0]!;
    expect(fun).toMatch(/^[a-z_]+\.[a-z_]+$/);
    const list = (body as Dict)[fun];
    expect(Array.isArray(list), `${id}: arguments are a list`).toBe(true);
    const args: Dict = {};
    for (const item of list as unknown[]) {
      expect(
        item !== null && typeof item === 'object' && !Array.isArray(item) && Object.keys(item as Dict).length === 1,
        `${id}: each argument is a one-key mapping`,
      ).toBe(true);
      const [k, v] = Object.entries(item as Dict)[0]!;
      expect(args, `${id}: argument ${k} given once`).not.toHaveProperty(k);
      args[k] = v;
    }
    return { id, fun, args };
  });
}

const slsOf = (file: string) => SALT_STATES.find((s) => s.file === file)!.sls;

/** Every rendered (id, fun) is one the table documents for that SLS. */
function expectDocumented(file: string, states: RenderedState[]) {
  const documented = documentedStates(slsOf(file));
  for (const s of states) {
    expect(
      documented.some((d) => d.id.test(s.id) && d.fun === s.fun),
      `${file}: ${s.id} (${s.fun}) is in SALT_STATES`,
    ).toBe(true);
  }
}

const ids = (states: RenderedState[]) => states.map((s) => [s.id, s.fun]);

/** cmd.run / cmd.script `env`: a list of one-key mappings whose values are strings. */
function envOf(s: RenderedState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (s.args.env as Dict[] | undefined) ?? []) {
    const [k, v] = Object.entries(item)[0]!;
    expect(typeof v, `${s.id}: env ${k} is a string`).toBe('string');
    out[k] = v as string;
  }
  return out;
}

/** The file a `salt://spm/...` source names in this checkout. */
function saltUrlFile(url: unknown): string {
  expect(String(url)).toMatch(new RegExp(`^salt://${SLS_NAMESPACE}/`));
  return path.join(ROOT, String(url).slice(`salt://${SLS_NAMESPACE}/`.length));
}

// --- Fakes the shell runs against -----------------------------------------------------------------

let work: string;
let fakeBin: string;

const FAKE_SNAPPER = `#!/usr/bin/env node
// Fake snapper(8): global options, then list/create/delete/rollback/undochange, over a JSON file.
const fs = require('node:fs');
const db = process.env.FAKE_SNAPPER_DB;
const snaps = JSON.parse(fs.readFileSync(db, 'utf8'));
const save = () => fs.writeFileSync(db, JSON.stringify(snaps));
fs.appendFileSync(db + '.log', JSON.stringify(process.argv.slice(2)) + '\\n');
const a = process.argv.slice(2);
let csv = false, utc = false, config = 'root';
while (a[0] && a[0].startsWith('-')) {
  const o = a.shift();
  if (o === '--csvout') csv = true; else if (o === '--utc') utc = true; else if (o === '-c' || o === '--config') config = a.shift();
  else { console.error('fake snapper: unknown global option ' + o); process.exit(64); }
}
if (config !== (process.env.FAKE_SNAPPER_CONFIG || 'root')) { console.error("Unknown config."); process.exit(1); }
const pad = (n) => String(n).padStart(2, '0');
const fmt = (ms) => { const d = new Date(ms); return utc
  ? d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds())
  : 'local-time-not-used-by-the-states'; };
const cell = (v) => /[,"\\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
const cmd = a.shift();
if (cmd === 'list') {
  if (!csv) { console.error('fake snapper: only --csvout listings'); process.exit(64); }
  const cols = a[0] === '--columns' ? a[1].split(',') : ['number', 'date', 'description'];
  const rows = [{ number: 0, date: '', description: 'current' }, ...snaps].map((s) => cols.map((c) => cell(c === 'date' ? (s.number === 0 ? '' : fmt(s.date)) : String(s[c]))));
  process.stdout.write([cols, ...rows].map((r) => r.join(',')).join('\\n') + '\\n');
} else if (cmd === 'create') {
  let desc = '', print = false, type = '', cleanup = '';
  while (a.length) { const o = a.shift(); if (o === '--description' || o === '-d') desc = a.shift(); else if (o === '--print-number' || o === '-p') print = true; else if (o === '--type' || o === '-t') type = a.shift(); else if (o === '--cleanup-algorithm' || o === '-c') cleanup = a.shift(); else { console.error('fake snapper: create ' + o); process.exit(64); } }
  if (type !== 'single') process.exit(65);
  const number = snaps.reduce((m, s) => Math.max(m, s.number), 0) + 1;
  snaps.push({ number, date: Date.now(), description: desc, cleanup }); save();
  if (print) console.log(number);
} else if (cmd === 'delete') {
  const n = Number(a[0]);
  if (String(n) === process.env.FAKE_SNAPPER_FAIL_DELETE) { console.error('Cannot delete snapshot ' + n + '.'); process.exit(1); }
  const i = snaps.findIndex((s) => s.number === n);
  if (i < 0) { console.error('Snapshot ' + n + ' not found.'); process.exit(1); }
  snaps.splice(i, 1); save();
} else if (cmd === 'rollback' || cmd === 'undochange') {
  const arg = a[0] || '';
  const n = Number(cmd === 'rollback' ? arg : arg.split('..')[0]);
  if (!snaps.some((s) => s.number === n) || (cmd === 'undochange' && !/^\\d+\\.\\.0$/.test(arg))) { console.error('Snapshot not found.'); process.exit(1); }
  console.log(cmd === 'rollback' ? 'Setting default subvolume to snapshot ' + n + '.' : 'create:0 modify:3 delete:0');
} else { console.error('fake snapper: ' + cmd); process.exit(64); }
`;

interface Snap {
  number: number;
  date: number;
  description: string;
  cleanup?: string;
}

function writeExecutable(dir: string, name: string, body: string) {
  writeFileSync(path.join(dir, name), body);
  chmodSync(path.join(dir, name), 0o755);
}

function snapperDb(snaps: Snap[]): string {
  const file = path.join(mkdtempSync(path.join(work, 'db-')), 'snaps.json');
  writeFileSync(file, JSON.stringify(snaps));
  return file;
}

const readDb = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Snap[];

interface Run {
  retcode: number;
  stdout: string;
  stderr: string;
}

/** Run a rendered cmd.run / cmd.script state the way Salt's cmd module does: its shell, its env. */
function runState(s: RenderedState, extraEnv: Record<string, string>, pathDirs: string[] = [fakeBin]): Run {
  const e = { PATH: [...pathDirs, '/usr/bin', '/bin'].join(':'), TZ: 'UTC', ...envOf(s), ...extraEnv };
  expect(s.args.shell).toBe('/bin/bash');
  const r =
    s.fun === 'cmd.script'
      ? spawnSync('/bin/bash', [saltUrlFile(s.args.name)], {
          env: e,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawnSync('/bin/bash', ['-c', String(s.args.name)], {
          env: e,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  return { retcode: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The return Salt would give for these states after running them (cmd results from real runs). */
function saltReturn(
  sls: string,
  states: RenderedState[],
  outcome: (s: RenderedState) => { result: boolean | null; comment: string; changes: Dict },
): Dict {
  const ret: Dict = {};
  states.forEach((s, i) => {
    const [mod, fn] = s.fun.split('.');
    const name = String(s.args.name ?? s.id);
    ret[`${mod}_|-${s.id}_|-${name}_|-${fn}`] = {
      name,
      ...outcome(s),
      __id__: s.id,
      __run_num__: i,
      __sls__: sls,
      start_time: '10:00:00.000000',
      duration: 12.5,
    };
  });
  return ret;
}

function cmdOutcome(r: Run, s: RenderedState) {
  return {
    result: r.retcode === 0,
    comment: `Command "${String(s.args.name)}" run`,
    changes: { pid: 4242, retcode: r.retcode, stdout: r.stdout.trimEnd(), stderr: r.stderr.trimEnd() },
  };
}

beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'spm-salt-states-'));
  fakeBin = path.join(work, 'bin');
  spawnSync('mkdir', ['-p', fakeBin]);
  writeExecutable(fakeBin, 'snapper', FAKE_SNAPPER);
  writeExecutable(fakeBin, 'node', `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} "$@"\n`);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

// --- The table and the files ----------------------------------------------------------------------

function slsFiles(dir = ROOT, rel = ''): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    const r = rel ? `${rel}/${n}` : n;
    return statSync(p).isDirectory() ? slsFiles(p, r) : r.endsWith('.sls') ? [r] : [];
  });
}

describe('salt-states/ and the table the engine reads', () => {
  it('every state SLS is in SALT_STATES and every SALT_STATES entry is a file (pillar/ holds the example pillar)', () => {
    const files = slsFiles()
      .filter((f) => !f.startsWith('pillar/'))
      .sort();
    expect(files).toEqual(SALT_STATES.map((s) => s.file).sort());
    for (const s of SALT_STATES)
      expect(s.sls).toBe(`${SLS_NAMESPACE}.${s.file.replace(/\.sls$/, '').replace(/\//g, '.')}`);
    expect(existsSync(path.join(ROOT, 'pillar/spm.sls'))).toBe(true);
    expect(existsSync(path.join(ROOT, 'README.md'))).toBe(true);
  });

  it('the snapshot scripts are valid bash and use the description prefix the Salt client uses', () => {
    for (const f of ['create.sh', 'restore.sh', 'delete.sh']) {
      const file = path.join(ROOT, 'snapshot/files', f);
      expect(spawnSync('/bin/bash', ['-n', file], { encoding: 'utf8' }).status, f).toBe(0);
      expect(readFileSync(file, 'utf8')).toContain(`prefix='${SNAPSHOT_DESCRIPTION_PREFIX}'`);
    }
    expect(readFileSync('src/services/salt/client.ts', 'utf8')).toContain('`spm-orchestrator ${key}`');
  });

  it('the example pillar renders per OS family (the service names differ)', () => {
    expect(examplePillar(OSES['Ubuntu 24.04']!)).toMatchObject({
      spm: { services: ['ssh', 'cron'], snapshot: { config: 'root', retention: { max_count: 10, max_age_days: 14 } } },
    });
    expect(examplePillar(OSES['RHEL 9']!)).toMatchObject({
      spm: { services: ['sshd', 'crond'], healthchecks: { ssh_port: { type: 'tcp', port: 22 } } },
    });
  });
});

describe.each(Object.entries(OSES))('rendered for %s', (_os, grains) => {
  const pillar = () => examplePillar(grains);

  it('every SLS renders with the example pillar to documented states; every cmd.run is valid bash', () => {
    const withKey = merge(pillar(), callPillar.snapshotCreate('7:1:snapshot'));
    for (const doc of SALT_STATES) {
      const states = render(doc.file, grains, withKey);
      expect(states.length).toBeGreaterThan(0);
      expectDocumented(doc.file, states);
      for (const s of states.filter((x) => x.fun === 'cmd.run')) {
        expect(
          spawnSync('/bin/bash', ['-n', '-c', String(s.args.name)], { encoding: 'utf8' }).status,
          `${s.id}: bash -n`,
        ).toBe(0);
      }
      for (const s of states.filter((x) => x.fun === 'cmd.script'))
        expect(existsSync(saltUrlFile(s.args.name)), `${s.id}: ${String(s.args.name)}`).toBe(true);
    }
  });

  it('spm.snapshot.create: the effect key from the call pillar, or a failed state without it', () => {
    const s = render('snapshot/create.sls', grains, merge(pillar(), callPillar.snapshotCreate('7:1:snapshot#2')));
    expect(ids(s)).toEqual([['spm_snapshot_create', 'cmd.script']]);
    expect(s[0]!.args.name).toBe('salt://spm/snapshot/files/create.sh');
    expect(envOf(s[0]!)).toEqual({
      SPM_KEY: '7:1:snapshot#2',
      SPM_SNAPPER_CONFIG: 'root',
      SPM_CLEANUP_ALGORITHM: 'number',
    });
    const none = render('snapshot/create.sls', grains, pillar());
    expect(ids(none)).toEqual([['spm_snapshot_create', 'test.fail_without_changes']]);
    expect(none[0]!.args.comment).toMatch(/spm:snapshot:key/);
  });

  it('spm.snapshot.restore: by key or by number, with the pillar method', () => {
    const byKey = render(
      'snapshot/restore.sls',
      grains,
      merge(pillar(), callPillar.snapshotRestore({ key: '7:1:snapshot' })),
    );
    expect(ids(byKey)).toEqual([['spm_snapshot_restore', 'cmd.script']]);
    expect(envOf(byKey[0]!)).toEqual({
      SPM_KEY: '7:1:snapshot',
      SPM_SNAPSHOT: '',
      SPM_SNAPPER_CONFIG: 'root',
      SPM_RESTORE_METHOD: 'rollback',
    });
    const byNumber = render(
      'snapshot/restore.sls',
      grains,
      merge(pillar(), callPillar.snapshotRestore({ number: 42 }, 'undochange')),
    );
    expect(envOf(byNumber[0]!)).toMatchObject({ SPM_SNAPSHOT: '42', SPM_RESTORE_METHOD: 'undochange' });
    expect(ids(render('snapshot/restore.sls', grains, pillar()))).toEqual([
      ['spm_snapshot_restore', 'test.fail_without_changes'],
    ]);
  });

  it('spm.snapshot.delete: retention from the pillar, keys from the call', () => {
    const s = render(
      'snapshot/delete.sls',
      grains,
      merge(
        pillar(),
        callPillar.snapshotDelete({ deleteKeys: ['3:1:snapshot', '4:1:snapshot'], keepKeys: ['9:1:snapshot'] }),
      ),
    );
    expect(ids(s)).toEqual([['spm_snapshot_delete', 'cmd.script']]);
    expect(envOf(s[0]!)).toEqual({
      SPM_SNAPPER_CONFIG: 'root',
      SPM_DELETE_KEYS: '3:1:snapshot 4:1:snapshot',
      SPM_KEEP_KEYS: '9:1:snapshot',
      SPM_MAX_COUNT: '10',
      SPM_MAX_AGE_DAYS: '14',
    });
    // Without a pillar at all the defaults apply; a single key given as a string is one key.
    expect(
      envOf(render('snapshot/delete.sls', grains, { spm: { snapshot: { delete_keys: '5:2:snapshot' } } })[0]!),
    ).toEqual({
      SPM_SNAPPER_CONFIG: 'root',
      SPM_DELETE_KEYS: '5:2:snapshot',
      SPM_KEEP_KEYS: '',
      SPM_MAX_COUNT: '10',
      SPM_MAX_AGE_DAYS: '14',
    });
  });

  it('spm.validation.reboot_check: the check of the OS family', () => {
    const s = render('validation/reboot_check.sls', grains, pillar());
    expect(ids(s)).toEqual([['spm_reboot_check', 'cmd.run']]);
    if (grains.os_family === 'Debian') {
      expect(envOf(s[0]!)).toEqual({ SPM_REBOOT_REQUIRED_FILE: '/var/run/reboot-required', SPM_BOOT_DIR: '/boot' });
    } else {
      expect(String(s[0]!.args.name)).toContain('needs-restarting -r');
    }
  });

  it('spm.validation.service_check: one state per unit; a bad name fails; none is a success marker', () => {
    const s = render('validation/service_check.sls', grains, pillar());
    expect(ids(s)).toEqual(
      grains.os_family === 'RedHat'
        ? [
            ['spm_service_sshd', 'cmd.run'],
            ['spm_service_crond', 'cmd.run'],
          ]
        : [
            ['spm_service_ssh', 'cmd.run'],
            ['spm_service_cron', 'cmd.run'],
          ],
    );
    expect(s[0]!.args.name).toBe(`systemctl is-active ${grains.os_family === 'RedHat' ? 'sshd' : 'ssh'}`);
    const odd = render('validation/service_check.sls', grains, {
      spm: { services: ['postgresql@16-main.service', 'x; rm -rf /'] },
    });
    expect(ids(odd)).toEqual([
      ['spm_service_postgresql@16-main.service', 'cmd.run'],
      ['spm_service_invalid_2', 'test.fail_without_changes'],
    ]);
    expectDocumented('validation/service_check.sls', odd);
    expect(ids(render('validation/service_check.sls', grains, { spm: { services: [] } }))).toEqual([
      ['spm_service_check', 'test.succeed_without_changes'],
    ]);
  });

  it('spm.healthcheck: http.query / cmd.run per check in name order; misconfigured checks fail by name', () => {
    const teams = merge(pillar(), {
      spm: {
        healthchecks: {
          web: {
            type: 'http',
            url: 'https://127.0.0.1:8443/healthz',
            status: 204,
            match: 'ok',
            verify_ssl: false,
            wait_for: 120,
          },
          api: { type: 'http', url: 'http://127.0.0.1:8080/ready' },
          broken: { type: 'tcp', port: 70000 },
          'bad name': { type: 'command', command: 'true' },
          'queue.depth': { type: 'command', command: '/usr/local/bin/queue-ok --max 100', runas: 'app', timeout: 10 },
        },
      },
    });
    const s = render('healthcheck.sls', grains, teams);
    expectDocumented('healthcheck.sls', s);
    expect(ids(s)).toEqual([
      ['spm_healthcheck_api', 'http.query'],
      ['spm_healthcheck_invalid_2', 'test.fail_without_changes'],
      ['spm_healthcheck_broken', 'test.fail_without_changes'],
      ['spm_healthcheck_queue.depth', 'cmd.run'],
      ['spm_healthcheck_ssh_port', 'cmd.run'],
      ['spm_healthcheck_sshd_config', 'cmd.run'],
      ['spm_healthcheck_web', 'http.query'],
    ]);
    const by = Object.fromEntries(s.map((x) => [x.id, x.args]));
    expect(by.spm_healthcheck_api).toEqual({
      name: 'http://127.0.0.1:8080/ready',
      status: 200,
      method: 'GET',
      verify_ssl: true,
    });
    expect(by.spm_healthcheck_web).toEqual({
      name: 'https://127.0.0.1:8443/healthz',
      status: 204,
      match: 'ok',
      method: 'GET',
      verify_ssl: false,
      wait_for: 120,
    });
    expect(by.spm_healthcheck_ssh_port).toEqual({
      name: "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/22'",
      shell: '/bin/bash',
    });
    expect(by['spm_healthcheck_queue.depth']).toEqual({
      name: '/usr/local/bin/queue-ok --max 100',
      shell: '/bin/bash',
      timeout: 10,
      cwd: '/',
      runas: 'app',
    });
    expect(String(by.spm_healthcheck_broken!.comment)).toMatch(/tcp with port 1-65535/);
    expect(ids(render('healthcheck.sls', grains, { spm: { healthchecks: {} } }))).toEqual([
      ['spm_healthcheck', 'test.succeed_without_changes'],
    ]);
    expect(ids(render('healthcheck.sls', grains, {}))).toEqual([['spm_healthcheck', 'test.succeed_without_changes']]);
  });

  it("the lab Salt's state.apply spm.healthcheck answers the ids and functions this SLS renders, and the engine's parser reads it", () => {
    const checks: Record<string, LabHealthcheck> = {
      web: { type: 'http', url: 'http://127.0.0.1/healthz', service: 'nginx.service' },
      Db_port: { type: 'tcp', port: 5432 },
      'bad name': { type: 'command', command: 'true' },
      broken: { type: 'tcp', port: 70000 },
      queue: { type: 'command', command: '/usr/local/bin/queue-ok' },
    };
    // The pillar is the checks without the lab's own knob (which service makes a check pass).
    const pillarOnly = Object.fromEntries(Object.entries(checks).map(([k, { service: _, ...c }]) => [k, c]));
    const rendered = render('healthcheck.sls', grains, { spm: { healthchecks: pillarOnly } });
    const m = newMinion('lab-01', ['nginx.service'], []);
    m.healthchecks = checks;
    const answer = labStateApply(m, ['spm.healthcheck'], LAB_INSTALLED_SLS);
    const results = stateResults(answer);
    expect(results.map((r) => [r.id, r.fun])).toEqual(ids(rendered));
    for (const r of results) {
      const st = rendered.find((x) => x.id === r.id)!;
      expect(r.name).toBe(String(st.args.name));
    }
    expect(parseHealthcheckReturn(answer).map((c) => [c.name, c.ok])).toEqual([
      ['invalid_1', false],
      ['broken', false],
      ['Db_port', true],
      ['queue', true],
      ['web', true],
    ]);
    // The service behind a check fails: the check fails; an SLS the master does not have is Salt's list of strings.
    m.services.set('nginx.service', false);
    expect(
      parseHealthcheckReturn(labStateApply(m, ['spm.healthcheck'], LAB_INSTALLED_SLS)).find((c) => c.name === 'web')
        ?.ok,
    ).toBe(false);
    expect(() => parseHealthcheckReturn(labStateApply(m, ['spm.healthcheck'], []))).toThrow(SaltStateError);
  });

  it('an unsupported OS family renders a failed reboot check, not a guess', () => {
    const suse = { os_family: 'Suse', os: 'SUSE', osmajorrelease: 15, osfinger: 'SLES-15' };
    const s = render('validation/reboot_check.sls', suse, {});
    expect(ids(s)).toEqual([['spm_reboot_check', 'test.fail_without_changes']]);
    expect(String(s[0]!.args.comment)).toMatch(/Suse is not supported/);
  });
});

// --- What the shell does (bash, fakes as documented) ----------------------------------------------

const ubuntu = OSES['Ubuntu 24.04']!;
const rhel = OSES['RHEL 9']!;
const DAY = 86_400_000;

describe('the snapshot scripts against a fake snapper', () => {
  const create = (key: string) =>
    render('snapshot/create.sls', ubuntu, merge(examplePillar(ubuntu), callPillar.snapshotCreate(key)))[0]!;

  it('create takes one snapshot per effect key; a retry finds it instead of taking a second', () => {
    const db = snapperDb([{ number: 3, date: Date.now() - DAY, description: 'apt pre-upgrade, with a comma' }]);
    const first = runState(create('7:1:snapshot'), { FAKE_SNAPPER_DB: db });
    expect(first).toMatchObject({ retcode: 0, stdout: 'snapshot=4\ncreated=yes\n' });
    expect(readDb(db).at(-1)).toMatchObject({
      number: 4,
      description: 'spm-orchestrator 7:1:snapshot',
      cleanup: 'number',
    });
    const again = runState(create('7:1:snapshot'), { FAKE_SNAPPER_DB: db });
    expect(again).toMatchObject({ retcode: 0, stdout: 'snapshot=4\ncreated=no\n' });
    expect(readDb(db)).toHaveLength(2);
    // What the engine reads from it, through a return shaped as Salt's.
    const s = create('7:1:snapshot');
    expect(parseSnapshotCreateReturn(saltReturn('spm.snapshot.create', [s], () => cmdOutcome(again, s)))).toEqual({
      ok: true,
      number: 4,
      created: false,
      comment: expect.any(String),
    });
  });

  it('create refuses a key snapper would quote, and says so when snapper is missing', () => {
    const db = snapperDb([]);
    const bad = runState(create('7:1:snap,shot'), { FAKE_SNAPPER_DB: db });
    expect(bad.retcode).toBe(2);
    expect(bad.stderr).toMatch(/outside/);
    const missing = runState(create('7:1:snapshot'), {}, [path.join(work, 'empty-bin')]);
    expect(missing.retcode).toBe(3);
    expect(missing.stderr).toMatch(/snapper is not installed/);
    const s = create('7:1:snapshot');
    expect(
      parseSnapshotCreateReturn(saltReturn('spm.snapshot.create', [s], () => cmdOutcome(missing, s))),
    ).toMatchObject({ ok: false, number: null, comment: expect.stringMatching(/exit 3: snapper is not installed/) });
  });

  it('restore finds the snapshot by its key (rollback) or takes a number (undochange); an unknown key fails', () => {
    const db = snapperDb([
      { number: 5, date: Date.now(), description: 'spm-orchestrator 7:1:snapshot' },
      { number: 6, date: Date.now(), description: 'spm-orchestrator 8:1:snapshot' },
    ]);
    const restore = (p: Dict) => render('snapshot/restore.sls', ubuntu, merge(examplePillar(ubuntu), p))[0]!;
    const rb = restore(callPillar.snapshotRestore({ key: '8:1:snapshot' }));
    const r1 = runState(rb, { FAKE_SNAPPER_DB: db });
    expect(r1).toMatchObject({ retcode: 0, stdout: 'snapshot=6\nmethod=rollback\ntakes_effect=after_reboot\n' });
    expect(readFileSync(`${db}.log`, 'utf8')).toContain('["-c","root","rollback","6"]');
    expect(
      parseSnapshotRestoreReturn(saltReturn('spm.snapshot.restore', [rb], () => cmdOutcome(r1, rb))),
    ).toMatchObject({ ok: true, number: 6, method: 'rollback', needsReboot: true });
    const r2 = runState(restore(callPillar.snapshotRestore({ number: 5 }, 'undochange')), { FAKE_SNAPPER_DB: db });
    expect(r2).toMatchObject({ retcode: 0, stdout: 'snapshot=5\nmethod=undochange\ntakes_effect=now\n' });
    expect(readFileSync(`${db}.log`, 'utf8')).toContain('["-c","root","undochange","5..0"]');
    const r3 = runState(restore(callPillar.snapshotRestore({ key: '9:1:snapshot' })), { FAKE_SNAPPER_DB: db });
    expect(r3.retcode).toBe(4);
    expect(r3.stderr).toMatch(/no snapshot with description 'spm-orchestrator 9:1:snapshot'/);
  });

  it('delete: requested keys go, kept keys stay, then age and count limits; other snapshots are never touched', () => {
    const now = Date.now();
    const ours = (n: number, key: string, ageDays: number): Snap => ({
      number: n,
      date: now - ageDays * DAY,
      description: `spm-orchestrator ${key}`,
    });
    const db = snapperDb([
      { number: 1, date: now - 90 * DAY, description: 'timeline' },
      ours(2, '1:1:snapshot', 30), // older than 14 days
      ours(3, '2:1:snapshot', 20), // older, but its entry is in flight
      ours(4, '3:1:snapshot', 5),
      ours(5, '4:1:snapshot', 4), // requested
      ours(6, '5:1:snapshot', 3),
      ours(7, '6:1:snapshot', 2),
      { number: 8, date: now - DAY, description: 'spm-orchestratorX not ours' },
      ours(9, '7:1:snapshot', 1),
    ]);
    const s = render(
      'snapshot/delete.sls',
      ubuntu,
      merge(examplePillar(ubuntu), {
        spm: { snapshot: { retention: { max_count: 3 }, delete_keys: ['4:1:snapshot'], keep_keys: ['2:1:snapshot'] } },
      }),
    )[0]!;
    const r = runState(s, { FAKE_SNAPPER_DB: db });
    expect(r.retcode, r.stderr).toBe(0);
    // kept: 3 (in flight) counts toward the 3; then 9 and 7 are the newest; 6 and 4 exceed the count.
    expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual([
      'deleted=6 5 4 2',
      'kept=9 7 3',
      'failed=',
      'snapshot_9=kept:retained',
      'snapshot_7=kept:retained',
      'snapshot_6=deleted:count',
      'snapshot_5=deleted:requested',
      'snapshot_4=deleted:count',
      'snapshot_3=kept:protected',
      'snapshot_2=deleted:age',
    ]);
    expect(readDb(db).map((x) => x.number)).toEqual([1, 3, 7, 8, 9]);
    expect(parseSnapshotDeleteReturn(saltReturn('spm.snapshot.delete', [s], () => cmdOutcome(r, s)))).toMatchObject({
      ok: true,
      deleted: [6, 5, 4, 2],
      kept: [9, 7, 3],
      failed: [],
    });
  });

  it('delete with both limits off only deletes what is requested, and reports a snapshot snapper would not delete', () => {
    const now = Date.now();
    const db = snapperDb(
      [1, 2, 3].map((n) => ({ number: n, date: now - 400 * DAY, description: `spm-orchestrator ${n}:1:snapshot` })),
    );
    const s = render('snapshot/delete.sls', ubuntu, {
      spm: {
        snapshot: { retention: { max_count: 0, max_age_days: 0 }, delete_keys: ['1:1:snapshot', '2:1:snapshot'] },
      },
    })[0]!;
    const r = runState(s, { FAKE_SNAPPER_DB: db, FAKE_SNAPPER_FAIL_DELETE: '2' });
    expect(r.retcode).toBe(1);
    expect(r.stdout).toContain('deleted=1\nkept=3\nfailed=2\n');
    expect(readDb(db).map((x) => x.number)).toEqual([2, 3]);
    expect(parseSnapshotDeleteReturn(saltReturn('spm.snapshot.delete', [s], () => cmdOutcome(r, s)))).toMatchObject({
      ok: false,
      deleted: [1],
      failed: [2],
    });
  });
});

describe('the validation checks, run', () => {
  it('reboot check, Debian family: the flag file and its packages, a newer installed kernel, or nothing', () => {
    const s = render('validation/reboot_check.sls', ubuntu, {})[0]!;
    const dir = mkdtempSync(path.join(work, 'run-'));
    const boot = mkdtempSync(path.join(work, 'boot-'));
    const flag = path.join(dir, 'reboot-required');
    const running = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
    const env = { SPM_REBOOT_REQUIRED_FILE: flag, SPM_BOOT_DIR: boot };
    writeFileSync(path.join(boot, `vmlinuz-${running}`), '');
    expect(runState(s, env).stdout).toBe(`reboot_required=no\nrunning_kernel=${running}\n`);
    writeFileSync(flag, '*** System restart required ***\n');
    writeFileSync(`${flag}.pkgs`, 'libc6\nlinux-image-6.8.0-50-generic\nlibc6\n');
    const r = runState(s, env);
    expect(r).toMatchObject({
      retcode: 0,
      stdout: `reboot_required=yes\nreason=flag_file\nrunning_kernel=${running}\npackage=libc6\npackage=linux-image-6.8.0-50-generic\n`,
    });
    expect(
      parseRebootCheckReturn(saltReturn('spm.validation.reboot_check', [s], () => cmdOutcome(r, s))),
    ).toMatchObject({ ok: true, rebootRequired: true, reasons: ['flag_file'] });
    rmSync(flag);
    rmSync(`${flag}.pkgs`);
    writeFileSync(path.join(boot, 'vmlinuz-999.0.0-1-generic'), '');
    expect(runState(s, env).stdout).toBe(
      `reboot_required=yes\nreason=newer_kernel:999.0.0-1-generic\nrunning_kernel=${running}\n`,
    );
  });

  it('reboot check, RedHat family: needs-restarting -r exit 0 / 1, an error, or not installed', () => {
    const s = render('validation/reboot_check.sls', rhel, {})[0]!;
    const bin = mkdtempSync(path.join(work, 'nr-'));
    writeExecutable(
      bin,
      'needs-restarting',
      '#!/bin/sh\n[ "$1" = -r ] || exit 64\necho "Reboot is probably not necessary." ; exit "$FAKE_RC"\n',
    );
    expect(runState(s, { FAKE_RC: '0' }, [bin])).toMatchObject({ retcode: 0, stdout: 'reboot_required=no\n' });
    const yes = runState(s, { FAKE_RC: '1' }, [bin]);
    expect(yes).toMatchObject({ retcode: 0, stdout: 'reboot_required=yes\n' });
    expect(
      parseRebootCheckReturn(saltReturn('spm.validation.reboot_check', [s], () => cmdOutcome(yes, s))),
    ).toMatchObject({ ok: true, rebootRequired: true });
    const broken = runState(s, { FAKE_RC: '3' }, [bin]);
    expect(broken.retcode).toBe(3);
    expect(
      parseRebootCheckReturn(saltReturn('spm.validation.reboot_check', [s], () => cmdOutcome(broken, s))),
    ).toMatchObject({ ok: false, rebootRequired: null });
    // This test machine has neither needs-restarting nor dnf.
    const none = runState(s, {}, [path.join(work, 'empty-bin')]);
    expect(none.retcode).toBe(2);
    expect(none.stderr).toMatch(/install dnf-utils/);
  });

  it('service check: systemctl is-active per unit, its state read back', () => {
    const bin = mkdtempSync(path.join(work, 'sc-'));
    writeExecutable(
      bin,
      'systemctl',
      '#!/bin/sh\n[ "$1" = is-active ] || exit 64\ncase "$2" in ssh) echo active ;; *) echo failed; exit 3 ;; esac\n',
    );
    const states = render('validation/service_check.sls', ubuntu, examplePillar(ubuntu));
    const runs = new Map(states.map((s) => [s.id, runState(s, {}, [bin])]));
    const parsed = parseServiceCheckReturn(
      saltReturn('spm.validation.service_check', states, (s) => cmdOutcome(runs.get(s.id)!, s)),
    );
    expect(parsed).toEqual([
      { name: 'ssh', ok: true, state: 'active', comment: 'Command "systemctl is-active ssh" run' },
      { name: 'cron', ok: false, state: 'failed', comment: 'Command "systemctl is-active cron" run (exit 3: failed)' },
    ]);
  });

  describe('health checks', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((sock) => sock.end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('tcp and command checks run; their per-check results are what parseHealthcheckReturn reads', async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const pillar = {
        spm: {
          healthchecks: {
            db: { type: 'tcp', port },
            gone: { type: 'tcp', port: closed, timeout: 2 },
            selftest: { type: 'command', command: 'test -d / && echo fine' },
            smoke: { type: 'command', command: 'echo "smoke: 2 of 3 passed" >&2; exit 1' },
            web: { type: 'http', url: 'http://127.0.0.1:1/healthz' },
          },
        },
      };
      const states = render('healthcheck.sls', ubuntu, pillar);
      const outcome = (s: RenderedState) =>
        s.fun === 'cmd.run'
          ? cmdOutcome(runState(s, {}, []), s)
          : // http.query cannot run without Salt: its documented comment for a status that did not come.
            { result: false, comment: 'Status 200 was not found.', changes: {} };
      const parsed = parseHealthcheckReturn(saltReturn('spm.healthcheck', states, outcome));
      expect(parsed.map((c) => [c.name, c.ok])).toEqual([
        ['db', true],
        ['gone', false],
        ['selftest', true],
        ['smoke', false],
        ['web', false],
      ]);
      expect(parsed.find((c) => c.name === 'smoke')!.comment).toBe(
        `Command "echo "smoke: 2 of 3 passed" >&2; exit 1" run (exit 1: smoke: 2 of 3 passed)`,
      );
      expect(parsed.find((c) => c.name === 'web')!.comment).toBe('Status 200 was not found.');
    });
  });
});

// --- Parsing returns as Salt documents them -------------------------------------------------------

describe('parsing the state.apply return', () => {
  // The shape of reference §2 / saltstack/salt#41197: keys <mod>_|-<id>_|-<name>_|-<fun>.
  const documented = {
    'http_|-spm_healthcheck_web_|-http://127.0.0.1:8080/healthz_|-query': {
      name: 'http://127.0.0.1:8080/healthz',
      result: true,
      comment: 'Status 200 was found.',
      changes: {},
      __id__: 'spm_healthcheck_web',
      __run_num__: 2,
      __sls__: 'spm.healthcheck',
      start_time: '10:15:02.120113',
      duration: 31.4,
      data: { status: 200 },
    },
    "cmd_|-spm_healthcheck_db_|-timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'_|-run": {
      name: "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'",
      result: false,
      comment: `Command "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'" run`,
      changes: {
        pid: 3121,
        retcode: 1,
        stdout: '',
        stderr: 'bash: connect: Connection refused\nbash: line 1: /dev/tcp/127.0.0.1/5432: Connection refused',
      },
      __id__: 'spm_healthcheck_db',
      __run_num__: 0,
      __sls__: 'spm.healthcheck',
      start_time: '10:15:02.001201',
      duration: 8.1,
    },
    'cmd_|-spm_healthcheck_selftest_|-/usr/local/bin/selftest_|-run': {
      name: '/usr/local/bin/selftest',
      result: null,
      comment: 'Command "/usr/local/bin/selftest" would have been executed',
      changes: {},
      __id__: 'spm_healthcheck_selftest',
      __run_num__: 1,
      __sls__: 'spm.healthcheck',
      start_time: '10:15:02.010000',
      duration: 0.4,
    },
  };

  it('one result per check, in run order; only result true passes', () => {
    expect(parseHealthcheckReturn(documented)).toEqual([
      {
        name: 'db',
        ok: false,
        comment: `Command "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'" run (exit 1: bash: connect: Connection refused\nbash: line 1: /dev/tcp/127.0.0.1/5432: Connection refused)`,
      },
      { name: 'selftest', ok: false, comment: 'Command "/usr/local/bin/selftest" would have been executed' },
      { name: 'web', ok: true, comment: 'Status 200 was found.' },
    ]);
  });

  it('no checks configured gives no results; other states in the return are ignored', () => {
    expect(
      parseHealthcheckReturn({
        'test_|-spm_healthcheck_|-spm.healthcheck: no checks in pillar spm:healthchecks_|-succeed_without_changes': {
          name: 'spm.healthcheck: no checks in pillar spm:healthchecks',
          result: true,
          comment: 'no checks in pillar spm:healthchecks',
          changes: {},
          __id__: 'spm_healthcheck',
          __run_num__: 0,
          __sls__: 'spm.healthcheck',
          start_time: '10:15:02.001201',
          duration: 0.3,
        },
      }),
    ).toEqual([]);
  });

  it('without __id__ the id comes from the key; fields are typed', () => {
    const r = stateResults({
      'cmd_|-spm_reboot_check_|-echo reboot_required=no_|-run': {
        result: true,
        comment: 'Command "echo reboot_required=no" run',
        changes: { retcode: 0, stdout: 'reboot_required=no' },
      },
    });
    expect(r).toEqual([
      {
        key: 'cmd_|-spm_reboot_check_|-echo reboot_required=no_|-run',
        id: 'spm_reboot_check',
        fun: 'cmd.run',
        name: 'echo reboot_required=no',
        result: true,
        comment: 'Command "echo reboot_required=no" run',
        changes: { retcode: 0, stdout: 'reboot_required=no' },
        runNum: Number.MAX_SAFE_INTEGER,
      },
    ]);
    expect(
      parseRebootCheckReturn({
        'cmd_|-spm_reboot_check_|-x_|-run': { result: true, comment: '', changes: { stdout: 'reboot_required=no' } },
      }),
    ).toMatchObject({ ok: true, rebootRequired: false });
  });

  it('a render error (a list of strings) throws SaltStateError; a minion error string is refused', () => {
    const rendered = [
      "Rendering SLS 'base:spm.healthcheck' failed: Jinja variable 'dict object' has no attribute 'url'",
    ];
    expect(() => parseHealthcheckReturn(rendered)).toThrow(SaltStateError);
    try {
      parseHealthcheckReturn(rendered);
    } catch (e) {
      expect((e as SaltStateError).errors).toEqual(rendered);
    }
    expect(() => parseHealthcheckReturn('ERROR: Minion function state.apply is not available')).toThrow(
      /unexpected return/,
    );
    expect(() => parseSnapshotCreateReturn({})).toThrow(/no result for state spm_snapshot_create/);
  });
});
