-- Pay-per-use (docs/ARCHITECTURE.md, "Waking the poller"): one row says whether a poller
-- invocation is running (its heartbeat) and when ingest last woke one.
CREATE TABLE IF NOT EXISTS poller_heartbeat (
    id        SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    owner     TEXT,
    beat_at   TIMESTAMPTZ,  -- refreshed by the running invocation on every scan; NULL: none
    woken_at  TIMESTAMPTZ   -- the last wake-up ingest sent (at most one in flight)
);
INSERT INTO poller_heartbeat (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
