/** Errata and system facts the effects need: UYUNI ids, package names (fetched on demand), system ids by name. */
import type { Db } from '../persistence/db.ts';
import { getErrataFacts, setErrataPackages, type ErrataFactsRow } from '../persistence/sql/errataFacts.ts';
import { findSystemIdByName } from '../persistence/sql/systems.ts';
import { uyuniCall, type EngineDeps } from './deps.ts';

export type ErrataFacts = ErrataFactsRow & { packageNames: string[] };

/**
 * The errata's UYUNI id and package names (fetched from UYUNI when the cache has none yet).
 * @example const { uyuni_errata_id, packageNames } = await errataFacts(e, 'USN-7001-1');
 */
export async function errataFacts(e: EngineDeps, errataId: string): Promise<ErrataFacts> {
  const row = await getErrataFacts(e.db, errataId);
  if (!row) throw new Error(`errata ${errataId} is not in the errata cache (run a sync)`);
  if (row.uyuni_errata_id === null) throw new Error(`errata ${errataId} has no UYUNI id in the cache (run a sync)`);
  let pkgs = Array.isArray(row.packages) ? (row.packages as { name: string }[]) : null;
  if (pkgs === null) {
    const listed = await uyuniCall(e, (s) => s.listPackages(errataId));
    pkgs = listed.map((p) => ({ name: p.name, size: typeof p.size === 'string' ? Number(p.size) : p.size }));
    await setErrataPackages(e.db, errataId, pkgs);
  }
  return { ...row, packageNames: [...new Set(pkgs.map((p) => p.name))].sort() };
}

/**
 * A system's UYUNI id from its name (the sync's systems table), unless the configuration gives it.
 * @example await systemIdOf(db, 'test-ubuntu-1', null) // 1001
 */
export async function systemIdOf(db: Db, name: string, given: number | null): Promise<number> {
  if (given !== null) return given;
  const id = await findSystemIdByName(db, name);
  if (id === null) {
    throw new Error(
      `system ${name} is unknown to UYUNI (not in any synced group): ` +
        'set system_id in orchestrator_config.test_systems or run a sync',
    );
  }
  return id;
}
