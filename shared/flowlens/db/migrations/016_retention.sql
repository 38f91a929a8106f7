-- Retention (flowlens.retention, docs/OPERATIONS.md "Retention"): a leased poller duty drops
-- old payloads and rows in small batches.

-- A processed delivery's payload goes after RAW_PAYLOAD_DAYS; its row (delivery id for dedupe,
-- event, action, repository, times) stays until RAW_EVENT_DAYS. NULL: dropped by retention.
ALTER TABLE raw_events ALTER COLUMN payload DROP NOT NULL;
-- Both raw_events rules walk the deliveries they may touch (processed and applied), oldest
-- first; pending, dead and unapplied ones are not in it, so no batch reads them again and
-- again. Plain btree (YugabyteDB has no BRIN); ASC, as YugabyteDB would hash-shard a first
-- column left without an order, and a range scan could not use it.
CREATE INDEX IF NOT EXISTS raw_events_done_idx ON raw_events (received_at ASC, id ASC)
    WHERE processed AND NOT failed AND unapplied_reason IS NULL;
-- The history rule walks pr_history oldest first.
CREATE INDEX IF NOT EXISTS pr_history_at_idx ON pr_history (at ASC, id ASC);

-- Duties that run on a schedule, one process at a time, whichever poller invocation is there
-- when one is due: a lease, when it is next due, and where its last run got to.
CREATE TABLE IF NOT EXISTS duty_runs (
    duty          TEXT PRIMARY KEY,
    owner         TEXT,
    leased_until  TIMESTAMPTZ,
    next_due_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    state         JSONB NOT NULL DEFAULT '{}'::jsonb,
    last_done_at  TIMESTAMPTZ,
    last_error    TEXT
);
