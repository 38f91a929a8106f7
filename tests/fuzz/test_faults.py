"""Faults under load: PostgreSQL stopped abruptly mid-load and started again, and a poller
killed with SIGKILL mid-run. Nothing acknowledged is lost; nothing waits past the lease."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowlens.db import Database
from flowlens.devdb import EmbeddedPostgres
from flowlens.ingest.app import close_all
from flowlens.settings import PollerSettings
from tests.conftest import load_fixture
from tests.helpers import github_headers, variant
from tests.integration.conftest import ingest_app

pytestmark = pytest.mark.fuzz

SENDERS = 8
DELIVERIES = int(os.environ.get("FLOWLENS_FAULT_DELIVERIES", "240"))
# Longer than a request waits for a connection (5 s): shorter outages are ridden through.
OUTAGE_SECONDS = 8.0


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    # Durable settings: an immediate stop must not lose a committed row.
    server = EmbeddedPostgres(tmp_path / "pg", fast=False)
    server.start()
    yield server
    server.destroy()


def opened(number: int) -> bytes:
    """The opened fixture as PR `number` (derived: the number, its id and head)."""
    payload = variant(
        load_fixture("pull_request/opened.payload.json"),
        **{"number": number, "pull_request.number": number,
           "pull_request.id": 10_000 + number, "pull_request.head.sha": f"{number:040x}"},
    )  # fmt: skip
    return json.dumps(payload).encode()


async def test_an_outage_under_load_loses_no_acknowledged_delivery(
    own_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = own_server.dsn()
    await Database(dsn, min_size=0, max_size=1).migrate()
    app = ingest_app(monkeypatch, dsn)
    answers: dict[str, int] = {}
    down = asyncio.Event()
    after_restart: list[int] = []
    sent = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal sent
        # Until as many more are acknowledged after the restart as before the outage.
        while len(after_restart) < DELIVERIES // 3 and sent < DELIVERIES * 20:
            sent += 1
            delivery = str(uuid.uuid4())
            body = opened(sent % 50 + 1)
            response = await client.post(
                "/", content=body, headers=github_headers("pull_request", body, delivery=delivery)
            )
            answers[delivery] = response.status_code
            if down.is_set() and 200 <= response.status_code < 300:
                after_restart.append(response.status_code)

    async def outage() -> None:
        while len(answers) < DELIVERIES // 3:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(own_server.stop, "immediate")
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(own_server.start)
        down.set()  # from here on, answers come after the restart

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest", timeout=30
        ) as client:
            await asyncio.wait_for(
                asyncio.gather(outage(), *(sender(client) for _ in range(SENDERS))), 120
            )
    finally:
        await close_all()
    statuses = set(answers.values())
    assert statuses <= {202, 503}, statuses  # never another error, never a 500
    assert 503 in statuses, "the outage was never seen"
    assert after_restart, "ingest did not recover without a restart"
    async with Database(dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
        cur = await tx.conn.execute("SELECT delivery_id FROM raw_events")
        stored = {row["delivery_id"] for row in await cur.fetchall()}
    acknowledged = {d for d, status in answers.items() if status == 202}
    assert acknowledged <= stored  # every 2xx is durable
    # Anything else stored is a delivery whose COMMIT landed as the server stopped (answered
    # 503; GitHub's redelivery is then a duplicate).
    assert stored - acknowledged <= {d for d, status in answers.items() if status == 503}


async def test_a_killed_pollers_work_is_done_once_within_45_seconds(db: Database, dsn: str) -> None:
    """With the default lease: SIGKILL mid-run, then another poller takes every head, each
    analysed once, and nothing stays unprocessed 45 s after the kill."""
    from flowlens.poller.worker import Poller
    from tests.integration.test_poller import CountingAnalyser, kill_poll_mid_ai_calls, pending

    assert PollerSettings(database_url="postgresql://unused").lease_seconds <= 30
    await kill_poll_mid_ai_calls(db, dsn, 120.0)
    killed_at = time.monotonic()
    assert await pending(db) == 5  # claimed, not processed: nothing lost
    analyser = CountingAnalyser()
    poller = Poller(db, PollerSettings(database_url="postgresql://unused",
                                       poll_interval_seconds=0.5), analyser)  # fmt: skip
    while await pending(db) and time.monotonic() - killed_at < 45:
        await poller.scan_once()
        await asyncio.sleep(0.5)
    waited = time.monotonic() - killed_at
    assert await pending(db) == 0, f"still unprocessed {waited:.0f} s after the kill"
    assert waited < 45
    # Each head once: the killed poller's calls never finished, and none ran twice since.
    assert sorted(sha for _, _, sha in analyser.calls) == [f"{n:040d}" for n in range(1, 6)]
    assert set(analyser.calls.values()) == {1}
