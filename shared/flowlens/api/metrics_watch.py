"""Live DORA metrics: tell the sockets when a deployment outcome changed their numbers.

A small poll of `deployments.updated_at` (indexed; it moves only when an outcome does), every
`poll_seconds`, on the database's clock, so it works the same with or without LISTEN/NOTIFY
(YugabyteDB). Each changed (repository, environment) becomes one
`{"event": "metrics_update", "data": {"repository", "environment"}}` for the sockets
subscribed to that repository; clients refetch GET /api/metrics/dora.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from flowlens.db import Database
from flowlens.loop import pause

log = logging.getLogger("flowlens.api")

# Transactions commit out of updated_at order; a change stamped up to this long before the
# last look's clock is still seen (and told once).
OVERLAP = timedelta(seconds=5)


def metrics_message(repository: str, environment: str) -> str:
    return json.dumps({"event": "metrics_update",
                       "data": {"repository": repository, "environment": environment}})  # fmt: skip


class MetricsWatcher:
    """Polls for changed deployment outcomes and hands each to `send(repository, text)`."""

    def __init__(self, db: Database, send: Callable[[str, str], None], *,
                 poll_seconds: float = 0.5) -> None:  # fmt: skip
        self.db = db
        self.send = send
        self.poll_seconds = poll_seconds
        self._since: datetime | None = None
        self._told: dict[tuple[str, str], datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="metrics-watch")

    async def stop(self) -> None:
        # A flag, not only a cancel: on 3.11 a cancellation that races inside the pool's
        # wait_for can be swallowed, and the loop would then run on (and stop() wait) for ever.
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.read_once()
            except Exception as exc:  # the database may be away for a moment
                log.warning("metrics watch failed: %s", exc)
            await pause(self.poll_seconds, self._stopping)

    async def read_once(self) -> int:
        """One look; how many updates were sent. The first look only learns the clock."""
        since = self._since - OVERLAP if self._since is not None else None
        async with self.db.transaction() as tx:
            rows = await tx.all("dora_changed_since", since=since)
        now: datetime = rows[0]["now"]
        sent = 0
        for row in rows:
            if row["repository"] is None:
                continue
            key = (row["repository"], row["environment"])
            told = self._told.get(key)
            if told is not None and row["changed_at"] <= told:
                continue  # read again inside the overlap: told already
            self._told[key] = row["changed_at"]
            self.send(row["repository"], metrics_message(*key))
            sent += 1
        # What is older than the next look's start can never be read again.
        self._told = {k: t for k, t in self._told.items() if t > now - 2 * OVERLAP}
        self._since = now
        return sent
