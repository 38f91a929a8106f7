-- GitHub App installations: which installation covers which repository (flowlens.installations).

-- name: github_installation_state
-- An installation event: created, suspended, unsuspended, deleted, or its repositories changed.
INSERT INTO github_installations AS i (id, account, suspended_at, deleted_at)
VALUES (%(id)s, %(account)s,
        CASE WHEN %(action)s = 'installation.suspend' THEN now() END,
        CASE WHEN %(action)s = 'installation.deleted' THEN now() END)
ON CONFLICT (id) DO UPDATE SET
    account = COALESCE(EXCLUDED.account, i.account),
    suspended_at = CASE
        WHEN %(action)s = 'installation.suspend' THEN COALESCE(i.suspended_at, now())
        WHEN %(action)s IN ('installation.unsuspend', 'installation.created') THEN NULL
        ELSE i.suspended_at END,
    deleted_at = CASE
        WHEN %(action)s = 'installation.deleted' THEN now()
        WHEN %(action)s = 'installation.created' THEN NULL
        ELSE i.deleted_at END,
    updated_at = now();

-- name: github_installation_repositories
-- The repositories an installation now covers (added) and no longer covers (removed; all of
-- them when it was deleted).
UPDATE repositories SET installation_id = CASE
        WHEN full_name = ANY(%(added)s::text[]) AND NOT %(deleted)s::bool THEN %(id)s::bigint
        ELSE NULL END
WHERE full_name = ANY(%(added)s::text[])
   OR (installation_id = %(id)s::bigint
       AND (full_name = ANY(%(removed)s::text[]) OR %(deleted)s::bool));

-- name: github_installation_of
-- The live installation covering a repository: NULL when none is known, -1 when it is
-- suspended or deleted.
SELECT CASE WHEN i.suspended_at IS NOT NULL OR i.deleted_at IS NOT NULL THEN -1
            ELSE r.installation_id END AS installation_id
FROM repositories r
LEFT JOIN github_installations i ON i.id = r.installation_id
WHERE r.full_name = %(repository)s;

-- name: github_remember_installation
UPDATE repositories SET installation_id = %(id)s WHERE full_name = %(repository)s;
