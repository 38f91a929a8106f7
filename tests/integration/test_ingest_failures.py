"""Database failures: a 503 means nothing was written, and a redelivery then succeeds once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowlens.db import Database
from flowlens.devdb import EmbeddedPostgres
from flowlens.github.parse import parse
from flowlens.ingest.app import close_all
from flowlens.ingest.batch import Batcher
from flowlens.ingest.store import Item, Outcome
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.conftest import Sender, ingest_app

OPENED = "pull_request/opened.payload.json"


async def _kill_while_waiting(
    db: Database, sender: Sender, payload: dict[str, object], delivery: str, *, kills: int
) -> httpx.Response:
    """Send a delivery that needs a PR lock another transaction holds, and terminate the
    connection of each of its first `kills` attempts while it waits for that lock (after it
    has written its raw event); then let go of the lock."""
    async with db.transaction() as blocker:
        await blocker.one("ingest_lock_pull_requests", repository_ids=[1], numbers=[2])
        request = asyncio.create_task(sender.send("pull_request", payload, delivery=delivery))
        killed: set[int] = set()
        for _ in range(1000):
            if len(killed) == kills or request.done():
                break
            for row in await blocker.all("backends_waiting_on_lock"):
                if row["pid"] not in killed:
                    await blocker.value("terminate_backend", pid=row["pid"])
                    killed.add(row["pid"])
            await asyncio.sleep(0.02)
        assert len(killed) == kills, f"ingest reached the PR lock {len(killed)} times"
    return await request


async def test_connection_killed_mid_request_leaves_nothing_half_written(
    sender: Sender, db: Database, counts
) -> None:
    """Killed, and killed again on its one retry: 503, and nothing of either attempt kept."""
    # A first delivery creates the PR row so the second one needs its lock.
    assert (await sender.send("pull_request", load_fixture(OPENED))).status_code == 202
    before = await counts()
    payload = load_fixture("pull_request/closed.payload.json")

    resp = await _kill_while_waiting(db, sender, payload, "killed", kills=2)
    assert resp.status_code == 503
    assert resp.json()["error"]
    assert await counts() == before
    async with db.transaction() as tx:
        assert await tx.one("raw_event_by_delivery", delivery_id="killed") is None
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["status"] == "pending"

    # GitHub redelivers the same id: it is accepted now, once.
    again = await sender.send("pull_request", payload, delivery="killed")
    assert again.status_code == 202
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["status"] == "closed"


async def test_a_connection_lost_once_mid_request_is_retried_and_stored_once(
    sender: Sender, db: Database, counts
) -> None:
    """GitHub does not send a failed delivery again by itself: a connection lost mid-request
    (a failover, a restart) gets one more try on a fresh one, which stores it exactly once."""
    assert (await sender.send("pull_request", load_fixture(OPENED))).status_code == 202
    before = await counts()
    payload = load_fixture("pull_request/closed.payload.json")

    resp = await _kill_while_waiting(db, sender, payload, "lost-once", kills=1)
    assert resp.status_code == 202 and resp.json()["status"] == "accepted"
    after = await counts()
    assert after["raw_events"] == before["raw_events"] + 1
    assert after["pr_history"] == before["pr_history"] + 1  # the close, once
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["status"] == "closed"
    again = await sender.send("pull_request", payload, delivery="lost-once")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


@pytest.fixture
def own_server(tmp_path):
    # Durable settings: an immediate stop must not lose committed rows here.
    server = EmbeddedPostgres(tmp_path / "pg", fast=False)
    server.start()
    yield server
    server.destroy()


@contextlib.asynccontextmanager
async def _sender_on(
    server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Sender]:
    """A sender to the real ingest function on a migrated database of `server`."""
    dsn = server.dsn()
    await Database(dsn, min_size=0, max_size=1).migrate()
    app = ingest_app(monkeypatch, dsn)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest"
        ) as client:
            yield Sender(client)
    finally:
        await close_all()


async def test_database_down_is_503_then_redelivery_accepted_once(
    own_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _sender_on(own_server, monkeypatch) as sender:
        warm = await sender.send("pull_request", load_fixture(OPENED), delivery="warm")
        assert warm.status_code == 202
        own_server.stop("immediate")
        down = await sender.send("pull_request", load_fixture(OPENED), delivery="while-down")
        assert down.status_code == 503
        assert "database" in down.json()["error"]
        own_server.start()
        first = await sender.send("pull_request", load_fixture(OPENED), delivery="while-down")
        second = await sender.send("pull_request", load_fixture(OPENED), delivery="while-down")
        assert first.status_code == 202
        assert second.status_code == 200 and second.json()["status"] == "duplicate"
    async with Database(own_server.dsn(), min_size=0, max_size=1) as db, db.transaction() as tx:
        assert await tx.value("count_rows_raw_events") == 2


async def test_a_database_that_went_down_is_answered_well_inside_githubs_limit(
    own_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops while one delivery waits for a PR lock and another queues behind it:
    both get 503 well inside GitHub's 10 s. The lost connection's retry waits 1 s for another,
    not the pool's 5 s, which the queued delivery's own transaction then waits."""
    import time

    import psycopg

    dsn = own_server.dsn()
    async with _sender_on(own_server, monkeypatch) as sender:
        assert (await sender.send("pull_request", load_fixture(OPENED))).status_code == 202
        closed = load_fixture("pull_request/closed.payload.json")
        blocker = await psycopg.AsyncConnection.connect(dsn)
        await blocker.execute("SELECT 1 FROM pull_requests WHERE number = 2 FOR UPDATE")

        async def timed(delivery: str) -> tuple[int, float]:
            sent = time.monotonic()
            resp = await sender.send("pull_request", closed, delivery=delivery)
            return resp.status_code, time.monotonic() - sent

        first = asyncio.create_task(timed("waits"))
        async with Database(dsn, min_size=0, max_size=1) as watcher:
            for _ in range(500):
                async with watcher.transaction() as tx:
                    if await tx.all("backends_waiting_on_lock"):
                        break
                await asyncio.sleep(0.02)
        second = asyncio.create_task(timed("queued"))
        await asyncio.sleep(0.2)  # queued behind the first one's transaction
        own_server.stop("immediate")
        answers = await asyncio.gather(first, second)
        await blocker.close()
    assert [status for status, _ in answers] == [503, 503]
    # A loose bound: the limit GitHub itself sets, not a speed target.
    assert max(took for _, took in answers) < 9.0, answers


def _deliveries(first: int, count: int) -> list[Item]:
    """Distinct pull_request deliveries, each opening its own PR."""
    return [
        Item(f"q-{n}", "pull_request", parse("pull_request", payload), json.dumps(payload))
        for n in range(first, first + count)
        for payload in [variant(load_fixture(OPENED), number=n, **{"pull_request.number": n})]
    ]


async def test_deliveries_queued_while_the_database_is_down_share_one_wait(
    own_server: EmbeddedPostgres,
) -> None:
    """Once a transaction has found the database unavailable, the next waits for a connection
    only as long as its oldest delivery's budget has left: four deliveries queued for four
    transactions wait about one pool timeout in all, not four (GitHub gives up after 10 s)."""
    import time

    from flowlens.db import DatabaseUnavailable

    own_server.stop("immediate")
    async with Database(own_server.dsn(), min_size=0, max_size=1, connect_timeout=2.0) as db:
        batcher = Batcher(db, notify=False, max_items=1, linger=0, checkout_budget=1.0)
        started = time.monotonic()
        results = await asyncio.gather(
            *map(batcher.submit, _deliveries(1, 4)), return_exceptions=True
        )
        took = time.monotonic() - started
    assert [type(r) for r in results] == [DatabaseUnavailable] * 4, results
    assert batcher.transactions == 4
    # A loose bound: the first transaction waits the pool's 2 s, the rest nothing; without
    # the budget the pool's timeouts add up to 8 s.
    assert took < 5.0, took


async def test_while_the_database_answers_a_batch_waits_the_pools_whole_timeout(
    dsn: str,
) -> None:
    """However long a batch queued (behind a transaction waiting on a lock, say), it waits
    the pool's timeout for a connection while the database answers: a new one may take a
    while to open."""
    async with Database(dsn, min_size=1, max_size=1) as db:
        batcher = Batcher(db, notify=False, checkout_budget=0.0)  # every budget spent
        async with db.transaction() as busy:  # the only connection, busy for a moment
            queued = asyncio.ensure_future(batcher.submit(_deliveries(1, 1)[0]))
            await asyncio.sleep(0.3)
            assert not queued.done()
            await busy.value("admin_ping")
        assert await queued == Outcome.ACCEPTED


async def test_a_delivery_whose_budget_is_spent_still_takes_a_ready_connection(
    db: Database,
) -> None:
    """The budget only stops waiting: a connection the pool has ready is still taken."""
    warm = Batcher(db, notify=False)
    assert await warm.submit(_deliveries(1, 1)[0]) == Outcome.ACCEPTED  # a connection is ready
    spent = Batcher(db, notify=False, checkout_budget=0.0)
    spent._down = True  # as after a transaction that found the database unavailable
    assert await spent.submit(_deliveries(2, 1)[0]) == Outcome.ACCEPTED


async def test_a_session_the_server_ends_mid_transaction_counts_as_a_lost_connection(
    db: Database,
) -> None:
    """The server ends sessions for more than restarts: an idle-in-transaction timeout raises
    InternalError, not OperationalError, and is still a lost connection (retried by ingest)."""
    from flowlens.db import ConnectionLost

    with pytest.raises(ConnectionLost):
        async with db.transaction() as tx:
            await tx.conn.execute("SET idle_in_transaction_session_timeout = '50ms'")
            await asyncio.sleep(0.5)  # idle in the transaction until the server ends it
            await tx.value("admin_ping")


async def test_connections_notice_a_vanished_server_unless_the_dsn_says_otherwise(
    dsn: str,
) -> None:
    """Pooled and dedicated connections carry TCP keepalives and a user timeout (a server gone
    without closing the connection is noticed in about 25 s); a DSN's own values win."""
    from psycopg.conninfo import make_conninfo

    from flowlens.db.database import TCP_DEFAULTS

    def options(conn: Any) -> dict[str, str]:
        return {
            o.keyword.decode(): (o.val or b"").decode()
            for o in conn.pgconn.info
            if o.keyword.decode() in TCP_DEFAULTS
        }

    async with Database(dsn, min_size=1, max_size=1) as db:
        async with db.transaction() as tx:
            assert options(tx.conn) == TCP_DEFAULTS
        async with db.connect() as tx:
            assert options(tx.conn) == TCP_DEFAULTS
    own = make_conninfo(dsn, keepalives_idle="60")
    async with Database(own, min_size=1, max_size=1) as db, db.transaction() as tx:
        assert options(tx.conn) == {**TCP_DEFAULTS, "keepalives_idle": "60"}


async def test_a_dsn_listing_several_hosts_spreads_connections_over_them(dsn: str) -> None:
    """docs/CAPACITY.md's connection spreading on YugabyteDB: every tserver listed in
    DATABASE_URL with load_balance_hosts=random; FlowLens takes the URL and connects (here the
    one server, listed under two names). An unreachable first host is skipped."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from flowlens.devdb import free_port
    from flowlens.settings import PollerSettings

    port = str(conninfo_to_dict(dsn)["port"])
    spread = make_conninfo(dsn, host="127.0.0.1,localhost", port=f"{port},{port}",
                           load_balance_hosts="random")  # fmt: skip
    down_first = make_conninfo(dsn, host="127.0.0.1,127.0.0.1", port=f"{free_port()},{port}")
    for url in (spread, down_first):
        assert PollerSettings.from_env(database_url=url).dsn == url
        async with Database(url, min_size=2, max_size=2) as db, db.transaction() as tx:
            assert await tx.value("admin_ping") == 1


async def test_serialisation_failure_is_retried_not_503(
    sender: Sender, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conflict the database asks us to retry (40001, common on YugabyteDB) is retried."""
    import psycopg

    from flowlens.ingest import store

    real = store.apply_facts
    calls = {"n": 0}

    async def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise psycopg.errors.SerializationFailure("could not serialize access")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "apply_facts", flaky)
    resp = await sender.send("pull_request", load_fixture(OPENED), delivery="conflict")
    assert resp.status_code == 202
    assert calls["n"] == 2
    async with db.transaction() as tx:
        assert await tx.value("count_rows_raw_events") == 1
