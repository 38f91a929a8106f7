"""Helpers for tests: signed GitHub deliveries, derived payload variants."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from flowlens.github.signature import sign

SECRET = "test-webhook-secret"


def github_headers(
    event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET,
    content_type: str = "application/json",
) -> dict[str, str]:  # fmt: skip
    """Headers GitHub sends with a delivery."""
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": content_type,
        "User-Agent": "GitHub-Hookshot/test",
    }


def encode(payload: dict[str, Any], *, form: bool = False) -> tuple[bytes, str]:
    """Body bytes and content type, JSON or form-encoded like GitHub's two options."""
    text = json.dumps(payload)
    if form:
        return urlencode({"payload": text}).encode(), "application/x-www-form-urlencoded"
    return text.encode(), "application/json"


def variant(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with dotted paths changed, e.g. variant(p, **{"pull_request.merged": True})."""
    out = copy.deepcopy(payload)
    for dotted, value in changes.items():
        target = out
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return out


@contextlib.asynccontextmanager
async def serve_here(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a loopback port in this event loop (so its pools live here too)."""
    import asyncio
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="auto")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def wait_for_insight(api: str, attempts: int = 100) -> list[dict[str, Any]]:
    """GET {api}/api/prs (all states) until its first PR has a risk level (the poller's
    insight), or `attempts` tries 0.1 s apart; the last answer either way."""
    import asyncio

    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(attempts):
            prs: list[dict[str, Any]] = (
                await client.get(f"{api}/api/prs", params={"state": "all"})
            ).json()
            if prs and prs[0]["riskLevel"]:
                break
            await asyncio.sleep(0.1)
    return prs


async def interrupt(proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """Ctrl-C a process we started (if it still runs), and kill it if it does not stop."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
