"""Run an ASGI app under uvicorn inside the current event loop (tests, benchmarks, dev)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


async def wait_started(server: uvicorn.Server, task: asyncio.Task[Any]) -> None:
    """Return once `server` (served by `task`) listens; raise if it stopped before that."""
    while not server.started:
        if task.done():
            task.result()  # its error, if it raised one
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any
) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL (port 0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config.setdefault("log_level", "warning")
    config.setdefault("ws", "websockets-sansio")
    config.setdefault("lifespan", "on")
    server = uvicorn.Server(uvicorn.Config(app, **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, task)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(10):
                await task
        sock.close()
