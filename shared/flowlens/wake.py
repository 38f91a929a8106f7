"""Pay-per-use: ingest wakes the poller when it commits work and no invocation runs.

The running invocation refreshes one heartbeat row on every scan (`Heartbeat`). After a commit
of analysable work, ingest claims the one wake-up (`wake_claim`: no fresh heartbeat, and no
wake-up sent within WAKE_GRACE_SECONDS) and, if it got it, calls the poller's URL in the
background (`Waker.poke`): with a Cloud Run OIDC identity token in production, plainly in
`flowlens dev`. The webhook's answer never waits for any of it. Cloud Scheduler stays the
safety net: a lost wake-up is caught by the next tick.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from flowlens.db import Database, Tx

log = logging.getLogger("flowlens.wake")

# A heartbeat older than this is an invocation that died (a scan beats every
# POLL_INTERVAL_SECONDS; this leaves room for a slow scan).
STALE_SECONDS = 15.0
# A wake-up sent this recently is still starting its invocation: no second one.
WAKE_GRACE_SECONDS = 20.0
# Connecting to the poller; the answer comes at the end of its invocation.
CONNECT_SECONDS = 5.0


class Heartbeat:
    """The running invocation's row: beat on every scan, cleared at the end."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    async def beat(self, tx: Tx) -> None:
        await tx.execute("wake_beat", owner=self.owner)

    async def end(self, tx: Tx) -> None:
        await tx.execute("wake_beat_end", owner=self.owner)

    async def other_running(self, tx: Tx) -> bool:
        return bool(await tx.value("wake_other_running", owner=self.owner,
                                   stale_seconds=STALE_SECONDS))  # fmt: skip

    @staticmethod
    async def pending_events(tx: Tx) -> bool:
        return bool(await tx.value("wake_pending_events"))


class Waker:
    """Ingest's side: at most one wake-up in flight, fire-and-forget after the commit."""

    def __init__(self, db: Database, url: str, *, auth: str = "oidc",
                 read_seconds: float = 120.0) -> None:  # fmt: skip
        self.db = db
        self.url = url
        self.auth = auth
        self.read_seconds = read_seconds
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0  # wake-up calls made (for tests and logs)

    def poke(self) -> None:
        """Work was committed: wake a poller if none runs. Returns at once."""
        if not self.url or (self._task is not None and not self._task.done()):
            return  # off, or this process's wake-up is already on its way
        self._task = asyncio.create_task(self._wake(), name="wake-poller")

    async def _wake(self) -> None:
        try:
            async with self.db.transaction() as tx:
                claimed = await tx.one("wake_claim", stale_seconds=STALE_SECONDS,
                                       grace_seconds=WAKE_GRACE_SECONDS)  # fmt: skip
            if claimed is None:
                return  # an invocation runs, or another wake-up is on its way
            headers = {"Content-Type": "application/json"}
            if self.auth == "oidc":
                headers["Authorization"] = f"Bearer {await identity_token(self.url)}"
            if self._client is None:
                self._client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.read_seconds, connect=CONNECT_SECONDS)
                )
            self.sent += 1
            log.info("waking the poller")
            response = await self._client.post(self.url, content=b'{"wake": true}',
                                               headers=headers)  # fmt: skip
            if response.status_code >= 400:
                log.warning("the poller answered the wake-up with %d", response.status_code)
        except Exception as exc:  # the scheduler's next tick catches what this missed
            log.warning("waking the poller failed: %s", exc)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


async def identity_token(audience: str) -> str:
    """A Google-signed OIDC identity token for `audience`, from the metadata server of the
    Cloud Run instance (google-auth; blocking, so in a thread)."""
    import google.auth.transport.requests
    import google.oauth2.id_token

    def fetch() -> Any:
        request = google.auth.transport.requests.Request()
        return google.oauth2.id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]

    return str(await asyncio.to_thread(fetch))
