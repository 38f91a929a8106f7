-- Queries of the API service (REST reads and the change-feed tailer).
-- Optional filters are NULL when absent; repository ids are looked up first so every list
-- query can use its (repository_id, ...) index.

-- name: api_repository_id
-- GitHub's names are case-insensitive: Octo/App is octo/app (the exact spelling first).
SELECT id FROM repositories WHERE lower(full_name) = lower(%(full_name)s)
ORDER BY full_name = %(full_name)s DESC, id
LIMIT 1;

-- name: api_list_prs
-- Most recently updated on GitHub first (the items' updatedAt), newest PR first on a tie, read
-- in the order of pull_requests_updated_idx: a page reads its own rows (a rarer state's, a few
-- more), however many repositories there are (reading each repository's newest instead read
-- every PR of 10,000 small repositories; bench/scale.py).
SELECT p.id, p.repository_id, p.number, p.title, left(p.body, 1001) AS body, p.author,
       p.author_avatar,
       p.head_sha, p.head_ref, p.base_ref, p.is_draft, p.state, p.html_url, p.files_changed,
       p.changed_files, p.additions, p.deletions, p.status_pr, p.status_build, p.status_approval,
       p.status_merge, p.status, p.risk_level, p.latest_insight ->> 'commit_sha' AS analysed_sha,
       p.gh_created_at, p.gh_updated_at, p.created_at, p.updated_at,
       r.full_name AS repository
FROM pull_requests p
JOIN repositories r ON r.id = p.repository_id
WHERE %(state)s::text IS NULL OR p.state = %(state)s::text
ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC
LIMIT %(limit)s::int OFFSET %(offset)s::int;

-- name: api_list_repository_prs
-- One repository's page, in the order of pull_requests_repo_updated_idx.
SELECT p.id, p.repository_id, p.number, p.title, left(p.body, 1001) AS body, p.author,
       p.author_avatar, p.head_sha,
       p.head_ref, p.base_ref, p.is_draft, p.state, p.html_url, p.files_changed, p.changed_files,
       p.additions, p.deletions, p.status_pr, p.status_build, p.status_approval, p.status_merge, p.status,
       p.risk_level, p.latest_insight ->> 'commit_sha' AS analysed_sha, p.gh_created_at,
       p.gh_updated_at, p.created_at, p.updated_at,
       r.full_name AS repository
FROM pull_requests p
JOIN repositories r ON r.id = p.repository_id
WHERE p.repository_id = %(repository_id)s::bigint
  AND (%(state)s::text IS NULL OR p.state = %(state)s::text)
ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC
LIMIT %(limit)s::int OFFSET %(offset)s::int;

-- name: api_insights_for_pr
-- With the PR's author (the /flutter insight rows show it).
SELECT i.*, r.full_name AS repository, p.author, p.author_avatar
FROM insights i
JOIN repositories r ON r.id = i.repository_id
LEFT JOIN pull_requests p ON p.repository_id = i.repository_id AND p.number = i.pr_number
WHERE i.pr_number = %(number)s::int
  AND (%(repository_id)s::bigint IS NULL OR i.repository_id = %(repository_id)s::bigint)
ORDER BY i.created_at DESC, i.id DESC;

-- name: api_latest_insights
-- The newest insight of each of the `limit` most recently updated PRs that have one (one
-- repository's, or every repository's, read per repository in the order of
-- pull_requests_repo_updated_idx as api_list_prs does), in that order.
SELECT i.*, r.full_name AS repository, p.author, p.author_avatar
FROM (
    SELECT p.* FROM repositories r
    CROSS JOIN LATERAL (
        SELECT p.id, p.repository_id, p.number, p.author, p.author_avatar, p.gh_updated_at
        FROM pull_requests p
        WHERE p.repository_id = r.id AND p.latest_insight IS NOT NULL
        ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC
        LIMIT %(limit)s::int
    ) p
    WHERE (%(repository_id)s::bigint IS NULL OR r.id = %(repository_id)s::bigint)
    ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC
    LIMIT %(limit)s::int
) p
JOIN repositories r ON r.id = p.repository_id
CROSS JOIN LATERAL (
    SELECT * FROM insights i
    WHERE i.repository_id = p.repository_id AND i.pr_number = p.number
    ORDER BY i.created_at DESC, i.id DESC
    LIMIT 1
) i
ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC;

-- name: api_pr_history
-- The last `per_pr` history rows of each PR, oldest first per PR.
SELECT h.pull_request_id, h.version, h.status_pr, h.status_build, h.status_approval,
       h.status_merge, h.status, h.source_event, h.at
FROM unnest(%(pr_ids)s::bigint[]) AS k (id)
CROSS JOIN LATERAL (
    SELECT * FROM pr_history
    WHERE pull_request_id = k.id
    ORDER BY version DESC
    LIMIT %(per_pr)s::int
) h
ORDER BY h.pull_request_id, h.version;

-- name: api_repository_known
SELECT 1 AS found FROM repositories WHERE id = %(repository_id)s::bigint;

-- name: api_pr
-- One PR with its whole description: the named repository's, else each repository's PR of
-- that number (the caller refuses more than one).
SELECT p.id, p.repository_id, p.number, p.title, p.body, p.author, p.author_avatar, p.head_sha,
       p.head_ref, p.base_ref, p.is_draft, p.state, p.html_url, p.files_changed, p.changed_files,
       p.additions, p.deletions, p.status_pr, p.status_build, p.status_approval, p.status_merge,
       p.status, p.risk_level, p.gh_created_at, p.gh_updated_at, p.created_at, p.updated_at,
       r.full_name AS repository
FROM pull_requests p
JOIN repositories r ON r.id = p.repository_id
WHERE p.number = %(number)s::int
  AND (%(repository_id)s::bigint IS NULL OR p.repository_id = %(repository_id)s::bigint)
ORDER BY p.gh_updated_at DESC NULLS LAST, p.id DESC
LIMIT 2;

-- name: api_pr_exists
SELECT 1 AS found FROM pull_requests
WHERE number = %(number)s::int
  AND (%(repository_id)s::bigint IS NULL OR repository_id = %(repository_id)s::bigint)
LIMIT 1;

-- name: api_repositories
-- Most recently active first; counts per repository through its (repository_id, ...) index.
SELECT r.*, c.open_prs, c.total_prs, c.merged_prs, c.closed_prs, c.draft_prs
FROM repositories r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE p.state = 'open') AS open_prs, count(*) AS total_prs,
           count(*) FILTER (WHERE p.state = 'merged') AS merged_prs,
           count(*) FILTER (WHERE p.state = 'closed') AS closed_prs,
           count(*) FILTER (WHERE p.state = 'open' AND p.is_draft) AS draft_prs
    FROM pull_requests p WHERE p.repository_id = r.id
) c
WHERE (%(repository_id)s::bigint IS NULL OR r.id = %(repository_id)s::bigint)
ORDER BY r.last_activity DESC, r.id DESC
LIMIT %(limit)s::int;

-- name: api_list_builds
SELECT b.*, r.full_name AS repository
FROM builds b
JOIN repositories r ON r.id = b.repository_id
WHERE (%(repository_id)s::bigint IS NULL OR b.repository_id = %(repository_id)s::bigint)
  AND (%(branch)s::text IS NULL OR b.branch = %(branch)s::text)
  AND (%(status)s::text IS NULL OR b.status = %(status)s::text)
ORDER BY b.created_at DESC, b.id DESC
LIMIT %(limit)s::int OFFSET %(offset)s::int;

-- name: api_build_by_id
SELECT b.*, r.full_name AS repository
FROM builds b
JOIN repositories r ON r.id = b.repository_id
WHERE b.id = %(id)s::bigint;

-- name: api_build_metrics
-- Builds that started (or, without a start time, were first seen) inside the window.
SELECT count(*) AS build_count,
       count(*) FILTER (WHERE status = 'success') AS successes,
       count(*) FILTER (WHERE status = 'failed') AS failures,
       avg(duration_seconds) FILTER (
           WHERE status IN ('success', 'failed') AND duration_seconds IS NOT NULL
       ) AS avg_duration
FROM builds
WHERE (%(repository_id)s::bigint IS NULL OR repository_id = %(repository_id)s::bigint)
  AND COALESCE(started_at, created_at) >= now() - make_interval(days => %(days)s::int);

-- name: api_last_build
SELECT status, updated_at FROM builds
WHERE (%(repository_id)s::bigint IS NULL OR repository_id = %(repository_id)s::bigint)
ORDER BY COALESCE(started_at, created_at) DESC, id DESC
LIMIT 1;

-- name: api_risk_outcomes
-- Per risk level, the insights written in the window and how many of them met each outcome
-- (docs/RISK_MODEL.md, "Outcomes"): a failed build of the head, the PR closed unmerged at that head, a
-- revert, a follow-up change of the same files.
SELECT i.risk_level, count(*) AS insights,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM builds b
           WHERE b.repository_id = i.repository_id AND b.commit_sha = i.commit_sha
             AND b.status = 'failed')) AS build_failed,
       count(*) FILTER (WHERE p.state = 'closed' AND p.head_sha = i.commit_sha)
           AS closed_unmerged,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM insight_outcomes o
           WHERE o.insight_id = i.id AND o.outcome = 'reverted')) AS reverted,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM insight_outcomes o
           WHERE o.insight_id = i.id AND o.outcome = 'follow_up')) AS follow_up
FROM insights i
LEFT JOIN pull_requests p ON p.id = i.pull_request_id
WHERE i.created_at >= now() - make_interval(days => %(days)s::int)
  AND (%(repository_id)s::bigint IS NULL OR i.repository_id = %(repository_id)s::bigint)
GROUP BY i.risk_level;
