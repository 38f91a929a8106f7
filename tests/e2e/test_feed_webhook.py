"""The whole path over the network: signed webhook → ingest → change feed → API → socket."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from flowlens.api.schemas import PrUpdate, PullRequest
from flowlens.api.server import serve
from flowlens.db import Database
from flowlens.ingest.app import close_all
from tests.helpers import encode, github_headers
from tests.integration.conftest import ingest_app
from tests.integration.test_api_support import (
    REPO,
    analyse,
    next_update,
    opened,
    served_api,
    services,
    socket,
    workflow_run,
    ws_url,
)

pytestmark = pytest.mark.e2e


async def post(client: httpx.AsyncClient, event: str, payload: dict[str, object]) -> None:
    body, ctype = encode(payload)
    headers = github_headers(event, body, content_type=ctype)
    resp = await client.post("/", content=body, headers=headers)
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize("notify", [True, False], ids=["listen-notify", "polling-only"])
async def test_webhook_reaches_the_socket_then_rest_agrees(
    monkeypatch: pytest.MonkeyPatch, dsn: str, db: Database, notify: bool
) -> None:
    env = {"FEED_NOTIFY": "true" if notify else "false"}
    ingest = ingest_app(monkeypatch, dsn, **env)
    try:
        async with (
            serve(ingest, lifespan="off") as ingest_url,
            # With the wake-up on, a 30 s poll: only the NOTIFY can deliver in time.
            served_api(dsn, feed_notify=notify, feed_poll_seconds=30 if notify else 0.25) as (
                app,
                api_url,
            ),
            httpx.AsyncClient(base_url=ingest_url) as hook,
            httpx.AsyncClient(base_url=api_url) as rest,
            socket(ws_url(api_url, REPO)) as ws,
        ):
            if notify:
                await asyncio.wait_for(services(app).tailer.listening.wait(), 5)
            started = time.monotonic()
            await post(hook, "pull_request", opened(2))
            first = PrUpdate.model_validate(await next_update(ws, timeout=5))
            latency = time.monotonic() - started
            assert first.data.pr_number == 2 and first.data.ai_insight is None
            # Seconds at most either way (a loaded CI machine), never the 30 s poll.
            assert latency < 3.0, latency

            await post(hook, "workflow_run",
                       workflow_run("completed", "failure", "2019-05-15T15:22:00Z"))  # fmt: skip
            red = PrUpdate.model_validate(await next_update(ws, timeout=5))
            assert red.data.pipeline_status.status_build == "buildFailed"
            assert red.data.pull_request.status == "buildFailed"

            # The poller's insight arrives on the same socket.
            assert await analyse(db) == 1
            analysed = PrUpdate.model_validate(await next_update(ws, timeout=5))
            assert analysed.data.ai_insight is not None

            (item,) = (await rest.get("/api/prs")).json()
            assert PullRequest.model_validate(item) == analysed.data.pull_request
            insights = (await rest.get("/api/insights/2", params={"repo": REPO})).json()
            assert insights[0]["riskLevel"] == analysed.data.ai_insight.risk_level
    finally:
        await close_all()
