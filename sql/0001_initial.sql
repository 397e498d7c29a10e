-- SPM Orchestrator initial schema.
-- The ten tables of the status notes §5 with the columns of the design §7, the three views, and what
-- the durable patch actors need (snapshot/revision/lease on the queue entry, transitions journal,
-- timers, effects, API tokens, idempotency keys, per-system deployment rows, sync runs, audit log).
-- Timestamps are timestamptz (UTC on the wire); the database clock is authoritative.

-- ---------------------------------------------------------------------------------------------
-- Errata known from UYUNI (the sync poller fills it; NVD enrichment raises severity).
CREATE TABLE errata_cache (
    errata_id         text PRIMARY KEY,             -- UYUNI advisory_name (USN without prefix, DSA-…, RHSA-YYYY:NNNN)
    uyuni_errata_id   integer,
    synopsis          text NOT NULL DEFAULT '',
    description       text,                         -- fetched on demand, never overwritten by the sync upsert
    advisory_type     text NOT NULL CHECK (advisory_type IN ('Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory')),
    advisory_status   text CHECK (advisory_status IN ('final', 'stable', 'testing', 'retracted')),
    severity          text NOT NULL DEFAULT 'Low' CHECK (severity IN ('Critical', 'High', 'Medium', 'Low', 'Unknown')),
    severity_source   text NOT NULL DEFAULT 'uyuni' CHECK (severity_source IN ('uyuni', 'nvd')),
    cvss_score        numeric(3,1) CHECK (cvss_score IS NULL OR (cvss_score >= 0 AND cvss_score <= 10)),
    cves              text[] NOT NULL DEFAULT '{}',
    packages          jsonb,                        -- fetched on demand when queued
    target_os         text NOT NULL CHECK (target_os IN ('ubuntu', 'debian', 'rhel')),
    affected_system_ids integer[] NOT NULL DEFAULT '{}',
    issue_date        text,
    update_date       text,
    errata_version    text,                         -- update_date / revision: a change re-queues failed or rejected entries
    reboot_suggested  boolean NOT NULL DEFAULT false,
    restart_suggested boolean NOT NULL DEFAULT false,
    nvd_enriched_at   timestamptz,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    synced_at         timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_errata_severity ON errata_cache (severity);
CREATE INDEX idx_errata_os ON errata_cache (target_os);

-- Per-CVE NVD cache (a CVE is fetched once).
CREATE TABLE cve_cache (
    cve_id        text PRIMARY KEY CHECK (cve_id ~ '^CVE-\d{4}-\d{4,}$'),
    base_score    numeric(3,1) CHECK (base_score IS NULL OR (base_score >= 0 AND base_score <= 10)),
    severity      text CHECK (severity IN ('Critical', 'High', 'Medium', 'Low', 'None')),
    cvss_version  text,
    vector        text,
    found         boolean NOT NULL DEFAULT true,
    fetched_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- 1. Risk profile (success score and its breakdown).
CREATE TABLE patch_risk_profile (
    errata_id          text PRIMARY KEY REFERENCES errata_cache (errata_id) ON DELETE CASCADE,
    affects_kernel     boolean NOT NULL DEFAULT false,
    requires_reboot    boolean NOT NULL DEFAULT false,
    modifies_config    boolean NOT NULL DEFAULT false,
    dependency_count   integer NOT NULL DEFAULT 0 CHECK (dependency_count >= 0),
    package_count      integer NOT NULL DEFAULT 1 CHECK (package_count >= 0),
    total_size_kb      integer NOT NULL DEFAULT 0 CHECK (total_size_kb >= 0),
    times_tested       integer NOT NULL DEFAULT 0 CHECK (times_tested >= 0),
    times_failed       integer NOT NULL DEFAULT 0 CHECK (times_failed >= 0 AND times_failed <= times_tested),
    last_failure_reason text,
    success_score      integer NOT NULL DEFAULT 50 CHECK (success_score BETWEEN 0 AND 100),
    score_breakdown    jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_risk_score ON patch_risk_profile (success_score DESC);

-- 2. Test queue: one row per errata × target OS, and the durable actor that drives it.
CREATE TABLE patch_test_queue (
    id               bigserial PRIMARY KEY,
    errata_id        text NOT NULL REFERENCES errata_cache (errata_id),
    errata_version   text,
    target_os        text NOT NULL CHECK (target_os IN ('ubuntu', 'debian', 'rhel')),
    priority         integer NOT NULL DEFAULT 0,
    priority_override integer,
    success_score    integer NOT NULL DEFAULT 50 CHECK (success_score BETWEEN 0 AND 100),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN (
                        'queued', 'testing', 'needs_reboot', 'rebooting', 'pending_retry', 'passed', 'failed',
                        'pending_approval', 'snoozed', 'approved', 'rejected', 'promoting', 'prod_pending',
                        'prod_applied', 'prod_rollback', 'completed', 'rolled_back', 'removed', 'needs_attention')),
    state_value      jsonb,                          -- full xstate value incl. sub-state (e.g. {"testing":"apply"})
    status_reason    text,
    notes            text,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    test_id          bigint,
    created_by       text NOT NULL DEFAULT 'system',
    -- Durable actor (DESIGN.md §3)
    machine_version  text NOT NULL,
    snapshot         jsonb,
    revision         bigint NOT NULL DEFAULT 0 CHECK (revision >= 0),
    owner_id         text,
    lease_until      timestamptz,
    owner_epoch      bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_queue_status ON patch_test_queue (status);
CREATE INDEX idx_queue_priority ON patch_test_queue (success_score DESC, priority DESC, queued_at);
CREATE INDEX idx_queue_os ON patch_test_queue (target_os);
CREATE INDEX idx_queue_owner ON patch_test_queue (owner_id, lease_until) WHERE status NOT IN ('completed', 'rejected', 'rolled_back', 'removed');
-- At most one live entry per errata and OS; final entries may repeat (a new version re-queues).
CREATE UNIQUE INDEX uq_queue_live_errata ON patch_test_queue (errata_id, target_os)
    WHERE status NOT IN ('completed', 'rejected', 'rolled_back', 'removed');

-- 3. Test results.
CREATE TABLE patch_tests (
    id               bigserial PRIMARY KEY,
    queue_id         bigint NOT NULL REFERENCES patch_test_queue (id),
    errata_id        text NOT NULL,
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    test_system_id   integer,
    test_system_name text,
    snapshot_id      text,
    snapshot_type    text CHECK (snapshot_type IN ('snapper', 'lvm', 'azure', 'uyuni', 'fake')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    duration_seconds integer,
    result           text CHECK (result IN ('running', 'passed', 'failed', 'error', 'inconclusive', 'aborted')),
    failure_reason   text,
    required_reboot  boolean NOT NULL DEFAULT false,
    reboot_successful boolean,
    baseline_metrics jsonb,
    post_patch_metrics jsonb,
    metrics_delta    jsonb,
    services_baseline jsonb,
    services_post_patch jsonb,
    failed_services  text[],
    package_versions_before jsonb,
    rollback_type    text CHECK (rollback_type IN ('package', 'system', 'none')),
    rollback_status  text CHECK (rollback_status IN ('completed', 'failed')),
    test_config      jsonb,
    UNIQUE (queue_id, attempt)
);
CREATE INDEX idx_tests_errata ON patch_tests (errata_id);
CREATE INDEX idx_tests_result ON patch_tests (result);
ALTER TABLE patch_test_queue ADD CONSTRAINT fk_queue_test FOREIGN KEY (test_id) REFERENCES patch_tests (id);

-- Phases of a test (snapshot / baseline / apply / await_action / stabilize / check_reboot / reboot / validate / rollback).
CREATE TABLE patch_test_phases (
    id          bigserial PRIMARY KEY,
    test_id     bigint NOT NULL REFERENCES patch_tests (id) ON DELETE CASCADE,
    queue_id    bigint NOT NULL REFERENCES patch_test_queue (id),
    phase       text NOT NULL CHECK (phase IN ('snapshot', 'baseline', 'apply', 'await_action', 'stabilize', 'check_reboot',
                                               'reboot', 'await_host', 'settle', 'validate', 'rollback')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    outcome     text CHECK (outcome IN ('running', 'ok', 'failed', 'skipped', 'retry', 'timeout', 'aborted')),
    evidence    jsonb,
    error       text,
    effect_key  text
);
CREATE INDEX idx_phases_test ON patch_test_phases (test_id, started_at);

-- 4. Approvals (audit columns kept).
CREATE TABLE patch_approvals (
    id           bigserial PRIMARY KEY,
    queue_id     bigint NOT NULL REFERENCES patch_test_queue (id),
    errata_id    text NOT NULL,
    action       text NOT NULL CHECK (action IN ('approved', 'rejected', 'snoozed')),
    approved_by  text NOT NULL,
    approved_at  timestamptz NOT NULL DEFAULT now(),
    reason       text,
    snooze_until timestamptz,
    ip_address   varchar(45),
    user_agent   text,
    request_id   text,
    transition_seq integer,
    CHECK (action <> 'snoozed' OR snooze_until IS NOT NULL),
    CHECK (action = 'approved' OR (reason IS NOT NULL AND length(btrim(reason)) > 0))
);
CREATE INDEX idx_approvals_errata ON patch_approvals (errata_id);
CREATE INDEX idx_approvals_action ON patch_approvals (action);
CREATE INDEX idx_approvals_queue ON patch_approvals (queue_id);

-- 5. Production deployments, and one row per system.
CREATE TABLE patch_deployments (
    id                 bigserial PRIMARY KEY,
    queue_id           bigint NOT NULL REFERENCES patch_test_queue (id),
    approval_id        bigint REFERENCES patch_approvals (id),
    errata_id          text NOT NULL,
    target_group       text,
    target_systems     integer[] NOT NULL DEFAULT '{}',
    total_systems      integer NOT NULL DEFAULT 0 CHECK (total_systems >= 0),
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN (
                           'pending', 'scheduled', 'in_progress', 'completed', 'partial_failure', 'halted', 'failed', 'rolled_back')),
    waves              jsonb NOT NULL DEFAULT '[]',
    current_wave       integer NOT NULL DEFAULT 0,
    halt_reason        text,
    window_start       timestamptz,
    window_end         timestamptz,
    scheduled_at       timestamptz,
    started_at         timestamptz,
    completed_at       timestamptz,
    systems_succeeded  integer NOT NULL DEFAULT 0 CHECK (systems_succeeded >= 0),
    systems_failed     integer NOT NULL DEFAULT 0 CHECK (systems_failed >= 0),
    failed_system_ids  integer[] NOT NULL DEFAULT '{}',
    rollback_performed boolean NOT NULL DEFAULT false,
    rollback_type      text CHECK (rollback_type IN ('package', 'system')),
    rollback_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_deployments_status ON patch_deployments (status);
CREATE INDEX idx_deployments_errata ON patch_deployments (errata_id);

CREATE TABLE patch_deployment_systems (
    deployment_id  bigint NOT NULL REFERENCES patch_deployments (id) ON DELETE CASCADE,
    system_id      integer NOT NULL,
    system_name    text NOT NULL DEFAULT '',
    wave           integer NOT NULL CHECK (wave >= 0),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN (
                       'pending', 'scheduled', 'in_progress', 'succeeded', 'failed', 'skipped', 'rolled_back', 'rollback_failed')),
    action_id      integer,
    message        text,
    started_at     timestamptz,
    completed_at   timestamptz,
    PRIMARY KEY (deployment_id, system_id)
);
CREATE INDEX idx_deployment_systems_wave ON patch_deployment_systems (deployment_id, wave);

-- 6. Rollback history (test system or production).
CREATE TABLE patch_rollbacks (
    id                bigserial PRIMARY KEY,
    deployment_id     bigint REFERENCES patch_deployments (id),
    test_id           bigint REFERENCES patch_tests (id),
    queue_id          bigint REFERENCES patch_test_queue (id),
    errata_id         text NOT NULL,
    rollback_type     text NOT NULL CHECK (rollback_type IN ('package', 'system')),
    target_systems    integer[] NOT NULL DEFAULT '{}',
    reason            text,
    initiated_by      text NOT NULL,
    status            text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed', 'failed')),
    started_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    systems_succeeded integer NOT NULL DEFAULT 0,
    systems_failed    integer NOT NULL DEFAULT 0,
    error_details     jsonb,
    CHECK (deployment_id IS NOT NULL OR test_id IS NOT NULL OR queue_id IS NOT NULL)
);
CREATE INDEX idx_rollbacks_deployment ON patch_rollbacks (deployment_id);

-- 7. Notifications (every message, with delivery status and retries).
CREATE TABLE orchestrator_notifications (
    id              bigserial PRIMARY KEY,
    type            text NOT NULL CHECK (type IN ('test_failed', 'pending_approval', 'prod_failed', 'daily_digest',
                                                  'rollback_initiated', 'rollback_completed', 'needs_attention',
                                                  'approved', 'rejected', 'completed', 'sync_failed', 'test')),
    errata_id       text,
    queue_id        bigint REFERENCES patch_test_queue (id),
    recipient       text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    subject         text NOT NULL,
    body            text NOT NULL,
    idempotency_key text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    delivered       boolean NOT NULL DEFAULT false,
    error_message   text,
    UNIQUE (idempotency_key, channel, recipient)
);
CREATE INDEX idx_notifications_type ON orchestrator_notifications (type, created_at);
CREATE INDEX idx_notifications_pending ON orchestrator_notifications (next_attempt_at) WHERE status = 'pending';

-- 8. Runtime configuration.
CREATE TABLE orchestrator_config (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    description text,
    updated_by  text NOT NULL DEFAULT 'migration',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO orchestrator_config (key, value, description) VALUES
('score_weights', '{
    "kernel_penalty": 30,
    "reboot_penalty": 15,
    "config_penalty": 10,
    "dependency_penalty_per": 3,
    "dependency_penalty_max": 15,
    "size_penalty_per_mb": 2,
    "size_penalty_max": 10,
    "history_penalty_max": 20,
    "small_patch_bonus": 5,
    "small_patch_kb": 100,
    "history_min_tests": 3
}', 'Weights of the success score (design §10)'),
('test_thresholds', '{
    "cpu_delta_percent": 20,
    "memory_delta_percent": 15,
    "max_failed_services": 0,
    "wait_after_patch_seconds": 300,
    "wait_after_reboot_seconds": 180,
    "reboot_timeout_seconds": 900,
    "step_timeout_seconds": 1800,
    "retry_base_seconds": 30,
    "retry_max_seconds": 1800,
    "retry_max_attempts": 8
}', 'Validation thresholds, waits and timeouts of a test'),
('notification_config', '{
    "email_enabled": true,
    "smtp_server": "",
    "recipients": [],
    "digest_time": "08:00",
    "webhook_enabled": false,
    "webhook_url": ""
}', 'Notification channels'),
('test_systems', '{
    "ubuntu": [{"system_id": null, "system_name": "test-ubuntu-01"}],
    "rhel": [{"system_id": null, "system_name": "test-rhel-01"}]
}', 'Test systems per OS (one lane each)'),
('critical_services', '{
    "ubuntu": ["ssh.service", "cron.service"],
    "debian": ["ssh.service", "cron.service"],
    "rhel": ["sshd.service", "crond.service"]
}', 'Services that must stay active after a patch'),
('rollout_policy', '{
    "canary_systems": 1,
    "wave_percentages": [25, 50, 100],
    "max_failed_systems": 1,
    "max_failed_percent": 5,
    "min_window_remaining_minutes": 30
}', 'Production waves and error threshold'),
('maintenance_windows', '{
    "default": [{"days": ["sat"], "start": "22:00", "duration_minutes": 240, "timezone": "UTC"}]
}', 'Weekly maintenance windows per production group'),
('auto_queue_policy', '{
    "enabled": true,
    "advisory_types": ["Security Advisory"],
    "requeue_new_versions": true
}', 'Which synced errata are queued automatically'),
('clm', '{
    "project_label": null,
    "test_environment": "test",
    "prod_environment": "prod"
}', 'UYUNI Content Lifecycle Management project (null: skip promotion)');

-- ---------------------------------------------------------------------------------------------
-- Durable actor support.

-- Journal of every persisted transition of an entry, hash-chained per entry (append-only).
CREATE TABLE patch_transitions (
    queue_id     bigint NOT NULL REFERENCES patch_test_queue (id),
    seq          integer NOT NULL CHECK (seq >= 1),
    event_type   text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}',
    from_state   text,
    to_state     text NOT NULL,
    from_value   jsonb,
    to_value     jsonb NOT NULL,
    actor        text NOT NULL,
    ip_address   varchar(45),
    user_agent   text,
    request_id   text,
    revision     bigint NOT NULL,
    owner_epoch  bigint NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash    text NOT NULL,
    hash         text NOT NULL,
    PRIMARY KEY (queue_id, seq)
);
CREATE INDEX idx_transitions_at ON patch_transitions (at);

CREATE FUNCTION spm_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER patch_transitions_append_only BEFORE UPDATE OR DELETE ON patch_transitions
    FOR EACH ROW EXECUTE FUNCTION spm_reject_mutation();

-- Durable timers: derived from the actor snapshot in the same transaction; the scheduler fires them.
CREATE TABLE timers (
    queue_id    bigint NOT NULL REFERENCES patch_test_queue (id),
    name        text NOT NULL,
    fire_at     timestamptz NOT NULL,
    event       jsonb NOT NULL,
    armed_revision bigint NOT NULL,
    claimed_by  text,
    claimed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, name)
);
CREATE INDEX idx_timers_due ON timers (fire_at);

-- Idempotent effects: one row per effect key `entry:attempt:step`.
CREATE TABLE effects (
    key          text PRIMARY KEY,
    queue_id     bigint NOT NULL REFERENCES patch_test_queue (id),
    step         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
    executions   integer NOT NULL DEFAULT 0 CHECK (executions >= 0),
    external_ref jsonb,
    result       jsonb,
    error        text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX idx_effects_queue ON effects (queue_id);

-- API tokens: only the SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (length(btrim(name)) > 0),
    prefix       text NOT NULL,
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'admin')),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Idempotency-Key handling: a retried mutating request gets the first answer.
CREATE TABLE idempotency_keys (
    token_id     bigint NOT NULL REFERENCES api_tokens (id),
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    method       text NOT NULL,
    path         text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_id, key)
);

-- Every mutating API request and every security event.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    token_id    bigint,
    action      text NOT NULL,
    method      text,
    path        text,
    target_type text,
    target_id   text,
    outcome     text NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed', 'succeeded')),
    status_code integer,
    ip_address  varchar(45),
    user_agent  text,
    request_id  text,
    details     jsonb
);
CREATE INDEX idx_audit_at ON audit_log (at);

-- UYUNI sync runs (one at a time).
CREATE TABLE sync_runs (
    id          bigserial PRIMARY KEY,
    trigger     text NOT NULL CHECK (trigger IN ('startup', 'schedule', 'api', 'lab')),
    status      text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    stats       jsonb NOT NULL DEFAULT '{}',
    error       text
);
CREATE UNIQUE INDEX uq_sync_running ON sync_runs ((true)) WHERE status = 'running';

-- ---------------------------------------------------------------------------------------------
-- Views.

CREATE VIEW v_queue_details AS
SELECT q.id, q.errata_id, q.errata_version, q.target_os, q.status, q.state_value, q.status_reason,
       q.priority, q.priority_override, COALESCE(q.priority_override, q.priority) AS effective_priority,
       q.success_score, q.queued_at, q.started_at, q.completed_at, q.test_id, q.notes, q.revision,
       e.synopsis, e.advisory_type, e.severity, e.cvss_score, e.cves, e.reboot_suggested,
       r.affects_kernel, r.requires_reboot, r.modifies_config, r.times_tested, r.times_failed,
       CASE WHEN q.success_score >= 80 THEN 'Low'
            WHEN q.success_score >= 60 THEN 'Medium'
            WHEN q.success_score >= 40 THEN 'High'
            ELSE 'Very High' END AS risk_level
FROM patch_test_queue q
JOIN errata_cache e ON e.errata_id = q.errata_id
LEFT JOIN patch_risk_profile r ON r.errata_id = q.errata_id;

CREATE VIEW v_pending_approvals AS
SELECT q.id, q.errata_id, q.target_os, q.success_score, q.test_id, e.synopsis, e.severity, e.cves,
       t.result AS test_result, t.completed_at AS tested_at, t.required_reboot,
       pa.since AS pending_since,
       round(extract(epoch FROM (now() - pa.since)) / 3600.0, 2) AS hours_pending
FROM patch_test_queue q
JOIN errata_cache e ON e.errata_id = q.errata_id
LEFT JOIN patch_tests t ON t.id = q.test_id
LEFT JOIN LATERAL (
    SELECT max(pt.at) AS since FROM patch_transitions pt
    WHERE pt.queue_id = q.id AND pt.to_state = 'pending_approval'
) pa ON true
WHERE q.status = 'pending_approval';

CREATE VIEW v_daily_stats AS
SELECT d::date AS day,
       (SELECT count(*) FROM patch_test_queue q WHERE q.queued_at::date = d::date) AS queued,
       (SELECT count(*) FROM patch_tests t WHERE t.completed_at::date = d::date AND t.result = 'passed') AS tests_passed,
       (SELECT count(*) FROM patch_tests t WHERE t.completed_at::date = d::date AND t.result IN ('failed', 'error')) AS tests_failed,
       (SELECT count(*) FROM patch_approvals a WHERE a.approved_at::date = d::date AND a.action = 'approved') AS approved,
       (SELECT count(*) FROM patch_approvals a WHERE a.approved_at::date = d::date AND a.action = 'rejected') AS rejected,
       (SELECT count(*) FROM patch_deployments p WHERE p.completed_at::date = d::date AND p.status = 'completed') AS deployments_completed
FROM generate_series(current_date - 29, current_date, interval '1 day') AS d;
