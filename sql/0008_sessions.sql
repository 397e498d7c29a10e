-- Dashboard sessions, shared by every replica (issue 12): the cookie holds a random 256-bit id;
-- this table holds only what that id unlocks, never the id or the API token themselves.
--
-- id_hash:      SHA-256 of the id (HKDF-separated from the key below), the lookup key
-- token_sealed: the API token, AES-256-GCM under a key derived from the id (HKDF): without the
--               browser's cookie a row is useless, so a database dump yields no session and no token
-- token_id:     whose token it is (a revoked token's sessions are deleted with it, see below)
-- last_seen_at: the last page view, written at most once a minute per session (the idle timeout,
--               UI_SESSION_IDLE_MINUTES, is checked against it); created_at for UI_SESSION_MAX_HOURS
CREATE TABLE ui_sessions (
    id_hash      text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    token_id     bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    token_sealed bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_ui_sessions_last_seen ON ui_sessions (last_seen_at);
CREATE INDEX idx_ui_sessions_token ON ui_sessions (token_id);

-- A revoked (or expired-and-revoked) token ends its dashboard sessions at once, on every replica.
CREATE FUNCTION spm_end_sessions_of_revoked_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ui_sessions WHERE token_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER api_tokens_end_sessions AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION spm_end_sessions_of_revoked_token();
