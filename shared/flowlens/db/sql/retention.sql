-- Retention (flowlens.retention, docs/OPERATIONS.md "Retention"): each statement is one small
-- batch in its own short transaction, oldest rows first. Rules with a cursor walk forward from
-- where the last batch stopped ((time, id), saved in duty_runs.state), so the rows they keep
-- are never read twice, and say how many rows they read and where they stopped; the others
-- start from the oldest row each time, keep only few, and say how many rows they removed.

-- name: retention_feed
-- The change feed is a short-lived outbox: every API instance reads it within seconds (its
-- trailing window) and REST serves anything older.
WITH doomed AS (
    SELECT id FROM change_feed
    WHERE created_at < now() - make_interval(secs => %(keep_seconds)s::float8)
    ORDER BY created_at
    LIMIT %(limit)s::int
), gone AS (
    DELETE FROM change_feed WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT count(*) AS done FROM gone;

-- name: retention_payloads
-- Payloads of deliveries received before the cutoff that were processed and applied. Pending,
-- failed (dead letter) and unapplied deliveries keep theirs: a retry or a reapply reads it
-- (one handled only after the cursor passed keeps it until its row goes). The row stays
-- (delivery id for redelivery dedupe, event, action, repository, times).
WITH batch AS (
    SELECT id, received_at FROM raw_events
    WHERE processed AND NOT failed AND unapplied_reason IS NULL  -- raw_events_done_idx
      AND (received_at, id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
      AND received_at < now() - make_interval(days => %(days)s::int)
    ORDER BY received_at, id
    LIMIT %(limit)s::int
), dropped AS (
    UPDATE raw_events e SET payload = NULL
    FROM batch b
    WHERE e.id = b.id AND e.payload IS NOT NULL AND e.processed AND NOT e.failed
      AND e.unapplied_reason IS NULL
    RETURNING e.id
)
SELECT (SELECT count(*) FROM dropped) AS done, (SELECT count(*) FROM batch) AS scanned,
       last.received_at AS after_at, last.id AS after_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT received_at, id FROM batch ORDER BY received_at DESC, id DESC LIMIT 1
) AS last ON TRUE;

-- name: retention_events
-- Whole delivery rows received before the cutoff, once processed and applied: dead letters,
-- unapplied and pending deliveries stay until they are handled (then they go on a later run).
WITH doomed AS (
    SELECT id FROM raw_events
    WHERE processed AND NOT failed AND unapplied_reason IS NULL  -- raw_events_done_idx
      AND received_at < now() - make_interval(days => %(days)s::int)
    ORDER BY received_at, id
    LIMIT %(limit)s::int
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM raw_events WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT count(*) AS done FROM gone;

-- name: retention_builds
-- CI runs first seen and last changed before the cutoff (a re-run of an old run is recent),
-- except those of an open PR's head (its build state is derived from them when its next
-- delivery arrives). Metrics windows reach 365 days back.
WITH doomed AS (
    SELECT b.id FROM builds b
    WHERE b.created_at < now() - make_interval(days => %(days)s::int)
      AND b.updated_at < now() - make_interval(days => %(days)s::int)
      AND NOT EXISTS (SELECT 1 FROM pull_requests p
                      WHERE p.repository_id = b.repository_id AND p.head_sha = b.commit_sha
                        AND p.state = 'open')
    ORDER BY b.created_at
    LIMIT %(limit)s::int
), gone AS (
    DELETE FROM builds WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT count(*) AS done FROM gone;

-- name: retention_history
-- A PR's history rows from before the cutoff, except its latest: every PR keeps the row that
-- says how it stands. The walk starts over daily (flowlens.retention.RESTART_SECONDS): a
-- latest row it passed may have been superseded since.
WITH batch AS (
    SELECT id, pull_request_id, version, at FROM pr_history
    WHERE (at, id) > (%(after_at)s::timestamptz, %(after_id)s::bigint)
      AND at < now() - make_interval(days => %(days)s::int)
    ORDER BY at, id
    LIMIT %(limit)s::int
), gone AS (
    DELETE FROM pr_history h USING batch b
    WHERE h.id = b.id
      AND EXISTS (SELECT 1 FROM pr_history n
                  WHERE n.pull_request_id = b.pull_request_id AND n.version > b.version)
    RETURNING h.id
)
SELECT (SELECT count(*) FROM gone) AS done, (SELECT count(*) FROM batch) AS scanned,
       last.at AS after_at, last.id AS after_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT at, id FROM batch ORDER BY at DESC, id DESC LIMIT 1) AS last ON TRUE;
