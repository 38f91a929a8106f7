-- Alerts: one row per (subject, channel) in alert_history, ever; the row carries the retries.

-- name: alert_enqueue_build_alerts
-- Failed builds of the recent window that a channel has not been told about yet. Both the row's
-- own change time and the build's time must be recent: a sync that writes old failures now
-- (or alerts switched on over an old database) must not page anyone.
INSERT INTO alert_history (subject_kind, subject_id, channel, status)
SELECT 'build', b.id, c.channel, 'pending'
FROM builds b
CROSS JOIN unnest(%(channels)s::text[]) AS c (channel)
WHERE b.status = 'failed'
  AND b.updated_at > now() - make_interval(secs => %(window_seconds)s::float8)
  AND COALESCE(b.finished_at, b.source_updated_at, b.updated_at)
      > now() - make_interval(secs => %(window_seconds)s::float8)
  AND b.provider = ANY(%(providers)s::text[])
  AND NOT EXISTS (
      SELECT 1 FROM alert_history a
      WHERE a.subject_kind = 'build' AND a.subject_id = b.id AND a.channel = c.channel
  )
ON CONFLICT (subject_kind, subject_id, channel) DO NOTHING
RETURNING id;

-- name: alert_enqueue_insight_alerts
-- Recent high-risk insights of open PRs' current heads: a commit the PR has moved on from, or a
-- PR closed meanwhile, pages nobody.
INSERT INTO alert_history (subject_kind, subject_id, channel, status)
SELECT 'insight', i.id, c.channel, 'pending'
FROM insights i
JOIN pull_requests p ON p.id = i.pull_request_id
    AND p.state = 'open' AND p.head_sha = i.commit_sha
CROSS JOIN unnest(%(channels)s::text[]) AS c (channel)
WHERE i.risk_level = 'high'
  AND i.created_at > now() - make_interval(secs => %(window_seconds)s::float8)
  AND NOT EXISTS (
      SELECT 1 FROM alert_history a
      WHERE a.subject_kind = 'insight' AND a.subject_id = i.id AND a.channel = c.channel
  )
ON CONFLICT (subject_kind, subject_id, channel) DO NOTHING
RETURNING id;

-- name: alert_claim_alerts
-- A lease (next_attempt_at pushed past the send's timeout), committed at once: two pollers never
-- send one alert at the same time, and a poller killed mid-send leaves it to the next pass.
UPDATE alert_history SET
    attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id IN (
    SELECT id FROM alert_history
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND channel = ANY(%(channels)s::text[])
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, subject_kind, subject_id, channel, attempts, created_at;

-- name: alert_renew
-- The claim again, just before its send (a claim that waited for a free slot may have seen its
-- lease end and another pass claim the alert): only while no other claim came since (its
-- attempts are still this claim's).
UPDATE alert_history
SET next_attempt_at = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending'
RETURNING id;

-- name: alert_sent
-- This and the next two record a claim's outcome only while it is still the latest claim.
UPDATE alert_history SET status = 'sent', sent_at = now(), last_error = NULL
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: alert_retry
UPDATE alert_history SET
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::float8),
    last_error = %(error)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: alert_defer
-- Not this time, and not a failed attempt: the build is being re-run; look again after the
-- delay. `attempts` stays as the claim left it (it identifies the latest claim).
UPDATE alert_history SET
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::float8),
    deferrals = deferrals + 1
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: alert_not_sent
-- A claim that gave up before trying to send (another pass claimed the alert while it waited
-- for a send slot): not a failed attempt, so it counts with the deferrals. Whichever claim is
-- the latest keeps its `attempts`.
UPDATE alert_history SET deferrals = deferrals + 1
WHERE id = %(id)s AND status = 'pending';

-- name: alert_failures
-- Claims that tried to send so far: read when a send failed, after any claim that gave up
-- meanwhile was counted.
SELECT attempts - deferrals AS failures FROM alert_history WHERE id = %(id)s;

-- name: alert_failed
UPDATE alert_history SET status = 'failed', last_error = %(error)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: alert_build_alert_subjects
-- The build with its repository and the pull request it belongs to (by number, else head sha).
SELECT b.id, b.provider, b.external_id, b.workflow_name, b.status, b.conclusion, b.branch,
       b.commit_sha, b.triggered_by, b.url, b.started_at, b.finished_at, b.duration_seconds,
       r.full_name AS repository, r.html_url AS repository_url,
       p.number AS pr_number, p.title AS pr_title, p.html_url AS pr_url
FROM builds b
JOIN repositories r ON r.id = b.repository_id
LEFT JOIN LATERAL (
    SELECT pr.number, pr.title, pr.html_url FROM pull_requests pr
    WHERE pr.repository_id = b.repository_id
      AND (pr.number = b.pr_number OR (b.pr_number IS NULL AND pr.head_sha = b.commit_sha))
    ORDER BY pr.gh_updated_at DESC NULLS LAST
    LIMIT 1
) p ON TRUE
WHERE b.id = ANY(%(ids)s::bigint[]);

-- name: alert_insight_alert_subjects
SELECT i.id, i.pr_number, i.commit_sha, i.risk_level, i.summary, i.recommendation,
       i.confidence_score, i.model, i.key_changes,
       r.full_name AS repository, r.html_url AS repository_url,
       p.title AS pr_title, p.html_url AS pr_url, p.head_ref AS branch
FROM insights i
JOIN repositories r ON r.id = i.repository_id
LEFT JOIN pull_requests p ON p.id = i.pull_request_id
WHERE i.id = ANY(%(ids)s::bigint[]);
