-- GitHub sync: what the sync needs to know about stored state, and the shared schedule.

-- name: sync_delivery_seen
-- A synthetic delivery id already recorded: that object version is in the database.
SELECT 1 AS seen FROM raw_events WHERE delivery_id = %(delivery_id)s;

-- name: sync_pr_state
-- The stored pull request the sync compares a fresh REST object with (to name the action): of
-- the repository with this GitHub id (the name may be another repository's, ingest's
-- repository identity), else by name.
SELECT p.head_sha, p.title, p.body, p.base_ref, p.is_draft, p.state, p.source_updated_at
FROM pull_requests p
WHERE p.number = %(number)s
  AND p.repository_id = COALESCE(
      (SELECT id FROM repositories WHERE github_id = %(github_id)s::bigint),
      (SELECT id FROM repositories
       WHERE %(github_id)s::bigint IS NULL AND full_name = %(repository)s));

-- name: sync_heads_to_recheck
-- Head commits of the repository's open pull requests whose build failed or is running. A
-- re-run keeps its run's id and creation time, so the walk of runs by creation time stops
-- before it once the cursor has passed (and does not see it running, or finish); the sync lists
-- these heads' runs by sha. At most `limit` a sync, taken in turn: each sync of the repository
-- (sync_state.runs counts them) starts `limit` further along the list, so every head is
-- rechecked within ceil(count / limit) syncs while the set stays the same, however large.
WITH heads AS (
    SELECT p.head_sha, row_number() OVER (ORDER BY p.id) - 1 AS i, count(*) OVER () AS n
    FROM pull_requests p
    WHERE p.repository_id = COALESCE(
          (SELECT id FROM repositories WHERE github_id = %(github_id)s::bigint),
          (SELECT id FROM repositories
           WHERE %(github_id)s::bigint IS NULL AND full_name = %(repository)s))
      AND p.state = 'open' AND p.status_build IN ('buildFailed', 'building')
      AND p.head_sha IS NOT NULL
), turn AS (
    SELECT COALESCE((SELECT runs FROM sync_state WHERE repository = %(sync_name)s), 0)::bigint
           * %(limit)s::bigint AS start
)
SELECT heads.head_sha FROM heads, turn
ORDER BY mod(heads.i - mod(turn.start, heads.n) + heads.n, heads.n)
LIMIT %(limit)s;

-- name: sync_state_ensure
INSERT INTO sync_state (repository) VALUES (%(repository)s)
ON CONFLICT (repository) DO NOTHING;

-- name: sync_claim
-- A due repository nobody holds: the conditional UPDATE lets exactly one process win it.
UPDATE sync_state SET
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8),
    lease_owner = %(owner)s,
    last_started_at = now()
WHERE repository = %(repository)s
  AND next_run_at <= now()
  AND (leased_until IS NULL OR leased_until < now())
RETURNING *;

-- name: sync_finish
-- Cursors move forward only, and only when this walk reached back to where the last one ended
-- (a short one-off `--since 1` must not make the schedule skip older changes); a first cursor
-- is set by any complete walk. *_covered_from keeps where the unbroken coverage up to each
-- cursor begins, so the schedule can tell whether the cursor covers its own window.
-- (In SET, every column name is the row's value before this UPDATE.)
UPDATE sync_state SET
    leased_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE leased_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    next_run_at = CASE WHEN %(schedule)s::bool
                       THEN now() + make_interval(secs => %(next_in_seconds)s::float8)
                       ELSE next_run_at END,
    prs_cursor = CASE
        WHEN %(prs_cursor)s::timestamptz IS NULL THEN prs_cursor
        WHEN prs_cursor IS NULL THEN %(prs_cursor)s::timestamptz
        WHEN %(prs_from)s::timestamptz <= prs_cursor
            THEN GREATEST(prs_cursor, %(prs_cursor)s::timestamptz)
        ELSE prs_cursor END,
    prs_covered_from = CASE
        WHEN %(prs_cursor)s::timestamptz IS NULL THEN prs_covered_from
        WHEN prs_cursor IS NULL THEN %(prs_from)s::timestamptz
        WHEN %(prs_from)s::timestamptz <= prs_cursor AND prs_covered_from IS NOT NULL
            THEN LEAST(prs_covered_from, %(prs_from)s::timestamptz)
        ELSE prs_covered_from END,
    runs_cursor = CASE
        WHEN %(runs_cursor)s::timestamptz IS NULL THEN runs_cursor
        WHEN runs_cursor IS NULL THEN %(runs_cursor)s::timestamptz
        WHEN %(runs_from)s::timestamptz <= runs_cursor
            THEN GREATEST(runs_cursor, %(runs_cursor)s::timestamptz)
        ELSE runs_cursor END,
    runs_covered_from = CASE
        WHEN %(runs_cursor)s::timestamptz IS NULL THEN runs_covered_from
        WHEN runs_cursor IS NULL THEN %(runs_from)s::timestamptz
        WHEN %(runs_from)s::timestamptz <= runs_cursor AND runs_covered_from IS NOT NULL
            THEN LEAST(runs_covered_from, %(runs_from)s::timestamptz)
        ELSE runs_covered_from END,
    last_finished_at = now(),
    last_error = NULL,
    runs = runs + 1
WHERE repository = %(repository)s;

-- name: sync_fail
UPDATE sync_state SET
    leased_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE leased_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    next_run_at = CASE WHEN %(schedule)s::bool
                       THEN now() + make_interval(secs => %(next_in_seconds)s::float8)
                       ELSE next_run_at END,
    last_error = %(error)s,
    runs = runs + 1
WHERE repository = %(repository)s;

-- name: sync_next_due
-- Seconds until the earliest of these repositories is due (0 when one is due now).
SELECT GREATEST(0, EXTRACT(EPOCH FROM min(GREATEST(next_run_at, COALESCE(leased_until, next_run_at)))
                                       - now()))::float8 AS seconds
FROM sync_state WHERE repository = ANY(%(repositories)s::text[]);
