-- FlowLens initial schema. Valid on PostgreSQL 14+ and YugabyteDB YSQL:
-- no advisory locks, no reliance on sequence order, plain btree indexes.

CREATE TABLE IF NOT EXISTS repositories (
    id              BIGSERIAL PRIMARY KEY,
    github_id       BIGINT UNIQUE,
    full_name       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    owner           TEXT NOT NULL,
    owner_avatar    TEXT,
    description     TEXT,
    is_private      BOOLEAN NOT NULL DEFAULT FALSE,
    default_branch  TEXT,
    language        TEXT,
    stars           INTEGER NOT NULL DEFAULT 0,
    forks           INTEGER NOT NULL DEFAULT 0,
    html_url        TEXT,
    -- The payload's own repository.updated_at; older payloads never overwrite newer metadata.
    source_updated_at TIMESTAMPTZ,
    last_activity   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pull_requests (
    id              BIGSERIAL PRIMARY KEY,
    repository_id   BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    github_id       BIGINT,
    title           TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL DEFAULT '',
    author          TEXT NOT NULL DEFAULT '',
    author_avatar   TEXT,
    head_sha        TEXT,
    head_ref        TEXT,
    base_ref        TEXT,
    is_draft        BOOLEAN NOT NULL DEFAULT FALSE,
    state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'merged')),
    html_url        TEXT,
    files_changed   JSONB NOT NULL DEFAULT '[]'::jsonb,
    changed_files   INTEGER NOT NULL DEFAULT 0,
    additions       INTEGER NOT NULL DEFAULT 0,
    deletions       INTEGER NOT NULL DEFAULT 0,
    status_pr       TEXT NOT NULL DEFAULT 'opened'
                    CHECK (status_pr IN ('opened', 'updated', 'closed')),
    status_build    TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status_build IN ('pending', 'building', 'buildPassed', 'buildFailed')),
    status_approval TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status_approval IN ('pending', 'approved', 'changes_requested')),
    status_merge    TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status_merge IN ('pending', 'merged', 'closed')),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'building', 'buildPassed', 'buildFailed',
                                      'approved', 'merged', 'closed')),
    -- Bumped in every transaction that changes what clients see; orders the change feed per PR.
    version         BIGINT NOT NULL DEFAULT 1,
    -- The payload's pull_request.updated_at of the state stored here (out-of-order guard).
    source_updated_at TIMESTAMPTZ,
    -- Latest insight, denormalised so one row is the whole client view.
    risk_level      TEXT CHECK (risk_level IN ('low', 'medium', 'high')),
    latest_insight  JSONB,
    -- A poller's lease on analysing this PR, so two pollers never analyse one head twice.
    analysis_owner  TEXT,
    analysis_leased_until TIMESTAMPTZ,
    gh_created_at   TIMESTAMPTZ,
    gh_updated_at   TIMESTAMPTZ,
    merged_at       TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, number)
);
CREATE INDEX IF NOT EXISTS pull_requests_repo_updated_idx
    ON pull_requests (repository_id, gh_updated_at DESC NULLS LAST);
CREATE INDEX IF NOT EXISTS pull_requests_head_sha_idx
    ON pull_requests (repository_id, head_sha);

-- Append-only: one row per visible change of a PR (never an array on the PR row).
CREATE TABLE IF NOT EXISTS pr_history (
    id              BIGSERIAL PRIMARY KEY,
    pull_request_id BIGINT NOT NULL REFERENCES pull_requests (id) ON DELETE CASCADE,
    version         BIGINT NOT NULL,
    status_pr       TEXT NOT NULL,
    status_build    TEXT NOT NULL,
    status_approval TEXT NOT NULL,
    status_merge    TEXT NOT NULL,
    status          TEXT NOT NULL,
    source_event    TEXT NOT NULL,
    delivery_id     TEXT,
    at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS pr_history_pr_idx ON pr_history (pull_request_id, version);

-- Each reviewer's reviews; approval state is derived from their latest deciding review.
CREATE TABLE IF NOT EXISTS reviews (
    pull_request_id BIGINT NOT NULL REFERENCES pull_requests (id) ON DELETE CASCADE,
    review_id       BIGINT NOT NULL,
    reviewer        TEXT NOT NULL,
    state           TEXT NOT NULL,
    commit_sha      TEXT,
    submitted_at    TIMESTAMPTZ,
    PRIMARY KEY (pull_request_id, review_id)
);

CREATE TABLE IF NOT EXISTS builds (
    id               BIGSERIAL PRIMARY KEY,
    repository_id    BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    external_id      TEXT NOT NULL,
    workflow_name    TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'success', 'failed')),
    conclusion       TEXT,
    branch           TEXT,
    commit_sha       TEXT,
    pr_number        INTEGER,
    triggered_by     TEXT,
    url              TEXT,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    duration_seconds DOUBLE PRECISION,
    -- The payload's own timestamp of this build state (out-of-order guard).
    source_updated_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, provider, external_id)
);
CREATE INDEX IF NOT EXISTS builds_created_idx ON builds (created_at DESC);
CREATE INDEX IF NOT EXISTS builds_repo_created_idx ON builds (repository_id, created_at DESC);
CREATE INDEX IF NOT EXISTS builds_sha_idx ON builds (repository_id, commit_sha);

CREATE TABLE IF NOT EXISTS raw_events (
    id              BIGSERIAL PRIMARY KEY,
    delivery_id     TEXT NOT NULL UNIQUE,
    event           TEXT NOT NULL,
    action          TEXT,
    repository      TEXT,
    pr_number       INTEGER,
    head_sha        TEXT,
    payload         JSONB NOT NULL,
    -- Whether the poller has something to do for this event (analysis of a head sha).
    needs_analysis  BOOLEAN NOT NULL DEFAULT FALSE,
    processed       BOOLEAN NOT NULL DEFAULT FALSE,
    failed          BOOLEAN NOT NULL DEFAULT FALSE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    leased_until    TIMESTAMPTZ,
    lease_owner     TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at    TIMESTAMPTZ
);
-- The poller's hot path: pending events only, small however many events are kept.
CREATE INDEX IF NOT EXISTS raw_events_pending_idx
    ON raw_events (next_attempt_at) WHERE NOT processed AND NOT failed;
CREATE INDEX IF NOT EXISTS raw_events_failed_idx ON raw_events (id) WHERE failed;

CREATE TABLE IF NOT EXISTS insights (
    id               BIGSERIAL PRIMARY KEY,
    repository_id    BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    pull_request_id  BIGINT REFERENCES pull_requests (id) ON DELETE CASCADE,
    pr_number        INTEGER NOT NULL,
    commit_sha       TEXT NOT NULL,
    risk_level       TEXT NOT NULL CHECK (risk_level IN ('low', 'medium', 'high')),
    summary          TEXT NOT NULL,
    recommendation   TEXT NOT NULL,
    key_changes      JSONB NOT NULL DEFAULT '[]'::jsonb,
    confidence_score DOUBLE PRECISION NOT NULL
                     CHECK (confidence_score >= 0 AND confidence_score <= 1),
    model            TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, pr_number, commit_sha)
);
CREATE INDEX IF NOT EXISTS insights_pr_idx ON insights (repository_id, pr_number, created_at DESC);

-- The change feed the API tails: one row per (PR, version), carrying the pr_update payload.
CREATE TABLE IF NOT EXISTS change_feed (
    id              BIGSERIAL PRIMARY KEY,
    repository      TEXT NOT NULL,
    pull_request_id BIGINT NOT NULL,
    pr_number       INTEGER NOT NULL,
    version         BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (pull_request_id, version)
);
CREATE INDEX IF NOT EXISTS change_feed_created_idx ON change_feed (created_at);

CREATE TABLE IF NOT EXISTS alert_history (
    id              BIGSERIAL PRIMARY KEY,
    subject_kind    TEXT NOT NULL CHECK (subject_kind IN ('build', 'insight')),
    subject_id      BIGINT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (subject_kind, subject_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_history_pending_idx
    ON alert_history (next_attempt_at) WHERE status = 'pending';
