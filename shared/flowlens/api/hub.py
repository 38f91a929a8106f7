"""WebSocket fan-out: each client has a bounded queue and its own sender task.

publish() never awaits, so one stalled client cannot hold up the rest: when a client's queue
is full it is dropped from the fan-out at once and closed with CLOSE_SLOW (1013).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from starlette.websockets import WebSocket, WebSocketDisconnect

from flowlens import flutter
from flowlens.api.feed import Change

log = logging.getLogger("flowlens.api.ws")

# RFC 6455 / IANA: 1008 policy violation (no or wrong token, bad filter),
# 1013 try again later (the client could not keep up and was dropped).
CLOSE_POLICY = 1008
CLOSE_SLOW = 1013
# How long a dropped client gets to take its close frame before the handler gives up on it.
CLOSE_WAIT_SECONDS = 5.0


class Client:
    """One connected socket: its repository filter, its message shape and its bounded outbox."""

    def __init__(self, repos: Iterable[str], queue_size: int, *, app: bool = False) -> None:
        # Lower case: GitHub's names are case-insensitive, so octo/app follows Octo/App.
        self.repos = frozenset(r.lower() for r in repos)
        # The shipped Flutter app's {repo_id, pr_number, state} instead of pr_update.
        self.app = app
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.overflowed = asyncio.Event()


class Hub:
    """The clients of this API instance, indexed by the repositories they subscribed to."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._clients: set[Client] = set()
        self._everything: set[Client] = set()
        self._by_repo: dict[str, set[Client]] = {}
        self.dropped = 0
        self.published = 0

    @property
    def client_count(self) -> int:
        """Connected clients."""
        return len(self._clients)

    def add(self, repos: Iterable[str], *, app: bool = False) -> Client:
        """Register a client; it receives every change published from now on."""
        client = Client(repos, self.queue_size, app=app)
        self._clients.add(client)
        if not client.repos:
            self._everything.add(client)
        for repo in client.repos:
            self._by_repo.setdefault(repo, set()).add(client)
        return client

    def remove(self, client: Client) -> None:
        """Stop sending to a client."""
        self._clients.discard(client)
        self._everything.discard(client)
        for repo in client.repos:
            clients = self._by_repo.get(repo)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self._by_repo[repo]

    def publish(self, change: Change) -> None:
        """Queue a change for every client subscribed to its repository; never waits."""
        self.published += 1
        targets = list(self._everything)
        targets.extend(self._by_repo.get(change.repository.lower(), ()))
        app_text: str | _Unmapped | None = UNMAPPED
        for client in targets:
            text: str | None = change.text
            if client.app:
                # Mapped once per change, and only when an app client wants it.
                if isinstance(app_text, _Unmapped):
                    app_text = _app_message(change)
                text = app_text
            if text is None:
                continue
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.remove(client)
                self.dropped += 1
                client.overflowed.set()

    def publish_text(self, repository: str, text: str) -> None:
        """Queue a message that is not a PR's change (metrics_update) for the dashboard's
        sockets subscribed to its repository; the Flutter app's sockets do not get it."""
        targets = list(self._everything)
        targets.extend(self._by_repo.get(repository.lower(), ()))
        for client in targets:
            if client.app:
                continue
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.remove(client)
                self.dropped += 1
                client.overflowed.set()

    async def serve(self, websocket: WebSocket, repos: Iterable[str], *, app: bool = False) -> None:
        """Run one accepted socket until it disconnects or falls behind."""
        client = self.add(repos, app=app)
        sender = asyncio.create_task(_send_loop(websocket, client.queue))
        receiver = asyncio.create_task(_receive_loop(websocket))
        overflow = asyncio.create_task(client.overflowed.wait())
        try:
            await asyncio.wait({sender, receiver, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.remove(client)
            for task in (sender, receiver, overflow):
                task.cancel()
            await asyncio.gather(sender, receiver, overflow, return_exceptions=True)
        if client.overflowed.is_set():
            log.warning("dropping a WebSocket client that fell %d messages behind", self.queue_size)
            await close_quietly(websocket, CLOSE_SLOW, "client too slow; reconnect and reload")


class _Unmapped:
    """Not mapped yet (None is a mapping's answer: nothing for the app)."""


UNMAPPED = _Unmapped()


def _app_message(change: Change) -> str | None:
    """The Flutter app's message for a change; None (logged) where it cannot be made, so that
    the other clients still get theirs."""
    try:
        return flutter.socket_message(change.text, change.repository_id)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("no app message for PR %s v%s: %r", change.pull_request_id, change.version, exc)
        return None


# RFC 6455 5.5: a control frame's payload is at most 125 bytes, two of them the close code.
MAX_CLOSE_REASON_BYTES = 123


def close_reason(reason: str) -> str:
    """`reason` cut to what a close frame can carry (UTF-8, never inside a character)."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    cut = encoded[: MAX_CLOSE_REASON_BYTES - len("…".encode())]
    return cut.decode("utf-8", errors="ignore") + "…"


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    """Close, without waiting forever on a client whose buffers are full."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_WAIT_SECONDS):
            await websocket.close(code=code, reason=close_reason(reason))


async def _send_loop(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
    while True:
        text = await queue.get()
        await websocket.send_text(text)


async def _receive_loop(websocket: WebSocket) -> None:
    # Server to client only: anything a client sends is read (so disconnects are noticed)
    # and ignored.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
