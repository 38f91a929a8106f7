"""API_TOKENS on REST (401) and /ws (close 1008); CORS from CORS_ORIGINS."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from flowlens.db import Database
from tests.integration.test_api_support import (
    asgi_api,
    deliver,
    next_update,
    opened,
    served_api,
    socket,
    ws_url,
)

TOKENS = "first-token, second-token"


async def test_rest_needs_a_bearer_when_tokens_are_set(dsn: str) -> None:
    async with asgi_api(dsn, api_tokens=TOKENS) as (_, client):
        for path in ("/api/prs", "/api/repositories", "/api/builds", "/api/metrics/summary",
                     "/api/metrics/risk", "/api/metrics/dora", "/api/repository",
                     "/api/insights/1",
                     "/api/builds/1"):  # fmt: skip
            resp = await client.get(path)
            assert resp.status_code == 401, path
            assert set(resp.json()) == {"error"}
            assert resp.headers["www-authenticate"] == "Bearer"
        for header in ("Bearer wrong", "Basic Zmlyc3QtdG9rZW4=", "Bearer", "first-token"):
            resp = await client.get("/api/prs", headers={"Authorization": header})
            assert resp.status_code == 401, header
        # The query string is for the socket only.
        assert (await client.get("/api/prs?token=first-token")).status_code == 401
        for token in ("first-token", "second-token"):
            resp = await client.get("/api/prs", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200 and resp.json() == []
        resp = await client.get("/api/prs", headers={"Authorization": "bearer second-token"})
        assert resp.status_code == 200
        # Health, the schema and the docs stay open (probes; the docs page loads the schema).
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200


async def test_rest_is_open_without_tokens(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        assert (await client.get("/api/prs")).status_code == 200


async def test_socket_needs_the_token_in_header_or_query(dsn: str, db: Database) -> None:
    async with served_api(dsn, api_tokens=TOKENS) as (_, base):
        for url, headers in [
            (ws_url(base), None),
            (ws_url(base, token="wrong"), None),
            (ws_url(base), {"Authorization": "Bearer wrong"}),
        ]:
            async with socket(url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1008

        async with (
            socket(ws_url(base, token="second-token")) as by_query,
            socket(ws_url(base), additional_headers={"Authorization": "Bearer first-token"}) as hdr,
        ):
            await deliver(db, "pull_request", opened(2))
            assert (await next_update(by_query))["event"] == "pr_update"
            assert (await next_update(hdr))["event"] == "pr_update"


async def test_cors_allows_only_the_configured_origins(dsn: str) -> None:
    origin = "https://dash.example.com"
    async with asgi_api(dsn, cors_origins=f"{origin},http://localhost:3000") as (_, client):
        resp = await client.get("/api/prs", headers={"Origin": origin})
        assert resp.headers["access-control-allow-origin"] == origin
        preflight = await client.options(
            "/api/prs",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        other = await client.get("/api/prs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        bad = await client.options(
            "/api/prs",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert bad.status_code == 400


async def test_an_unexpected_error_is_a_500_a_browser_can_read(
    dsn: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CORS headers on the 500 too: the dashboard can show the error, not a CORS failure."""
    from flowlens import serialize

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    origin = "https://dash.example"
    await deliver(db, "pull_request", opened(2))
    monkeypatch.setattr(serialize, "pr_item", broken)
    async with asgi_api(dsn, cors_origins=origin) as (_, client):
        resp = await client.get("/api/prs", headers={"Origin": origin})
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal server error"}
    assert resp.headers["access-control-allow-origin"] == origin


async def test_cors_preflight_needs_no_token(dsn: str) -> None:
    origin = "https://dash.example.com"
    async with asgi_api(dsn, cors_origins=origin, api_tokens=TOKENS) as (_, client):
        preflight = await client.options(
            "/api/prs",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
        assert preflight.status_code == 200
        denied = await client.get("/api/prs", headers={"Origin": origin})
        # Even a 401 carries the CORS header, so the browser can show the error.
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == origin


async def test_no_cors_headers_without_configuration(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        resp = await client.get("/api/prs", headers={"Origin": "https://dash.example.com"})
        assert "access-control-allow-origin" not in resp.headers


async def test_socket_origin_follows_cors_origins(dsn: str, db: Database) -> None:
    allowed = "https://dash.example.com"
    async with served_api(dsn, cors_origins=allowed) as (_, base):
        async with socket(ws_url(base), origin="https://evil.example") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        host = base.removeprefix("http://")
        async with (
            socket(ws_url(base), origin=allowed) as listed,
            socket(ws_url(base), origin=f"http://{host}") as same_host,
            socket(ws_url(base)) as no_origin,
        ):
            await deliver(db, "pull_request", opened(2))
            for ws in (listed, same_host, no_origin):
                assert (await next_update(ws))["event"] == "pr_update"
