"""Helpers for the API tests (no tests here): apps over ASGI or real uvicorn, seed data, sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from flowlens.api import create_app
from flowlens.api.routes import Services
from flowlens.api.server import serve
from flowlens.db import Database
from flowlens.ingest.store import record_delivery
from flowlens.insights.builtin import RiskModelAnalyser
from flowlens.poller.worker import Poller
from flowlens.settings import ApiSettings, PollerSettings
from tests.conftest import load_fixture
from tests.helpers import variant

REPO = "Codertocat/Hello-World"
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def api_settings(dsn: str, **overrides: Any) -> ApiSettings:
    """Settings for one API instance on the test database (fast polling by default)."""
    base: dict[str, Any] = {
        "database_url": dsn,
        "feed_poll_seconds": 0.05,
        "feed_window_seconds": 10.0,
        "log_format": "text",
    }
    base.update(overrides)
    return ApiSettings(**base)


def services(app: FastAPI) -> Services:
    svc: Services = app.state.flowlens
    return svc


@asynccontextmanager
async def asgi_api(
    dsn: str, *, database: Database | None = None, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running and an httpx client talking to it in-process."""
    app = create_app(api_settings(dsn, **overrides), database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield app, client


@asynccontextmanager
async def served_api(dsn: str, **overrides: Any) -> AsyncIterator[tuple[FastAPI, str]]:
    """An app behind a real uvicorn on a loopback port; yields (app, base URL)."""
    app = create_app(api_settings(dsn, **overrides))
    async with serve(app) as url:
        await asyncio.wait_for(services(app).tailer.ready.wait(), 10)
        yield app, url


def ws_url(base: str, *repos: str, token: str | None = None) -> str:
    """The /ws URL of a served app with repo filters."""
    params = [("repo", r) for r in repos] + ([("token", token)] if token else [])
    query = httpx.QueryParams(params)
    return base.replace("http://", "ws://") + "/ws" + (f"?{query}" if params else "")


@asynccontextmanager
async def socket(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A websockets client connection."""
    async with connect(url, open_timeout=5, close_timeout=2, **kwargs) as ws:
        yield ws


async def next_update(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    message = await asyncio.wait_for(ws.recv(), timeout)
    decoded: dict[str, Any] = json.loads(message)
    return decoded


async def deliver(db: Database, event: str, payload: dict[str, Any], **kw: Any) -> None:
    """Store a delivery through ingest's own code path."""
    await record_delivery(db, str(uuid.uuid4()), event, payload, json.dumps(payload), **kw)


def opened(
    number: int = 2,
    *,
    repo: str = REPO,
    repo_id: int | None = None,
    at: str = "2019-05-15T15:20:33Z",
    sha: str = SHA1,
    **changes: Any,
) -> dict[str, Any]:
    """The opened fixture, derived to another PR number / repository / head sha."""
    owner, name = repo.split("/")
    payload = load_fixture("pull_request/opened.payload.json")
    fields: dict[str, Any] = {
        "number": number,
        "pull_request.number": number,
        "pull_request.id": 279147437 + number,
        "pull_request.updated_at": at,
        "pull_request.head.sha": sha,
    }
    if repo != REPO:
        fields.update(
            {
                "repository.full_name": repo,
                "repository.name": name,
                "repository.owner.login": owner,
                "repository.id": repo_id or zlib.crc32(repo.encode()),
            }
        )
    fields.update({f"pull_request.{k}": v for k, v in changes.items()})
    return variant(payload, **fields)


def workflow_run(status: str, conclusion: str | None, at: str, *, run_id: int = 289782451,
                 branch: str = "changes") -> dict[str, Any]:  # fmt: skip
    """The fixture's run for PR #2 (derived: status, conclusion, time, id, branch)."""
    payload = load_fixture("workflow_run/completed.with-pull-requests.payload.json")
    return variant(
        payload,
        action="completed" if status == "completed" else "requested",
        **{
            "workflow_run.status": status,
            "workflow_run.conclusion": conclusion,
            "workflow_run.updated_at": at,
            "workflow_run.run_started_at": at,
            "workflow_run.head_sha": SHA1,
            "workflow_run.head_branch": branch,
            "workflow_run.id": run_id,
            "workflow_run.pull_requests.0.head.sha": SHA1,
            "repository": load_fixture("pull_request/opened.payload.json")["repository"],
        },
    )


async def analyse(db: Database) -> int:
    """One poller scan with the built-in analyser; returns how many insights it wrote."""
    settings = PollerSettings(database_url="postgresql://unused", poll_interval_seconds=0.05)
    summary = await Poller(db, settings, RiskModelAnalyser()).scan_once()
    return summary.insights


def slow_first_feed_pass(app: FastAPI, seconds: float = 1.0) -> asyncio.Event:
    """Make the app's feed reader take `seconds` over its first pass (a database slow at
    start-up); the event is set when that pass begins."""
    tailer = services(app).tailer
    first_pass = tailer.read_once
    began = asyncio.Event()

    async def slow_first_pass() -> int:
        if not began.is_set():
            began.set()
            await asyncio.sleep(seconds)
        return await first_pass()

    tailer.read_once = slow_first_pass  # type: ignore[method-assign]
    return began
