-- The oldest time each sync cursor vouches for: a walk from there reached the cursor without a
-- gap. The schedule takes a cursor only when this is at or before the start of its own window
-- (SYNC_SINCE_DAYS, which a laptop's `flowlens sync` may set otherwise); NULL on rows from
-- before this migration, which the schedule keeps taking as covering its window.
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS prs_covered_from TIMESTAMPTZ;
ALTER TABLE sync_state ADD COLUMN IF NOT EXISTS runs_covered_from TIMESTAMPTZ;
