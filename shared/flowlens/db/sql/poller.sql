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

-- name: poller_insight_for_commit
SELECT * FROM insights
WHERE repository_id = %(repository_id)s AND pr_number = %(pr_number)s
  AND commit_sha = %(commit_sha)s;

-- name: poller_insert_insight
INSERT INTO insights (repository_id, pull_request_id, pr_number, commit_sha, risk_level,
                      summary, recommendation, key_changes, confidence_score, model,
                      risk_score, risk_drivers)
VALUES (%(repository_id)s, %(pull_request_id)s, %(pr_number)s, %(commit_sha)s, %(risk_level)s,
        %(summary)s, %(recommendation)s, %(key_changes)s, %(confidence_score)s, %(model)s,
        %(risk_score)s, %(risk_drivers)s)
-- A head's insight is written once; `replace` (GitHub asked to run the check again) writes
-- the new analysis over it.
ON CONFLICT (repository_id, pr_number, commit_sha) DO UPDATE SET
    risk_level = EXCLUDED.risk_level, summary = EXCLUDED.summary,
    recommendation = EXCLUDED.recommendation, key_changes = EXCLUDED.key_changes,
    confidence_score = EXCLUDED.confidence_score, model = EXCLUDED.model,
    risk_score = EXCLUDED.risk_score, risk_drivers = EXCLUDED.risk_drivers, created_at = now()
WHERE %(replace)s::bool
RETURNING *;

-- name: poller_lock_pull_request_by_id
SELECT * FROM pull_requests WHERE id = %(id)s FOR UPDATE;
