"""The API app factory: REST for the first load, /ws for every change after it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowlens.api import flutter
from flowlens.api.docs import add_docs
from flowlens.api.feed import FeedTailer
from flowlens.api.hub import Hub
from flowlens.api.metrics_watch import MetricsWatcher
from flowlens.api.proxy import ForwardedFor
from flowlens.api.routes import ApiError, Services, health_router, router, websocket_endpoint
from flowlens.db import Database, DatabaseUnavailable, QueryTimedOut
from flowlens.settings import ApiSettings

log = logging.getLogger("flowlens.api")

DESCRIPTION = """Live pull-request pipeline state. Load once over REST, then follow `/ws`:
every change arrives as a `pr_update` message carrying the PR's complete new state.
Connect the socket first, then load over REST, so nothing falls between the two.
When `API_TOKENS` is set every `/api` path needs `Authorization: Bearer <token>`."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The contract's error shape."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error(exc.status, exc.message, headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return error(422, "; ".join(problems) or "invalid request")


async def _database_down(_: Request, exc: Exception) -> Response:
    if isinstance(exc, QueryTimedOut):
        log.warning("query cancelled by API_STATEMENT_TIMEOUT_MS: %s", exc)
        return error(503, "the query took too long; narrow it (repo, limit) or retry")
    log.error("database unavailable: %s", exc)
    return error(503, "database unavailable")


class _Unexpected:
    """Answers an unhandled error with the contract's 500 inside the CORS layer (Starlette's
    own handler for Exception sits outside every middleware, so its 500 had no CORS headers
    and a browser could not read it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for another answer
                raise
            log.error("unhandled error: %r", exc)
            await error(500, "internal server error")(scope, receive, send)


def create_app(settings: ApiSettings | None = None, *, database: Database | None = None) -> FastAPI:
    """A FastAPI app with its own pool, feed tailer and WebSocket hub."""
    settings = settings or ApiSettings.from_env()
    db = database or Database(
        settings.dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.api_statement_timeout_ms,
    )
    hub = Hub(settings.ws_queue_size)
    tailer = FeedTailer(
        db,
        hub.publish,
        window_seconds=settings.feed_window_seconds,
        poll_seconds=settings.feed_poll_seconds,
        notify=settings.feed_notify,
    )
    metrics = MetricsWatcher(db, hub.publish_text, poll_seconds=max(settings.feed_poll_seconds,
                                                                    0.5))  # fmt: skip

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The pool opens without waiting: a database that is down gives 503s, not a dead app.
        await db.open()
        tailer.start()
        metrics.start()
        try:
            yield
        finally:
            await metrics.stop()
            await tailer.stop()
            if database is None:
                await db.close()

    app = FastAPI(
        title="FlowLens API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # add_docs serves Swagger UI from local files; no CDN
        redoc_url=None,
    )
    add_docs(app)
    app.state.flowlens = Services(settings=settings, db=db, hub=hub, tailer=tailer)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DatabaseUnavailable, _database_down)
    app.add_middleware(_Unexpected)  # added first: inside CORS
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    # Outside every layer added here, so they all see the real client (services/api/main.py
    # adds only response headers outside it).
    if settings.proxy_hops:
        app.add_middleware(ForwardedFor, hops=settings.proxy_hops)
    app.include_router(router)
    app.include_router(health_router)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    app.include_router(flutter.router)
    app.include_router(flutter.status_router)
    app.add_api_websocket_route(f"{flutter.PREFIX}/ws", flutter.websocket_endpoint)
    return app
