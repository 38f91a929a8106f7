-- The API's metrics watcher (flowlens.api.metrics_watch) reads deployments whose outcome
-- changed since its last look.
CREATE INDEX IF NOT EXISTS deployments_updated_idx ON deployments (updated_at);
