-- The change-control gate (issue 12, DESIGN.md §6): who may approve, one identity per person, and
-- one deployment at a time per production group.
--
-- 1. approval_policy (orchestrator_config): separation of duties on (the approver of an entry is
--    never who queued it, started its test, retried or forced it), two distinct approvers for
--    Critical severity or Very High risk, an approval void after 72 h if production has not
--    started under it. Read by src/services/settings.ts (loadApprovalPolicy) when an errata is
--    queued and when it is approved.
--
-- 2. api_tokens.person: the identity a token acts as (journal actor, audit actor, approver). A
--    person may hold several tokens (rotation): separation of duties compares persons, not
--    tokens. Not given, it defaults to the token name made unique: the name when no other token
--    has that person, else `name#id`; names that would impersonate the system (`scheduler`,
--    `auto-queue`, …) or a namespace (`cli:`) are suffixed too. The dashboard's proxy sign-in
--    acts as the person the proxy names, so token `--person alice` and proxy user alice are one.
--
-- 3. Audit filters: indexes for GET /api/v1/audit (actor, target, outcome, keyset on seq).
--
-- 4. production_group_locks: one row per production group a deployment is rolling out to. The
--    primary key on group_name is the rule "one deployment in progress per production group":
--    the engine takes all the groups of a deployment in one statement before its first wave
--    (src/persistence/sql/rollout.ts, acquireGroupLocks) and waits in prod_pending while another
--    holds one of them (patch_deployments.wait_reason says which). The lock ends with the entry's
--    production work: a trigger deletes an entry's locks when its status leaves the production
--    states (completed, rolled_back, back to the approvers …), in the same transaction.

-- ---------------------------------------------------------------------------------------------
-- 1. The approval policy.
INSERT INTO orchestrator_config (key, value, description) VALUES
('approval_policy', '{
    "separation_of_duties": true,
    "required_approvals": 1,
    "two_approvers": { "severities": ["Critical"], "risk_levels": ["Very High"] },
    "approval_max_age_hours": 72
}', 'Who may approve: separation of duties, distinct approvers by severity and risk, approval expiry (issue 12)')
ON CONFLICT (key) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- 2. One identity per person.
CREATE FUNCTION spm_default_person(token_name text, token_id bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    base text := left(btrim(regexp_replace(token_name, '[[:cntrl:]:]', '_', 'g')), 100);
BEGIN
    IF base = '' OR base IN ('anonymous', 'system', 'scheduler', 'auto-queue', 'sync', 'policy', 'probe', 'migration')
       OR EXISTS (SELECT 1 FROM api_tokens WHERE person = base) THEN
        RETURN base || '#' || token_id;
    END IF;
    RETURN base;
END $$;

ALTER TABLE api_tokens ADD COLUMN person text;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id, name FROM api_tokens ORDER BY id LOOP
        UPDATE api_tokens SET person = spm_default_person(r.name, r.id) WHERE id = r.id;
    END LOOP;
END $$;
ALTER TABLE api_tokens ALTER COLUMN person SET NOT NULL,
    ADD CONSTRAINT api_tokens_person_check CHECK (length(btrim(person)) BETWEEN 1 AND 120 AND person !~ '[[:cntrl:]:]');
CREATE INDEX idx_api_tokens_person ON api_tokens (person);

-- Serialised so two tokens created at once with one name do not both take it as their person.
CREATE FUNCTION spm_token_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.person IS NULL THEN
        PERFORM pg_advisory_xact_lock(7240117007);
        NEW.person := spm_default_person(NEW.name, NEW.id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_tokens_person BEFORE INSERT ON api_tokens FOR EACH ROW EXECUTE FUNCTION spm_token_person();

-- ---------------------------------------------------------------------------------------------
-- 3. Audit filters (keyset on seq within each filter).
CREATE INDEX idx_audit_actor_seq ON audit_log (actor, seq);
CREATE INDEX idx_audit_target_seq ON audit_log (target_type, target_id, seq);
CREATE INDEX idx_audit_outcome_seq ON audit_log (outcome, seq);

-- ---------------------------------------------------------------------------------------------
-- 4. One deployment in progress per production group.
CREATE TABLE production_group_locks (
    group_name    text PRIMARY KEY,
    deployment_id bigint NOT NULL REFERENCES patch_deployments (id),
    queue_id      bigint NOT NULL REFERENCES patch_test_queue (id),
    errata_id     text NOT NULL,
    acquired_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_group_locks_queue ON production_group_locks (queue_id);

ALTER TABLE patch_deployments ADD COLUMN wait_reason text;

-- An entry keeps its groups while its production work may still act on them: deploying, waiting
-- for the next window between waves, verifying, rolling back, halted for a human
-- (needs_attention) or retrying a step (pending_retry). Any other status ends it.
CREATE FUNCTION spm_release_group_locks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status NOT IN ('prod_pending', 'prod_applied', 'prod_rollback', 'needs_attention', 'pending_retry') THEN
        DELETE FROM production_group_locks WHERE queue_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER patch_test_queue_release_group_locks AFTER UPDATE OF status ON patch_test_queue
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION spm_release_group_locks();
