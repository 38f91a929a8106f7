"""Group commit: deliveries that share a transaction end exactly as if each ran alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from flowlens.db import Database
from flowlens.github.parse import parse
from flowlens.ingest.batch import Batcher
from flowlens.ingest.store import Item, Outcome, record_deliveries, record_delivery
from tests.helpers import variant
from tests.integration.test_ingest_state import (
    history,
    opened,
    pr_action,
    pr_row,
    story,
)

# What a history row and a pr_update message show, without the moments they were written.
HISTORY = ("version", "status_pr", "status_build", "status_approval", "status_merge", "status",
           "source_event", "delivery_id")  # fmt: skip


def item(n: int, event: str, payload: dict[str, Any]) -> Item:
    return Item(f"d-{n}", event, parse(event, payload), json.dumps(payload))


def without_moments(message: dict[str, Any]) -> dict[str, Any]:
    data = message["data"]
    return {**data, "updated_at": None, "pull_request": {**data["pull_request"], "updatedAt": 0}}


async def feed_messages(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        rows = await tx.all("change_feed_for", repository="Codertocat/Hello-World", number=2)
    return [without_moments(r["payload"]) for r in rows]


def opened_prs(first: int, count: int) -> list[Item]:
    return [
        item(n, "pull_request", variant(opened(f"2019-05-15T15:{n % 60:02d}:00Z"), number=n,
                                        **{"pull_request.number": n}))
        for n in range(first, first + count)
    ]  # fmt: skip


async def test_a_story_in_one_transaction_equals_it_one_by_one(db: Database, pg_server) -> None:
    deliveries = [item(n, event, payload) for n, (event, payload) in enumerate(story())]
    # Twice the same id, and an event we do not act on, in the same transaction.
    deliveries.insert(3, deliveries[1])
    ignored = {"action": "created", "issue": {"number": 1}, "repository": None}
    deliveries.append(Item("d-ignored", "issues", parse("issues", ignored), json.dumps(ignored)))

    outcomes = await record_deliveries(db, deliveries)
    assert outcomes[3] == Outcome.DUPLICATE and outcomes[-1] == Outcome.IGNORED
    assert outcomes.count(Outcome.ACCEPTED) == len(story())

    name, dsn = await pg_server.fresh_database()
    try:
        async with Database(dsn, min_size=0, max_size=1) as alone:
            for one in deliveries:
                await record_delivery(alone, one.delivery_id, one.event, json.loads(one.raw_json),
                                      one.raw_json)  # fmt: skip
            expected_row = await pr_row(alone)
            expected_history = [tuple(h[c] for c in HISTORY) for h in await history(alone)]
            expected_feed = await feed_messages(alone)
    finally:
        await pg_server.drop(name)

    row = await pr_row(db)
    for column in ("title", "head_sha", "status_pr", "status_build", "status_approval",
                   "status_merge", "status", "state", "source_updated_at", "version"):  # fmt: skip
        assert row[column] == expected_row[column], column
    assert [tuple(h[c] for c in HISTORY) for h in await history(db)] == expected_history
    assert len(expected_history) >= 8  # the story really changes the PR, step by step
    assert await feed_messages(db) == expected_feed


async def test_concurrent_deliveries_share_transactions(db: Database) -> None:
    batcher = Batcher(db, notify=False)
    outcomes = await asyncio.gather(*map(batcher.submit, opened_prs(100, 40)))
    assert outcomes == [Outcome.ACCEPTED] * 40
    # The first delivery starts a transaction alone; the rest arrive while it runs.
    assert batcher.transactions < 40
    assert batcher.deliveries == 40
    for n in (0, 17, 39):
        assert (await pr_row(db, 100 + n))["status_pr"] == "opened"


async def test_after_a_shared_transaction_the_next_waits_for_as_many(db: Database) -> None:
    # A linger no test could sit out: only "as many as last time" can end the wait.
    batcher = Batcher(db, notify=False, linger=600)
    first = opened_prs(100, 3)
    # One starts alone (nothing came before it), the two behind it share the next transaction.
    assert (
        await asyncio.wait_for(asyncio.gather(*map(batcher.submit, first)), 60)
        == [Outcome.ACCEPTED] * 3
    )
    assert (batcher.transactions, batcher.lingered) == (2, 0)

    # Now one arrives alone: it waits for a second rather than start a transaction by itself.
    late = opened_prs(200, 2)
    lone = asyncio.ensure_future(batcher.submit(late[0]))
    await asyncio.sleep(0.2)
    assert not lone.done() and batcher.lingered == 1 and batcher.transactions == 2
    assert await asyncio.wait_for(batcher.submit(late[1]), 60) == Outcome.ACCEPTED
    assert await lone == Outcome.ACCEPTED
    assert (batcher.transactions, batcher.deliveries) == (3, 5)


async def test_a_lone_delivery_after_a_lone_one_never_waits(db: Database) -> None:
    batcher = Batcher(db, notify=False, linger=600)
    for one in opened_prs(300, 3):
        assert await asyncio.wait_for(batcher.submit(one), 60) == Outcome.ACCEPTED
    assert (batcher.transactions, batcher.lingered) == (3, 0)


async def test_a_lone_delivery_long_after_a_shared_transaction_never_waits(db: Database) -> None:
    batcher = Batcher(db, notify=False, linger=600, recent=0.0)  # "long after": at once
    await asyncio.wait_for(asyncio.gather(*map(batcher.submit, opened_prs(800, 3))), 60)
    assert await asyncio.wait_for(batcher.submit(opened_prs(900, 1)[0]), 60) == Outcome.ACCEPTED
    assert (batcher.transactions, batcher.lingered) == (3, 0)


async def test_a_lingering_transaction_goes_without_company_after_the_linger(
    db: Database,
) -> None:
    batcher = Batcher(db, notify=False, linger=0.05)
    await asyncio.gather(*map(batcher.submit, opened_prs(400, 3)))
    assert await asyncio.wait_for(batcher.submit(opened_prs(500, 1)[0]), 60) == Outcome.ACCEPTED
    assert (batcher.transactions, batcher.lingered, batcher.deliveries) == (3, 1, 4)
    assert (await pr_row(db, 500))["status_pr"] == "opened"


async def test_a_delivery_the_database_refuses_costs_only_its_own_sender(db: Database) -> None:
    batcher = Batcher(db, notify=False)
    good = [pr_action("edited", f"2019-05-15T16:{n:02d}:00Z", title=f"t{n}") for n in range(8)]
    # A PR number beyond PostgreSQL's integer: this delivery alone cannot be stored. (Parsing
    # refuses such a number; the facts are made by hand, as a value the parser lets through
    # and the database does not would be.)
    fine = item(99, "pull_request", opened())
    assert fine.facts.pr is not None
    facts = dataclasses.replace(fine.facts, pr=dataclasses.replace(fine.facts.pr, number=2**40))
    items = [item(n, "pull_request", p) for n, p in enumerate(good)]
    items.insert(4, dataclasses.replace(fine, facts=facts))
    results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and results[4] is failed[0]
    assert [r for r in results if r == Outcome.ACCEPTED] == [Outcome.ACCEPTED] * 8
    assert (await pr_row(db))["title"] == "t7"
    async with db.transaction() as tx:
        assert await tx.one("raw_event_by_delivery", delivery_id="d-99") is None
        assert await tx.value("count_rows_raw_events") == 8


async def test_pr_writes_find_their_rows_by_index_on_a_table_never_analysed(db: Database) -> None:
    """The batch UPDATE reads pull_requests by primary key, not by a scan of the whole table,
    although the planner takes json_to_recordset for 100 rows and a table not yet analysed
    (a new deployment's first minutes) for a small one."""
    import psycopg

    from flowlens.db import QUERIES

    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO repositories (full_name, name, owner) VALUES ('o/r', 'r', 'o')"
        )
        await conn.execute(
            "INSERT INTO pull_requests (repository_id, number)"
            " SELECT (SELECT id FROM repositories), g FROM generate_series(1, 3000) AS g"
        )
        pr_id = (await (await conn.execute("SELECT max(id) FROM pull_requests")).fetchone())[0]
        rows = json.dumps([{"id": pr_id, "bumped": True, "title": "t", "version": 2}])
        plan = await conn.execute(
            "EXPLAIN " + QUERIES["ingest_update_pull_requests"], {"ids": [pr_id], "rows": rows}
        )
        text = "\n".join(line for (line,) in await plan.fetchall())
    assert "Seq Scan on pull_requests" not in text, text
    assert "pull_requests_pkey" in text, text


async def test_statements_joining_tables_to_batch_arrays_are_never_prepared(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    """The statements marked `-- plan: per call` are planned for every batch, never prepared
    (a plan prepared while the tables were small, for a batch of one, was reused for every
    batch after); the others are prepared as usual."""
    from flowlens.db import QUERIES
    from flowlens.ingest.app import _handlers, close_all
    from tests.integration.conftest import Sender, ingest_app

    app = ingest_app(monkeypatch, dsn, DB_POOL_MAX="1")
    handler = _handlers[-1]
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            sender = Sender(client)
            for n in range(1, 9):
                payload = variant(opened(), number=n, **{"pull_request.number": n})
                resp = await sender.send("pull_request", payload, delivery=f"p-{n}")
                assert resp.status_code == 202
        async with handler.db.transaction() as tx:  # the pool's one connection
            cur = await tx.conn.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row["statement"] for row in await cur.fetchall()]
        assert any("INSERT INTO raw_events" in text for text in prepared), prepared
        for name in (
            "ingest_lock_pull_requests",
            "ingest_update_pull_requests",
            "ingest_pr_checks",
        ):
            first = next(ln for ln in QUERIES[name].splitlines() if not ln.startswith("--"))
            assert not [text for text in prepared if first in text], name
    finally:
        await close_all()


async def test_repository_activity_moves_at_most_every_five_seconds(db: Database) -> None:
    """A delivery marks its repository active when the stored activity is over 5 s old, and
    leaves a recently marked row alone (not even rewritten with the same value)."""
    import psycopg

    async def activity(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, ...]:
        cur = await conn.execute(
            "SELECT xmin::text, last_activity, now() - last_activity < interval '5 seconds'"
            " FROM repositories WHERE full_name = 'Codertocat/Hello-World'"
        )
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)

    def numbered(n: int) -> dict[str, Any]:
        return variant(opened(), number=n, **{"pull_request.number": n})

    await record_delivery(db, "a-1", "pull_request", numbered(1), json.dumps(numbered(1)))
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        await conn.execute("UPDATE repositories SET last_activity = now() - interval '1 hour'")
        _, old, recent = await activity(conn)
        assert not recent
        await record_delivery(db, "a-2", "pull_request", numbered(2), json.dumps(numbered(2)))
        xmin, marked, recent = await activity(conn)
        assert recent and marked > old
        await record_delivery(db, "a-3", "pull_request", numbered(3), json.dumps(numbered(3)))
        assert await activity(conn) == (xmin, marked, True)


async def test_a_connection_the_server_closed_while_idle_is_never_handed_out(dsn: str) -> None:
    """A connection used moments ago is taken from the pool without a round trip, yet one whose
    server process ended since (a restart, pg_terminate_backend) is replaced, not used and
    failed."""
    from flowlens.db.database import _readable

    async with Database(dsn, min_size=1, max_size=1, recheck_after=3600) as db:
        await record_deliveries(db, opened_prs(800, 1))
        async with db._pool.connection() as conn:
            pid, fd = conn.info.backend_pid, conn.pgconn.socket
        async with db.connect() as admin:
            assert await admin.value("terminate_backend", pid=pid)
        for _ in range(500):  # until the server's goodbye reaches the socket
            if _readable(fd):
                break
            await asyncio.sleep(0.01)
        assert _readable(fd), "the terminated connection never became readable"
        assert await record_deliveries(db, opened_prs(900, 1)) == [Outcome.ACCEPTED]
        async with db._pool.connection() as conn:
            assert conn.info.backend_pid != pid


@pytest.mark.parametrize(
    ("recheck_after", "check"), [(3600, []), (0, ["Query"])], ids=["used moments ago", "idle"]
)
async def test_a_batch_of_pull_requests_waits_for_the_server_three_times(
    dsn: str, recheck_after: float, check: list[str]
) -> None:
    """BEGIN goes out with the first statements and COMMIT with the last: the transaction waits
    for the raw events' answer, for the locked PRs and their checks, and for the closing sync,
    however many deliveries it holds. Taking a connection used moments ago from the pool costs
    no wait; one idle for longer is checked first (a simple Query)."""
    import tempfile

    async with Database(dsn, min_size=1, max_size=1, recheck_after=recheck_after) as db:
        await record_deliveries(db, opened_prs(600, 2))  # repositories known, statements prepared
        with tempfile.TemporaryFile("w+") as trace:
            async with db._pool.connection() as conn:  # the pool's only connection
                conn.pgconn.trace(trace.fileno())
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            outcomes = await record_deliveries(db, opened_prs(700, 5))
            async with db._pool.connection() as conn:
                conn.pgconn.untrace()
            trace.seek(0)
            sent = [line.split("\t")[2].split()[0] for line in trace if line.startswith("F\t")]
    assert outcomes == [Outcome.ACCEPTED] * 5
    # The raw events and the locks (a Flush each), then one Sync for all the rest, COMMIT
    # included. (The trace goes on with the next checkout.)
    assert sent.count("Sync") == 1, "\n".join(sent)
    waits = [m for m in sent[: sent.index("Sync") + 1] if m in ("Sync", "Flush", "Query")]
    assert waits == [*check, "Flush", "Flush", "Sync"], "\n".join(sent)
    assert sent.count("Parse") + sent.count("Bind") >= 8  # BEGIN, six statements, COMMIT


@pytest.mark.parametrize("synced", [False, True], ids=["no sync since", "a sync since"])
async def test_a_pipelined_transaction_whose_error_was_caught_does_not_pass_for_committed(
    dsn: str, synced: bool
) -> None:
    """Code that catches a statement's error must not see its transaction commit. With no sync
    since the error, psycopg refuses the COMMIT; after one, PostgreSQL answers it ROLLBACK
    without an error of its own."""
    from flowlens.db.database import TransactionRolledBack

    async with Database(dsn, min_size=1, max_size=1) as db:
        with pytest.raises(TransactionRolledBack):
            async with db.transaction(pipeline=True) as tx:
                await tx.send("ingest_insert_repository", **REPO, full_name="o/kept-out")
                with pytest.raises(psycopg.errors.NumericValueOutOfRange):
                    await tx.all("ingest_lock_pull_requests", repository_ids=[1], numbers=[2**40])
                if synced:  # Tx.execute syncs to read its row count
                    with pytest.raises(psycopg.errors.PipelineAborted):
                        await tx.execute("ingest_touch_repositories", ids=[1], every=timedelta(0))
        assert await kept_out(db) == []
        async with db._pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_pipelined_transaction_left_by_an_exception_commits_nothing(dsn: str) -> None:
    async with Database(dsn, min_size=1, max_size=1) as db:
        with pytest.raises(RuntimeError, match="mid-transaction"):
            async with db.transaction(pipeline=True) as tx:
                await tx.send("ingest_insert_repository", **REPO, full_name="o/kept-out")
                await tx.all("ingest_find_repositories", github_ids=[], full_names=["o/kept-out"])
                raise RuntimeError("mid-transaction")
        assert await kept_out(db) == []
        async with db._pool.connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def kept_out(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return await tx.all("ingest_find_repositories", github_ids=[], full_names=["o/kept-out"])


REPO = {
    "github_id": None, "name": "r", "owner": "o", "owner_avatar": None, "description": None,
    "is_private": False, "default_branch": None, "language": None, "stars": None, "forks": None,
    "html_url": None, "source_updated_at": None,
}  # fmt: skip
