-- Retention (flowlens.retention, docs/OPERATIONS.md "Retention"): a leased poller duty drops
-- old payloads and rows in small batches.

-- A processed delivery's payload goes after RAW_PAYLOAD_DAYS; its row (delivery id for dedupe,
-- event, action, repository, times) stays until RAW_EVENT_DAYS. NULL: dropped by retention.
ALTER TABLE raw_events ALTER COLUMN payload DROP NOT NULL;
-- Both raw_events rules walk deliveries oldest first. Plain btree (YugabyteDB has no BRIN).
CREATE INDEX IF NOT EXISTS raw_events_received_idx ON raw_events (received_at, id);
-- The history rule walks pr_history oldest first.
CREATE INDEX IF NOT EXISTS pr_history_at_idx ON pr_history (at, id);

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
