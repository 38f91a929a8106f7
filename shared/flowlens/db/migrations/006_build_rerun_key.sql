-- What makes a later build replace an earlier one of the same commit in the PR's build state
-- (flowlens.github.parse: a workflow run's workflow and event, so a new run of a workflow, as
-- closing and reopening a PR starts, replaces its failed one). NULL: the rule by provider in
-- the pr_checks query (a job's or check run's name, else the build's own id).
ALTER TABLE builds ADD COLUMN IF NOT EXISTS rerun_key TEXT;
