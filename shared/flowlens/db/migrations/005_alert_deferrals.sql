-- How many times an alert waited for its build's re-run (flowlens.alerts: a deferral is not a
-- failed attempt, but `attempts` keeps counting claims, so that an older claim can never
-- pass for the latest one).
ALTER TABLE alert_history ADD COLUMN IF NOT EXISTS deferrals INTEGER NOT NULL DEFAULT 0;
