-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version, name FROM schema_migrations ORDER BY version;

-- name: claim_migration
-- A concurrent migrator blocks on this row's unique key until we commit, then skips it.
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)
ON CONFLICT (version) DO NOTHING
RETURNING version;

-- name: ping
SELECT 1 AS ok;

-- name: schema_columns
SELECT table_name, column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_schema = current_schema()
ORDER BY table_name, ordinal_position;

-- name: schema_indexes
SELECT tablename AS table_name, indexname AS index_name
FROM pg_indexes
WHERE schemaname = current_schema()
ORDER BY tablename, indexname;
