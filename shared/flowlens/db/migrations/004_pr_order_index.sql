-- Brings databases created before migration 001 changed in place up to date (001 now creates
-- these directly, so on a newer database this only rebuilds an index): PR lists order by
-- gh_updated_at DESC NULLS LAST, which an index built DESC (nulls first) cannot serve without
-- a sort, and build_updated_at was never written.
DROP INDEX IF EXISTS pull_requests_repo_updated_idx;
CREATE INDEX pull_requests_repo_updated_idx
    ON pull_requests (repository_id, gh_updated_at DESC NULLS LAST);
ALTER TABLE pull_requests DROP COLUMN IF EXISTS build_updated_at;
