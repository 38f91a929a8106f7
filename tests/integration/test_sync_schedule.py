"""The scheduled sync: one shared schedule, cursors, the poller's extra duty, the CLI loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.settings import PollerSettings
from flowlens.sync import SyncScheduler
from tests.fakes.fake_github_sync import FakeGitHubSync, GitHubWorld

REPO = "Codertocat/Hello-World"


def settings(dsn: str, url: str, **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {
        "database_url": dsn,
        "github_api_url": url,
        "sync_repositories": REPO,
        "sync_interval_seconds": 60.0,
        "poll_interval_seconds": 0.05,
    }
    base.update(overrides)
    return PollerSettings(**base)


def spread_world(fake: FakeGitHubSync) -> GitHubWorld:
    """Five PRs half an hour apart, each with a finished run (older ones beyond the overlap)."""
    world = GitHubWorld(fake, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4))
    for n in range(1, 6):
        sha = f"{n:x}" * 40
        world.open_pr(n, sha=sha)
        world.run(100 + n, sha=sha, status="completed", conclusion="success", number=n)
        world.tick(30)
    return world


@pytest.fixture
def github() -> Iterator[FakeGitHubSync]:
    fake = FakeGitHubSync(max_per_page=2)
    with fake.running():
        yield fake


def scheduler(db: Database, github: FakeGitHubSync, **kwargs: Any) -> SyncScheduler:
    assert github.url is not None
    # Its own client (from GITHUB_API_URL), closed by aclose().
    return SyncScheduler(db, settings(db.dsn, github.url), [REPO], jitter=lambda: 1.0, **kwargs)


async def state(db: Database) -> dict[str, Any]:
    async with db.transaction() as tx:
        row = await tx.one("sync_state_get", repository=REPO)
    assert row is not None
    return row


async def pull_count(db: Database) -> int:
    async with db.transaction() as tx:
        row = await tx.one("table_counts")
    assert row is not None
    return int(row["pull_requests"])


async def runs_done(db: Database) -> int:
    """Runs finished (complete or failed); 0 before the scheduler made the row."""
    async with db.transaction() as tx:
        row = await tx.one("sync_state_get", repository=REPO)
    return int(row["runs"]) if row else 0


async def test_two_schedulers_sync_a_due_repository_once(
    db: Database, github: FakeGitHubSync
) -> None:
    spread_world(github)
    first, second = scheduler(db, github), scheduler(db, github)
    try:
        a, b = await asyncio.gather(first.run_due(), second.run_due())
        assert (a.runs + b.runs, a.complete + b.complete) == (1, 1)
        # Not due again for SYNC_INTERVAL_SECONDS.
        again = await asyncio.gather(first.run_due(), second.run_due())
        assert sum(s.runs for s in again) == 0
    finally:
        await first.aclose()
        await second.aclose()
    row = await state(db)
    assert row["leased_until"] is None and row["last_error"] is None and row["runs"] == 1
    assert 50 < (row["next_run_at"] - datetime.now(UTC)).total_seconds() <= 60
    assert await pull_count(db) == 5


async def test_the_next_run_lists_only_what_changed(db: Database, github: FakeGitHubSync) -> None:
    world = spread_world(github)
    first = scheduler(db, github)
    try:
        assert (await first.run_due()).complete == 1
    finally:
        await first.aclose()
    row = await state(db)
    assert row["prs_cursor"] == datetime.fromisoformat(world.pr(5)["updated_at"])

    world.open_pr(6, sha="6" * 40)
    world.run(106, sha="6" * 40, status="completed", conclusion="failure", number=6)
    async with db.transaction() as tx:
        await tx.execute("sync_make_due", repository=REPO)
    github.requests.clear()
    # A new process (no ETags kept): the cursors alone keep the walk short.
    second = scheduler(db, github)
    try:
        summary = await second.run_due()
    finally:
        await second.aclose()
    assert summary.complete == 1 and summary.accepted == 2
    # Back to the cursor (less the overlap) and no further: 2 pages of each, not all 3.
    lists = [p for p in github.paths() if "/pulls?" in p or "/actions/runs?" in p]
    assert lists == [f"/repos/{REPO}/{kind}?page={n}" for kind in ("actions/runs", "pulls")
                     for n in (1, 2)]  # fmt: skip
    # Only the new PR needed its detail and reviews.
    assert [p for p in github.paths() if "/pulls/" in p] == [
        f"/repos/{REPO}/pulls/6?page=1",
        f"/repos/{REPO}/pulls/6/reviews?page=1",
    ]
    assert await pull_count(db) == 6


async def one_off(db: Database, github: FakeGitHubSync, *, since_days: float) -> None:
    """`flowlens sync --since since_days`."""
    from flowlens.sync import GitHubSyncClient, sync_once

    assert github.url is not None
    client = GitHubSyncClient(github.url, retry_delay=0.01)
    try:
        await sync_once(db, client, REPO, since_days=since_days)
    finally:
        await client.aclose()


async def test_a_short_one_off_sync_does_not_make_the_schedule_skip_older_changes(
    db: Database, github: FakeGitHubSync
) -> None:
    """`flowlens sync --since 0.1` on a repository the schedule has not synced yet: its
    cursors cover only its 0.1 days, so the schedule's first run still walks its whole
    window."""
    spread_world(github)
    await one_off(db, github, since_days=0.1)
    assert await pull_count(db) < 5
    row = await state(db)
    assert row["prs_cursor"] is not None and row["prs_covered_from"] > datetime.now(
        UTC
    ) - timedelta(days=0.2)
    schedule = scheduler(db, github)
    try:
        assert (await schedule.run_due()).complete == 1
    finally:
        await schedule.aclose()
    assert await pull_count(db) == 5
    # Now the coverage reaches back to the schedule's window.
    assert (await state(db))["prs_covered_from"] < datetime.now(UTC) - timedelta(days=6.9)


async def test_a_one_off_over_the_whole_window_lets_the_schedule_go_on_from_it(
    db: Database, github: FakeGitHubSync
) -> None:
    spread_world(github)
    await one_off(db, github, since_days=30)
    assert await pull_count(db) == 5 and (await state(db))["prs_cursor"] is not None
    github.requests.clear()
    schedule = scheduler(db, github)
    try:
        assert (await schedule.run_due()).complete == 1
    finally:
        await schedule.aclose()
    # From the cursor (less the overlap): the list's first page reaches back past it.
    assert [p for p in github.paths() if "/pulls?" in p] == [f"/repos/{REPO}/pulls?page=1"]


async def test_a_one_off_with_a_shorter_window_than_the_schedules_does_not_cut_it_short(
    db: Database, github: FakeGitHubSync
) -> None:
    """A laptop's `flowlens sync` with SYNC_SINCE_DAYS=7 beside a poller set to 30 days: the
    poller's schedule still lists its 30 days (a PR updated 20 days ago is found)."""
    world = GitHubWorld(github, start=datetime.now(UTC).replace(microsecond=0) - timedelta(days=21))
    world.open_pr(1, sha="1" * 40)
    world.tick(20 * 24 * 60)
    world.open_pr(2, sha="2" * 40)
    assert github.url is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "sync", REPO, "--quiet",
        env={**os.environ, "DATABASE_URL": db.dsn, "GITHUB_API_URL": github.url,
             "SYNC_SINCE_DAYS": "7", "LOG_FORMAT": "text"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert await pull_count(db) == 1
    schedule = SyncScheduler(db, settings(db.dsn, github.url, sync_since_days=30), [REPO],
                             jitter=lambda: 1.0)  # fmt: skip
    try:
        assert (await schedule.run_due()).complete == 1
    finally:
        await schedule.aclose()
    assert await pull_count(db) == 2


async def test_unfinished_runs_are_listed_again_until_they_finish(
    db: Database, github: FakeGitHubSync
) -> None:
    world = spread_world(github)
    # The oldest run is still going (derived: its run left in_progress).
    world.run(101, sha="1" * 40, status="in_progress")
    first = scheduler(db, github)
    try:
        assert (await first.run_due()).complete == 1
        row = await state(db)
        assert row["runs_cursor"] < datetime.fromisoformat(world.pr(2)["created_at"])

        world.run(101, sha="1" * 40, status="completed", conclusion="failure")
        async with db.transaction() as tx:
            await tx.execute("sync_make_due", repository=REPO)
        assert (await first.run_due()).accepted == 1
    finally:
        await first.aclose()
    async with db.transaction() as tx:
        builds = {b["external_id"]: b for b in await tx.all("builds_for_repository",
                                                             repository=REPO)}  # fmt: skip
        pr = await tx.one("pull_request_by_number", repository=REPO, number=1)
    assert builds["run:101"]["status"] == "failed"
    assert pr is not None and pr["status_build"] == "buildFailed"
    # Now everything has finished: the cursor moves up to the newest run.
    assert (await state(db))["runs_cursor"] == datetime.fromisoformat(
        world.github.runs[REPO][-1]["created_at"]
    )


async def build_state(db: Database, number: int) -> str:
    async with db.transaction() as tx:
        pr = await tx.one("pull_request_by_number", repository=REPO, number=number)
    assert pr is not None
    return str(pr["status_build"])


async def test_a_re_run_behind_the_runs_cursor_reaches_its_failed_pull_request(
    db: Database, github: FakeGitHubSync
) -> None:
    """GitHub keeps a re-run's id and creation time: once a newer run moved the cursor past it,
    the walk by creation time stops before it. An open PR's failed head is listed by sha."""
    world = GitHubWorld(github, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4))
    failing, passing = "a" * 40, "b" * 40
    world.open_pr(1, sha=failing)
    world.run(201, sha=failing, status="completed", conclusion="failure", number=1)
    world.tick(30)
    world.open_pr(2, sha=passing)
    world.run(202, sha=passing, status="completed", conclusion="success", number=2)
    schedule = scheduler(db, github)
    try:
        assert (await schedule.run_due()).complete == 1
        assert await build_state(db, 1) == "buildFailed"
        cursor = (await state(db))["runs_cursor"]
        assert cursor == datetime.fromisoformat(github.runs[REPO][-1]["created_at"])

        # "Re-run failed jobs": the same run, its creation time 30 minutes behind the cursor.
        world.run(201, sha=failing, status="in_progress")
        async with db.transaction() as tx:
            await tx.execute("sync_make_due", repository=REPO)
        github.requests.clear()
        assert (await schedule.run_due()).accepted == 1
        assert await build_state(db, 1) == "building"
        assert (await state(db))["runs_cursor"] == cursor  # the walk itself never saw it
        # Only the failed head is listed by sha; the passing one is not asked about.
        assert [r.query.get("head_sha") for r in github.requests if "head_sha" in r.query] == [
            failing
        ]

        world.run(201, sha=failing, status="completed", conclusion="success")
        async with db.transaction() as tx:
            await tx.execute("sync_make_due", repository=REPO)
        assert (await schedule.run_due()).accepted == 1
        assert await build_state(db, 1) == "buildPassed"

        # A passed head is no longer listed: the next sync asks about no head at all.
        async with db.transaction() as tx:
            await tx.execute("sync_make_due", repository=REPO)
        github.requests.clear()
        assert (await schedule.run_due()).complete == 1
    finally:
        await schedule.aclose()
    assert github.requests and not [r for r in github.requests if "head_sha" in r.query]


async def test_rate_limited_schedule_waits_for_the_reset(
    db: Database, github: FakeGitHubSync
) -> None:
    spread_world(github)
    github.rate_limit(0, reset_in=600)
    sched = scheduler(db, github)
    try:
        summary = await sched.run_due()
    finally:
        await sched.aclose()
    assert summary.failed == 1 and "rate limited" in summary.errors[0]
    row = await state(db)
    assert "rate limited" in row["last_error"] and row["leased_until"] is None
    assert (row["next_run_at"] - datetime.now(UTC)).total_seconds() > 590


async def test_poller_invocation_syncs_as_an_extra_duty(
    db: Database, dsn: str, github: FakeGitHubSync
) -> None:
    from flowlens.poller.service import PollerService

    spread_world(github)
    assert github.url is not None
    service = PollerService(settings(dsn, github.url))
    try:
        first = await service.invoke(budget_seconds=2.0)
        second = await service.invoke(budget_seconds=0.5)
    finally:
        await service.close()
    assert first["sync"]["complete"] == 1 and first["sync"]["accepted"] == 10
    assert second["sync"]["runs"] == 0  # not due again yet
    # The synced PRs went through the webhook path: the poller analysed their heads.
    assert first["insights"] + second["insights"] == 5
    assert await pull_count(db) == 5


async def test_cli_loop_keeps_syncing_until_interrupted(
    db: Database, dsn: str, github: FakeGitHubSync
) -> None:
    world = spread_world(github)
    assert github.url is not None
    env = {
        "DATABASE_URL": dsn,
        "GITHUB_API_URL": github.url,
        "SYNC_REPOSITORIES": REPO,
        "SYNC_INTERVAL_SECONDS": "0.5",
        "LOG_FORMAT": "text",
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "sync", "--loop", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # The first run done (its workflow runs create the PR rows before it lists the pulls,
        # so five rows alone do not say the listing is over).
        await _until(lambda: runs_done(db), 1)
        assert await pull_count(db) == 5
        world.open_pr(6, sha="6" * 40)
        await _until(lambda: pull_count(db), 6)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["runs"] >= 2 and summary["complete"] >= 2 and summary["failed"] == 0
    assert f"{REPO}: pulls page 1" in err.decode()


async def _until(read: Any, want: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await read()) != want:
        assert time.monotonic() < deadline, f"still {value}, want {want}"
        await asyncio.sleep(0.1)
