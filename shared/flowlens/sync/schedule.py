"""One-off and scheduled syncs; the schedule lives in sync_state, shared by every process."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flowlens.db import Database
from flowlens.github.app import TokenSource
from flowlens.github.rest import GitHubError
from flowlens.loop import pause
from flowlens.settings import Settings
from flowlens.sync.client import (
    DeadlineReached,
    ETagCache,
    GitHubSyncClient,
    RateLimited,
)
from flowlens.sync.runner import Progress, RepositorySync, SyncResult, check_repository
from flowlens.workqueue import SyncClaims

log = logging.getLogger("flowlens.sync")

# Listed again behind the cursors: clocks differ and GitHub's lists shift while we page.
OVERLAP = timedelta(minutes=5)
# Margin between a run's deadline and its lease, so a run never outlives its lease.
LEASE_MARGIN = 30.0
# The CLI loop's longest single run (a big first backfill goes on in the next run).
LOOP_RUN_SECONDS = 540.0


def _tokens(settings: Settings, db: Database) -> TokenSource:
    from flowlens.installations import token_source

    return token_source(settings, db)


def make_client(
    settings: Settings, cache: ETagCache | None = None, *, tokens: TokenSource | None = None
) -> GitHubSyncClient:
    """A sync client for GITHUB_API_URL, with the App's installation tokens (`tokens`, App
    mode) or GITHUB_TOKEN when set."""
    return GitHubSyncClient(
        settings.github_api_url or "https://api.github.com",
        settings.secret("github_token"),
        cache=cache,
        max_wait=settings.sync_max_wait_seconds,
        tokens=tokens,
    )


async def sync_once(
    db: Database,
    client: GitHubSyncClient,
    repository: str,
    *,
    since_days: float,
    progress: Progress | None = None,
    notify: bool = True,
) -> SyncResult:
    """`flowlens sync owner/repo --since DAYS`: the whole window, outside the schedule.

    Its walk may give the schedule its first cursors, with where their coverage begins: the
    schedule lists its whole window (SYNC_SINCE_DAYS) again when they do not reach back so far.
    """
    check_repository(repository)
    since = datetime.now(UTC) - timedelta(days=since_days)
    async with db.transaction() as tx:
        await tx.execute("sync_state_ensure", repository=repository)
    client.start_run()
    sync = RepositorySync(db, client, repository, progress=progress, notify=notify)
    try:
        result = await sync.run(prs_since=since, runs_since=since)
    except GitHubError as exc:
        await _fail(db, repository, owner="", error=str(exc), schedule=False, next_in=0.0)
        raise
    await _finish(db, repository, "", result, since, since, schedule=False, next_in=0.0)
    return result


def _since(window: datetime, cursor: datetime | None, covered_from: datetime | None) -> datetime:
    """Where a scheduled walk starts: just behind the cursor when the cursor's coverage reaches
    back to the window's start, else the window's start (a first run, or cursors a one-off
    sync with a shorter --since or another SYNC_SINCE_DAYS set)."""
    if cursor is None or (covered_from is not None and covered_from > window):
        return window
    return max(window, cursor - OVERLAP)


async def _finish(
    db: Database,
    repository: str,
    owner: str,
    result: SyncResult,
    prs_from: datetime,
    runs_from: datetime,
    *,
    schedule: bool,
    next_in: float,
) -> None:
    async with db.transaction() as tx:
        await SyncClaims(owner).complete(
            tx,
            repository,
            schedule=schedule,
            next_in_seconds=next_in,
            prs_cursor=result.prs_cursor,
            prs_from=prs_from,
            runs_cursor=result.runs_cursor,
            runs_from=runs_from,
        )


async def _fail(
    db: Database, repository: str, *, owner: str, error: str, schedule: bool, next_in: float
) -> None:
    async with db.transaction() as tx:
        await SyncClaims(owner).fail(
            tx, repository, error=error, schedule=schedule, next_in=next_in
        )


@dataclass
class SyncSummary:
    """What scheduled syncs did (part of the poller's JSON summary)."""

    runs: int = 0
    complete: int = 0
    failed: int = 0
    accepted: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, result: SyncResult) -> None:
        self.runs += 1
        self.accepted += result.accepted
        if result.complete:
            self.complete += 1
        else:
            self.failed += 1
            if result.error and len(self.errors) < 20:
                self.errors.append(f"{result.repository}: {result.error}"[:300])

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "complete": self.complete,
            "failed": self.failed,
            "accepted": self.accepted,
            "errors": list(self.errors),
        }


class SyncScheduler:
    """Syncs SYNC_REPOSITORIES every SYNC_INTERVAL_SECONDS (with jitter), leased per repository.

    The schedule and the cursors are rows of sync_state, so any number of pollers and
    `flowlens sync --loop` processes share one schedule: each due repository is claimed by
    exactly one of them, and the next run lists only what changed since the last complete one.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        repositories: list[str],
        *,
        client: GitHubSyncClient | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
        jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2),
        tokens: TokenSource | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.repositories = [check_repository(r) for r in repositories]
        self._owns_client = client is None
        self.client = client or make_client(settings, tokens=tokens or _tokens(settings, db))
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        # When the last pass that found no sync due began (None: one ran, or none looked).
        self.idle_since: float | None = None
        self.progress = progress
        self._jitter = jitter
        self._ensured = False

    def next_interval(self) -> float:
        """SYNC_INTERVAL_SECONDS with jitter, so many repositories do not sync in lockstep."""
        return self.settings.sync_interval_seconds * self._jitter()

    async def run_due(self, deadline: float | None = None) -> SyncSummary:
        """Sync every repository that is due and not held by another process."""
        summary = SyncSummary()
        if not self._ensured:
            async with self.db.transaction() as tx:
                for repository in self.repositories:
                    await tx.execute("sync_state_ensure", repository=repository)
            self._ensured = True
        for repository in self.repositories:
            now = time.monotonic()
            run_deadline = min(deadline or now + LOOP_RUN_SECONDS, now + LOOP_RUN_SECONDS)
            if run_deadline - now < 0.5:  # no time left to get anywhere
                break
            async with self.db.transaction() as tx:
                row = await SyncClaims(self.owner).claim(
                    tx, repository, lease_seconds=run_deadline - now + LEASE_MARGIN
                )
            if row is None:
                continue
            self.idle_since = None
            summary.add(await self._run(repository, row, run_deadline))
        return summary

    async def _run(self, repository: str, row: dict[str, Any], deadline: float) -> SyncResult:
        window = datetime.now(UTC) - timedelta(days=self.settings.sync_since_days)
        prs_since = _since(window, row["prs_cursor"], row["prs_covered_from"])
        runs_since = _since(window, row["runs_cursor"], row["runs_covered_from"])
        self.client.start_run(
            max_wait=min(
                self.settings.sync_max_wait_seconds, max(0.0, deadline - time.monotonic())
            ),
            deadline=deadline,
        )
        sync = RepositorySync(
            self.db,
            self.client,
            repository,
            progress=self.progress,
            notify=self.settings.feed_notify,
        )
        try:
            result = await sync.run(prs_since=prs_since, runs_since=runs_since)
        except GitHubError as exc:
            next_in = self.next_interval()
            if isinstance(exc, RateLimited):
                next_in = max(next_in, exc.reset_in)
            if isinstance(exc, DeadlineReached):
                next_in = 0.0  # out of time, not failing: go on at the next chance
                log.info("sync of %s paused: %s", repository, exc)
            else:
                log.warning("sync of %s failed: %s", repository, exc)
            await _fail(
                self.db,
                repository,
                owner=self.owner,
                error=str(exc),
                schedule=True,
                next_in=next_in,
            )
            return sync.result
        except Exception as exc:  # keep the schedule alive; the lease is given back
            log.exception("sync of %s failed", repository)
            sync.result.error = f"{type(exc).__name__}: {exc}"
            await _fail(
                self.db,
                repository,
                owner=self.owner,
                error=sync.result.error,
                schedule=True,
                next_in=self.next_interval(),
            )
            return sync.result
        await _finish(
            self.db,
            repository,
            self.owner,
            result,
            prs_since,
            runs_since,
            schedule=True,
            next_in=self.next_interval(),
        )
        log.info("sync of %s: %s", repository, result.line(), extra={"repository": repository})
        return result

    async def seconds_until_due(self) -> float:
        """How long until one of the repositories is due (capped at the interval)."""
        async with self.db.transaction() as tx:
            value = await SyncClaims.next_due(tx, self.repositories)
        cap = self.settings.sync_interval_seconds
        return cap if value is None else min(float(value), cap)

    async def run(
        self, budget_seconds: float | None = None, *, stop: asyncio.Event | None = None
    ) -> SyncSummary:
        """Sync what is due, wait for the next due time, again, until budget or stop."""
        started = time.monotonic()
        deadline = started + budget_seconds if budget_seconds is not None else None
        total = SyncSummary()
        self.idle_since = None
        while True:
            try:
                began = time.monotonic()
                result = await self.run_due(deadline)
                self.idle_since = None if result.runs else began
                total.runs += result.runs
                total.complete += result.complete
                total.failed += result.failed
                total.accepted += result.accepted
                total.errors.extend(result.errors[: max(0, 20 - len(total.errors))])
                wait = await self.seconds_until_due()
            except Exception as exc:  # the database may be down for a moment; try again
                log.exception("scheduled sync failed")
                total.errors.append(f"scheduled sync failed: {exc}"[:300])
                wait = self.settings.sync_interval_seconds
            # Re-check at least every few seconds: another process may release a lease early.
            wait = max(0.2, min(wait, 5.0))
            if stop is not None and stop.is_set():
                break
            if deadline is not None and time.monotonic() + wait > deadline:
                break
            if await pause(wait, stop):
                break
        return total

    async def aclose(self) -> None:
        """Close the HTTP client when this scheduler created it."""
        if self._owns_client:
            await self.client.aclose()
