-- Bookkeeping of the numbered migrations (db/migrations/): which ones this database has.

-- name: versions_create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: versions_applied
SELECT version, name FROM schema_migrations ORDER BY version;

-- name: versions_claim
-- A concurrent migrator blocks on this row's unique key until we commit, then skips it.
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)
ON CONFLICT (version) DO NOTHING
RETURNING version;
