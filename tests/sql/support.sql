-- Queries only the tests and benchmarks run (registered by tests/conftest.py and bench/).

-- from admin.sql

-- name: backends_waiting_on_lock
-- Operations and tests: sessions of this database blocked on a row lock.
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid();

-- name: terminate_backend
SELECT pg_terminate_backend(%(pid)s::int) AS terminated;

-- name: count_rows_raw_events
SELECT count(*) AS n FROM raw_events;

-- name: raw_event_by_delivery
SELECT id, delivery_id, event, action, repository, pr_number, head_sha, needs_analysis,
       processed, failed, attempts, last_error
FROM raw_events WHERE delivery_id = %(delivery_id)s;

-- name: pull_request_by_number
SELECT p.*, r.full_name AS repository
FROM pull_requests p JOIN repositories r ON r.id = p.repository_id
WHERE r.full_name = %(repository)s AND p.number = %(number)s;

-- name: pr_history_for
SELECT h.* FROM pr_history h
JOIN pull_requests p ON p.id = h.pull_request_id
JOIN repositories r ON r.id = p.repository_id
WHERE r.full_name = %(repository)s AND p.number = %(number)s
ORDER BY h.version;

-- name: change_feed_for
SELECT f.* FROM change_feed f
WHERE f.repository = %(repository)s AND f.pr_number = %(number)s
ORDER BY f.version;

-- name: builds_for_repository
SELECT b.*, r.full_name AS repository FROM builds b
JOIN repositories r ON r.id = b.repository_id
WHERE r.full_name = %(repository)s
ORDER BY b.id;

-- name: repository_by_github_id
SELECT * FROM repositories WHERE github_id = %(github_id)s;

-- name: table_counts
SELECT (SELECT count(*) FROM raw_events) AS raw_events,
       (SELECT count(*) FROM repositories) AS repositories,
       (SELECT count(*) FROM pull_requests) AS pull_requests,
       (SELECT count(*) FROM pr_history) AS pr_history,
       (SELECT count(*) FROM builds) AS builds,
       (SELECT count(*) FROM reviews) AS reviews,
       (SELECT count(*) FROM change_feed) AS change_feed;

-- name: raw_event_owner
SELECT lease_owner FROM raw_events WHERE delivery_id = %(delivery_id)s;

-- from alerts.sql

-- name: alert_history_list
SELECT id, subject_kind, subject_id, channel, status, attempts, deferrals, next_attempt_at,
       last_error, created_at, sent_at
FROM alert_history
ORDER BY id DESC
LIMIT %(limit)s;

-- name: alert_make_due
-- Tests and operators: retry a pending alert now rather than after its backoff.
UPDATE alert_history SET next_attempt_at = now() WHERE status = 'pending';

-- from poller.sql

-- name: pending_event_count
SELECT count(*) AS n FROM raw_events WHERE NOT processed AND NOT failed;

-- name: insights_for_pr
SELECT i.* FROM insights i JOIN repositories r ON r.id = i.repository_id
WHERE r.full_name = %(repository)s AND i.pr_number = %(number)s
ORDER BY i.created_at DESC, i.id DESC;

-- from sync.sql

-- name: sync_state_get
SELECT * FROM sync_state WHERE repository = %(repository)s;

-- name: sync_snapshot_repository
-- Tests and operators: what the sync (or webhooks) left for one repository.
SELECT * FROM repositories WHERE full_name = %(repository)s;

-- name: sync_snapshot_pull_requests
SELECT p.* FROM pull_requests p
JOIN repositories r ON r.id = p.repository_id
WHERE r.full_name = %(repository)s
ORDER BY p.number;

-- name: sync_snapshot_reviews
SELECT p.number, v.review_id, v.reviewer, v.state, v.commit_sha, v.submitted_at
FROM reviews v
JOIN pull_requests p ON p.id = v.pull_request_id
JOIN repositories r ON r.id = p.repository_id
WHERE r.full_name = %(repository)s
ORDER BY p.number, v.review_id;

-- name: sync_snapshot_analysis
-- The (PR, head) pairs queued for analysis: what the poller would analyse.
SELECT DISTINCT pr_number, head_sha FROM raw_events
WHERE repository = %(repository)s AND needs_analysis
ORDER BY pr_number, head_sha;

-- name: sync_snapshot_deliveries
SELECT delivery_id, event, action FROM raw_events
WHERE delivery_id LIKE 'sync:%%'
ORDER BY id;

-- name: sync_make_due
-- Operators and tests: sync this repository at the next chance rather than at next_run_at.
UPDATE sync_state SET next_run_at = now() WHERE repository = %(repository)s;


-- name: schema_columns
SELECT table_name, column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_schema = current_schema()
ORDER BY table_name, ordinal_position;

-- name: schema_indexes
SELECT tablename AS table_name, indexname AS index_name
FROM pg_indexes
WHERE schemaname = current_schema()
ORDER BY tablename, indexname;

-- from retention.sql

-- name: age_raw_event
UPDATE raw_events SET received_at = now() - make_interval(days => %(days)s::int)
WHERE delivery_id = %(delivery_id)s;

-- name: age_pr_history
-- A PR's history rows up to `version`, dated `days` ago.
UPDATE pr_history SET at = now() - make_interval(days => %(days)s::int)
WHERE pull_request_id = %(pull_request_id)s AND version <= %(version)s;

-- name: age_change_feed
UPDATE change_feed SET created_at = now() - make_interval(secs => %(seconds)s::float8)
WHERE pull_request_id = %(pull_request_id)s AND version = %(version)s;

-- name: raw_event_retention_view
SELECT delivery_id, event, processed, failed, unapplied_reason IS NOT NULL AS unapplied,
       payload IS NOT NULL AS has_payload
FROM raw_events ORDER BY id;

-- name: change_feed_keys
SELECT pull_request_id, version FROM change_feed ORDER BY pull_request_id, version;

-- name: pr_history_versions
SELECT pull_request_id, version FROM pr_history ORDER BY pull_request_id, version;

-- name: make_event_due
UPDATE raw_events SET next_attempt_at = now() WHERE delivery_id = %(delivery_id)s;

-- name: age_builds
UPDATE builds SET created_at = now() - make_interval(days => %(days)s::int),
                  updated_at = now() - make_interval(days => %(days)s::int);

-- name: build_shas
SELECT commit_sha FROM builds ORDER BY id;

-- name: touch_builds
UPDATE builds SET updated_at = now();

-- name: age_duty_walk
-- A cursor rule's walk, as if it began `seconds` ago.
UPDATE duty_runs SET state = jsonb_set(state, ARRAY[%(rule)s, 'began'],
    to_jsonb(to_char((now() - make_interval(secs => %(seconds)s::float8)) AT TIME ZONE 'UTC',
                     'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
WHERE duty = %(duty)s;
