-- Several replicas on one PostgreSQL (issue 11).

-- Effect claims and results are fenced by the entry's owner epoch: the epoch that claimed (and
-- last ran) each effect is kept, so an audit can tell which ownership ran it.
ALTER TABLE effects ADD COLUMN owner_id text;
ALTER TABLE effects ADD COLUMN owner_epoch bigint;
