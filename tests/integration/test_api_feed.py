"""The change feed under concurrent, delayed commits: none missing, none twice, in order per PR."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections import defaultdict
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from flowlens.api.feed import Change, FeedTailer
from flowlens.db import Database
from flowlens.ingest.store import save_pr_now
from tests.integration.test_api_support import deliver, opened, served_api, socket, ws_url

REPOS = ("acme/one", "acme/two")
PRS_PER_REPO = 20
CHANGES = 1000


async def make_prs(db: Database, repos: tuple[str, ...], per_repo: int) -> list[dict[str, Any]]:
    """PRs created through ingest; returns their rows (with repository)."""
    for r, repo in enumerate(repos):
        for n in range(1, per_repo + 1):
            await deliver(db, "pull_request", opened(n, repo=repo, repo_id=1000 + r))
    rows = []
    async with db.transaction() as tx:
        for repo in repos:
            for n in range(1, per_repo + 1):
                row = await tx.one("pull_request_by_number", repository=repo, number=n)
                assert row is not None
                rows.append(row)
    return rows


async def change(
    db: Database,
    pr: dict[str, Any],
    label: str,
    *,
    notify: bool,
    before: float = 0.0,
    after: float = 0.0,
) -> int:
    """One visible change through ingest's save_pr, with delays inside the transaction.

    The delay before the lock makes created_at (the transaction's now()) old; the delay after
    the version bump makes the commit late: later transactions commit first.
    """
    async with db.transaction() as tx:
        await asyncio.sleep(before)
        row = await tx.one(
            "ingest_lock_pull_requests",
            repository_ids=[pr["repository_id"]],
            numbers=[pr["number"]],
        )
        assert row is not None
        new = dict(row)
        new["title"] = label
        assert await save_pr_now(
            tx, row, new, pr["repository"], source="test", delivery_id=None, notify=notify
        )
        await asyncio.sleep(after)
        version = int(row["version"]) + 1
    return version


async def feed_rows(db: Database) -> list[dict[str, Any]]:
    rows = []
    async with db.transaction() as tx:
        for repo in REPOS:
            for n in range(1, PRS_PER_REPO + 1):
                rows += await tx.all("change_feed_for", repository=repo, number=n)
    return rows


async def test_rows_committed_out_of_order_are_all_delivered(dsn: str, db: Database) -> None:
    """A row with an older id and created_at that commits after a newer one is not skipped."""
    one, two = await make_prs(db, REPOS[:1], 2)
    got: list[Change] = []
    tailer = FeedTailer(db, got.append, window_seconds=10, notify=False)
    await tailer.read_once()  # primes: what exists is history

    slow_started = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as tx:
            row = await tx.one(
                "ingest_lock_pull_requests", repository_ids=[one["repository_id"]], numbers=[1]
            )
            assert row is not None
            await save_pr_now(tx, row, {**row, "title": "slow"}, one["repository"], source="test",
                          delivery_id=None, notify=False)  # fmt: skip
            slow_started.set()
            await release.wait()

    task = asyncio.create_task(slow())
    await slow_started.wait()
    await change(db, two, "fast", notify=False)
    assert await tailer.read_once() == 1
    assert [json.loads(c.text)["data"]["title"] for c in got] == ["fast"]
    release.set()
    await task
    assert await tailer.read_once() == 1
    assert [json.loads(c.text)["data"]["title"] for c in got] == ["fast", "slow"]
    # Re-reading the same window delivers nothing again.
    assert await tailer.read_once() == 0


async def test_versions_of_one_pr_arrive_in_order_within_one_read(dsn: str, db: Database) -> None:
    (pr,) = await make_prs(db, REPOS[:1], 1)
    got: list[Change] = []
    tailer = FeedTailer(db, got.append, notify=False)
    await tailer.read_once()
    for i in range(5):
        await change(db, pr, f"v{i}", notify=False)
    assert await tailer.read_once() == 5
    versions = [c.version for c in got]
    assert versions == sorted(versions) and len(set(versions)) == 5


async def test_a_pause_longer_than_the_window_skips_nothing(dsn: str, db: Database) -> None:
    """Reads start at the previous cutoff: an outage or a stalled loop loses no row."""
    (pr,) = await make_prs(db, REPOS[:1], 1)
    got: list[Change] = []
    tailer = FeedTailer(db, got.append, window_seconds=0.3, notify=False)
    await tailer.read_once()
    await change(db, pr, "during the pause", notify=False)
    await asyncio.sleep(0.8)  # the row is now older than the window
    assert await tailer.read_once() == 1
    assert await tailer.read_once() == 0
    assert json.loads(got[0].text)["data"]["title"] == "during the pause"


async def test_memory_is_bounded_by_the_window(dsn: str, db: Database) -> None:
    prs = await make_prs(db, REPOS, 5)
    tailer = FeedTailer(db, lambda _: None, window_seconds=0.5, notify=False)
    await tailer.read_once()
    for pr in prs:
        await change(db, pr, "x", notify=False)
    await tailer.read_once()
    assert tailer.tracked == len(prs)
    await asyncio.sleep(0.7)
    await tailer.read_once()
    assert tailer.tracked == 0
    assert tailer.delivered == len(prs)


async def _collect(ws: ClientConnection, sink: list[tuple[str, int, int]]) -> None:
    async for message in ws:
        data = json.loads(message)["data"]
        sink.append((data["repository"], data["pr_number"], data["version"]))


@pytest.mark.parametrize("notify", [True, False], ids=["listen-notify", "polling-only"])
async def test_two_instances_two_writers_1000_delayed_changes(
    dsn: str, db: Database, notify: bool
) -> None:
    prs = await make_prs(db, REPOS, PRS_PER_REPO)
    baseline = {(r["repository"], r["number"]): r["version"] for r in prs}
    subscriptions: dict[str, tuple[str, ...]] = {
        "all": (), "one": (REPOS[0],), "two": (REPOS[1],), "both": REPOS,
        "one-twice": (REPOS[0], REPOS[0]),
    }  # fmt: skip
    received: dict[tuple[int, str], list[tuple[str, int, int]]] = {}
    commits: list[tuple[str, int, int]] = []

    async def writer(seed: int, count: int) -> None:
        rng = random.Random(seed)
        async with Database(dsn, min_size=0, max_size=6) as wdb:
            slots = asyncio.Semaphore(6)

            async def one(i: int) -> None:
                pr = rng.choice(prs)
                before, after = rng.uniform(0, 0.01), rng.uniform(0, 0.03)
                async with slots:
                    version = await change(
                        wdb, pr, f"w{seed}-{i}", notify=notify, before=before, after=after
                    )
                commits.append((pr["repository"], pr["number"], version))

            await asyncio.gather(*(one(i) for i in range(count)))

    poll = 0.25 if notify else 0.1
    async with (
        served_api(dsn, feed_notify=notify, feed_poll_seconds=poll) as (_, base_a),
        served_api(dsn, feed_notify=notify, feed_poll_seconds=poll) as (_, base_b),
        contextlib.AsyncExitStack() as stack,
    ):
        sockets = []
        collectors = []
        for i, base in enumerate((base_a, base_b)):
            for name, repos in subscriptions.items():
                ws = await stack.enter_async_context(socket(ws_url(base, *repos)))
                sockets.append(ws)
                sink: list[tuple[str, int, int]] = []
                received[(i, name)] = sink
                collectors.append(asyncio.create_task(_collect(ws, sink)))

        await asyncio.gather(writer(1, CHANGES // 2), writer(2, CHANGES // 2))
        assert len(commits) == CHANGES

        rows = [r for r in await feed_rows(db)
                if r["version"] > baseline[(r["repository"], r["pr_number"])]]  # fmt: skip
        assert len(rows) == CHANGES
        # The test must really produce commits out of id order, or it proves nothing.
        by_id = sorted(rows, key=lambda r: r["id"])
        commit_pos = {c: k for k, c in enumerate(commits)}
        id_order = [commit_pos[(r["repository"], r["pr_number"], r["version"])] for r in by_id]
        inversions = sum(1 for a, b in itertools.pairwise(id_order) if a > b)
        assert inversions > 50, inversions

        expected: dict[str, set[tuple[str, int, int]]] = {}
        for name, repos in subscriptions.items():
            expected[name] = {
                (r["repository"], r["pr_number"], r["version"])
                for r in rows
                if not repos or r["repository"] in repos
            }

        async def complete() -> None:
            while any(len(received[(i, n)]) < len(expected[n]) for (i, n) in received):
                await asyncio.sleep(0.05)

        with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
            await asyncio.wait_for(complete(), 20)
        await asyncio.sleep(3 * poll)  # room for a duplicate to show up
        for ws in sockets:
            await ws.close()
        for task in collectors:
            task.cancel()
        await asyncio.gather(*collectors, return_exceptions=True)

    for (instance, name), got in received.items():
        label = f"instance {instance}, client {name}"
        assert len(got) == len(set(got)), f"{label}: duplicates"
        assert set(got) == expected[name], f"{label}: missing {len(expected[name] - set(got))}"
        last: dict[tuple[str, int], int] = defaultdict(int)
        for repo, number, version in got:
            assert version > last[(repo, number)], f"{label}: {repo}#{number} out of order"
            last[(repo, number)] = version
