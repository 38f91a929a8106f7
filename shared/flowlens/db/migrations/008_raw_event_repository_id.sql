-- The GitHub id of a delivery's repository: the poller finds the PR to analyse by it, not by
-- the name the payload carried, which a rename since (or another repository created under
-- that name, ingest.store._free_name) no longer points at. NULL on rows from before this
-- migration and on payloads without one; the poller then goes by the name, as before.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS repository_github_id BIGINT;
