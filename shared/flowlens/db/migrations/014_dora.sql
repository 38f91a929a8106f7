-- DORA's four keys (flowlens.dora, docs/METRICS.md): deployments with their latest terminal
-- outcome, recorded by ingest out-of-order safe; the workflow fallback's deploy runs in the same
-- table (kind 'workflow'); the earliest commit timestamp pushed to each branch.
CREATE TABLE IF NOT EXISTS deployments (
    id            BIGSERIAL PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('deployment', 'workflow')),
    github_id     BIGINT NOT NULL,  -- the deployment's id, or the workflow run's
    environment   TEXT NOT NULL,
    sha           TEXT,
    ref           TEXT,
    created_at    TIMESTAMPTZ,
    outcome       TEXT CHECK (outcome IN ('success', 'failed')),
    outcome_at    TIMESTAMPTZ,      -- the deciding status's own created_at (a run's updated_at)
    status_id     BIGINT,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, kind, github_id)
);
CREATE INDEX IF NOT EXISTS deployments_outcome_idx
    ON deployments (environment, outcome_at) WHERE outcome IS NOT NULL;
CREATE INDEX IF NOT EXISTS deployments_repo_outcome_idx
    ON deployments (repository_id, environment, outcome_at) WHERE outcome IS NOT NULL;

CREATE TABLE IF NOT EXISTS branch_first_commits (
    repository_id   BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    branch          TEXT NOT NULL,
    first_commit_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository_id, branch)
);

CREATE INDEX IF NOT EXISTS pull_requests_merged_idx
    ON pull_requests (repository_id, merged_at) WHERE merged_at IS NOT NULL;
