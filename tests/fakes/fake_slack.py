"""A local stand-in for a Slack incoming webhook (POST JSON, answers `ok`).

slack = FakeSlack(SlackReply(500), SlackReply(429, retry_after=1))
with slack.running() as webhook_url:   # ALERT_SLACK_WEBHOOK_URL=webhook_url
    ...
assert slack.posts[0]["text"].startswith("Build failed")
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve

WEBHOOK_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class SlackReply:
    """One scripted answer (Slack's real error bodies are short strings like no_service)."""

    status: int = 200
    body: str = "ok"
    retry_after: float | None = None
    delay: float = 0.0


class FakeSlack:
    """Records every POST; replies from the script, then `default`."""

    def __init__(self, *replies: SlackReply, default: SlackReply = SlackReply()) -> None:
        self.script: deque[SlackReply] = deque(replies)
        self.default = default
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/services/{path:path}", self._post, methods=["POST"])])

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on loopback; yields the webhook URL."""
        with serve(self.app) as url:
            yield url + WEBHOOK_PATH

    async def _post(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.attempts += 1
            reply = self.script.popleft() if self.script else self.default
        if reply.delay and not await _sleep_unless_gone(request, reply.delay):
            return Response(status_code=499)
        if reply.status == 200:
            try:
                payload = json.loads(body)
            except ValueError:
                return PlainTextResponse("invalid_payload", status_code=400)
            with self._lock:
                self.posts.append(payload)
        headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after else {}
        return PlainTextResponse(reply.body, status_code=reply.status, headers=headers)


async def _sleep_unless_gone(request: Request, seconds: float) -> bool:
    """Sleep, returning early (False) when the client hung up, so shutdown stays quick."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(left, 0.05))
        if await request.is_disconnected():
            return False
    return True
