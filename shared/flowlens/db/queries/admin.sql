-- name: backends_waiting_on_lock
-- Operations and tests: sessions of this database blocked on a row lock.
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid();

-- name: terminate_backend
SELECT pg_terminate_backend(%(pid)s::int) AS terminated;

-- name: count_rows_raw_events
SELECT count(*) AS n FROM raw_events;

-- name: raw_payload_by_delivery
SELECT payload FROM raw_events WHERE delivery_id = %(delivery_id)s;

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

-- name: list_unapplied_events
SELECT id, delivery_id, event, action, received_at, unapplied_reason
FROM raw_events WHERE unapplied_reason IS NOT NULL
ORDER BY id
LIMIT %(limit)s::int;

-- name: unapplied_events_for_update
-- The unapplied deliveries to try again (one, or all), locked so two runs never apply one twice.
SELECT id, delivery_id, event, payload FROM raw_events
WHERE unapplied_reason IS NOT NULL AND (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: mark_reapplied
-- Applied now: what a delivery of its kind would have been marked when it arrived.
UPDATE raw_events
SET unapplied_reason = NULL, action = %(action)s, repository = %(repository)s,
    pr_number = %(pr_number)s, head_sha = %(head_sha)s, needs_analysis = %(needs_analysis)s,
    repository_github_id = %(repository_github_id)s,
    processed = NOT %(needs_analysis)s, processed_at = CASE WHEN %(needs_analysis)s THEN NULL
                                                            ELSE processed_at END
WHERE id = %(id)s;

-- name: still_unapplied
UPDATE raw_events SET unapplied_reason = %(reason)s WHERE id = %(id)s;
