"""Answers stay bounded: short descriptions in lists (the whole text from one PR's endpoint),
only the fields asked for, and a statement_timeout on every API query."""

from __future__ import annotations

import pytest

from flowlens.db import Database, QueryTimedOut
from flowlens.db.sql import QUERIES
from flowlens.serialize import DESCRIPTION_MAX
from tests.integration.test_api_support import REPO, asgi_api, deliver, opened, services

LONG = "x" * (64 * 1024)


async def test_list_items_carry_a_bounded_description(dsn: str, db: Database) -> None:
    for number in range(1, 21):
        await deliver(db, "pull_request", opened(number, body=LONG))
    async with asgi_api(dsn) as (_, client):
        listed = await client.get("/api/prs", params={"limit": 1000})
        items = listed.json()
        assert len(items) == 20
        assert all(len(i["description"]) == DESCRIPTION_MAX for i in items)
        assert all(i["description"].endswith("…") for i in items)
        # 64 KiB each before: now a page of 20 is a few dozen KiB, not 1.3 MB.
        assert len(listed.content) < 20 * (DESCRIPTION_MAX + 2000)
        one = (await client.get("/api/prs/7", params={"repo": REPO})).json()
        assert one["description"] == LONG and one["number"] == 7
        assert {k: v for k, v in one.items() if k != "description"} == {
            k: v for k, v in items[-7].items() if k != "description"
        } or one["number"] in [i["number"] for i in items]
        # The Flutter app's list is bounded the same way.
        flutter = (await client.get("/flutter/api/pull-requests")).json()
        assert all(len(p["description"]) == DESCRIPTION_MAX for p in flutter)


async def test_one_pr_by_number(dsn: str, db: Database) -> None:
    await deliver(db, "pull_request", opened(2, body="short"))
    async with asgi_api(dsn) as (_, client):
        assert (await client.get("/api/prs/2")).json()["description"] == "short"
        assert (await client.get("/api/prs/3")).status_code == 404
        assert (await client.get("/api/prs/2", params={"repo": "x/y"})).status_code == 404
        await deliver(db, "pull_request", opened(2, repo="octo/other"))
        ambiguous = await client.get("/api/prs/2")
        assert ambiguous.status_code == 400 and "repo" in ambiguous.json()["error"]
        mine = await client.get("/api/prs/2", params={"repo": "octo/other"})
        assert mine.json()["repositoryName"] == "octo/other"


async def test_a_client_that_shows_no_description_asks_for_none(dsn: str, db: Database) -> None:
    await deliver(db, "pull_request", opened(2, body=LONG))
    async with asgi_api(dsn) as (_, client):
        (item,) = (await client.get("/api/prs", params={"description": "none"})).json()
        assert item["description"] == "" and item["number"] == 2
        bad = await client.get("/api/prs", params={"description": "full"})
        assert bad.status_code == 422 and "description" in bad.json()["error"]


async def test_api_connections_carry_a_statement_timeout(dsn: str) -> None:
    async with asgi_api(dsn, api_statement_timeout_ms=1234) as (app, _):
        async with services(app).db.transaction() as tx:
            cur = await tx.conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
        assert row is not None and row["statement_timeout"] == "1234ms"


async def test_a_query_past_the_timeout_is_a_503(dsn: str) -> None:
    slow = dict(QUERIES)
    slow["api_list_builds"] = "SELECT pg_sleep(2) AS slept;"
    database = Database(dsn, min_size=0, queries=slow, statement_timeout_ms=100)
    async with asgi_api(dsn, database=database) as (_, client):
        resp = await client.get("/api/builds")
        assert resp.status_code == 503 and "too long" in resp.json()["error"]
        assert (await client.get("/api/prs")).status_code == 200  # the pool is fine
    with pytest.raises(QueryTimedOut):
        async with database.transaction() as tx:
            await tx.all("api_list_builds")
    await database.close()
