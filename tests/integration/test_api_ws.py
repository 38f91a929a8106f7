"""/ws over a real uvicorn: pr_update shape, repo filters, REST-then-socket, wake-ups."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from psycopg.conninfo import make_conninfo
from pydantic import TypeAdapter

from flowlens.api.feed import LISTEN_CONNECTIONS
from flowlens.api.schemas import PrUpdate, PullRequest
from flowlens.db import Database
from tests.integration.test_api_support import (
    REPO,
    analyse,
    deliver,
    next_update,
    opened,
    served_api,
    services,
    socket,
    workflow_run,
    ws_url,
)

OTHER = "acme/widgets"


async def test_pr_update_shape_insight_null_then_filled(dsn: str, db: Database) -> None:
    async with served_api(dsn) as (_, base), socket(ws_url(base, REPO)) as ws:
        await deliver(db, "pull_request", opened(2))
        first = PrUpdate.model_validate(await next_update(ws))
        assert first.data.pr_number == 2 and first.data.repository == REPO
        assert first.data.ai_insight is None
        assert first.data.pipeline_status.status_pr == "opened"
        assert first.data.pull_request.number == 2
        assert first.data.title == first.data.pull_request.title

        await deliver(db, "workflow_run", workflow_run("in_progress", None, "2019-05-15T15:21:00Z"))
        build = PrUpdate.model_validate(await next_update(ws))
        assert build.data.pipeline_status.status_build == "building"
        assert build.data.pull_request.status == "building"
        assert build.data.version > first.data.version

        assert await analyse(db) == 1
        analysed = PrUpdate.model_validate(await next_update(ws))
        assert analysed.data.ai_insight is not None
        assert analysed.data.ai_insight.model == "risk-model"
        assert analysed.data.pull_request.riskLevel == analysed.data.ai_insight.risk_level
        # The message is the same object /api/prs serves for that PR.
        async with httpx.AsyncClient(base_url=base) as client:
            (item,) = (await client.get("/api/prs", params={"repo": REPO})).json()
        assert PullRequest.model_validate(item) == analysed.data.pull_request


async def test_repo_filters_repeat_and_ignore_letter_case(dsn: str, db: Database) -> None:
    async with (
        served_api(dsn) as (_, base),
        socket(ws_url(base, REPO.lower())) as only_hello,  # GitHub's names ignore case
        socket(ws_url(base, OTHER)) as only_acme,
        socket(ws_url(base, REPO, OTHER, OTHER)) as both,
        socket(ws_url(base)) as everything,
    ):
        await deliver(db, "pull_request", opened(2))
        await deliver(db, "pull_request", opened(9, repo=OTHER))
        await deliver(db, "pull_request", opened(10, repo="third/repo"))

        async def drain(ws: object, n: int) -> list[tuple[str, int]]:
            got = [await next_update(ws) for _ in range(n)]  # type: ignore[arg-type]
            with pytest.raises(TimeoutError):
                await next_update(ws, timeout=0.4)  # type: ignore[arg-type]
            return [(m["data"]["repository"], m["data"]["pr_number"]) for m in got]

        assert await drain(only_hello, 1) == [(REPO, 2)]
        assert await drain(only_acme, 1) == [(OTHER, 9)]
        assert sorted(await drain(both, 2)) == sorted([(REPO, 2), (OTHER, 9)])
        assert len(await drain(everything, 3)) == 3


async def test_late_client_sees_past_changes_through_rest_only(dsn: str, db: Database) -> None:
    async with served_api(dsn) as (_, base):
        await deliver(db, "pull_request", opened(2, title="before"))
        async with socket(ws_url(base)) as early:
            assert (await next_update(early))["data"]["title"] == "before"
        # Connect first, then load: no history is replayed on the socket...
        async with socket(ws_url(base)) as late, httpx.AsyncClient(base_url=base) as client:
            with pytest.raises(TimeoutError):
                await next_update(late, timeout=0.5)
            # ...REST has it...
            items = (await client.get("/api/prs")).json()
            assert [i["title"] for i in items] == ["before"]
            # ...and every later change comes on the socket.
            await deliver(db, "pull_request", opened(2, title="after", at="2019-05-15T16:00:00Z",
                                                     action="edited"))  # fmt: skip
            assert (await next_update(late))["data"]["title"] == "after"


async def test_app_started_after_changes_does_not_replay_them(dsn: str, db: Database) -> None:
    await deliver(db, "pull_request", opened(2))
    async with served_api(dsn) as (_, base), socket(ws_url(base)) as ws:
        with pytest.raises(TimeoutError):
            await next_update(ws, timeout=0.5)


async def test_listen_wakes_the_reader_long_before_the_poll(dsn: str, db: Database) -> None:
    async with served_api(dsn, feed_poll_seconds=30.0) as (app, base):
        await asyncio.wait_for(services(app).tailer.listening.wait(), 5)
        async with socket(ws_url(base)) as ws:
            started = time.monotonic()
            await deliver(db, "pull_request", opened(2), notify=True)
            await next_update(ws, timeout=3)
            assert time.monotonic() - started < 2.0


async def test_an_instance_holds_its_pool_and_the_listen_connection(dsn: str, db: Database) -> None:
    """DB_POOL_MAX + LISTEN_CONNECTIONS, as db_connection_budget (locals.tf) counts."""
    name = "flowlens-budget-test"
    pool = 2
    app_dsn = make_conninfo(dsn, application_name=name)
    async with served_api(app_dsn, db_pool_min=pool, db_pool_max=pool) as (app, base):
        await asyncio.wait_for(services(app).tailer.listening.wait(), 5)
        async with httpx.AsyncClient(base_url=base) as client, socket(ws_url(base)) as ws:
            await deliver(db, "pull_request", opened(2), notify=True)
            await next_update(ws, timeout=3)
            for response in await asyncio.gather(*(client.get("/api/prs") for _ in range(20))):
                assert response.status_code == 200
        held = 0
        deadline = time.monotonic() + 5
        while held < pool + LISTEN_CONNECTIONS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            async with db.transaction() as tx:
                cur = await tx.conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = %s",
                    [name],
                )
                row = await cur.fetchone()
                assert row is not None
                held = int(row["n"])
        assert held == pool + LISTEN_CONNECTIONS


async def test_without_notify_there_is_no_listener_and_polling_delivers(
    dsn: str, db: Database
) -> None:
    async with served_api(dsn, feed_notify=False, feed_poll_seconds=0.2) as (app, base):
        tailer = services(app).tailer
        async with socket(ws_url(base)) as ws:
            await deliver(db, "pull_request", opened(2), notify=False)
            message = await next_update(ws, timeout=3)
            assert message["event"] == "pr_update"
        assert tailer._listener is None and not tailer.listening.is_set()


async def test_bad_filter_is_closed_with_1008(dsn: str) -> None:
    from websockets.exceptions import ConnectionClosed

    async with served_api(dsn) as (_, base), socket(ws_url(base, "not-a-repo")) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_client_messages_are_ignored(dsn: str, db: Database) -> None:
    async with served_api(dsn) as (_, base), socket(ws_url(base)) as ws:
        await ws.send(json.dumps({"hello": "server"}))
        await deliver(db, "pull_request", opened(2))
        assert (await next_update(ws))["event"] == "pr_update"


def test_pr_update_schema_is_the_contract() -> None:
    fields = set(TypeAdapter(PrUpdate).json_schema()["$defs"]["PrUpdateData"]["properties"])
    assert fields == {"pr_number", "repository", "title", "updated_at", "version",
                      "pipeline_status", "ai_insight", "pull_request"}  # fmt: skip


async def test_a_socket_opens_only_after_the_feed_readers_first_pass(
    dsn: str, db: Database
) -> None:
    """A client loads REST once its socket opens. At start-up the reader's first pass takes
    everything in the feed as history, so a socket opened before it could miss a change
    committed between the client's load and that pass: it waits for the pass instead."""
    from flowlens.api import create_app
    from flowlens.api.server import serve
    from tests.integration.test_api_support import api_settings, slow_first_feed_pass

    await deliver(db, "pull_request", opened(2))
    app = create_app(api_settings(dsn))
    tailer = services(app).tailer
    slow = slow_first_feed_pass(app)
    async with serve(app) as base:
        await slow.wait()
        async with socket(ws_url(base, REPO)) as ws:
            assert tailer.ready.is_set()
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/api/prs")).json()[0]["status"] == "pending"
            await deliver(
                db, "workflow_run", workflow_run("in_progress", None, "2019-05-15T15:21:00Z")
            )
            update = await next_update(ws)
    assert update["data"]["pull_request"]["status"] == "building"


async def test_a_socket_is_told_to_reconnect_while_the_feed_cannot_be_read(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.exceptions import ConnectionClosed

    from flowlens.api import create_app, routes
    from flowlens.api.server import serve
    from flowlens.db import DatabaseUnavailable
    from tests.integration.test_api_support import api_settings

    monkeypatch.setattr(routes, "FEED_READY_TIMEOUT_SECONDS", 0.3)
    app = create_app(api_settings(dsn))

    async def down() -> int:
        raise DatabaseUnavailable("down")

    services(app).tailer.read_once = down  # type: ignore[method-assign]
    async with serve(app) as base, socket(ws_url(base, REPO)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
