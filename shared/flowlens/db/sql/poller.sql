-- name: poller_pr_for_analysis
-- The repository by the delivery's GitHub id when it has one (the name it carried may belong
-- to another repository since), else by that name.
SELECT p.*, r.full_name AS repository FROM pull_requests p
JOIN repositories r ON r.id = p.repository_id
WHERE p.number = %(number)s
  AND r.id = COALESCE(
      (SELECT id FROM repositories WHERE github_id = %(github_id)s::bigint),
      (SELECT id FROM repositories
       WHERE %(github_id)s::bigint IS NULL AND full_name = %(repository)s));

-- name: poller_lease_pr_analysis
UPDATE pull_requests SET analysis_owner = %(owner)s,
    analysis_leased_until = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id = %(id)s
  AND (analysis_leased_until IS NULL OR analysis_leased_until < now()
       OR analysis_owner = %(owner)s)
  -- Checked again here: another poller may have stored this head's insight a moment ago.
  AND NOT EXISTS (SELECT 1 FROM insights i
                  WHERE i.repository_id = pull_requests.repository_id
                    AND i.pr_number = pull_requests.number
                    AND i.commit_sha = pull_requests.head_sha)
RETURNING id;

-- name: poller_release_pr_analysis
UPDATE pull_requests SET analysis_owner = NULL, analysis_leased_until = NULL
WHERE id = %(id)s AND analysis_owner = %(owner)s;

-- name: poller_insight_for_commit
SELECT * FROM insights
WHERE repository_id = %(repository_id)s AND pr_number = %(pr_number)s
  AND commit_sha = %(commit_sha)s;

-- name: poller_insert_insight
INSERT INTO insights (repository_id, pull_request_id, pr_number, commit_sha, risk_level,
                      summary, recommendation, key_changes, confidence_score, model)
VALUES (%(repository_id)s, %(pull_request_id)s, %(pr_number)s, %(commit_sha)s, %(risk_level)s,
        %(summary)s, %(recommendation)s, %(key_changes)s, %(confidence_score)s, %(model)s)
ON CONFLICT (repository_id, pr_number, commit_sha) DO NOTHING
RETURNING *;

-- name: poller_lock_pull_request_by_id
SELECT * FROM pull_requests WHERE id = %(id)s FOR UPDATE;

-- name: poller_prune_change_feed
-- The feed is a short-lived outbox; REST serves anything older.
DELETE FROM change_feed WHERE created_at < now() - make_interval(secs => %(keep_seconds)s::float8);
