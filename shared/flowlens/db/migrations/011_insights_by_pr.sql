-- The risk model's follow-up outcome finds the latest insight of each earlier PR by its row id
-- (risk_outcome_for_changes); insights_pr_idx is keyed by repository and number instead.
CREATE INDEX IF NOT EXISTS insights_pull_request_idx
    ON insights (pull_request_id, created_at DESC, id DESC);
