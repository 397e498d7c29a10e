/** Package versions through Salt: read them (the baseline a rollback needs) and restore them (the package rollback). */
import { saltCall, type EngineDeps } from './deps.ts';

/** Installed versions of packages per minion (Salt `pkg.version`; "" = not installed). One call. */
export async function packageVersions(
  e: EngineDeps,
  minions: string[],
  packages: string[],
): Promise<{ versions: Map<string, Record<string, string>>; missing: string[] }> {
  if (packages.length === 0) return { versions: new Map(minions.map((m) => [m, {}])), missing: [] };
  const r = await saltCall(() => e.salt.local<Record<string, string> | string>(minions, 'pkg.version', packages));
  const versions = new Map<string, Record<string, string>>();
  for (const [m, v] of Object.entries(r.returned)) versions.set(m, typeof v === 'string' ? { [packages[0]!]: v } : v);
  return { versions, missing: r.missing };
}

/**
 * Reinstall recorded versions (a lower version is a downgrade), remove what was not installed.
 * Only minions whose versions differ are touched.
 */
export async function restorePackages(
  e: EngineDeps,
  before: Map<string, Record<string, string>>,
): Promise<{ restored: string[]; failed: { minion: string; message: string }[] }> {
  const minions = [...before.keys()];
  const names = [...new Set([...before.values()].flatMap((v) => Object.keys(v)))].sort();
  const { versions: now, missing } = await packageVersions(e, minions, names);
  const failed = missing.map((m) => ({ minion: m, message: 'not responding' }));
  const restored: string[] = [];
  // Group minions by the exact change they need: one Salt call per distinct change.
  const plans = new Map<string, { install: Record<string, string>[]; remove: string[]; minions: string[] }>();
  for (const m of minions) {
    if (missing.includes(m)) continue;
    const want = before.get(m)!;
    const have = now.get(m) ?? {};
    const install = Object.entries(want)
      .filter(([n, v]) => v !== '' && have[n] !== v)
      .map(([n, v]) => ({ [n]: v }));
    const remove = Object.entries(want)
      .filter(([n, v]) => v === '' && (have[n] ?? '') !== '')
      .map(([n]) => n);
    if (install.length === 0 && remove.length === 0) {
      restored.push(m);
      continue;
    }
    const k = JSON.stringify([install, remove]);
    const p = plans.get(k) ?? { install, remove, minions: [] };
    p.minions.push(m);
    plans.set(k, p);
  }
  for (const p of plans.values()) {
    if (p.install.length > 0) await saltCall(() => e.salt.local(p.minions, 'pkg.install', [], { pkgs: p.install }));
    if (p.remove.length > 0) await saltCall(() => e.salt.local(p.minions, 'pkg.remove', [], { pkgs: p.remove }));
  }
  if (plans.size > 0) {
    const check = await packageVersions(
      e,
      [...plans.values()].flatMap((p) => p.minions),
      names,
    );
    for (const p of plans.values())
      for (const m of p.minions) {
        const want = before.get(m)!;
        const have = check.versions.get(m);
        const wrong =
          have === undefined
            ? ['(no answer)']
            : Object.entries(want)
                .filter(([n, v]) => (have[n] ?? '') !== v)
                .map(([n]) => n);
        if (wrong.length === 0) restored.push(m);
        else failed.push({ minion: m, message: `packages not restored: ${wrong.join(', ')}` });
      }
  }
  return { restored, failed };
}
