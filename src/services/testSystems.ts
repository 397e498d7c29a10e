/**
 * Can a configured test system take a test? Checks the lanes ask before starting one (issue 11):
 * a lane's problem pauses the lane, it never fails the patch.
 */
import type { Db } from '../persistence/db.ts';
import { findSystemIdByName } from '../persistence/sql/systems.ts';

/**
 * Null when UYUNI knows the system (the last sync recorded it), else why not.
 * @example await testSystemKnownToUyuni(db, 'test-ubuntu-01') // null
 */
export async function testSystemKnownToUyuni(db: Db, system: string): Promise<string | null> {
  if ((await findSystemIdByName(db, system)) !== null) return null;
  return `test system ${system} is not known to UYUNI (no sync has recorded it: wait for the first sync, or check its name in orchestrator_config.test_systems)`;
}
