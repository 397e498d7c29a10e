-- Test engine and production rollout (issue 5).

-- Systems seen by the UYUNI sync, with their group: production waves target the production groups'
-- systems, and test lanes resolve a configured test system's id from its name.
CREATE TABLE uyuni_systems (
    system_id    integer PRIMARY KEY,
    name         text NOT NULL,
    group_name   text NOT NULL,
    role         text NOT NULL CHECK (role IN ('test', 'prod')),
    target_os    text NOT NULL CHECK (target_os IN ('ubuntu', 'debian', 'rhel')),
    last_checkin timestamptz,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_uyuni_systems_name ON uyuni_systems (name);
CREATE INDEX idx_uyuni_systems_role ON uyuni_systems (role, target_os);

-- Per system of a deployment: what a rollback needs (versions before the wave, the pre-wave snapshot).
ALTER TABLE patch_deployment_systems ADD COLUMN packages_before jsonb;
ALTER TABLE patch_deployment_systems ADD COLUMN snapshot_id text;
ALTER TABLE patch_deployment_systems ADD COLUMN group_name text;
-- Stages after the apply, so that a resumed wave neither skips nor repeats them.
ALTER TABLE patch_deployment_systems ADD COLUMN reboot_state text CHECK (reboot_state IN ('not_needed', 'requested', 'done', 'failed', 'deferred'));
ALTER TABLE patch_deployment_systems ADD COLUMN reboot_requested_at timestamptz;
ALTER TABLE patch_deployment_systems ADD COLUMN checked_at timestamptz;

-- A rollback row per effect key: a re-run after a crash finds its row instead of adding one.
ALTER TABLE patch_rollbacks ADD COLUMN effect_key text UNIQUE;
ALTER TABLE patch_deployments ADD COLUMN plan_key text UNIQUE;

-- Phases: one row per effect key and phase, so that a re-run updates instead of duplicating.
CREATE UNIQUE INDEX uq_phases_effect ON patch_test_phases (effect_key, phase) WHERE effect_key IS NOT NULL;
