-- name: ingest_record_raw_events
-- A batch of deliveries' raw events in one statement; returns the delivery ids inserted. A known
-- id inserts nothing (a duplicate): the id is unique, so a concurrent duplicate waits for the
-- other transaction's commit, then inserts nothing. Payloads (compressed bytes, see
-- ingest.store.pack_payload) go in binary format: as a text array literal each would be escaped.
INSERT INTO raw_events (delivery_id, event, action, repository, pr_number, head_sha, payload,
                        needs_analysis, repository_github_id)
SELECT * FROM unnest(%(delivery_ids)b::text[], %(events)b::text[], %(actions)b::text[],
                     %(repositories)b::text[], %(pr_numbers)b::int[], %(head_shas)b::text[],
                     %(payloads)b::bytea[], %(needs_analysis)b::boolean[],
                     %(repository_github_ids)b::bigint[])
ON CONFLICT (delivery_id) DO NOTHING
RETURNING delivery_id, received_at;

-- name: ingest_record_unapplied_event
-- A delivery kept whole with the reason it is not applied (processed: nothing to analyse until
-- it is reapplied); returns nothing for a known id (a duplicate).
INSERT INTO raw_events (delivery_id, event, action, payload, processed, processed_at,
                        unapplied_reason)
VALUES (%(delivery_id)s, %(event)s, %(action)s, %(payload)b, TRUE, now(), %(reason)s)
ON CONFLICT (delivery_id) DO NOTHING
RETURNING id;

-- name: ingest_find_repositories
-- Every repository row one of the GitHub ids or full names may refer to.
SELECT * FROM repositories
WHERE github_id = ANY(%(github_ids)b::bigint[]) OR full_name = ANY(%(full_names)b::text[]);

-- name: ingest_insert_repository
INSERT INTO repositories (github_id, full_name, name, owner, owner_avatar, description,
                          is_private, default_branch, language, stars, forks, html_url,
                          source_updated_at)
VALUES (%(github_id)s, %(full_name)s, %(name)s, %(owner)s, %(owner_avatar)s, %(description)s,
        %(is_private)s, %(default_branch)s, %(language)s, COALESCE(%(stars)s, 0),
        COALESCE(%(forks)s, 0), %(html_url)s, %(source_updated_at)s)
ON CONFLICT (full_name) DO UPDATE
    SET github_id = COALESCE(repositories.github_id, EXCLUDED.github_id)
RETURNING *;

-- name: ingest_update_repository
UPDATE repositories SET
    github_id = COALESCE(%(github_id)s, github_id),
    full_name = %(full_name)s,
    name = %(name)s,
    owner = %(owner)s,
    owner_avatar = COALESCE(%(owner_avatar)s, owner_avatar),
    description = %(description)s,
    is_private = %(is_private)s,
    default_branch = COALESCE(%(default_branch)s, default_branch),
    language = %(language)s,
    stars = COALESCE(%(stars)s, stars),
    forks = COALESCE(%(forks)s, forks),
    html_url = COALESCE(%(html_url)s, html_url),
    source_updated_at = COALESCE(%(source_updated_at)s, source_updated_at),
    last_activity = now(),
    updated_at = now()
WHERE id = %(id)s
RETURNING *;

-- name: ingest_ensure_pull_requests
-- In key order, so two transactions creating the same PRs queue behind each other.
INSERT INTO pull_requests (repository_id, number)
SELECT * FROM unnest(%(repository_ids)b::bigint[], %(numbers)b::int[]) AS k (r, n)
ORDER BY r, n
ON CONFLICT (repository_id, number) DO NOTHING;

-- name: ingest_lock_pull_requests
-- plan: per call
-- Locked in key order, so two transactions locking overlapping sets cannot deadlock.
SELECT p.* FROM pull_requests AS p
JOIN unnest(%(repository_ids)b::bigint[], %(numbers)b::int[]) AS k (repository_id, number)
    ON p.repository_id = k.repository_id AND p.number = k.number
ORDER BY p.repository_id, p.number
FOR UPDATE OF p;

-- name: ingest_lock_repository_prs
-- Every PR of a repository that was renamed or moved, locked in key order (as
-- lock_pull_requests locks), to announce each under the new name.
SELECT p.* FROM pull_requests AS p
WHERE p.repository_id = %(repository_id)s
ORDER BY p.number
FOR UPDATE;

-- name: ingest_update_pull_requests
-- plan: per call
-- The state of every PR a transaction changed (a JSON array of rows, each PR once), in one
-- statement; updated_at moves for the ones clients will see changed. A column whose keep_ flag
-- is true is left as stored (its value is not sent), so a long one keeps its TOASTed value.
-- `ids` lists the same PRs: the planner takes json_to_recordset for 100 rows whatever it
-- holds, and without an indexed condition would hash-join it against a scan of the whole
-- table once that looks cheaper.
UPDATE pull_requests AS p SET
    github_id = r.github_id, title = r.title,
    body = CASE WHEN r.keep_body THEN p.body ELSE r.body END, author = r.author,
    author_avatar = r.author_avatar, head_sha = r.head_sha, head_ref = r.head_ref,
    base_ref = r.base_ref, is_draft = r.is_draft, state = r.state, html_url = r.html_url,
    files_changed = CASE WHEN r.keep_files_changed THEN p.files_changed ELSE r.files_changed END,
    changed_files = r.changed_files,
    additions = r.additions, deletions = r.deletions, status_pr = r.status_pr,
    status_build = r.status_build, status_approval = r.status_approval,
    status_merge = r.status_merge, status = r.status, risk_level = r.risk_level,
    latest_insight = CASE WHEN r.keep_latest_insight THEN p.latest_insight
                          ELSE r.latest_insight END,
    source_updated_at = r.source_updated_at,
    gh_created_at = r.gh_created_at, gh_updated_at = r.gh_updated_at,
    merged_at = r.merged_at, closed_at = r.closed_at, version = r.version,
    updated_at = CASE WHEN r.bumped THEN now() ELSE p.updated_at END
FROM json_to_recordset(%(rows)s::json) AS r (
    id BIGINT, github_id BIGINT, title TEXT, body TEXT, author TEXT, author_avatar TEXT,
    head_sha TEXT, head_ref TEXT, base_ref TEXT, is_draft BOOLEAN, state TEXT, html_url TEXT,
    files_changed JSONB, changed_files INTEGER, additions INTEGER, deletions INTEGER,
    status_pr TEXT, status_build TEXT, status_approval TEXT, status_merge TEXT, status TEXT,
    risk_level TEXT, latest_insight JSONB, source_updated_at TIMESTAMPTZ,
    gh_created_at TIMESTAMPTZ, gh_updated_at TIMESTAMPTZ, merged_at TIMESTAMPTZ,
    closed_at TIMESTAMPTZ, version BIGINT, bumped BOOLEAN, keep_body BOOLEAN,
    keep_files_changed BOOLEAN, keep_latest_insight BOOLEAN)
WHERE p.id = ANY(%(ids)b::bigint[]) AND p.id = r.id
RETURNING p.id, p.updated_at;

-- name: ingest_touch_repositories
-- Only every few seconds (ingest.store.ACTIVITY_EVERY): a repository row updated by every
-- delivery would serialise ingest.
UPDATE repositories SET last_activity = now()
WHERE id = ANY(%(ids)b::bigint[]) AND last_activity < now() - %(every)s::interval;

-- name: ingest_record_pr_changes
-- Visible changes of PRs (a JSON array, in order): their history rows, their change-feed rows
-- and, when notify is true, one wake-up hint per repository (delivered at commit; never needed
-- for correctness), in one statement.
-- The repository's name is read here, not taken from the caller: a rename that committed
-- while this transaction waited for a PR's lock (it locks them all) is in this statement's
-- snapshot, so a change after its announcement never goes out under the old name.
WITH c AS (
    SELECT c.n, c.pull_request_id, c.version, c.status_pr, c.status_build, c.status_approval,
           c.status_merge, c.status, c.source_event, c.delivery_id, c.pr_number, c.kind,
           r.full_name AS repository,
           CASE WHEN r.full_name = c.repository THEN c.payload
                ELSE jsonb_set(
                    jsonb_set(c.payload::jsonb, '{data,repository}', to_jsonb(r.full_name)),
                    '{data,pull_request,repositoryName}', to_jsonb(r.full_name))::json
           END AS payload
    FROM ROWS FROM (json_to_recordset(%(changes)s::json) AS (
        pull_request_id BIGINT, version BIGINT, status_pr TEXT, status_build TEXT,
        status_approval TEXT, status_merge TEXT, status TEXT, source_event TEXT,
        delivery_id TEXT, repository_id BIGINT, repository TEXT, pr_number INTEGER, kind TEXT,
        payload JSON)) WITH ORDINALITY AS c (
        pull_request_id, version, status_pr, status_build, status_approval, status_merge,
        status, source_event, delivery_id, repository_id, repository, pr_number, kind, payload,
        n)
    JOIN repositories AS r ON r.id = c.repository_id
), history AS (
    INSERT INTO pr_history (pull_request_id, version, status_pr, status_build, status_approval,
                            status_merge, status, source_event, delivery_id)
    SELECT pull_request_id, version, status_pr, status_build, status_approval, status_merge,
           status, source_event, delivery_id
    FROM c ORDER BY n
), feed AS (
    INSERT INTO change_feed (repository, pull_request_id, pr_number, version, kind, payload)
    SELECT repository, pull_request_id, pr_number, version, kind, payload FROM c ORDER BY n
)
SELECT pg_notify('flowlens_feed', r.repository)
FROM (SELECT DISTINCT repository FROM c) AS r
WHERE %(notify)s::boolean;

-- name: ingest_prs_by_head_sha
-- Closed and merged PRs too: a build that ends after the merge still ends for its PR.
SELECT number FROM pull_requests
WHERE repository_id = %(repository_id)s AND head_sha = %(sha)s;

-- name: ingest_pr_checks
-- plan: per call
-- What PRs' derived state needs, in one statement, for each (repository, PR number, sha) key:
-- kind 'build', the status of every build of the sha, where the newest build of one rerun key
-- counts: a workflow run's workflow and event (a re-run keeps its run id; a new run of the
-- workflow replaces it), a job's or check run's name (a re-run has a new id), else the build's
-- own id; none when sha is NULL; kind 'review', each reviewer's latest deciding review.
SELECT k.repository_id, k.number, k.sha, c.kind, c.state
FROM unnest(%(repository_ids)b::bigint[], %(numbers)b::int[], %(shas)b::text[])
    AS k (repository_id, number, sha)
JOIN pull_requests AS p ON p.repository_id = k.repository_id AND p.number = k.number
CROSS JOIN LATERAL (
    SELECT 'build' AS kind, newest.status AS state FROM (
        SELECT DISTINCT ON (provider, rerun_key) status FROM (
            SELECT provider, status, source_updated_at, id,
                   COALESCE(rerun_key, CASE
                       WHEN provider IN ('github_actions_job', 'check_run') THEN workflow_name
                       ELSE external_id END) AS rerun_key
            FROM builds
            WHERE repository_id = k.repository_id AND commit_sha = k.sha
        ) AS b
        ORDER BY provider, rerun_key, source_updated_at DESC NULLS LAST, id DESC
    ) AS newest
    UNION ALL
    SELECT 'review' AS kind, latest.state FROM (
        SELECT DISTINCT ON (reviewer) reviewer, state FROM reviews
        WHERE pull_request_id = p.id AND state <> 'commented'
        ORDER BY reviewer, submitted_at DESC NULLS LAST, review_id DESC
    ) AS latest
) AS c;

-- name: ingest_upsert_build
-- Never backwards: an older payload (or a lower stage at the same instant) leaves the row alone.
INSERT INTO builds (repository_id, provider, external_id, workflow_name, status, conclusion,
                    branch, commit_sha, pr_number, triggered_by, url, started_at, finished_at,
                    duration_seconds, source_updated_at, rerun_key)
VALUES (%(repository_id)s, %(provider)s, %(external_id)s, %(workflow_name)s, %(status)s,
        %(conclusion)s, %(branch)s, %(commit_sha)s, %(pr_number)s, %(triggered_by)s, %(url)s,
        %(started_at)s, %(finished_at)s, %(duration_seconds)s, %(source_updated_at)s,
        %(rerun_key)s)
ON CONFLICT (repository_id, provider, external_id) DO UPDATE SET
    workflow_name = EXCLUDED.workflow_name,
    rerun_key = COALESCE(EXCLUDED.rerun_key, builds.rerun_key),
    status = EXCLUDED.status,
    conclusion = EXCLUDED.conclusion,
    branch = COALESCE(EXCLUDED.branch, builds.branch),
    commit_sha = COALESCE(EXCLUDED.commit_sha, builds.commit_sha),
    pr_number = COALESCE(EXCLUDED.pr_number, builds.pr_number),
    triggered_by = COALESCE(EXCLUDED.triggered_by, builds.triggered_by),
    url = COALESCE(EXCLUDED.url, builds.url),
    -- A commit status's run starts at its first pending state: later pending ones (progress
    -- reports) keep that start.
    started_at = CASE WHEN EXCLUDED.provider = 'status' AND builds.status IN ('queued', 'running')
                      THEN COALESCE(builds.started_at, EXCLUDED.started_at)
                      ELSE COALESCE(EXCLUDED.started_at, builds.started_at) END,
    -- A re-run (same id, newer, not finished) clears the old finish; a finished report
    -- without its own times keeps what is known, and one without its own start that ends a
    -- run under way measures from that run's start.
    finished_at = CASE WHEN EXCLUDED.status IN ('queued', 'running') THEN NULL
                       ELSE COALESCE(EXCLUDED.finished_at, builds.finished_at) END,
    duration_seconds = CASE
        WHEN EXCLUDED.status IN ('queued', 'running') THEN NULL
        WHEN EXCLUDED.duration_seconds IS NOT NULL THEN EXCLUDED.duration_seconds
        WHEN builds.status IN ('queued', 'running')
            THEN GREATEST(0, EXTRACT(EPOCH FROM EXCLUDED.finished_at - builds.started_at))::float8
        WHEN EXCLUDED.started_at IS NULL AND EXCLUDED.finished_at IS NULL
            THEN builds.duration_seconds
        END,
    source_updated_at = COALESCE(EXCLUDED.source_updated_at, builds.source_updated_at),
    updated_at = now()
WHERE EXCLUDED.source_updated_at > builds.source_updated_at
   -- Same instant, or a report without timestamps: only a later stage may move the build.
   OR ((EXCLUDED.source_updated_at IS NULL OR builds.source_updated_at IS NULL
        OR EXCLUDED.source_updated_at = builds.source_updated_at)
       AND (CASE EXCLUDED.status WHEN 'queued' THEN 0 WHEN 'running' THEN 1 ELSE 2 END)
           >= (CASE builds.status WHEN 'queued' THEN 0 WHEN 'running' THEN 1 ELSE 2 END))
RETURNING id;

-- name: ingest_build_id
SELECT id FROM builds
WHERE repository_id = %(repository_id)s AND provider = %(provider)s
  AND external_id = %(external_id)s;

-- name: ingest_upsert_review
INSERT INTO reviews (pull_request_id, review_id, reviewer, state, commit_sha, submitted_at)
VALUES (%(pull_request_id)s, %(review_id)s, %(reviewer)s, %(state)s, %(commit_sha)s,
        %(submitted_at)s)
ON CONFLICT (pull_request_id, review_id) DO UPDATE SET
    -- A dismissal is final whatever order the two deliveries arrive in.
    state = CASE WHEN reviews.state = 'dismissed' THEN 'dismissed' ELSE EXCLUDED.state END;

-- name: ingest_repository_holding_name
-- In any letter case, as GitHub's names are unique: the exact spelling first (the row an
-- insert or update of the name would collide with), then GitHub repositories, then placeholders.
SELECT id, github_id, full_name, source_updated_at FROM repositories
WHERE lower(full_name) = lower(%(full_name)s) AND id IS DISTINCT FROM %(id)s::bigint
ORDER BY full_name = %(full_name)s DESC, github_id IS NULL, id
LIMIT 1;

-- name: ingest_merge_repository
-- A placeholder (made by the CI path, no GitHub id) joins the real repository renamed onto
-- its name: its builds, PRs and insights move unless the real one already has them.
WITH moved_builds AS (
    UPDATE builds b SET repository_id = %(into)s
    WHERE b.repository_id = %(from)s AND NOT EXISTS (
        SELECT 1 FROM builds x
        WHERE x.repository_id = %(into)s AND x.provider = b.provider
          AND x.external_id = b.external_id)
    RETURNING b.id
), moved_prs AS (
    UPDATE pull_requests p SET repository_id = %(into)s
    WHERE p.repository_id = %(from)s AND NOT EXISTS (
        SELECT 1 FROM pull_requests x WHERE x.repository_id = %(into)s AND x.number = p.number)
    RETURNING p.id
)
UPDATE insights i SET repository_id = %(into)s
WHERE i.repository_id = %(from)s AND NOT EXISTS (
    SELECT 1 FROM insights x
    WHERE x.repository_id = %(into)s AND x.pr_number = i.pr_number
      AND x.commit_sha = i.commit_sha);

-- name: ingest_delete_repository
DELETE FROM repositories WHERE id = %(id)s;

-- name: ingest_rename_repository_away
-- Another GitHub repository held this name before (deleted or renamed since): keep its rows,
-- under a name that frees this one.
-- new_name: flowlens.names.previous_name.
UPDATE repositories SET full_name = %(new_name)s
WHERE id = %(id)s AND full_name = %(full_name)s
RETURNING full_name;
