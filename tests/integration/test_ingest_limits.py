"""Ingest's memory under hostile posts: nothing read of a body that cannot be signed, a declared
size over the limit refused before reading, and a per-instance budget of body bytes in flight
(503 with Retry-After beyond it) that never starves a signed delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from flowlens.api.server import serve
from flowlens.ingest import app as ingest_module
from flowlens.ingest.app import close_all
from tests.conftest import load_fixture
from tests.helpers import github_headers
from tests.integration.conftest import ingest_app

MIB = 1024 * 1024
FAKE_SIGNATURE = "sha256=" + "0" * 64


@asynccontextmanager
async def served_ingest(
    monkeypatch: pytest.MonkeyPatch, dsn: str, **env: str
) -> AsyncIterator[str]:
    app = ingest_app(monkeypatch, dsn, **env)
    try:
        async with serve(app, lifespan="off") as url:
            yield url
    finally:
        await close_all()


async def open_post(
    url: str, declared: int, first: bytes, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST that declares `declared` bytes and sends only `first` of them (for now)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {declared}",
             "Content-Type: application/json"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    await writer.drain()
    return reader, writer


async def status_of(reader: asyncio.StreamReader, timeout: float = 5) -> tuple[int, str]:
    """The status code and head of the answer (it must come without the rest of the body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    return int(head.split()[1]), head.decode("latin-1")


def signed_delivery() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(load_fixture("pull_request/opened.payload.json")).encode()
    return body, github_headers("pull_request", body)


async def test_an_unsigned_flood_is_refused_unread_and_a_signed_delivery_passes(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    async with served_ingest(monkeypatch, dsn) as url:
        flood = [await open_post(url, 25 * MIB, b"x" * 65536, {}) for _ in range(16)]
        forged_header = [
            await open_post(url, 25 * MIB, b"x" * 65536, {"X-Hub-Signature-256": "sha256=zz"})
            for _ in range(4)
        ]
        # Answered while 25 MiB each are still to come: nothing of them was waited for.
        for reader, writer in flood + forged_header:
            assert (await status_of(reader))[0] == 401
            writer.close()
        async with httpx.AsyncClient(base_url=url) as client:
            body, headers = signed_delivery()
            assert (await client.post("/", content=body, headers=headers)).status_code == 202


async def test_a_declared_size_over_the_limit_is_413_before_reading(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    async with served_ingest(monkeypatch, dsn) as url:
        reader, writer = await open_post(
            url, 26 * MIB, b"{", {"X-Hub-Signature-256": FAKE_SIGNATURE}
        )
        assert (await status_of(reader))[0] == 413
        writer.close()


async def test_body_bytes_in_flight_stay_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    async with served_ingest(monkeypatch, dsn, INGEST_BODY_BUDGET_MB="0.5") as url:
        (handler,) = ingest_module._handlers
        # A signed-looking post holds 400 KiB in flight and sends no more for now.
        slow_reader, slow_writer = await open_post(
            url, 4 * MIB, b" " * (400 * 1024), {"X-Hub-Signature-256": FAKE_SIGNATURE}
        )
        for _ in range(100):
            if handler.budget.used >= 400 * 1024:
                break
            await asyncio.sleep(0.02)
        assert handler.budget.used >= 400 * 1024
        async with httpx.AsyncClient(base_url=url) as client:
            # Another 1.5 MiB would pass the budget (and is no small body): 503, retry later.
            big = b" " * (1536 * 1024)
            refused = await client.post(
                "/", content=big, headers={"X-Hub-Signature-256": FAKE_SIGNATURE}
            )
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            # A delivery of ordinary size still fits beside the slow one.
            body, headers = signed_delivery()
            assert (await client.post("/", content=body, headers=headers)).status_code == 202
            slow_writer.close()
            for _ in range(100):
                if handler.budget.used == 0:
                    break
                await asyncio.sleep(0.02)
            assert handler.budget.used == 0  # what a dropped connection held is given back
            fits = b" " * (300 * 1024)
            read = await client.post(
                "/", content=fits, headers={"X-Hub-Signature-256": FAKE_SIGNATURE}
            )
            assert read.status_code == 401  # read within the budget, then the signature fails
        del slow_reader


async def test_a_small_delivery_passes_a_budget_held_by_large_posts(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    """Large posts with well-formed (fake) signatures fill the budget; an ordinary delivery
    still fits in the reserve kept for small bodies."""
    async with served_ingest(monkeypatch, dsn, INGEST_BODY_BUDGET_MB="1") as url:
        (handler,) = ingest_module._handlers
        held = [
            await open_post(
                url, 4 * MIB, b" " * (600 * 1024), {"X-Hub-Signature-256": FAKE_SIGNATURE}
            )
            for _ in range(2)
        ]
        for _ in range(100):
            if handler.budget.used >= 1024 * 1024:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=url) as client:
            big = b" " * (2 * MIB)
            refused = await client.post(
                "/", content=big, headers={"X-Hub-Signature-256": FAKE_SIGNATURE}
            )
            assert refused.status_code == 503
            body, headers = signed_delivery()
            assert (await client.post("/", content=body, headers=headers)).status_code == 202
        for _, writer in held:
            writer.close()


async def test_a_body_that_trickles_in_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    monkeypatch.setattr(ingest_module, "BODY_READ_SECONDS", 0.5)
    async with served_ingest(monkeypatch, dsn) as url:
        (handler,) = ingest_module._handlers
        reader, writer = await open_post(url, 1024, b"{", {"X-Hub-Signature-256": FAKE_SIGNATURE})
        status, _ = await status_of(reader, timeout=5)
        assert status == 408
        writer.close()
        assert handler.budget.used == 0
