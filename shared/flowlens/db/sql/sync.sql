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
