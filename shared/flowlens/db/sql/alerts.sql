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
