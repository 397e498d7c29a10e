-- Failed authentications, shared by the replicas (issue 12): the dashboard sign-in limits (per
-- client address, per token) and the API's bearer-token refusals per client address count here, so
-- N replicas no longer give an attacker N times the budget, and a restart forgets nothing. Rows
-- older than their limit's window are pruned by the limiter. `key` is a client address or a token's
-- display prefix (what `token list` shows), never a secret.
CREATE TABLE auth_failures (
    scope  text        NOT NULL CHECK (scope IN ('ui_ip', 'ui_token', 'api_ip')),
    key    text        NOT NULL CHECK (length(key) <= 200),
    at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_auth_failures ON auth_failures (scope, key, at);
