-- Waking the poller (flowlens.wake): the heartbeat of the running invocation, and ingest's
-- one wake-up in flight.

-- name: wake_claim
-- Ingest committed work: wake a poller unless one runs (a fresh heartbeat) or a wake-up sent
-- lately is still on its way. One row, so of two concurrent callers exactly one gets it.
UPDATE poller_heartbeat SET woken_at = now()
WHERE id = 1
  AND (beat_at IS NULL OR beat_at < now() - make_interval(secs => %(stale_seconds)s::float8))
  AND (woken_at IS NULL OR woken_at < now() - make_interval(secs => %(grace_seconds)s::float8))
RETURNING woken_at;

-- name: wake_start
-- An invocation starts: it takes the heartbeat unless another's is fresh (one statement, so
-- of two starting at once one gets it); the wake-up that started it has arrived.
UPDATE poller_heartbeat SET owner = %(owner)s, beat_at = now(), woken_at = NULL
WHERE id = 1
  AND (beat_at IS NULL OR owner = %(owner)s
       OR beat_at < now() - make_interval(secs => %(stale_seconds)s::float8))
RETURNING id;

-- name: wake_beat
-- The running invocation is alive.
UPDATE poller_heartbeat SET beat_at = now() WHERE id = 1 AND owner = %(owner)s;

-- name: wake_beat_end
-- The invocation ends: a wake-up may start the next one at once.
UPDATE poller_heartbeat SET owner = NULL, beat_at = NULL
WHERE id = 1 AND owner = %(owner)s;

-- name: wake_release
-- A claimed wake-up that could not be sent: the next commit may send one at once.
UPDATE poller_heartbeat SET woken_at = NULL WHERE id = 1 AND woken_at = %(woken_at)s;

-- name: wake_pending_events
-- Whether deliveries wait for the poller (due now): checked once more before an invocation
-- ends, after its heartbeat is gone, so none committed meanwhile waits for the scheduler.
SELECT EXISTS (
    SELECT 1 FROM raw_events
    WHERE NOT processed AND NOT failed AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
) AS pending;
