-- DORA's four keys (flowlens.dora).

-- name: dora_deployment
-- A deployment (or a fallback deploy run), from whichever of its events arrives first.
INSERT INTO deployments AS d (repository_id, kind, github_id, environment, sha, ref, created_at)
VALUES (%(repository_id)s, %(kind)s, %(github_id)s, %(environment)s, %(sha)s, %(ref)s,
        %(created_at)s)
ON CONFLICT (repository_id, kind, github_id) DO UPDATE SET
    environment = CASE WHEN EXCLUDED.environment <> '' THEN EXCLUDED.environment
                       ELSE d.environment END,
    sha = COALESCE(EXCLUDED.sha, d.sha),
    ref = COALESCE(EXCLUDED.ref, d.ref),
    created_at = COALESCE(d.created_at, EXCLUDED.created_at)
RETURNING id;

-- name: dora_outcome
-- A terminal status becomes the deployment's outcome when it is the latest by its own
-- created_at (ties: the higher status id), whatever the order of arrival. updated_at moves
-- only then: the API tells the sockets the metrics changed.
UPDATE deployments SET outcome = %(outcome)s, outcome_at = %(outcome_at)s,
    status_id = %(status_id)s, updated_at = now()
WHERE id = %(id)s
  AND (outcome_at IS NULL
       OR (%(outcome_at)s::timestamptz, COALESCE(%(status_id)s::bigint, 0))
          > (outcome_at, COALESCE(status_id, 0)));

-- name: dora_push
-- The earliest commit timestamp pushed to a branch.
INSERT INTO branch_first_commits AS b (repository_id, branch, first_commit_at)
VALUES (%(repository_id)s, %(branch)s, %(at)s)
ON CONFLICT (repository_id, branch) DO UPDATE SET
    first_commit_at = LEAST(b.first_commit_at, EXCLUDED.first_commit_at);

-- name: dora_deployments
-- The counted deployments of an environment in [start, now]: a repository's deployment events,
-- its deploy workflow runs only while it has sent none. One range of deployments_outcome_idx;
-- the kind test is a probe of the (repository_id, kind, github_id) key.
-- plan: per call
SELECT d.id, d.repository_id, d.outcome, d.outcome_at AS at, d.kind, true AS inside
FROM deployments d
WHERE d.environment = %(environment)s AND d.outcome IS NOT NULL
  AND d.outcome_at BETWEEN %(start)s AND %(now)s
  AND (%(repository_id)s::bigint IS NULL OR d.repository_id = %(repository_id)s::bigint)
  AND d.kind = CASE WHEN EXISTS (SELECT 1 FROM deployments x
                                 WHERE x.repository_id = d.repository_id
                                   AND x.kind = 'deployment')
                    THEN 'deployment' ELSE 'workflow' END;

-- name: dora_last_successes
-- The last successful deployment before start of each of these repositories (those with a
-- success in the window: the only ones it anchors, flowlens.dora.compute), of the kind it
-- counts: one index range of (repository, environment, outcome_at) each.
-- plan: per call
SELECT b.id, b.repository_id, b.outcome, b.outcome_at AS at, b.kind, false AS inside
FROM unnest(%(repository_ids)s::bigint[], %(kinds)s::text[]) AS k (repository_id, kind)
CROSS JOIN LATERAL (
    SELECT d.id, d.repository_id, d.outcome, d.outcome_at, d.kind
    FROM deployments d
    WHERE d.repository_id = k.repository_id AND d.environment = %(environment)s
      AND d.kind = k.kind AND d.outcome = 'success' AND d.outcome_at < %(start)s
    ORDER BY d.outcome_at DESC, d.id DESC
    LIMIT 1
) b;

-- name: dora_merged_prs
-- Merged PRs of each repository in (its since, now] (since NULL: all), with the first commit:
-- the earliest pushed to the head branch, else the PR's creation. Each repository's are a range
-- of pull_requests_merged_idx; OFFSET 0 keeps them so (joined as a whole, the planner read
-- every merged PR of 200,000 to keep 11,000; bench/scale.py).
-- plan: per call
SELECT p.repository_id, p.merged_at,
       COALESCE(b.first_commit_at, p.gh_created_at, p.created_at) AS first_commit_at
FROM unnest(%(repository_ids)s::bigint[], %(sinces)s::timestamptz[]) AS k (repository_id, since)
CROSS JOIN LATERAL (
    SELECT p.repository_id, p.merged_at, p.head_ref, p.gh_created_at, p.created_at
    FROM pull_requests p
    WHERE p.repository_id = k.repository_id AND p.merged_at <= %(now)s
      AND p.merged_at > COALESCE(k.since, '-infinity'::timestamptz)
    OFFSET 0
) p
LEFT JOIN branch_first_commits b
  ON b.repository_id = p.repository_id AND b.branch = p.head_ref;

-- name: dora_now
-- The database's clock: the window ends here, as the stored timestamps were written by it.
SELECT now();

-- name: dora_changed_since
-- The (repository, environment) pairs whose deployment outcomes changed after `since` (NULL:
-- none yet, only the clock), with their latest change, and the database's clock.
SELECT n.now, r.full_name AS repository, d.environment, max(d.updated_at) AS changed_at
FROM (SELECT now() AS now) n
LEFT JOIN deployments d
  ON %(since)s::timestamptz IS NOT NULL AND d.updated_at > %(since)s::timestamptz
     AND d.outcome IS NOT NULL
LEFT JOIN repositories r ON r.id = d.repository_id
GROUP BY n.now, r.full_name, d.environment;
