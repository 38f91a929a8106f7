"""The socket's security defaults: the token outside the URL, browsers only from the API's own
origin or CORS_ORIGINS, close reasons within the protocol's limit, the client behind proxies."""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed

from flowlens.api.hub import MAX_CLOSE_REASON_BYTES, close_reason
from flowlens.api.proxy import ForwardedFor
from flowlens.db import Database
from tests.integration.test_api_support import (
    deliver,
    next_update,
    opened,
    served_api,
    socket,
    ws_url,
)

TOKEN = "s3cret/token+with=odd chars"


def bearer_protocol(token: str) -> str:
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return f"bearer.{encoded}"


async def closed_with(ws: object, code: int) -> str:
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()  # type: ignore[attr-defined]
    assert info.value.rcvd is not None and info.value.rcvd.code == code
    return info.value.rcvd.reason


async def test_the_token_travels_in_a_subprotocol(dsn: str, db: Database) -> None:
    async with served_api(dsn, api_tokens=TOKEN) as (_, base):
        protocols = ["flowlens", bearer_protocol(TOKEN)]
        async with socket(ws_url(base), subprotocols=protocols) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "flowlens"  # selected, or a browser drops the socket
            await deliver(db, "pull_request", opened(2))
            assert (await next_update(ws))["event"] == "pr_update"
        for wrong in (bearer_protocol("nope"), "bearer.!!!", "bearer."):
            async with socket(ws_url(base), subprotocols=["flowlens", wrong]) as ws:  # type: ignore[list-item]
                await closed_with(ws, 1008)


async def test_a_browser_from_another_origin_is_refused_by_default(dsn: str, db: Database) -> None:
    """Without CORS_ORIGINS a page on another site could read every private PR through the
    socket; now only the API's own origin (the dashboard), or a client that sends none."""
    async with served_api(dsn) as (_, base):
        host = base.removeprefix("http://")
        async with socket(
            ws_url(base), additional_headers={"Origin": "https://evil.example"}
        ) as ws:
            await closed_with(ws, 1008)
        async with (
            socket(ws_url(base), additional_headers={"Origin": f"http://{host}"}) as same,
            socket(ws_url(base)) as no_origin,
        ):
            await deliver(db, "pull_request", opened(2))
            assert (await next_update(same))["event"] == "pr_update"
            assert (await next_update(no_origin))["event"] == "pr_update"
    async with (
        served_api(dsn, cors_origins="*") as (_, base),
        socket(ws_url(base), additional_headers={"Origin": "https://any.example"}) as ws,
    ):
        await deliver(db, "pull_request", opened(3))
        assert (await next_update(ws))["data"]["pr_number"] == 3


async def test_a_long_bad_filter_still_gets_its_close_frame(dsn: str) -> None:
    """A close reason over 123 bytes cannot be sent: the client got no close frame at all and
    retried instead of saying why."""
    bad = "x" * 300
    async with served_api(dsn) as (_, base), socket(ws_url(base, bad)) as ws:
        reason = await closed_with(ws, 1008)
    assert reason.startswith("repo must be owner/name: xxx")
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES


def test_close_reasons_are_cut_on_a_character() -> None:
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)
    assert len(cut.encode()) <= MAX_CLOSE_REASON_BYTES and cut.endswith("…")
    cut.encode("utf-8")  # whole characters only


@pytest.mark.parametrize(
    ("hops", "header", "client"),
    [
        (0, "6.6.6.6", "127.0.0.1"),  # no proxy in front: the header is the client's word
        (1, "6.6.6.6", "6.6.6.6"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the proxy appended the real one
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "127.0.0.1"),  # fewer entries than proxies: not through them
    ],
)
async def test_only_the_proxies_entries_name_the_client(
    hops: int, header: str, client: str
) -> None:
    async def who(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})

    app = ForwardedFor(Starlette(routes=[Route("/", who)]), hops=hops)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        answer = (
            await http.get(
                "/", headers={"X-Forwarded-For": header, "X-Forwarded-Proto": "evil, https"}
            )
        ).json()
    assert answer["client"] == client
    assert answer["scheme"] == ("https" if client != "127.0.0.1" else "http")
