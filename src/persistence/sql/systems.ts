/** Queries of the uyuni_systems family read by the engine (the sync writes the table: errata.ts `replaceSystems`). */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * A system's UYUNI id from its name; a name in both a test and a production group resolves to its
 * test row (`role` 'test' sorts after 'prod').
 * @example await findSystemIdByName(db, 'test-ubuntu-1') // 1001 | null
 */
export function findSystemIdByName(db: Db, name: string) {
  return db.maybeOneFirst(sql.type(z.object({ system_id: z.number() }))`
    SELECT system_id FROM uyuni_systems WHERE name = ${name} ORDER BY role DESC LIMIT 1`);
}

/**
 * The production systems of an OS among those an errata applies to, with their group (a wave
 * never spans groups).
 * @example await listProductionSystems(db, 'ubuntu', facts.affected_system_ids)
 */
export function listProductionSystems(db: Db, targetOs: string, systemIds: number[]) {
  return db.any(sql.type(z.object({ system_id: z.number(), name: z.string(), group_name: z.string() }))`
    SELECT system_id, name, group_name FROM uyuni_systems
    WHERE role = 'prod' AND target_os = ${targetOs} AND system_id = ANY(${sql.array(systemIds, 'int4')})`);
}

/**
 * The production groups an errata targets now (of its OS, with a system it applies to): what an
 * approval covers, and what a deployment of it may reach.
 * @example await listTargetGroups(db, 'USN-7001-1', 'ubuntu') // ['prod-db', 'prod-web']
 */
export function listTargetGroups(db: Db, errataId: string, targetOs: string) {
  return db.anyFirst(sql.type(z.object({ group_name: z.string() }))`
    SELECT DISTINCT s.group_name FROM uyuni_systems s
    JOIN errata_cache e ON e.errata_id = ${errataId} AND s.system_id = ANY(e.affected_system_ids)
    WHERE s.role = 'prod' AND s.target_os = ${targetOs}
    ORDER BY s.group_name`);
}
