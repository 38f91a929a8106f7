-- Write-back to GitHub (flowlens.github.checks): what a check shows.

-- name: checks_subject
-- The repository's name and, once the head has one, its insight.
SELECT r.full_name AS repository, i.risk_level, i.summary, i.recommendation, i.key_changes,
       i.risk_score, i.risk_drivers
FROM repositories r
LEFT JOIN insights i ON i.id = %(insight_id)s::bigint
WHERE r.id = %(repository_id)s;

-- name: checks_forget_run
-- GitHub no longer has the check run: the next send creates it.
UPDATE check_writes SET external_id = NULL WHERE id = %(id)s;

-- name: checks_remember_run
-- The check run GitHub created (shown in progress), before it is completed.
UPDATE check_writes SET external_id = %(external_id)s, posted = 'in_progress' WHERE id = %(id)s;
