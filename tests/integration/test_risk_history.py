"""The risk model's history stores: PostgreSQL (the product's) and memory (risk-eval's) keep
the same history and answer every lookup alike, including a PR's later heads."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlens.db import Database
from flowlens.risk.history import FileHistory, History, MemoryHistory, PgHistory
from flowlens.risk.replay import observe

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = itertools.count()


async def repository(db: Database, name: str) -> int:
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "INSERT INTO repositories (full_name, name, owner) VALUES (%s, %s, 'o') RETURNING id",
            (name, name.split("/")[-1]),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def test_a_scripted_history_by_hand(db: Database) -> None:
    """Three changes of two files by two authors, then a PR's second head: each answer worked
    out by hand."""
    repo = await repository(db, "o/hand")
    memory = MemoryHistory()

    async def both(change: str, author: str, paths: list[str], days: int) -> list[History]:
        at = T0 + timedelta(days=days)
        async with db.transaction() as tx:
            pg = await observe(PgHistory(tx), repo, change, author, paths, at)
        return [pg, await observe(memory, repo, change, author, paths, at)]

    for h in await both("c1", "ann", ["a.py", "b.py"], 0):
        assert h == History(author_changes=0, files={})
    for h in await both("c2", "bob", ["a.py"], 1):
        assert h == History(0, {"a.py": FileHistory(1, 1, T0, "c1")})
    for h in await both("c3", "ann", ["a.py", "b.py"], 3):
        assert h == History(1, {
            "a.py": FileHistory(2, 2, T0 + timedelta(days=1), "c2"),
            "b.py": FileHistory(1, 1, T0, "c1"),
        })  # fmt: skip
    # c3's next head adds c.py: c3 itself is left out of what it is scored on.
    for h in await both("c3", "ann", ["a.py", "b.py", "c.py"], 4):
        assert h == History(1, {
            "a.py": FileHistory(2, 2, T0 + timedelta(days=1), "c2"),
            "b.py": FileHistory(1, 1, T0, "c1"),
        })  # fmt: skip
    # A new author's change sees c3 counted once per file, at the time c3 first touched each.
    for h in await both("c4", "cat", ["a.py", "b.py", "c.py"], 5):
        assert h == History(0, {
            "a.py": FileHistory(3, 2, T0 + timedelta(days=3), "c3"),
            "b.py": FileHistory(2, 1, T0 + timedelta(days=3), "c3"),
            "c.py": FileHistory(1, 1, T0 + timedelta(days=4), "c3"),
        })  # fmt: skip
    other = await repository(db, "o/other")
    async with db.transaction() as tx:
        assert await PgHistory(tx).lookup(other, "x", "ann", ["a.py"]) == History(0, {})


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1))
async def test_the_stores_agree_on_any_stream(db: Database, seed: int) -> None:
    rnd = random.Random(seed)
    repo = await repository(db, f"o/r{next(NAMES)}")
    memory = MemoryHistory()
    changes = [f"k{i}" for i in range(8)]
    for step in range(25):
        change = rnd.choice(changes)  # changes come back (a PR's later heads)
        author = ["ann", "bob", "cat"][int(change[1:]) % 3]  # a PR keeps its author
        paths = rnd.sample(["a", "b", "c", "d/e", "d/f"], rnd.randint(0, 4))
        at = T0 + timedelta(hours=step)
        async with db.transaction() as tx:
            pg = await observe(PgHistory(tx), repo, change, author, paths, at)
        mem = await observe(memory, repo, change, author, paths, at)
        assert pg == mem, (step, change, author, paths)


async def test_concurrent_changes_of_one_author_count_one_author(db: Database) -> None:
    """Two pollers record two PRs of one author touching the same new file at once: one
    author, two changes; and a change recorded late never becomes the file's last."""
    repo = await repository(db, "o/concurrent")
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def record(change: str, hours: int, hold: bool) -> None:
        async with db.transaction() as tx:
            await PgHistory(tx).record(repo, change, "ann", ["new.py"], T0 + timedelta(hours=hours))
            if hold:
                first_in.set()
                await release.wait()  # the other records while this one is uncommitted

    holder = asyncio.create_task(record("c2", 2, hold=True))
    await first_in.wait()
    other = asyncio.create_task(record("c1", 1, hold=False))
    await asyncio.sleep(0.3)
    release.set()
    await asyncio.gather(holder, other)
    async with db.transaction() as tx:
        history = await PgHistory(tx).lookup(repo, "c3", "bob", ["new.py"])
    assert history.files["new.py"] == FileHistory(2, 1, T0 + timedelta(hours=2), "c2")
