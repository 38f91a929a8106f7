-- A signed delivery whose fields FlowLens cannot apply (a type or range it does not know) is
-- kept whole, with the reason, and applied later by `flowlens events reapply` once the code
-- handles it. NULL on every delivery that was applied.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS unapplied_reason TEXT;
CREATE INDEX IF NOT EXISTS raw_events_unapplied_idx
    ON raw_events (id) WHERE unapplied_reason IS NOT NULL;
