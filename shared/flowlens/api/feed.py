"""Tail the change feed: every committed (PR, version) once, per PR in version order.

Ids and now() are taken before commit, so rows become visible out of id/created_at order
(and on YugabyteDB sequences are not even monotonic). What does hold: a PR's version is bumped
under its row lock, so a PR's versions commit in order and one snapshot that shows version n
also shows every version before it. The reader therefore re-reads a trailing window of
change_feed by created_at (longer than the longest write transaction), skips the
(PR, version) pairs it already delivered and delivers the rest sorted by version per PR,
never a version at or below the last one delivered for that PR. Each read starts at the
previous read's cutoff, so a pause (or a database outage) longer than the window skips
nothing either.

LISTEN/NOTIFY only wakes the reader early; polling every feed_poll_seconds is the path that
must work, and the only one when feed_notify is off (YugabyteDB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from flowlens.db import Database, DatabaseUnavailable

log = logging.getLogger("flowlens.api.feed")

# Connections a tailer holds outside its Database's pool while notify is on (the LISTEN one).
# The deployment's connection budget (db_connection_budget in infra/terraform) counts them per
# API instance on top of DB_POOL_MAX.
LISTEN_CONNECTIONS = 1


@dataclass(frozen=True, slots=True)
class Change:
    """One pr_update to broadcast: its repository and the message text as stored."""

    pull_request_id: int
    version: int
    repository: str
    text: str
    # The PR's repository id (the /flutter socket's repo_id); None once the PR is deleted.
    repository_id: int | None = None


@dataclass(slots=True)
class _Sent:
    version: int
    # Newest created_at among this PR's delivered rows: once it leaves the window, none of
    # those rows can be read again, so the entry can be forgotten.
    newest: datetime


class FeedTailer:
    """Reads change_feed and hands each new change to `deliver`, exactly once per instance."""

    def __init__(
        self,
        db: Database,
        deliver: Callable[[Change], None],
        *,
        window_seconds: float = 10.0,
        poll_seconds: float = 0.25,
        notify: bool = True,
    ) -> None:
        self.db = db
        self.deliver = deliver
        self.window_seconds = window_seconds
        self.poll_seconds = poll_seconds
        self.notify = notify
        self._sent: dict[int, _Sent] = {}
        self._primed = False
        self._cutoff: datetime | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.listening = asyncio.Event()
        self.reads = 0
        self.delivered = 0

    @property
    def tracked(self) -> int:
        """How many PRs the reader remembers (bounded by the window)."""
        return len(self._sent)

    def start(self) -> None:
        """Start reading (and listening, when enabled) in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="flowlens-feed")
            if self.notify:
                self._listener = asyncio.create_task(self._listen(), name="flowlens-feed-listen")

    async def stop(self) -> None:
        """Stop the background tasks."""
        self._stopping = True
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._listener = None

    def wake(self) -> None:
        """Read now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = self.poll_seconds
        while not self._stopping:
            try:
                await self.read_once()
                backoff = self.poll_seconds
            except DatabaseUnavailable as exc:
                log.warning("change feed unreadable, retrying: %s", exc)
                backoff = min(max(backoff * 2, self.poll_seconds), 5.0)
                await asyncio.sleep(backoff)
                continue
            except Exception:
                log.exception("change feed read failed")
                await asyncio.sleep(1.0)
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the event being set, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    async def read_once(self) -> int:
        """One pass over the trailing window; returns how many changes were delivered."""
        # Cleared before reading: a notification that arrives during the read wakes the next.
        self._wake.clear()
        async with self.db.transaction() as tx:
            keys = await tx.all("feed_keys", window=self.window_seconds, since=self._cutoff)
            now: datetime = keys[0]["now"]
            fresh = [
                (k["pull_request_id"], k["version"])
                for k in keys
                if k["pull_request_id"] is not None
                and k["version"] > self._last(k["pull_request_id"])
            ]
            if not self._primed:
                # Start at connect time: what is already in the window is history, served by
                # REST; only changes that become visible from now on are broadcast.
                for k in keys:
                    if k["pull_request_id"] is not None:
                        self._mark(k["pull_request_id"], k["version"], k["created_at"])
                self._primed = True
                fresh = []
            rows = []
            if fresh:
                rows = await tx.all(
                    "feed_payloads",
                    pr_ids=[pr for pr, _ in fresh],
                    versions=[v for _, v in fresh],
                )
        rows.sort(key=lambda r: (r["pull_request_id"], r["version"]))
        count = 0
        for row in rows:
            pr, version = row["pull_request_id"], row["version"]
            if version <= self._last(pr):
                continue
            self._mark(pr, version, row["created_at"])
            self.deliver(
                Change(pr, version, row["repository"], row["payload"], row["repository_id"])
            )
            count += 1
        # The next read starts where this window ends, however long until it happens.
        self._cutoff = now - timedelta(seconds=self.window_seconds)
        self._evict(self._cutoff)
        self.reads += 1
        self.delivered += count
        self.ready.set()
        return count

    def _last(self, pr: int) -> int:
        sent = self._sent.get(pr)
        return sent.version if sent is not None else 0

    def _mark(self, pr: int, version: int, created_at: datetime) -> None:
        sent = self._sent.get(pr)
        if sent is None:
            self._sent[pr] = _Sent(version, created_at)
        else:
            sent.version = max(sent.version, version)
            sent.newest = max(sent.newest, created_at)

    def _evict(self, cutoff: datetime) -> None:
        # The next read returns only rows created at or after this cutoff, so a PR whose
        # delivered rows are all older can never be seen twice.
        stale = [pr for pr, sent in self._sent.items() if sent.newest < cutoff]
        for pr in stale:
            del self._sent[pr]

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection; each notification wakes the reader."""
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                async with self.db.connect(autocommit=True) as tx:
                    await tx.execute("feed_listen")
                    self.listening.set()
                    # Anything committed while we were not listening is picked up now.
                    self.wake()
                    async for _ in tx.conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.warning("feed LISTEN connection lost, polling meanwhile: %s", exc)
            self.listening.clear()
            delay = 0.5 if time.monotonic() - started > 30 else min(delay * 2, 10.0)
            await asyncio.sleep(delay)
