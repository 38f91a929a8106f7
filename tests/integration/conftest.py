"""Fixtures that run the ingest function app exactly as functions-framework builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowlens.db import Database
from flowlens.ingest.app import close_all
from tests.fakes import FakeGitHub
from tests.helpers import SECRET, encode, github_headers

ROOT = Path(__file__).resolve().parents[2]
INGEST_SOURCE = ROOT / "functions" / "ingest" / "main.py"
CI_KEY = "ci-write-key"


def ingest_app(monkeypatch: pytest.MonkeyPatch, dsn: str, **env: str) -> Any:
    """The real ingest function app (functions-framework's ASGI factory)."""
    from functions_framework.aio import create_asgi_app

    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CI_WRITE_KEY", CI_KEY)
    monkeypatch.setenv("LOG_FORMAT", "text")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return create_asgi_app(target="ingest", source=str(INGEST_SOURCE))


class Sender:
    """Posts signed deliveries to an ingest app."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, event: str, payload: dict[str, Any], *, delivery: str | None = None,
        form: bool = False,
    ) -> httpx.Response:  # fmt: skip
        body, ctype = encode(payload, form=form)
        headers = github_headers(event, body, delivery=delivery, content_type=ctype)
        return await self.client.post("/", content=body, headers=headers)


@pytest.fixture
async def ingest_client(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = ingest_app(monkeypatch, dsn)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield client
    await close_all()


@pytest.fixture
def sender(ingest_client: httpx.AsyncClient) -> Sender:
    return Sender(ingest_client)


@pytest.fixture
async def counts(db: Database) -> Any:
    async def read() -> dict[str, int]:
        async with db.transaction() as tx:
            row = await tx.one("table_counts")
        assert row is not None
        return dict(row)

    return read


@pytest.fixture(scope="module")
def github_server() -> Iterator[FakeGitHub]:
    """The fake of GitHub's pull-request files API, one server per module (starting and
    stopping uvicorn costs ~0.2 s a time)."""
    fake = FakeGitHub()
    with fake.running():
        yield fake


@pytest.fixture
def github(github_server: FakeGitHub) -> FakeGitHub:
    """That server with nothing registered (a module's own `github` fixture wins)."""
    github_server.reset()
    return github_server
