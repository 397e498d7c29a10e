/** Errata and system facts the effects need: UYUNI ids, package names (fetched on demand), system ids by name. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../persistence/db.ts';
import { uyuniCall, type EngineDeps } from './deps.ts';

const errataRow = z.object({ errata_id: z.string(), uyuni_errata_id: z.number().nullable(), packages: z.unknown().nullable(), target_os: z.string(), reboot_suggested: z.boolean(), affected_system_ids: z.array(z.number()) });
export type ErrataFacts = z.infer<typeof errataRow> & { packageNames: string[] };

/** The errata's UYUNI id and package names (fetched from UYUNI when the cache has none yet). */
export async function errataFacts(e: EngineDeps, errataId: string): Promise<ErrataFacts> {
  const row = await e.db.maybeOne(sql.type(errataRow)`SELECT errata_id, uyuni_errata_id, packages, target_os, reboot_suggested, affected_system_ids FROM errata_cache WHERE errata_id = ${errataId}`);
  if (!row) throw new Error(`errata ${errataId} is not in the errata cache (run a sync)`);
  if (row.uyuni_errata_id === null) throw new Error(`errata ${errataId} has no UYUNI id in the cache (run a sync)`);
  let pkgs = Array.isArray(row.packages) ? (row.packages as { name: string }[]) : null;
  if (pkgs === null) {
    const listed = await uyuniCall(e, (s) => s.listPackages(errataId));
    pkgs = listed.map((p) => ({ name: p.name, size: typeof p.size === 'string' ? Number(p.size) : p.size }));
    await e.db.query(sql.unsafe`UPDATE errata_cache SET packages = ${sql.jsonb(pkgs as never)} WHERE errata_id = ${errataId}`);
  }
  return { ...row, packageNames: [...new Set(pkgs.map((p) => p.name))].sort() };
}

/** A system's UYUNI id from its name (the sync's systems table). */
export async function systemIdOf(db: Db, name: string, given: number | null): Promise<number> {
  if (given !== null) return given;
  const id = await db.maybeOneFirst(sql.type(z.object({ system_id: z.number() }))`SELECT system_id FROM uyuni_systems WHERE name = ${name} ORDER BY role DESC LIMIT 1`);
  if (id === null) throw new Error(`system ${name} is unknown to UYUNI (not in any synced group): set system_id in orchestrator_config.test_systems or run a sync`);
  return id;
}
