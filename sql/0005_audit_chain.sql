-- Tamper-evident audit trail (issue 12).
--
-- audit_log becomes append-only and hash-chained: a BEFORE INSERT trigger, serialised by a
-- transaction advisory lock, gives each row the next `seq` (contiguous from 1: computed from the
-- table, so a rolled-back insert leaves no gap), the previous row's hash as `prev_hash`, and
-- `hash = sha256(prev_hash || spm_audit_canonical(row))`. The canonical text is built from the
-- columns as PostgreSQL renders them as text (jsonb as details::text, the timestamp as epoch
-- microseconds), each field length-prefixed, so a verifier recomputes it byte for byte from
-- `SELECT …::text` without re-serialising JSON (src/persistence/auditChain.ts does, in Node).
--
-- UPDATE, DELETE and TRUNCATE are refused on audit_log, on the anchor tables, and TRUNCATE on
-- patch_transitions (its UPDATE/DELETE trigger is in 0001).
--
-- The journal hash gains a version: rows written before this migration keep hash_version 1
-- (payload, states, actor, request metadata, time); new rows are written as version 2, which
-- also covers from_value, to_value, revision and owner_epoch (src/persistence/journal.ts).
--
-- audit_anchors: the audit chain head and a digest over every entry's journal head, recorded
-- periodically (recordAuditAnchor) and logged; audit_anchor_heads: the journal heads that changed
-- since the previous anchor. Deleting the newest audit or journal rows below an anchor is then
-- detected by `spm-orchestrator audit verify`.

-- ---------------------------------------------------------------------------------------------
-- Canonical text: `<tag>|f1|f2|…`, each field `~` for NULL, else `<octets>:<text>` (UTF-8 octets).
CREATE FUNCTION spm_chain_field(v text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(convert_to(v, 'UTF8'))::text || ':' || v END
$$;

-- A timestamp as whole microseconds since the epoch (exact: extract() is numeric since PG 14).
CREATE FUNCTION spm_epoch_us(t timestamptz) RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

CREATE FUNCTION spm_chain_hash(prev_hash text, canonical text) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(prev_hash || canonical, 'UTF8')), 'hex')
$$;

-- ---------------------------------------------------------------------------------------------
-- audit_log: seq, prev_hash, hash.
ALTER TABLE audit_log ADD COLUMN seq bigint, ADD COLUMN prev_hash text, ADD COLUMN hash text;

CREATE FUNCTION spm_audit_canonical(a audit_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'audit/1|' || concat_ws('|',
        spm_chain_field(a.id::text), spm_chain_field(a.seq::text), spm_chain_field(spm_epoch_us(a.at)::text),
        spm_chain_field(a.actor), spm_chain_field(a.token_id::text), spm_chain_field(a.action), spm_chain_field(a.method),
        spm_chain_field(a.path), spm_chain_field(a.target_type), spm_chain_field(a.target_id), spm_chain_field(a.outcome),
        spm_chain_field(a.status_code::text), spm_chain_field(a.ip_address::text), spm_chain_field(a.user_agent),
        spm_chain_field(a.request_id), spm_chain_field(a.details::text))
$$;

-- Existing rows are chained in id order (the order they were written).
DO $$
DECLARE
    r audit_log;
    prev text := repeat('0', 64);
    n bigint := 0;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        r.seq := n;
        r.prev_hash := prev;
        r.hash := spm_chain_hash(prev, spm_audit_canonical(r));
        UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        prev := r.hash;
    END LOOP;
END $$;

ALTER TABLE audit_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT audit_log_seq_key UNIQUE (seq),
    ADD CONSTRAINT audit_log_seq_check CHECK (seq >= 1),
    ADD CONSTRAINT audit_log_hash_check CHECK (hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$');

-- One writer at a time appends to the chain; the lock is held to the end of the inserting
-- transaction. Volatile plpgsql sees the previous holder's committed row (a new snapshot per
-- statement under READ COMMITTED); under REPEATABLE READ a stale head fails on the unique seq.
CREATE FUNCTION spm_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(7240117005);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_log ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(head_seq, 0) + 1;
    NEW.prev_hash := coalesce(head_hash, repeat('0', 64));
    NEW.hash := spm_chain_hash(NEW.prev_hash, spm_audit_canonical(NEW));
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION spm_audit_chain();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION spm_reject_mutation();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION spm_reject_mutation();

-- ---------------------------------------------------------------------------------------------
-- patch_transitions: hash version, TRUNCATE refused.
ALTER TABLE patch_transitions ADD COLUMN hash_version smallint NOT NULL DEFAULT 1
    CONSTRAINT patch_transitions_hash_version_check CHECK (hash_version IN (1, 2));
CREATE TRIGGER patch_transitions_no_truncate BEFORE TRUNCATE ON patch_transitions FOR EACH STATEMENT EXECUTE FUNCTION spm_reject_mutation();

-- ---------------------------------------------------------------------------------------------
-- Anchors: the audit head and the journal heads, themselves chained.
CREATE TABLE audit_anchors (
    seq             bigint PRIMARY KEY CHECK (seq >= 1),
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    recorded_by     text NOT NULL,
    -- The audit chain head when anchored (0 and 64 zeros for an empty audit_log).
    audit_seq       bigint NOT NULL CHECK (audit_seq >= 0),
    audit_hash      text NOT NULL,
    -- Every entry's journal head: count, total rows (Σ head seq) and sha256 over the lines
    -- `queue_id:seq:hash`, ordered by queue_id, joined by '\n'.
    journal_entries integer NOT NULL CHECK (journal_entries >= 0),
    journal_rows    bigint NOT NULL CHECK (journal_rows >= 0),
    journal_digest  text NOT NULL,
    -- How many rows this anchor wrote to audit_anchor_heads (heads changed since the previous one).
    heads_recorded  integer NOT NULL CHECK (heads_recorded >= 0),
    prev_hash       text NOT NULL,
    hash            text NOT NULL
);

CREATE TABLE audit_anchor_heads (
    anchor_seq bigint NOT NULL REFERENCES audit_anchors (seq),
    queue_id   bigint NOT NULL,
    seq        integer NOT NULL CHECK (seq >= 1),
    hash       text NOT NULL,
    PRIMARY KEY (queue_id, anchor_seq)
);
CREATE INDEX idx_audit_anchor_heads_anchor ON audit_anchor_heads (anchor_seq);

CREATE FUNCTION spm_anchor_canonical(a audit_anchors) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'anchor/1|' || concat_ws('|',
        spm_chain_field(a.seq::text), spm_chain_field(spm_epoch_us(a.at)::text), spm_chain_field(a.recorded_by),
        spm_chain_field(a.audit_seq::text), spm_chain_field(a.audit_hash), spm_chain_field(a.journal_entries::text),
        spm_chain_field(a.journal_rows::text), spm_chain_field(a.journal_digest), spm_chain_field(a.heads_recorded::text))
$$;

CREATE FUNCTION spm_anchor_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(7240117006);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_anchors ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(head_seq, 0) + 1;
    NEW.prev_hash := coalesce(head_hash, repeat('0', 64));
    NEW.hash := spm_chain_hash(NEW.prev_hash, spm_anchor_canonical(NEW));
    RETURN NEW;
END $$;

CREATE TRIGGER audit_anchors_chain BEFORE INSERT ON audit_anchors FOR EACH ROW EXECUTE FUNCTION spm_anchor_chain();
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors FOR EACH ROW EXECUTE FUNCTION spm_reject_mutation();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors FOR EACH STATEMENT EXECUTE FUNCTION spm_reject_mutation();
CREATE TRIGGER audit_anchor_heads_append_only BEFORE UPDATE OR DELETE ON audit_anchor_heads FOR EACH ROW EXECUTE FUNCTION spm_reject_mutation();
CREATE TRIGGER audit_anchor_heads_no_truncate BEFORE TRUNCATE ON audit_anchor_heads FOR EACH STATEMENT EXECUTE FUNCTION spm_reject_mutation();
