-- Alerts and GitHub sync: indexes the alert pass scans every few seconds, and the sync schedule.

-- The alert pass looks for recently failed builds and high-risk insights: keep that scan small.
CREATE INDEX IF NOT EXISTS builds_failed_updated_idx ON builds (updated_at) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS insights_high_created_idx
    ON insights (created_at) WHERE risk_level = 'high';

-- One row per synced repository: the schedule every poller and `flowlens sync --loop` share
-- (a lease, so one process syncs a repository at a time) and how far the last complete
-- walk got (so the next one lists only what changed since).
CREATE TABLE IF NOT EXISTS sync_state (
    repository       TEXT PRIMARY KEY,
    next_run_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    leased_until     TIMESTAMPTZ,
    lease_owner      TEXT,
    -- Newest pull-request updated_at seen by the last complete walk.
    prs_cursor       TIMESTAMPTZ,
    -- Workflow runs created at or after this are listed again (oldest unfinished run).
    runs_cursor      TIMESTAMPTZ,
    last_started_at  TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_error       TEXT,
    runs             INTEGER NOT NULL DEFAULT 0
);
