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
import time
from typing import Any

import httpx

from flowlens.db import Database, Tx

log = logging.getLogger("flowlens.wake")

# The running invocation beats this often (a side task: also through long AI calls)...
BEAT_SECONDS = 5.0
# ... and a heartbeat older than this is an invocation that died.
STALE_SECONDS = 15.0
# A wake-up sent this recently is still starting its invocation: no second one.
WAKE_GRACE_SECONDS = 20.0
# Connecting to the poller; the answer comes at the end of its invocation.
CONNECT_SECONDS = 5.0
# An identity token is reused this long (Google's live for an hour).
TOKEN_REUSE_SECONDS = 1800.0


class Heartbeat:
    """The running invocation's row: beat on every scan, cleared at the end."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    async def start(self, tx: Tx) -> bool:
        """Take the heartbeat for this invocation; False when another's is fresh."""
        return await tx.one("wake_start", owner=self.owner,
                            stale_seconds=STALE_SECONDS) is not None  # fmt: skip

    async def beat(self, tx: Tx) -> None:
        await tx.execute("wake_beat", owner=self.owner)

    async def end(self, tx: Tx) -> None:
        await tx.execute("wake_beat_end", owner=self.owner)

    @staticmethod
    async def pending_events(tx: Tx) -> bool:
        return bool(await tx.value("wake_pending_events"))


class Waker:
    """Ingest's side: one wake-up claimed at a time per process, fire-and-forget."""

    def __init__(self, db: Database, url: str, *, auth: str = "oidc",
                 read_seconds: float = 120.0) -> None:  # fmt: skip
        self.db = db
        self.url = url
        self.auth = auth
        self.read_seconds = read_seconds
        self._claim: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None  # (identity token, when fetched)
        self.sent = 0  # wake-up calls made (for tests and logs)

    def poke(self) -> None:
        """Work was committed: wake a poller if none runs. Returns at once."""
        if not self.url or (self._claim is not None and not self._claim.done()):
            return  # off, or this process is claiming a wake-up right now
        self._claim = asyncio.create_task(self._wake(), name="wake-poller")

    async def _wake(self) -> None:
        try:
            async with self.db.transaction() as tx:
                claimed = await tx.one("wake_claim", stale_seconds=STALE_SECONDS,
                                       grace_seconds=WAKE_GRACE_SECONDS)  # fmt: skip
        except Exception as exc:  # the scheduler's next tick catches what this missed
            log.warning("claiming a wake-up failed: %s", exc)
            return
        if claimed is None:
            return  # an invocation runs, or another wake-up is on its way
        # The call waits for the invocation's answer: in a task of its own, so the next
        # commit can claim (and send) the next wake-up meanwhile.
        call = asyncio.create_task(self._call(claimed["woken_at"]), name="wake-call")
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _call(self, woken_at: Any) -> None:
        try:
            headers = {"Content-Type": "application/json"}
            if self.auth == "oidc":
                headers["Authorization"] = f"Bearer {await self._identity_token()}"
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
        except Exception as exc:
            log.warning("waking the poller failed: %s", exc)
            # Not on its way after all: the next commit may try again at once.
            try:
                async with self.db.transaction() as tx:
                    await tx.execute("wake_release", woken_at=woken_at)
            except Exception as again:  # the grace period ends it anyway
                log.warning("releasing the wake-up failed: %s", again)

    async def _identity_token(self) -> str:
        """An OIDC identity token for the poller's URL, kept for TOKEN_REUSE_SECONDS (Google
        issues them for an hour)."""
        now = time.monotonic()
        if self._token is None or now - self._token[1] > TOKEN_REUSE_SECONDS:
            self._token = (await identity_token(self.url), now)
        return self._token[0]

    async def close(self) -> None:
        tasks = [t for t in (self._claim, *self._calls) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


async def identity_token(audience: str) -> str:
    """A Google-signed OIDC identity token for `audience`, from the metadata server of the
    Cloud Run instance (google-auth, blocking: in a thread, imports included)."""

    def fetch() -> Any:
        import google.auth.transport.requests
        import google.oauth2.id_token

        request = google.auth.transport.requests.Request()
        return google.oauth2.id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]

    return str(await asyncio.to_thread(fetch))
