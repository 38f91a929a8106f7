-- The risk model's kept history (flowlens.risk.history.PgHistory) and the outcomes of
-- analysed heads (the live calibration of the risk read).

-- name: risk_history_lookup
-- The author's row (path NULL) and each touched file's, with what the scored change itself
-- contributed (`mine`, and the author's own changes of the file) so the caller leaves it out.
SELECT NULL::text AS path, a.changes, 0 AS authors, NULL::timestamptz AS last_at,
       NULL::timestamptz AS prev_at, NULL::text AS last_change, NULL::text AS prev_change,
       0 AS author_changes,
       EXISTS (SELECT 1 FROM risk_changes c
               WHERE c.repository_id = %(repository_id)s AND c.change_key = %(change_key)s
                 AND c.author = %(author)s) AS mine
FROM risk_authors a
WHERE a.repository_id = %(repository_id)s AND a.author = %(author)s
UNION ALL
SELECT f.path, f.changes, f.authors, f.last_at, f.prev_at, f.last_change, f.prev_change,
       COALESCE(fa.changes, 0) AS author_changes, cf.path IS NOT NULL AS mine
FROM risk_files f
LEFT JOIN risk_file_authors fa
       ON fa.repository_id = f.repository_id AND fa.path = f.path AND fa.author = %(author)s
LEFT JOIN risk_change_files cf
       ON cf.repository_id = f.repository_id AND cf.change_key = %(change_key)s
      AND cf.path = f.path
WHERE f.repository_id = %(repository_id)s AND f.path = ANY(%(paths)s::text[]);

-- name: risk_history_record
-- One change, once per file (a PR's later heads add only the files they newly touch). Files
-- are taken in path order, so two pollers recording overlapping changes lock rows in one order.
WITH change AS (
    INSERT INTO risk_changes (repository_id, change_key, author)
    VALUES (%(repository_id)s, %(change_key)s, %(author)s)
    ON CONFLICT DO NOTHING
    RETURNING author
), author AS (
    INSERT INTO risk_authors AS a (repository_id, author, changes)
    SELECT %(repository_id)s, author, 1 FROM change
    ON CONFLICT (repository_id, author) DO UPDATE SET changes = a.changes + 1
    RETURNING 1
), new_paths AS (
    INSERT INTO risk_change_files (repository_id, change_key, path)
    SELECT %(repository_id)s, %(change_key)s, p
    FROM unnest(%(paths)s::text[]) AS p ORDER BY p
    ON CONFLICT DO NOTHING
    RETURNING path
), file_authors AS (
    INSERT INTO risk_file_authors AS fa (repository_id, path, author, changes)
    SELECT %(repository_id)s, path, %(author)s, 1 FROM new_paths ORDER BY path
    ON CONFLICT (repository_id, path, author) DO UPDATE SET changes = fa.changes + 1
    -- changes = 1: the author's first change of the file (also when another transaction
    -- recorded one meanwhile: the conflict waits for it and counts on from its row).
    RETURNING path, changes = 1 AS new_author
)
INSERT INTO risk_files AS f (repository_id, path, changes, authors, last_at, last_change)
SELECT %(repository_id)s, n.path, 1, CASE WHEN n.new_author THEN 1 ELSE 0 END,
       %(at)s, %(change_key)s
FROM file_authors n ORDER BY n.path
ON CONFLICT (repository_id, path) DO UPDATE SET
    changes = f.changes + 1,
    authors = f.authors + EXCLUDED.authors,
    -- A change recorded after a later one (two pollers, out of order) is counted but does not
    -- become the file's last change.
    prev_at = CASE WHEN EXCLUDED.last_at >= f.last_at THEN f.last_at ELSE f.prev_at END,
    prev_change = CASE WHEN EXCLUDED.last_at >= f.last_at THEN f.last_change
                       ELSE f.prev_change END,
    last_change = CASE WHEN EXCLUDED.last_at >= f.last_at THEN EXCLUDED.last_change
                       ELSE f.last_change END,
    last_at = GREATEST(f.last_at, EXCLUDED.last_at);

-- name: risk_outcome_for_changes
-- A later change touched these PRs' files: the latest insight of each PR records it.
INSERT INTO insight_outcomes (insight_id, outcome, detail)
SELECT DISTINCT ON (i.pull_request_id) i.id, 'follow_up', %(detail)s
FROM insights i
WHERE i.repository_id = %(repository_id)s AND i.pull_request_id = ANY(%(pr_ids)s::bigint[])
  AND i.created_at <= now()
ORDER BY i.pull_request_id, i.created_at DESC, i.id DESC
ON CONFLICT DO NOTHING;

-- name: risk_outcome_reverted
-- A revert names analysed heads by sha (a prefix of 7 or more) or PRs by number: the named
-- head's insight, or each named PR's latest, records it.
INSERT INTO insight_outcomes (insight_id, outcome, detail)
SELECT id, 'reverted', %(detail)s FROM (
    SELECT i.id FROM insights i
    WHERE i.repository_id = %(repository_id)s
      AND EXISTS (SELECT 1 FROM unnest(%(shas)s::text[]) AS s
                  WHERE left(i.commit_sha, length(s)) = s)
    UNION
    SELECT latest.id FROM unnest(%(numbers)s::int[]) AS n,
    LATERAL (SELECT i.id FROM insights i
             WHERE i.repository_id = %(repository_id)s AND i.pr_number = n
             ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS latest
) named
ON CONFLICT DO NOTHING;

-- name: risk_push_payloads
-- Pushes the poller reads for revert commits, with their repository's row id.
SELECT e.id, e.payload, r.id AS repository_id
FROM raw_events e
JOIN repositories r ON r.id = COALESCE(
    (SELECT id FROM repositories WHERE github_id = e.repository_github_id),
    (SELECT id FROM repositories
     WHERE e.repository_github_id IS NULL AND full_name = e.repository))
WHERE e.id = ANY(%(ids)s::bigint[]);
