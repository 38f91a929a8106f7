-- Leased work (flowlens.workqueue): claim with FOR UPDATE SKIP LOCKED and a lease, renew,
-- complete, release with a delay (the backoff is flowlens.retry's), dead letter, list and retry
-- the dead. The queue of deliveries to analyse (raw_events); workers never hold this SQL.

-- name: work_events_claim
-- A lease, committed at once: no row lock is held while the events are worked on.
UPDATE raw_events SET
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8),
    lease_owner = %(owner)s,
    attempts = attempts + 1
WHERE id IN (
    SELECT id FROM raw_events
    WHERE NOT processed AND NOT failed AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, delivery_id, event, action, repository, pr_number, head_sha, needs_analysis,
          attempts, repository_github_id;

-- name: work_events_renew
-- Only leases still held: an event given back (released, failed) is not taken again.
UPDATE raw_events
SET leased_until = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id = ANY(%(ids)s::bigint[]) AND lease_owner = %(owner)s AND NOT processed
  AND leased_until IS NOT NULL AND NOT failed;

-- name: work_events_complete
UPDATE raw_events SET processed = TRUE, processed_at = now(), leased_until = NULL,
    last_error = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND lease_owner = %(owner)s AND NOT processed;

-- name: work_events_release
-- Back to the queue after a delay; `refund` gives back the attempt when nothing was tried.
UPDATE raw_events SET leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::float8),
    last_error = COALESCE(%(error)s, last_error),
    attempts = GREATEST(attempts - %(refund)s::int, 0)
WHERE id = ANY(%(ids)s::bigint[]) AND lease_owner = %(owner)s AND NOT processed;

-- name: work_events_dead_letter
UPDATE raw_events SET failed = TRUE, leased_until = NULL, last_error = %(error)s
WHERE id = ANY(%(ids)s::bigint[]) AND lease_owner = %(owner)s AND NOT processed;

-- name: work_events_dead
SELECT id, delivery_id, event, action, repository, pr_number, attempts, last_error, received_at
FROM raw_events WHERE failed ORDER BY id LIMIT %(limit)s;

-- name: work_events_retry
-- One failed event by id, or every failed event when id is NULL.
UPDATE raw_events SET failed = FALSE, attempts = 0, next_attempt_at = now(),
    leased_until = NULL
WHERE failed AND (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
RETURNING id;

-- A PR's analysis: one poller at a time analyses a PR's head (pull_requests.analysis_*).

-- name: work_pr_analysis_lease
UPDATE pull_requests SET analysis_owner = %(owner)s,
    analysis_leased_until = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id = %(id)s
  AND (analysis_leased_until IS NULL OR analysis_leased_until < now()
       OR analysis_owner = %(owner)s)
  -- Checked again here: another poller may have stored this head's insight a moment ago
  -- (unless the head is to be analysed anew: GitHub asked to re-run its check).
  AND (%(again)s::bool OR NOT EXISTS (SELECT 1 FROM insights i
                  WHERE i.repository_id = pull_requests.repository_id
                    AND i.pr_number = pull_requests.number
                    AND i.commit_sha = pull_requests.head_sha))
RETURNING id;

-- name: work_pr_analysis_release
UPDATE pull_requests SET analysis_owner = NULL, analysis_leased_until = NULL
WHERE id = %(id)s AND analysis_owner = %(owner)s;

-- Alert deliveries (alert_history): one row per (subject, channel), sent once.

-- name: work_alerts_claim
-- A lease (next_attempt_at pushed past the send's timeout), committed at once: two pollers never
-- send one alert at the same time, and a poller killed mid-send leaves it to the next pass.
UPDATE alert_history SET
    attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id IN (
    SELECT id FROM alert_history
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND channel = ANY(%(channels)s::text[])
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, subject_kind, subject_id, channel, attempts, created_at;

-- name: work_alerts_renew
-- The claim again, just before its send (a claim that waited for a free slot may have seen its
-- lease end and another pass claim the alert): only while no other claim came since (its
-- attempts are still this claim's).
UPDATE alert_history
SET next_attempt_at = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending'
RETURNING id;

-- name: work_alerts_complete
-- This and the next two record a claim's outcome only while it is still the latest claim.
UPDATE alert_history SET status = 'sent', sent_at = now(), last_error = NULL
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: work_alerts_retry
UPDATE alert_history SET
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::float8),
    last_error = %(error)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: work_alerts_defer
-- Not this time, and not a failed attempt: the build is being re-run; look again after the
-- delay. `attempts` stays as the claim left it (it identifies the latest claim).
UPDATE alert_history SET
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s::float8),
    deferrals = deferrals + 1
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- name: work_alerts_not_sent
-- A claim that gave up before trying to send (another pass claimed the alert while it waited
-- for a send slot): not a failed attempt, so it counts with the deferrals. Whichever claim is
-- the latest keeps its `attempts`.
UPDATE alert_history SET deferrals = deferrals + 1
WHERE id = %(id)s AND status = 'pending';

-- name: work_alerts_failures
-- Claims that tried to send so far: read when a send failed, after any claim that gave up
-- meanwhile was counted.
SELECT attempts - deferrals AS failures FROM alert_history WHERE id = %(id)s;

-- name: work_alerts_dead_letter
UPDATE alert_history SET status = 'failed', last_error = %(error)s
WHERE id = %(id)s AND attempts = %(attempts)s AND status = 'pending';

-- Sync runs (sync_state): one process at a time syncs a repository when it is due.

-- name: work_sync_claim
-- A due repository nobody holds: the conditional UPDATE lets exactly one process win it.
UPDATE sync_state SET
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8),
    lease_owner = %(owner)s,
    last_started_at = now()
WHERE repository = %(repository)s
  AND next_run_at <= now()
  AND (leased_until IS NULL OR leased_until < now())
RETURNING *;

-- name: work_sync_complete
-- Cursors move forward only, and only when this walk reached back to where the last one ended
-- (a short one-off `--since 1` must not make the schedule skip older changes); a first cursor
-- is set by any complete walk. *_covered_from keeps where the unbroken coverage up to each
-- cursor begins, so the schedule can tell whether the cursor covers its own window.
-- (In SET, every column name is the row's value before this UPDATE.)
UPDATE sync_state SET
    leased_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE leased_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    next_run_at = CASE WHEN %(schedule)s::bool
                       THEN now() + make_interval(secs => %(next_in_seconds)s::float8)
                       ELSE next_run_at END,
    prs_cursor = CASE
        WHEN %(prs_cursor)s::timestamptz IS NULL THEN prs_cursor
        WHEN prs_cursor IS NULL THEN %(prs_cursor)s::timestamptz
        WHEN %(prs_from)s::timestamptz <= prs_cursor
            THEN GREATEST(prs_cursor, %(prs_cursor)s::timestamptz)
        ELSE prs_cursor END,
    prs_covered_from = CASE
        WHEN %(prs_cursor)s::timestamptz IS NULL THEN prs_covered_from
        WHEN prs_cursor IS NULL THEN %(prs_from)s::timestamptz
        WHEN %(prs_from)s::timestamptz <= prs_cursor AND prs_covered_from IS NOT NULL
            THEN LEAST(prs_covered_from, %(prs_from)s::timestamptz)
        ELSE prs_covered_from END,
    runs_cursor = CASE
        WHEN %(runs_cursor)s::timestamptz IS NULL THEN runs_cursor
        WHEN runs_cursor IS NULL THEN %(runs_cursor)s::timestamptz
        WHEN %(runs_from)s::timestamptz <= runs_cursor
            THEN GREATEST(runs_cursor, %(runs_cursor)s::timestamptz)
        ELSE runs_cursor END,
    runs_covered_from = CASE
        WHEN %(runs_cursor)s::timestamptz IS NULL THEN runs_covered_from
        WHEN runs_cursor IS NULL THEN %(runs_from)s::timestamptz
        WHEN %(runs_from)s::timestamptz <= runs_cursor AND runs_covered_from IS NOT NULL
            THEN LEAST(runs_covered_from, %(runs_from)s::timestamptz)
        ELSE runs_covered_from END,
    last_finished_at = now(),
    last_error = NULL,
    runs = runs + 1
WHERE repository = %(repository)s;

-- name: work_sync_fail
UPDATE sync_state SET
    leased_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE leased_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END,
    next_run_at = CASE WHEN %(schedule)s::bool
                       THEN now() + make_interval(secs => %(next_in_seconds)s::float8)
                       ELSE next_run_at END,
    last_error = %(error)s,
    runs = runs + 1
WHERE repository = %(repository)s;

-- name: work_sync_next_due
-- Seconds until the earliest of these repositories is due (0 when one is due now).
SELECT GREATEST(0, EXTRACT(EPOCH FROM min(GREATEST(next_run_at, COALESCE(leased_until, next_run_at)))
                                       - now()))::float8 AS seconds
FROM sync_state WHERE repository = ANY(%(repositories)s::text[]);

-- Write-back (check_writes): one check run or commit status per analysed head.

-- name: work_checks_want_started
-- The analysis of a head starts: GitHub should show the check in progress (again, for a
-- re-analysis of the same head; the check is the same one, updated in place).
INSERT INTO check_writes AS c (repository_id, pull_request_id, pr_number, head_sha, mode, wanted)
VALUES (%(repository_id)s, %(pull_request_id)s, %(pr_number)s, %(head_sha)s, %(mode)s,
        'in_progress')
ON CONFLICT (repository_id, head_sha) DO UPDATE SET
    wanted = 'in_progress', insight_id = NULL, reason = NULL, version = c.version + 1,
    posted = NULL, status = 'pending', attempts = 0, next_attempt_at = now(), started_at = now(),
    updated_at = now(), mode = EXCLUDED.mode
WHERE c.wanted <> 'in_progress' OR c.status = 'failed';

-- name: work_checks_want_completed
-- The head's analysis ended: with its insight, or (insight_id NULL) with the reason it has none.
UPDATE check_writes SET
    wanted = 'completed', insight_id = %(insight_id)s, reason = %(reason)s, version = version + 1,
    status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
WHERE repository_id = %(repository_id)s AND head_sha = %(head_sha)s;

-- name: work_checks_expire
-- A check never stays in progress: past the bound, it is completed without an insight.
UPDATE check_writes SET
    wanted = 'completed', reason = %(reason)s, version = version + 1, status = 'pending',
    attempts = 0, next_attempt_at = now(), updated_at = now()
WHERE wanted = 'in_progress' AND status <> 'failed'
  AND started_at < now() - make_interval(secs => %(after_seconds)s::float8)
RETURNING id;

-- name: work_checks_claim
UPDATE check_writes SET
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8),
    lease_owner = %(owner)s,
    attempts = attempts + 1
WHERE id IN (
    SELECT id FROM check_writes
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, repository_id, pull_request_id, pr_number, head_sha, mode, wanted, insight_id,
          reason, posted, external_id, version, attempts;

-- name: work_checks_posted
-- What GitHub now shows (and the check run's id); done when nothing newer is wanted since.
UPDATE check_writes SET
    posted = %(posted)s, external_id = COALESCE(%(external_id)s, external_id),
    status = CASE WHEN version = %(version)s THEN 'done' ELSE 'pending' END,
    last_error = NULL, leased_until = NULL, updated_at = now()
WHERE id = %(id)s AND lease_owner = %(owner)s;

-- name: work_checks_retry
-- A newer want than the one sent (version moved on) goes out at once, on fresh attempts.
UPDATE check_writes SET
    next_attempt_at = CASE WHEN version = %(version)s
        THEN now() + make_interval(secs => %(delay_seconds)s::float8) ELSE now() END,
    attempts = GREATEST(0, attempts - %(refund)s::int),
    last_error = %(error)s, leased_until = NULL, updated_at = now()
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'pending';

-- name: work_checks_dead_letter
-- Failed for good; but a newer want (version moved on) is not given up with the old one.
UPDATE check_writes SET
    status = CASE WHEN version = %(version)s THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now(), last_error = %(error)s, leased_until = NULL, updated_at = now()
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'pending';

-- name: work_checks_failed
SELECT c.id, r.full_name AS repository, c.pr_number, c.head_sha, c.mode, c.wanted,
       c.attempts, c.last_error, c.updated_at
FROM check_writes c JOIN repositories r ON r.id = c.repository_id
WHERE c.status = 'failed'
ORDER BY c.id
LIMIT %(limit)s::int;

-- name: work_checks_retry_failed
-- One failed write-back by id, or all when id is NULL: back in the queue, attempts reset.
UPDATE check_writes SET status = 'pending', attempts = 0, next_attempt_at = now(),
    leased_until = NULL, updated_at = now()
WHERE status = 'failed' AND (%(id)s::bigint IS NULL OR id = %(id)s::bigint)
RETURNING id;

-- Scheduled duties (duty_runs): a due duty runs in one process at a time.

-- name: work_duty_register
INSERT INTO duty_runs (duty) VALUES (%(duty)s) ON CONFLICT (duty) DO NOTHING;

-- name: work_duty_claim
-- The duty's state, now leased to this owner, when it is due (or `force`) and nobody else
-- holds it.
UPDATE duty_runs SET owner = %(owner)s,
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE duty = %(duty)s
  AND (%(force)s::bool OR next_due_at <= now())
  AND (leased_until IS NULL OR leased_until < now() OR owner = %(owner)s)
RETURNING state;

-- name: work_duty_renew
-- Progress saved and the lease extended, while this owner still holds it.
UPDATE duty_runs SET state = %(state)s,
    leased_until = now() + make_interval(secs => %(lease_seconds)s::float8)
WHERE duty = %(duty)s AND owner = %(owner)s
RETURNING duty;

-- name: work_duty_complete
-- A run ended (or stopped early, or failed): its progress, when it is next due, the lease
-- given back.
UPDATE duty_runs SET owner = NULL, leased_until = NULL, state = %(state)s,
    next_due_at = now() + make_interval(secs => %(next_in_seconds)s::float8),
    last_done_at = CASE WHEN %(finished)s::bool THEN now() ELSE last_done_at END,
    last_error = %(error)s
WHERE duty = %(duty)s AND owner = %(owner)s;

-- name: work_duty_next_due
-- Seconds until the duty is due (negative: overdue); no row: never run.
SELECT EXTRACT(EPOCH FROM next_due_at - now())::float8 AS seconds
FROM duty_runs WHERE duty = %(duty)s;

-- name: work_duty_status
SELECT duty, owner, leased_until, next_due_at, state, last_done_at, last_error
FROM duty_runs WHERE duty = %(duty)s;
