-- GitHub App mode: the installations FlowLens's App has, and which covers each repository
-- (kept from the installation and installation_repositories webhooks).
CREATE TABLE IF NOT EXISTS github_installations (
    id           BIGINT PRIMARY KEY,  -- GitHub's installation id
    account      TEXT,
    suspended_at TIMESTAMPTZ,
    deleted_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE repositories ADD COLUMN IF NOT EXISTS installation_id BIGINT;

-- Write-back: one check run (App mode) or commit status (token mode) per analysed head,
-- updated in place. A poller duty on the work queue (flowlens.workqueue.CheckQueue): `wanted`
-- is what GitHub should show, `posted` what it was last sent; `version` moves on every new
-- want, so a send of an older want never marks a newer one done.
CREATE TABLE IF NOT EXISTS check_writes (
    id              BIGSERIAL PRIMARY KEY,
    repository_id   BIGINT NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    pull_request_id BIGINT REFERENCES pull_requests (id) ON DELETE CASCADE,
    pr_number       INTEGER NOT NULL,
    head_sha        TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('check_run', 'status')),
    wanted          TEXT NOT NULL CHECK (wanted IN ('in_progress', 'completed')),
    insight_id      BIGINT REFERENCES insights (id) ON DELETE SET NULL,
    reason          TEXT,  -- why a check was completed without an insight
    posted          TEXT CHECK (posted IN ('in_progress', 'completed')),
    external_id     BIGINT,  -- the check run's id at GitHub
    version         INTEGER NOT NULL DEFAULT 1,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    leased_until    TIMESTAMPTZ,
    lease_owner     TEXT,
    last_error      TEXT,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (repository_id, head_sha)
);
CREATE INDEX IF NOT EXISTS check_writes_due_idx ON check_writes (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS check_writes_open_idx ON check_writes (started_at)
    WHERE wanted = 'in_progress' AND status <> 'failed';
