/**
 * A deterministic fleet for the lab: groups, systems and errata for Ubuntu, Debian and RHEL with
 * realistic names (USN stored without its prefix, `DSA-NNNN-N`, `RHSA-YYYY:NNNN`/RHBA/RHEA),
 * packages (kernels, openssl, nginx, …) with sizes, and CVEs. Same seed, same fleet.
 * Never imported by production code (src/lab).
 */
import { prng } from '../random.ts';

export type LabOs = 'ubuntu' | 'debian' | 'rhel';

export interface LabErrata {
  id: number;
  advisoryName: string;
  os: LabOs;
  type: 'Security Advisory' | 'Bug Fix Advisory' | 'Product Enhancement Advisory';
  synopsis: string;
  issueDate: string;
  updateDate: string;
  cves: string[];
  packages: { id: number; name: string; version: string; release: string; epoch: string; arch: string; size: number }[];
  rebootSuggested: boolean;
}

export interface LabSystem {
  id: number;
  name: string;
  group: string;
  os: LabOs;
  relevant: number[]; // errata ids
}

export interface LabGroup {
  id: number;
  name: string;
  os: LabOs;
}

export interface Fleet {
  groups: LabGroup[];
  systems: LabSystem[];
  errata: LabErrata[];
}

export { prng };

const PACKAGES: Record<LabOs, { name: string; kb: number; arch: string }[]> = {
  ubuntu: [
    { name: 'linux-image-6.8.0-45-generic', kb: 15000, arch: 'amd64' },
    { name: 'linux-modules-6.8.0-45-generic', kb: 60000, arch: 'amd64' },
    { name: 'openssl', kb: 1400, arch: 'amd64' },
    { name: 'libssl3', kb: 1900, arch: 'amd64' },
    { name: 'nginx-core', kb: 600, arch: 'amd64' },
    { name: 'openssh-server', kb: 500, arch: 'amd64' },
    { name: 'libc6', kb: 3200, arch: 'amd64' },
    { name: 'curl', kb: 200, arch: 'amd64' },
    { name: 'libcurl4', kb: 450, arch: 'amd64' },
    { name: 'tzdata', kb: 40, arch: 'all' },
    { name: 'sudo', kb: 900, arch: 'amd64' },
    { name: 'python3.12', kb: 700, arch: 'amd64' },
    { name: 'git', kb: 4000, arch: 'amd64' },
    { name: 'vim', kb: 1700, arch: 'amd64' },
  ],
  debian: [
    { name: 'linux-image-6.1.0-26-amd64', kb: 68000, arch: 'amd64' },
    { name: 'openssl', kb: 1400, arch: 'amd64' },
    { name: 'libssl3', kb: 2000, arch: 'amd64' },
    { name: 'nginx', kb: 550, arch: 'amd64' },
    { name: 'postgresql-15', kb: 17000, arch: 'amd64' },
    { name: 'libc6', kb: 2800, arch: 'amd64' },
    { name: 'curl', kb: 300, arch: 'amd64' },
    { name: 'tzdata', kb: 35, arch: 'all' },
    { name: 'bind9', kb: 1200, arch: 'amd64' },
    { name: 'exim4-base', kb: 1100, arch: 'amd64' },
  ],
  rhel: [
    { name: 'kernel-core', kb: 18000, arch: 'x86_64' },
    { name: 'kernel-modules', kb: 40000, arch: 'x86_64' },
    { name: 'openssl-libs', kb: 2300, arch: 'x86_64' },
    { name: 'httpd', kb: 1500, arch: 'x86_64' },
    { name: 'glibc', kb: 2000, arch: 'x86_64' },
    { name: 'systemd', kb: 4400, arch: 'x86_64' },
    { name: 'curl', kb: 300, arch: 'x86_64' },
    { name: 'tzdata', kb: 450, arch: 'noarch' },
    { name: 'sudo', kb: 1100, arch: 'x86_64' },
    { name: 'mariadb-server', kb: 10000, arch: 'x86_64' },
    { name: 'bash', kb: 1800, arch: 'x86_64' },
  ],
};

export interface FleetSpec {
  seed: number;
  /** Group name prefix → os and systems per group. */
  groups: { name: string; os: LabOs; systems: number }[];
  errata: Record<LabOs, number>;
  /** Relevant errata per system (its OS); `all` = every errata of its OS. */
  relevantPerSystem: number | 'all';
}

/** The seed notes' scale: 2 test groups, 2 systems, 634 errata. */
export const SEED_SCALE: FleetSpec = {
  seed: 2026,
  groups: [
    { name: 'test-ubuntu-2404', os: 'ubuntu', systems: 1 },
    { name: 'test-rhel9', os: 'rhel', systems: 1 },
  ],
  errata: { ubuntu: 400, debian: 0, rhel: 234 },
  relevantPerSystem: 'all',
};

/** The large fleet: 50 groups, 2,000 systems, 5,000 errata. */
export const LARGE_SCALE: FleetSpec = {
  seed: 7,
  groups: Array.from({ length: 50 }, (_, i) => {
    const os: LabOs = (['ubuntu', 'debian', 'rhel'] as const)[i % 3]!;
    return { name: `${i < 10 ? 'test' : 'prod'}-${os}-${String(i).padStart(2, '0')}`, os, systems: 40 };
  }),
  errata: { ubuntu: 2000, debian: 1500, rhel: 1500 },
  relevantPerSystem: 40,
};

const two = (n: number) => String(n).padStart(2, '0');
function dateOf(rand: () => number): string {
  const month = 1 + Math.floor(rand() * 10);
  const day = 1 + Math.floor(rand() * 27);
  return `2026-${two(month)}-${two(day)} ${two(Math.floor(rand() * 24))}:${two(Math.floor(rand() * 60))}:00`;
}

export function generateFleet(spec: FleetSpec): Fleet {
  const rand = prng(spec.seed);
  const errata: LabErrata[] = [];
  let errataId = 100;
  let pkgId = 50_000;
  let cve = 10_000;
  for (const os of ['ubuntu', 'debian', 'rhel'] as const) {
    for (let i = 0; i < spec.errata[os]; i++) {
      const r = rand();
      const type =
        os === 'rhel'
          ? r < 0.6
            ? 'Security Advisory'
            : r < 0.9
              ? 'Bug Fix Advisory'
              : 'Product Enhancement Advisory'
          : 'Security Advisory';
      const advisoryName =
        os === 'ubuntu'
          ? `${6000 + i}-${1 + Math.floor(rand() * 2)}`
          : os === 'debian'
            ? `DSA-${5400 + i}-1`
            : `${type === 'Security Advisory' ? 'RHSA' : type === 'Bug Fix Advisory' ? 'RHBA' : 'RHEA'}-2026:${String(1000 + i).padStart(4, '0')}`;
      const pool = PACKAGES[os];
      const count = 1 + Math.floor(rand() * 3);
      const first = Math.floor(rand() * pool.length);
      const packages = Array.from({ length: count }, (_, k) => {
        const p = pool[(first + k) % pool.length]!;
        return {
          id: pkgId++,
          name: p.name,
          version: `${1 + Math.floor(rand() * 9)}.${Math.floor(rand() * 20)}`,
          release: `${1 + Math.floor(rand() * 5)}`,
          epoch: '',
          arch: p.arch,
          size: Math.round(p.kb * 1024 * (0.8 + rand() * 0.4)),
        };
      });
      const cves =
        type === 'Security Advisory'
          ? Array.from({ length: 1 + Math.floor(rand() * 3) }, () => `CVE-2026-${cve++}`)
          : [];
      const issueDate = dateOf(rand);
      errata.push({
        id: errataId++,
        advisoryName,
        os,
        type,
        synopsis: `${packages[0]!.name} ${type === 'Security Advisory' ? 'security update' : 'update'}`,
        issueDate,
        updateDate: issueDate,
        cves,
        packages,
        rebootSuggested: packages.some((p) => /^(linux-|kernel)/.test(p.name)),
      });
    }
  }
  const byOs = (os: LabOs) => errata.filter((e) => e.os === os).map((e) => e.id);
  const groups: LabGroup[] = spec.groups.map((g, i) => ({ id: 10 + i, name: g.name, os: g.os }));
  const systems: LabSystem[] = [];
  let sid = 1_000_010_000;
  const cursor: Record<LabOs, number> = { ubuntu: 0, debian: 0, rhel: 0 };
  spec.groups.forEach((g) => {
    const pool = byOs(g.os);
    for (let k = 0; k < g.systems; k++) {
      let relevant: number[];
      if (spec.relevantPerSystem === 'all' || pool.length === 0) relevant = pool;
      else {
        // Round-robin through the pool so that every errata is relevant somewhere, plus random extras.
        const set = new Set<number>();
        for (let j = 0; j < spec.relevantPerSystem / 2; j++) set.add(pool[cursor[g.os]++ % pool.length]!);
        while (set.size < Math.min(pool.length, spec.relevantPerSystem))
          set.add(pool[Math.floor(rand() * pool.length)]!);
        relevant = [...set];
      }
      systems.push({
        id: sid++,
        name: `${g.name.replace(/^(test|prod)-/, '')}-${String(k + 1).padStart(3, '0')}.lab`,
        group: g.name,
        os: g.os,
        relevant,
      });
    }
  });
  return { groups, systems, errata };
}

/**
 * A small, hand-made fleet for end-to-end runs of the test engine (tests, `npm run lab`): one
 * Ubuntu test system, `prodSystems` Ubuntu production systems, and named errata whose packages
 * make their behaviour obvious: `6100-1` (curl, harmless), `6101-1`…`6104-1` (nginx, the lab can
 * break nginx with them), `6110-1`/`6111-1` (kernel: reboot), `6120-1`… (openssl, for waves).
 */
export function engineFleet(prodSystems = 10): Fleet {
  let pkgId = 90_000;
  const pkg = (name: string, version: string, kb: number) => ({
    id: pkgId++,
    name,
    version,
    release: '1ubuntu1',
    epoch: '',
    arch: 'amd64',
    size: kb * 1024,
  });
  const errata: LabErrata[] = [];
  let id = 500;
  const add = (name: string, pkgs: ReturnType<typeof pkg>[], synopsis: string) => {
    errata.push({
      id: id++,
      advisoryName: name,
      os: 'ubuntu',
      type: 'Security Advisory',
      synopsis,
      issueDate: '2026-11-01 10:00:00',
      updateDate: '2026-11-01 10:00:00',
      cves: [`CVE-2026-${20000 + id}`],
      packages: pkgs,
      rebootSuggested: pkgs.some((p) => /^(linux-|kernel)/.test(p.name)),
    });
  };
  add('6100-1', [pkg('curl', '8.5.0', 200), pkg('libcurl4', '8.5.0', 450)], 'curl security update');
  for (let i = 1; i <= 4; i++)
    add(
      `610${i}-1`,
      [pkg('nginx-core', `1.24.${i}`, 600), pkg('nginx-common', `1.24.${i}`, 90)],
      'nginx security update',
    );
  add('6110-1', [pkg('linux-image-6.8.0-50-generic', '6.8.0-50.51', 15000)], 'linux kernel security update');
  add('6111-1', [pkg('linux-image-6.8.0-51-generic', '6.8.0-51.52', 15000)], 'linux kernel security update');
  for (let i = 0; i < 6; i++)
    add(
      `612${i}-1`,
      [pkg('openssl', `3.0.${14 + i}`, 1400), pkg('libssl3', `3.0.${14 + i}`, 1900)],
      'openssl security update',
    );
  const all = errata.map((e) => e.id);
  const systems: LabSystem[] = [
    { id: 1_000_020_001, name: 'ubuntu-2404-test-01.lab', group: 'test-ubuntu-2404', os: 'ubuntu', relevant: all },
  ];
  for (let k = 0; k < prodSystems; k++)
    systems.push({
      id: 1_000_030_000 + k,
      name: `web-${String(k + 1).padStart(3, '0')}.lab`,
      group: 'prod-ubuntu-web',
      os: 'ubuntu',
      relevant: all,
    });
  return {
    groups: [
      { id: 20, name: 'test-ubuntu-2404', os: 'ubuntu' },
      { id: 21, name: 'prod-ubuntu-web', os: 'ubuntu' },
    ],
    systems,
    errata,
  };
}

/** Settings for the engine fleet: one lane on its test system, nginx among the critical services, windows always open. */
export const ENGINE_LAB_CONFIG = {
  test_systems: { ubuntu: [{ system_id: 1_000_020_001, system_name: 'ubuntu-2404-test-01.lab' }] },
  critical_services: {
    ubuntu: ['ssh.service', 'cron.service', 'nginx.service'],
    debian: ['ssh.service', 'cron.service'],
    rhel: ['sshd.service', 'crond.service'],
  },
  maintenance_windows: {
    default: [
      {
        days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
        start: '00:00',
        duration_minutes: 7 * 1440,
        timezone: 'UTC',
      },
    ],
  },
  rollout_policy: {
    canary_systems: 1,
    wave_percentages: [30, 60, 100],
    max_failed_systems: 1,
    max_failed_percent: 100,
    min_window_remaining_minutes: 0,
  },
  auto_queue_policy: { enabled: false, advisory_types: ['Security Advisory'], requeue_new_versions: true },
};
