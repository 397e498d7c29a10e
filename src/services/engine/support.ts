/**
 * Kept only for src/lab/fakeWorld.ts, which imports `sleep` from here and is not this change's to
 * edit: the engine lives in src/engine/ now. Delete this file once the lab imports src/engine/timing.ts.
 */
export { sleep } from '../../engine/timing.ts';
