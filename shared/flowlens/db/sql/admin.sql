-- Operations: the flowlens CLI's events commands and the health check.

-- name: admin_raw_payload_by_delivery
-- payload NULL: dropped by retention (RAW_PAYLOAD_DAYS).
SELECT payload, event, action, received_at FROM raw_events
WHERE delivery_id = %(delivery_id)s;

-- name: admin_list_unapplied_events
SELECT id, delivery_id, event, action, received_at, unapplied_reason
FROM raw_events WHERE unapplied_reason IS NOT NULL
ORDER BY id
LIMIT %(limit)s::int;

-- name: admin_unapplied_events_for_update
-- The unapplied deliveries to try again (one, or all), locked so two runs never apply one twice.
SELECT id, delivery_id, event, payload FROM raw_events
WHERE unapplied_reason IS NOT NULL AND (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: admin_mark_reapplied
-- Applied now: what a delivery of its kind would have been marked when it arrived.
UPDATE raw_events
SET unapplied_reason = NULL, action = %(action)s, repository = %(repository)s,
    pr_number = %(pr_number)s, head_sha = %(head_sha)s, needs_analysis = %(needs_analysis)s,
    repository_github_id = %(repository_github_id)s,
    processed = NOT %(needs_analysis)s, processed_at = CASE WHEN %(needs_analysis)s THEN NULL
                                                            ELSE processed_at END
WHERE id = %(id)s;

-- name: admin_still_unapplied
UPDATE raw_events SET unapplied_reason = %(reason)s WHERE id = %(id)s;

-- name: admin_ping
SELECT 1 AS ok;
