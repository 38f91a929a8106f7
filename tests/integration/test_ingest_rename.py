"""A repository rename racing ordinary deliveries: no deadlock, no change under the old name."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest

from flowlens.db import Database
from flowlens.ingest import store
from flowlens.ingest.store import Item, Outcome, record_delivery
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_ingest_state import opened, pr_action

NEW = "Codertocat/Hello-Universe"


def renamed() -> dict[str, Any]:
    """Derived: the repository/edited fixture as a rename of the PRs' repository."""
    repository = variant(opened()["repository"], name="Hello-Universe", full_name=NEW,
                         updated_at="2030-01-01T00:00:00Z")  # fmt: skip
    return variant(load_fixture("repository/edited.payload.json"), action="renamed",
                   changes={"repository": {"name": {"from": "Hello-World"}}},
                   repository=repository)  # fmt: skip


async def deliver(db: Database, event: str, payload: dict[str, Any]) -> Outcome:
    return await record_delivery(db, str(uuid.uuid4()), event, payload, json.dumps(payload))


async def test_a_rename_does_not_deadlock_with_a_delivery_holding_a_pr(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery holds PR #2 and then marks the repository's activity; the rename locks the
    PRs before the repository row, so it waits instead of deadlocking (and running again)."""
    await deliver(db, "pull_request", opened())
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        await conn.execute("UPDATE repositories SET last_activity = now() - interval '1 hour'")
    holding = asyncio.Event()
    runs = {"rename": 0, "edit": 0}
    prefetch = store.Session.prefetch_prs

    async def slow_prefetch(self: store.Session, items: list[Item]) -> None:
        await prefetch(self, items)
        kind = "edit" if any(it.event == "pull_request" for it in items) else "rename"
        runs[kind] += 1
        if kind == "edit" and runs[kind] == 1:
            holding.set()
            await asyncio.sleep(1.0)  # PR #2 stays locked while the rename starts

    monkeypatch.setattr(store.Session, "prefetch_prs", slow_prefetch)

    async def rename_meanwhile() -> Outcome:
        await holding.wait()
        return await deliver(db, "repository", renamed())

    edited = pr_action("edited", "2019-05-15T15:30:00Z", title="edited")
    outcomes = await asyncio.gather(deliver(db, "pull_request", edited), rename_meanwhile())
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert runs == {"rename": 1, "edit": 1}  # a deadlock runs the loser's transaction again


async def test_a_change_that_waited_for_the_rename_goes_out_under_the_new_name(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit read the repository before the rename committed, then waited for PR #2's lock:
    its change follows the announcement, so it must carry the new name too (a socket
    subscribed to the new name would miss it otherwise)."""
    await deliver(db, "pull_request", opened())
    flushing = asyncio.Event()
    flush = store.Session.flush

    async def slow_flush(self: store.Session) -> None:
        if any(c.source == "repository" for c in self._changes):
            flushing.set()
            await asyncio.sleep(0.5)  # every PR locked, the rename not committed yet
        await flush(self)

    monkeypatch.setattr(store.Session, "flush", slow_flush)

    async def edit_meanwhile() -> Outcome:
        await flushing.wait()
        edited = pr_action("edited", "2019-05-15T15:30:00Z", title="edited")
        return await deliver(db, "pull_request", edited)

    outcomes = await asyncio.gather(deliver(db, "repository", renamed()), edit_meanwhile())
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT repository, version, payload::text FROM change_feed ORDER BY version"
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == ["Codertocat/Hello-World", NEW, NEW]  # opened, rename, edit
    last = json.loads(rows[-1][2])["data"]
    assert last["repository"] == NEW and last["pull_request"]["repositoryName"] == NEW
    assert last["title"] == "edited"
