-- When the reboot that activates a system-level production rollback was requested: a rollback
-- resumed after a crash compares it with the host's boot time instead of rebooting again.
ALTER TABLE patch_deployment_systems ADD COLUMN rollback_reboot_at timestamptz;
