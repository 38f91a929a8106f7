"""How FlowLens is served: settings functions-framework's gunicorn takes from us, and the
security headers of the API's responses and the dashboard's files."""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("flowlens.serving")


def spread_connections(workers: int | None = None) -> bool:
    """Give each gunicorn worker its own listening socket when WORKERS > 1; True if done.

    functions-framework serves through gunicorn, whose workers share one listening socket. A
    uvicorn worker woken by new connections accepts all that are waiting, so keep-alive senders
    that connect at about the same time land on one process while the others idle (31 of 32 in
    bench/ingest.py), and one core does all the work. With gunicorn's `reuse_port` (23.0 and
    later) every worker listens on its own SO_REUSEPORT socket and the kernel spreads new
    connections across them evenly. functions-framework passes gunicorn no options of ours, so
    this sets that setting's default; call it before the server starts (when the function's
    module is imported). With one worker it changes nothing: a lone worker's own socket would
    only add a moment without a listener whenever gunicorn restarts it.
    """
    count = workers if workers is not None else int(os.environ.get("WORKERS", "1") or 1)
    if count < 2 or not hasattr(socket, "SO_REUSEPORT"):
        return False
    try:
        import gunicorn
        import gunicorn.config
    except ImportError:  # no gunicorn (functions-framework serves without it on Windows)
        return False
    gunicorn.config.ReusePort.default = True
    log.info("a listening socket per worker: gunicorn %s reuse_port, %d workers",
             gunicorn.__version__, count)  # fmt: skip
    return True


# The collector's generation thresholds for a function process (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)


def settle_gc() -> None:
    """Collect the young generation every 10,000 container allocations instead of 700.

    Parsing one webhook payload allocates hundreds of containers, so with the default a
    collection ran every delivery or two, found the objects of the deliveries still in flight,
    moved them up and scanned them again with the older generations. py-spy found ~7% of a
    loaded ingest worker in the collector; BENCHMARKS.md has the side-by-side runs. Reference
    counting still frees all garbage without cycles at once, so only cyclic garbage waits
    longer. Call once the function's module is set up.
    """
    gc.set_threshold(*GC_THRESHOLDS)


# The dashboard's policy: only its own files run, style and connect (the socket is same-origin:
# CSP3's 'self' covers ws:/wss: to the same host); no inline script or style, no framing.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DASHBOARD_HEADERS = {
    "Content-Security-Policy": DASHBOARD_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


class SecurityHeaders:
    """ASGI middleware: adds `headers` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def dashboard(directory: str | os.PathLike[str]) -> ASGIApp:
    """The dashboard's static files (index.html at /), each with DASHBOARD_HEADERS."""
    from starlette.staticfiles import StaticFiles  # here: the ingest function imports this module

    return SecurityHeaders(StaticFiles(directory=directory, html=True), DASHBOARD_HEADERS)
