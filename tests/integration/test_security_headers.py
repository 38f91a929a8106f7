"""Security headers of services/api/main.py: a strict CSP and friends on the dashboard, nosniff
on every answer."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from flowlens.serving import NOSNIFF, SecurityHeaders

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "services" / "api" / "main.py"
STATIC = ROOT / "services" / "api" / "static"

DASHBOARD = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def load_app(monkeypatch: pytest.MonkeyPatch, dsn: str, **env: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("LOG_FORMAT", "text")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("flowlens_api_main_headers", MAIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def policy(header: str) -> dict[str, list[str]]:
    """A CSP header as directive → sources."""
    parsed: dict[str, list[str]] = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        assert name not in parsed, f"{name} twice"
        parsed[name] = sources
    return parsed


def dashboard_files() -> list[str]:
    return ["/", "/index.html"] + [
        "/" + p.relative_to(STATIC).as_posix() for p in sorted(STATIC.rglob("*")) if p.is_file()
    ]


async def test_every_dashboard_file_has_the_policy(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    app = load_app(monkeypatch, dsn)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for path in dashboard_files():
                resp = await client.get(path)
                assert resp.status_code == 200, path
                for name, value in DASHBOARD.items():
                    assert resp.headers.get(name) == value, (path, name)
                csp = policy(resp.headers["content-security-policy"])
                assert csp["default-src"] == ["'self'"]
                assert csp["script-src"] == ["'self'"], "no inline or remote script"
                assert csp["style-src"] == ["'self'"], "no inline style"
                assert csp["connect-src"] == ["'self'"]
                assert csp["img-src"] == ["'self'"]
                assert csp["object-src"] == ["'none'"]
                assert csp["frame-ancestors"] == ["'none'"]
                assert csp["base-uri"] == ["'none'"]
                assert csp["form-action"] == ["'self'"]
            # A revalidated file (304) keeps them too.
            first = await client.get("/app.js")
            again = await client.get("/app.js", headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
            csp_header = first.headers["content-security-policy"]
            assert again.headers["content-security-policy"] == csp_header


async def test_every_api_answer_says_nosniff(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    app = load_app(monkeypatch, dsn, API_TOKENS="first-token", CORS_ORIGINS="https://a.example")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            bearer = {"Authorization": "Bearer first-token"}
            answers = {
                "json": await client.get("/api/prs", headers=bearer),
                "401": await client.get("/api/prs"),
                "404": await client.get("/api/nothing", headers=bearer),
                "422": await client.get("/api/prs?limit=0", headers=bearer),
                "405": await client.post("/api/prs", headers=bearer),
                "health": await client.get("/healthz"),
                "schema": await client.get("/openapi.json"),
                "docs": await client.get("/docs"),
                "docs file": await client.get("/docs/static/swagger-ui.css"),
                "missing file": await client.get("/no-such-file.js"),
                "preflight": await client.options(
                    "/api/prs",
                    headers={
                        "Origin": "https://a.example",
                        "Access-Control-Request-Method": "GET",
                    },
                ),
            }
    assert answers["json"].status_code == 200 and answers["json"].json() == []
    assert [answers[k].status_code for k in ("401", "404", "422", "405")] == [401, 404, 422, 405]
    assert answers["preflight"].status_code == 200
    for name, resp in answers.items():
        assert resp.headers.get("x-content-type-options") == "nosniff", name
    # The dashboard's policy is for the dashboard: the API's JSON does not carry it.
    assert "content-security-policy" not in answers["json"].headers


def test_the_middleware_keeps_a_header_the_app_set_and_passes_sockets() -> None:
    async def own(_: object) -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Content-Type-Options": "custom"})

    async def plain(_: object) -> PlainTextResponse:
        return PlainTextResponse("x")

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close()

    inner = Starlette(
        routes=[Route("/own", own), Route("/plain", plain), WebSocketRoute("/ws", echo)]
    )
    with TestClient(SecurityHeaders(inner, NOSNIFF)) as client:
        assert client.get("/plain").headers["x-content-type-options"] == "nosniff"
        assert client.get("/own").headers.get_list("x-content-type-options") == ["custom"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
