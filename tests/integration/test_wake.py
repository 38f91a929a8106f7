"""Pay-per-use: an idle invocation ends early, ingest wakes the poller when it commits work and
none runs (one wake-up in flight at most, never holding up the webhook's answer), and the
scheduler's next run catches a wake-up that was lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flowlens.db import Database
from flowlens.ingest.app import close_all
from flowlens.poller.service import PollerService
from flowlens.settings import PollerSettings
from flowlens.wake import Heartbeat, Waker
from tests.fakes import serve
from tests.helpers import encode, github_headers
from tests.integration.conftest import ingest_app
from tests.integration.test_poller import deliver, pending, pr_delivery


class FakePoller:
    """A stand-in for the poller function's URL: counts wake-ups; can hold them (a hang)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.app = Starlette(routes=[Route("/", self._poll, methods=["POST"])])

    async def _poll(self, request: Request) -> JSONResponse:
        self.calls.append({"body": await request.json(),
                           "authorization": request.headers.get("authorization")})  # fmt: skip
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return JSONResponse({"scans": 0})

    @property
    def wake_ups(self) -> int:
        return sum(1 for c in self.calls if c["body"] == {"wake": True})


@pytest.fixture
def fake_poller() -> Iterator[tuple[FakePoller, str]]:
    fake = FakePoller()
    with serve(fake.app) as url:
        yield fake, url + "/"


def poller_settings(dsn: str, **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {"database_url": dsn, "poll_interval_seconds": 0.05,
                            "github_api_url": "", "poll_idle_scans": 2}  # fmt: skip
    base.update(overrides)
    return PollerSettings(**base)


async def poke_once(db: Database, url: str) -> Waker:
    """One ingest instance's poke, waited out; the (closed) waker, to read what it sent."""
    waker = Waker(db, url, auth="none")
    try:
        waker.poke()
        await settle(waker)
    finally:
        await waker.close()
    return waker


async def settle(waker: Waker) -> None:
    """Wait for a poke's background work (the test's only way to see it finished)."""
    if waker._claim is not None:
        await asyncio.wait_for(asyncio.shield(waker._claim), 10)
    if waker._calls:
        await asyncio.wait_for(asyncio.gather(*waker._calls, return_exceptions=True), 10)


async def settled(service: PollerService) -> PollerService:
    """A poller whose retention has just run: not due during the test (a fresh database's
    first retention run, at the start of an invocation, is work that keeps it a scan longer
    or two, depending on timing)."""
    await service.retention.sweep()
    return service


async def test_an_idle_invocation_returns_early(dsn: str) -> None:
    service = await settled(PollerService(poller_settings(dsn)))
    try:
        idle = await service.invoke(budget_seconds=30.0)
    finally:
        await service.close()
    # Two scans that found nothing, instead of a scan every 0.05 s for 30 s.
    assert idle["idle_end"] is True and idle["scans"] == 2 and idle["events"] == 0
    always = PollerService(poller_settings(dsn, poll_idle_scans=0))
    try:
        looping = await always.invoke(budget_seconds=0.5)
    finally:
        await always.close()
    assert looping["idle_end"] is False and looping["scans"] > 2


async def test_an_invocation_with_work_does_it_then_ends_idle(db: Database, dsn: str) -> None:
    await deliver(db, "pull_request", pr_delivery(1, "a" * 40, "opened", 0), "w1")
    service = await settled(PollerService(poller_settings(dsn)))
    try:
        summary = await service.invoke(budget_seconds=30.0)
    finally:
        await service.close()
    assert summary["insights"] == 1 and summary["idle_end"] is True
    assert summary["scans"] == 3  # the one with the event, then two idle ones
    async with db.transaction() as tx:  # the heartbeat is gone: a wake-up may start the next
        cur = await tx.conn.execute("SELECT beat_at, owner FROM poller_heartbeat")
        row = await cur.fetchone()
    assert row is not None and row["beat_at"] is None and row["owner"] is None


async def test_a_wake_up_while_an_invocation_runs_starts_nothing(
    db: Database, dsn: str, fake_poller: tuple[FakePoller, str]
) -> None:
    fake, url = fake_poller
    running = Heartbeat("another-invocation")
    async with db.transaction() as tx:
        assert await running.start(tx)
    waker = await poke_once(db, url)
    assert fake.calls == [] and waker.sent == 0
    # And a wake-up that reaches a poller while another invocation runs does nothing there.
    service = PollerService(poller_settings(dsn))
    try:
        assert await service.invoke(wake=True) == {"skipped": "another invocation is running"}
        # A scheduler tick still scans (leases keep them apart) but leaves the heartbeat alone.
        tick = await service.invoke(budget_seconds=30.0)
        assert tick["idle_end"] is True
        async with db.transaction() as tx:
            cur = await tx.conn.execute("SELECT owner FROM poller_heartbeat")
            row = await cur.fetchone()
        assert row is not None and row["owner"] == "another-invocation"
    finally:
        await service.close()
    async with db.transaction() as tx:  # the invocation ends: the next commit wakes one
        await running.end(tx)
    waker = await poke_once(db, url)
    assert fake.wake_ups == 1 and fake.calls[0]["authorization"] is None  # plain, as in dev


async def test_two_concurrent_wake_ups_start_one_invocation(
    db: Database, fake_poller: tuple[FakePoller, str]
) -> None:
    fake, url = fake_poller
    wakers = [Waker(db, url, auth="none") for _ in range(4)]  # four ingest instances
    try:
        for waker in wakers:
            waker.poke()
            waker.poke()  # and twice each: a second poke while one is in flight is dropped
        for waker in wakers:
            await settle(waker)
    finally:
        for waker in wakers:
            await waker.close()
    assert fake.wake_ups == 1 and sum(w.sent for w in wakers) == 1


async def test_a_lost_wake_up_is_caught_by_the_next_scheduled_run(db: Database, dsn: str) -> None:
    await deliver(db, "pull_request", pr_delivery(1, "b" * 40, "opened", 0), "l1")
    waker = await poke_once(db, "http://127.0.0.1:9/")  # nothing listens: lost
    assert waker.sent == 1 and await pending(db) == 1
    service = PollerService(poller_settings(dsn))
    try:
        tick = await service.invoke(budget_seconds=30.0)  # Cloud Scheduler's tick
    finally:
        await service.close()
    assert tick["insights"] == 1 and await pending(db) == 0


async def test_the_webhook_answer_never_waits_for_the_wake_up(
    db: Database, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller's URL accepts the wake-up and then hangs: the webhook is answered while the
    wake-up is still held there."""
    fake = FakePoller(hold=True)
    with serve(fake.app) as url:
        app = ingest_app(monkeypatch, dsn, POLLER_URL=url + "/", WAKE_AUTH="none")
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
                body, ctype = encode(pr_delivery(3, "c" * 40, "opened", 0))
                answer = asyncio.create_task(client.post(
                    "/", content=body, headers=github_headers("pull_request", body,
                                                              content_type=ctype),
                ))  # fmt: skip
                response = await asyncio.wait_for(answer, 30)
                assert response.status_code == 202
                # The wake-up went out after the commit and is still held by the poller's URL.
                await asyncio.wait_for(asyncio.to_thread(fake.entered.wait, 10), 15)
                assert not fake.release.is_set() and fake.wake_ups == 1
                # A delivery that is no work for the poller (a ping) wakes nothing.
                ping, ptype = encode({"zen": "Keep it logically awesome.", "hook_id": 1})
                headers = github_headers("ping", ping, content_type=ptype)
                assert (await client.post("/", content=ping, headers=headers)).status_code == 200
                assert fake.wake_ups == 1
        finally:
            fake.release.set()
            await close_all()


async def test_a_stale_heartbeat_counts_as_none(
    db: Database, dsn: str, fake_poller: tuple[FakePoller, str]
) -> None:
    """An invocation that died without ending (its instance killed) leaves a heartbeat that
    stops being fresh: a wake-up goes out again, and the woken invocation takes it over."""
    fake, url = fake_poller
    dead = Heartbeat("killed-invocation")
    async with db.transaction() as tx:
        assert await dead.start(tx)
        await tx.conn.execute("UPDATE poller_heartbeat SET beat_at = now() - interval '1 minute'")
    await poke_once(db, url)
    assert fake.wake_ups == 1
    service = PollerService(poller_settings(dsn))
    try:
        woken = await service.invoke(budget_seconds=30.0, wake=True)
    finally:
        await service.close()
    assert woken.get("idle_end") is True, woken  # it ran, not "skipped"


async def test_a_failed_wake_up_can_be_sent_again_at_once(db: Database) -> None:
    """A wake-up that could not be sent does not block the next commit's for the grace time."""
    first = await poke_once(db, "http://127.0.0.1:9/")  # refused
    second = await poke_once(db, "http://127.0.0.1:9/")
    assert first.sent == 1 and second.sent == 1
