-- The risk model's kept history (flowlens.risk.history): per author and per file of a
-- repository, updated one change at a time and read for one change's files.
CREATE TABLE IF NOT EXISTS risk_changes (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    change_key    TEXT NOT NULL,
    author        TEXT NOT NULL,
    PRIMARY KEY (repository_id, change_key)
);
CREATE TABLE IF NOT EXISTS risk_authors (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    author        TEXT NOT NULL,
    changes       INTEGER NOT NULL,
    PRIMARY KEY (repository_id, author)
);
CREATE TABLE IF NOT EXISTS risk_files (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    changes       INTEGER NOT NULL,
    authors       INTEGER NOT NULL,
    last_at       TIMESTAMPTZ NOT NULL,
    last_change   TEXT NOT NULL,
    prev_at       TIMESTAMPTZ,  -- last_at before last_change touched the file
    prev_change   TEXT,
    PRIMARY KEY (repository_id, path)
);
CREATE TABLE IF NOT EXISTS risk_file_authors (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    author        TEXT NOT NULL,
    changes       INTEGER NOT NULL,
    PRIMARY KEY (repository_id, path, author)
);
CREATE TABLE IF NOT EXISTS risk_change_files (
    repository_id BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    change_key    TEXT NOT NULL,
    path          TEXT NOT NULL,
    PRIMARY KEY (repository_id, change_key, path)
);

-- The model's probability and top drivers, beside whichever analyser answered.
ALTER TABLE insights ADD COLUMN IF NOT EXISTS risk_score DOUBLE PRECISION
    CHECK (risk_score IS NULL OR (risk_score >= 0 AND risk_score <= 1));
ALTER TABLE insights ADD COLUMN IF NOT EXISTS risk_drivers JSONB NOT NULL DEFAULT '[]'::jsonb;

-- What happened after an analysed head, when it is not in builds or pull_requests already:
-- a later PR or push reverted it, or a later change touched its files within the window.
CREATE TABLE IF NOT EXISTS insight_outcomes (
    insight_id  BIGINT NOT NULL REFERENCES insights (id) ON DELETE CASCADE,
    outcome     TEXT NOT NULL CHECK (outcome IN ('reverted', 'follow_up')),
    observed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    detail      TEXT,
    PRIMARY KEY (insight_id, outcome)
);
CREATE INDEX IF NOT EXISTS insights_created_idx ON insights (created_at);
CREATE INDEX IF NOT EXISTS insights_commit_idx ON insights (repository_id, commit_sha);
