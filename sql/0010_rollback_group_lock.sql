-- The rollback of a completed deployment changes production hosts (package downgrades, snapper
-- rollbacks and reboots) like a deployment does, so it takes the deployment's production groups
-- (production_group_locks, 0007) before it starts, and waits while another entry's deployment holds
-- one (issue 12). Why it waits is shown by GET /rollback/{id}.
ALTER TABLE patch_rollbacks ADD COLUMN wait_reason text;
