-- Several replicas on one PostgreSQL (issue 11).

-- Effect claims and results are fenced by the entry's owner epoch: the epoch that claimed (and
-- last ran) each effect is kept, so an audit can tell which ownership ran it.
ALTER TABLE effects ADD COLUMN owner_id text;
ALTER TABLE effects ADD COLUMN owner_epoch bigint;

-- Operator events for an entry another replica owns: the replica that received the request writes
-- the event here and waits; the owner takes it, delivers it to its actor, and writes the answer
-- after its transition committed. NOTIFY spm_inbox wakes owners, NOTIFY spm_inbox_answer wakes
-- senders; polling stays the guarantee.
CREATE TABLE operator_inbox (
    id          bigserial PRIMARY KEY,
    queue_id    bigint NOT NULL REFERENCES patch_test_queue (id),
    event       jsonb NOT NULL,
    meta        jsonb NOT NULL,
    sent_by     text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'taken', 'done', 'failed', 'withdrawn')),
    taken_by    text,
    answer      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz
);
CREATE INDEX idx_operator_inbox_pending ON operator_inbox (queue_id) WHERE status = 'pending';
