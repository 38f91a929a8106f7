"""Retention: old payloads, deliveries, history and feed rows go in small batches, in one
process at a time, and nothing that dedupe, the feed window or a pending retry needs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.ingest.store import Outcome, reapply_unapplied, record_delivery, record_unapplied
from flowlens.poller.service import PollerService
from flowlens.poller.worker import Poller
from flowlens.retention import (
    FEED_KEEP_SECONDS,
    RESTART_SECONDS,
    Retention,
    RetentionBusy,
    RetentionSummary,
)
from flowlens.settings import ConfigError, PollerSettings
from flowlens.workqueue import DutyLease, EventQueue, retry_dead_events
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_poller import CountingAnalyser, deliver, pr_delivery

REPO = "Codertocat/Hello-World"


def settings(dsn: str = "postgresql://unused", **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {
        "database_url": dsn, "poll_interval_seconds": 0.05, "retention_batch_size": 2,
    }  # fmt: skip
    base.update(overrides)
    return PollerSettings(**base)


async def view(db: Database) -> dict[str, dict[str, Any]]:
    async with db.transaction() as tx:
        return {r["delivery_id"]: r for r in await tx.all("raw_event_retention_view")}


async def age(db: Database, delivery_id: str, days: int) -> None:
    async with db.transaction() as tx:
        assert await tx.execute("age_raw_event", delivery_id=delivery_id, days=days) == 1


async def keys(db: Database, query: str) -> list[tuple[int, int]]:
    async with db.transaction() as tx:
        return [(r["pull_request_id"], r["version"]) for r in await tx.all(query)]


def revert_push(number: int) -> dict[str, Any]:
    """A push to the default branch whose commit reverts something: the poller reads pushes'
    payloads when it processes them (for reverts)."""
    commit = {"id": f"{number:040x}", "message": "Revert x\n\nThis reverts commit " + "a" * 40}
    return variant(load_fixture("push/payload.json"), ref="refs/heads/master", commits=[commit])


async def test_retention_keeps_what_dedupe_the_feed_and_retries_need(db: Database) -> None:
    # Processed deliveries: one past RAW_PAYLOAD_DAYS, one past RAW_EVENT_DAYS, one recent.
    for n, name in ((1, "old-payload"), (2, "gone"), (3, "recent")):
        await deliver(db, "pull_request", pr_delivery(n, f"{n:040x}", "opened", n), name)
    analyser = CountingAnalyser()
    assert (await Poller(db, settings(), analyser).run(0.0)).events == 3
    # A pending retry, a dead letter and an unapplied delivery, all past RAW_EVENT_DAYS.
    await deliver(db, "push", revert_push(4), "retry")
    await deliver(db, "push", revert_push(5), "dead")
    queue = EventQueue("test", lease_seconds=30.0)
    async with db.transaction() as tx:
        claimed = {r["delivery_id"]: r["id"] for r in await queue.claim(tx, 10)}
        await queue.retry_later(tx, [claimed["retry"]], attempts=1, error="GitHub 502")
        await queue.dead_letter(tx, [claimed["dead"]], "gave up")
    body = json.dumps(variant(load_fixture("pull_request/opened.payload.json"), number="x"))
    outcome = await record_unapplied(db, "unapplied", "pull_request", body, "opened", "number")
    assert outcome is Outcome.UNAPPLIED
    for name, days in (("old-payload", 40), ("gone", 400), ("recent", 1), ("retry", 400),
                       ("dead", 400), ("unapplied", 400)):  # fmt: skip
        await age(db, name, days)
    # CI runs past HISTORY_DAYS: one of open PR 1's head (kept), one of another commit.
    run = load_fixture("workflow_run/completed.with-pull-requests.payload.json")
    repo = load_fixture("pull_request/opened.payload.json")["repository"]
    for n, sha in ((1, f"{1:040x}"), (2, "f" * 40)):
        body = variant(run, repository=repo, **{"workflow_run.id": n,
                       "workflow_run.head_sha": sha, "workflow_run.pull_requests": []})  # fmt: skip
        await deliver(db, "workflow_run", body, f"run-{n}")
    async with db.transaction() as tx:
        assert await tx.execute("age_builds", days=400) == 2
    # History: PR 1's rows but its latest are past HISTORY_DAYS; all of PR 2's, latest too.
    pr1, pr2, pr3 = [await pr_id(db, n) for n in (1, 2, 3)]
    history_before = await keys(db, "pr_history_versions")
    latest = {pr: max(v for p, v in history_before if p == pr) for pr in (pr1, pr2, pr3)}
    assert latest[pr1] >= 2, history_before  # opened, then the insight
    async with db.transaction() as tx:
        await tx.execute("age_pr_history", pull_request_id=pr1, version=latest[pr1] - 1, days=400)
        await tx.execute("age_pr_history", pull_request_id=pr2, version=latest[pr2], days=400)
    # Feed: one row older than FEED_KEEP_SECONDS, one a minute younger (far beyond the
    # longest trailing window an API may read: FEED_WINDOW_SECONDS <= 600), the rest new.
    feed_before = await keys(db, "change_feed_keys")
    stale, kept_old = feed_before[0], feed_before[1]
    async with db.transaction() as tx:
        await tx.execute("age_change_feed", pull_request_id=stale[0], version=stale[1],
                         seconds=FEED_KEEP_SECONDS + 60)  # fmt: skip
        await tx.execute("age_change_feed", pull_request_id=kept_old[0], version=kept_old[1],
                         seconds=FEED_KEEP_SECONDS - 60)  # fmt: skip

    seen: list[int] = []
    done = await Retention(db, settings()).sweep(lambda s: seen.append(s.batches))
    # "gone" loses its payload first, then its row.
    assert done.payloads == 2 and done.events == 1 and done.feed == 1, done
    kept_history = {k for k in history_before if k[0] == pr3 or k[1] == latest[k[0]]}
    assert done.history == len(history_before) - len(kept_history) > 0 and done.runs, done
    # Batches of RETENTION_BATCH_SIZE (2): several, each reported as it went.
    assert done.batches >= 6 and seen == list(range(1, done.batches + 1))

    rows = await view(db)
    assert "gone" not in rows
    assert rows["old-payload"]["processed"] and not rows["old-payload"]["has_payload"]
    for kept in ("recent", "retry", "dead", "unapplied"):
        assert rows[kept]["has_payload"], kept
    # Every PR keeps its latest history row, however old; recent rows all stay.
    assert set(await keys(db, "pr_history_versions")) == kept_history
    assert set(await keys(db, "change_feed_keys")) == set(feed_before) - {stale}
    async with db.transaction() as tx:
        assert [r["commit_sha"] for r in await tx.all("build_shas")] == [f"{1:040x}"]
    assert done.builds == 1

    # Dedupe: a redelivery of the delivery whose payload went is still known.
    again = pr_delivery(1, "1" * 40, "opened", 1)
    outcome = await record_delivery(db, "old-payload", "pull_request", again, json.dumps(again))
    assert outcome is Outcome.DUPLICATE
    assert len(await view(db)) == len(rows)
    # The pending retry, the dead letter and the unapplied delivery are handled after it.
    async with db.transaction() as tx:
        await tx.execute("make_event_due", delivery_id="retry")
        assert await retry_dead_events(tx) == [claimed["dead"]]
    # Applied from its payload by this version's code.
    reapplied = await reapply_unapplied(db, None, notify=False)
    assert len(reapplied.applied) == 1 and not reapplied.still, reapplied
    await Poller(db, settings(), analyser).run(0.0)
    rows = await view(db)
    assert all(rows[k]["processed"] and not rows[k]["unapplied"]
               for k in ("retry", "dead", "unapplied"))  # fmt: skip
    # Handled now, and old: the next run removes them.
    after = await Retention(db, settings()).sweep()
    assert after.events == 3, after
    assert set(await view(db)) == {"old-payload", "recent", "run-1", "run-2"}


async def pr_id(db: Database, number: int) -> int:
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository=REPO, number=number)
    assert row is not None
    return int(row["id"])


async def old_processed(db: Database, count: int, days: int) -> None:
    """`count` processed deliveries received `days` ago."""
    for n in range(count):
        body = variant(load_fixture("pull_request/opened.payload.json"), action="closed")
        await deliver(db, "pull_request", body, f"old-{n}")
        await age(db, f"old-{n}", days)
    await Poller(db, settings(), CountingAnalyser()).run(0.0)
    async with db.transaction() as tx:
        assert int(await tx.value("pending_event_count")) == 0


async def test_one_process_at_a_time_and_only_when_due(db: Database) -> None:
    await old_processed(db, 3, 40)
    first, second = Retention(db, settings()), Retention(db, settings())
    async with db.transaction() as tx:  # the first holds the lease
        assert await first.lease.claim(tx) == {}
    assert (await second.pass_once()).runs == 0
    with pytest.raises(RetentionBusy, match="another process is running retention"):
        await second.sweep()
    async with db.transaction() as tx:
        await first.lease.complete(tx, {}, next_in=0.0, finished=False)
    done = await Retention(db, settings()).pass_once()
    assert done.runs == 1 and done.payloads == 3
    # Done until RETENTION_INTERVAL_SECONDS from now: no process runs it before.
    third = Retention(db, settings())
    assert (await third.pass_once()).runs == 0
    async with db.transaction() as tx:
        status = await third.lease.status(tx)
        due = await third.lease.next_due(tx)
    assert status is not None and status["last_done_at"] is not None and status["owner"] is None
    assert due is not None and due > 3000


async def test_a_run_stopped_midway_goes_on_from_its_saved_progress(db: Database) -> None:
    await old_processed(db, 5, 40)
    stop = asyncio.Event()
    retention = Retention(db, settings(retention_batch_size=1))

    def halt(summary: RetentionSummary) -> None:
        if summary.payloads == 2:
            stop.set()

    first = await retention.pass_once(stop=stop, progress=halt)
    assert first.payloads == 2
    # Given back with its cursor and due at once: another process takes it from there.
    other = Retention(db, settings(retention_batch_size=1))
    rest = await other.pass_once()
    assert rest.runs == 1 and rest.payloads == 3
    assert sum(not r["has_payload"] for r in (await view(db)).values()) == 5


async def test_zero_days_keeps_deliveries_and_history_for_ever(db: Database) -> None:
    await old_processed(db, 2, 4000)
    quiet = settings(raw_payload_days=0, raw_event_days=0, history_days=0)
    done = await Retention(db, quiet).sweep()
    assert (done.payloads, done.events, done.history) == (0, 0, 0)
    assert all(r["has_payload"] for r in (await view(db)).values())


async def test_the_poller_runs_retention_as_a_duty_and_goes_on_when_it_fails(
    db: Database, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await old_processed(db, 2, 40)
    service = PollerService(settings(dsn, github_api_url=""))
    try:
        out = await service.invoke(budget_seconds=5.0)  # ends idle once retention is done
        assert out["retention"]["payloads"] == 2 and out["retention"]["runs"] == 1, out

        async def broken(**_: Any) -> RetentionSummary:
            raise RuntimeError("disk full")

        monkeypatch.setattr(service.retention, "pass_once", broken)
        await deliver(db, "pull_request", pr_delivery(9, "9" * 40, "opened", 0), "new")
        out = await service.invoke(budget_seconds=0.3)
    finally:
        await service.close()
    assert out["insights"] == 1 and "disk full" in " ".join(out["retention"]["errors"]), out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"raw_event_days": 3}, "RAW_EVENT_DAYS (3) is below 7"),
        ({"raw_event_days": 30, "sync_since_days": 90}, "below SYNC_SINCE_DAYS (90)"),
        ({"raw_payload_days": -1}, "RAW_PAYLOAD_DAYS"),
        ({"retention_batch_size": 0}, "RETENTION_BATCH_SIZE"),
        # The feed's trailing window stays far inside what retention keeps of the feed.
        ({"feed_window_seconds": FEED_KEEP_SECONDS}, "FEED_WINDOW_SECONDS"),
        ({"feed_window_seconds": 601}, "FEED_WINDOW_SECONDS"),
        ({"history_days": 10}, "HISTORY_DAYS (10) is below 30"),
    ],
)
def test_retention_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PollerSettings.from_env(database_url="postgresql://h/x", **overrides)
    assert PollerSettings.from_env(database_url="postgresql://h/x", raw_event_days=0)
    assert PollerSettings.from_env(database_url="postgresql://h/x", feed_window_seconds=600)
    assert FEED_KEEP_SECONDS > 600 * 2


async def test_the_command_runs_retention_and_says_when_a_payload_went(
    db: Database, dsn: str
) -> None:
    from tests.integration.test_cli import flowlens, one_line

    await old_processed(db, 2, 40)
    rc, out, err = await flowlens("retention", DATABASE_URL=dsn)
    assert rc == 0, err
    assert json.loads(out)["payloads"] == 2
    rc, out, err = await flowlens("events", "payload", "old-0", DATABASE_URL=dsn)
    assert rc == 1 and not out
    one_line(err, "payload of delivery 'old-0'", "pull_request.closed", "dropped by retention")
    rc, out, err = await flowlens("retention", "--status", DATABASE_URL=dsn)
    assert rc == 0 and json.loads(out)["last_done_at"], (out, err)


async def test_a_batch_that_fails_leaves_no_row_behind_its_cursor(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await old_processed(db, 5, 40)
    retention = Retention(db, settings(retention_batch_size=1))
    real, calls = DutyLease.renew, []

    async def flaky(self: DutyLease, tx: Any, state: dict[str, Any]) -> bool:
        calls.append(1)
        if len(calls) == 3:  # the feed's batch, then the payloads' first, then this one
            raise OSError("connection lost")
        return await real(self, tx, state)

    monkeypatch.setattr(DutyLease, "renew", flaky)
    with pytest.raises(OSError):
        await retention.pass_once()
    monkeypatch.undo()
    done = await Retention(db, settings(retention_batch_size=1)).sweep()
    assert done.payloads == 4, done  # the rolled-back batch's row is not skipped
    assert not any(r["has_payload"] for r in (await view(db)).values())
    async with db.transaction() as tx:
        status = await retention.lease.status(tx)
    assert status is not None and status["last_error"] is None  # the sweep's run ended well


async def test_a_run_that_lost_its_lease_undoes_its_batch_and_stops(db: Database, dsn: str) -> None:
    import psycopg

    await old_processed(db, 4, 40)
    first = Retention(db, settings(retention_batch_size=1), lease_seconds=0.2)

    def take_over(summary: RetentionSummary) -> None:
        if summary.payloads == 1:  # between two batches: past its lease, another takes it
            time.sleep(0.3)
            with psycopg.connect(dsn, autocommit=True) as conn:
                taken = conn.execute(
                    "UPDATE duty_runs SET owner = 'other', leased_until = now() + interval "
                    "'1 minute' WHERE duty = 'retention' AND leased_until < now() RETURNING 1"
                ).fetchall()
            assert taken == [(1,)]

    done = await first.pass_once(progress=take_over)
    assert done.payloads == 1 and first.lost and "retention lease lost" in done.errors, done
    # The batch it tried after losing the lease was undone: three payloads are left, and the
    # other process goes on from the first one's last committed batch.
    assert sum(r["has_payload"] for r in (await view(db)).values()) == 3
    other = DutyLease("retention", "other", 60.0)
    async with db.transaction() as tx:
        status = await other.status(tx)
        assert status is not None and status["owner"] == "other"
        await other.complete(tx, status["state"], next_in=0.0, finished=False)
    rest = await Retention(db, settings(retention_batch_size=1)).pass_once()
    assert rest.payloads == 3, rest
    assert not any(r["has_payload"] for r in (await view(db)).values())


async def test_old_deliveries_still_leased_and_builds_re_run_lately_are_kept(
    db: Database,
) -> None:
    await deliver(db, "pull_request", pr_delivery(7, "7" * 40, "opened", 0), "in-flight")
    async with db.transaction() as tx:
        assert len(await EventQueue("busy", lease_seconds=60.0).claim(tx, 10)) == 1
    await age(db, "in-flight", 400)
    run = load_fixture("workflow_run/completed.with-pull-requests.payload.json")
    await deliver(db, "workflow_run", variant(run, **{"workflow_run.pull_requests": []}), "run")
    async with db.transaction() as tx:
        await tx.execute("age_builds", days=400)
        await tx.execute("touch_builds")  # a re-run changed it today
    done = await Retention(db, settings()).sweep()
    assert (done.payloads, done.events, done.builds) == (0, 0, 0), done
    assert (await view(db))["in-flight"]["has_payload"]


async def test_the_history_walk_starts_over_for_rows_superseded_after_it_passed(
    db: Database,
) -> None:
    await deliver(db, "pull_request", pr_delivery(8, "8" * 40, "opened", 0), "h-1")
    await Poller(db, settings(), CountingAnalyser()).run(0.0)
    pr = await pr_id(db, 8)
    before = [v for p, v in await keys(db, "pr_history_versions") if p == pr]
    async with db.transaction() as tx:
        await tx.execute("age_pr_history", pull_request_id=pr, version=max(before), days=400)
    await Retention(db, settings()).sweep()  # passes every row; the latest stays
    kept = [v for p, v in await keys(db, "pr_history_versions") if p == pr]
    assert kept == [max(before)]
    # A new version supersedes the old latest row, which the cursor has passed.
    await deliver(db, "pull_request", pr_delivery(8, "8" * 40, "edited", 5), "h-2")
    await Poller(db, settings(), CountingAnalyser()).run(0.0)
    again = Retention(db, settings())
    assert (await again.sweep()).history == 0  # behind the cursor: not seen in this walk
    async with db.transaction() as tx:  # the walk began a day ago
        await tx.execute("age_duty_walk", duty="retention", rule="history",
                         seconds=RESTART_SECONDS + 60)  # fmt: skip
    assert (await Retention(db, settings()).sweep()).history == 0  # this walk ends, restarts
    assert (await Retention(db, settings()).sweep()).history == 1
    assert max(before) not in [v for p, v in await keys(db, "pr_history_versions") if p == pr]
