-- Reads that went through every repository or every build (bench/scale.py: 10,000
-- repositories, 200,000 PRs, 400,000 builds) read what they return instead.
-- GET /api/prs across repositories (api_list_prs): a page in this index's order.
CREATE INDEX IF NOT EXISTS pull_requests_updated_idx
    ON pull_requests (gh_updated_at DESC NULLS LAST, id DESC);
-- /api/metrics/summary: the builds of the window (api_build_metrics) and the latest build
-- (api_last_build), both by when a build started or, without a start, was first seen.
CREATE INDEX IF NOT EXISTS builds_started_idx
    ON builds ((COALESCE(started_at, created_at)) DESC, id DESC);
-- /api/metrics/risk asks, per insight, whether a build of its head failed (api_risk_outcomes):
-- answered from this index alone instead of reading every build of the head.
CREATE INDEX IF NOT EXISTS builds_failed_sha_idx
    ON builds (repository_id, commit_sha) WHERE status = 'failed';
-- Every request naming a repository (api_repository_id matches names case-insensitively).
CREATE INDEX IF NOT EXISTS repositories_lower_name_idx ON repositories (lower(full_name));
-- The planner picks builds_started_idx only once it has statistics on the indexed expression:
-- gathered now, not at the next automatic analyze of the table.
ANALYZE builds;
