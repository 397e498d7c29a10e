-- The last known state of an integration the daemon talks to in the background, for the status
-- pages of every replica (issue 14): NVD enrichment runs on the sync leader only, so its "NVD
-- unreachable since …" must be shared, not kept in that process.
--
-- state:      unknown (not contacted yet) | reachable | unreachable
-- since:      since when it is in this state
-- last_error: why the last attempt failed (while unreachable)
-- retry_at:   no request before this time (the backoff while unreachable)
-- failures:   consecutive failed attempts
-- message:    one line for status pages
CREATE TABLE integration_status (
    name       text PRIMARY KEY CHECK (name IN ('nvd')),
    state      text NOT NULL CHECK (state IN ('unknown', 'reachable', 'unreachable')),
    since      timestamptz,
    last_error text,
    retry_at   timestamptz,
    failures   integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    message    text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
