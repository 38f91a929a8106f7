"""Retention: a leased poller duty that keeps the database bounded. Once every
RETENTION_INTERVAL_SECONDS, in one process at a time, it drops old change-feed rows, the
payloads of old processed deliveries (RAW_PAYLOAD_DAYS), old delivery rows (RAW_EVENT_DAYS),
old history rows and CI runs (HISTORY_DAYS), in small batches of their own short
transactions. The rules
and what each keeps are in docs/OPERATIONS.md ("Retention"); the SQL is db/sql/retention.sql."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from flowlens.db import Database
from flowlens.loop import DutyCounts, run_passes
from flowlens.settings import Settings
from flowlens.workqueue import DutyLease

log = logging.getLogger("flowlens.retention")

DUTY = "retention"
# Change-feed rows older than this go: far beyond any API instance's trailing window.
FEED_KEEP_SECONDS = 3600.0
# A run holds the lease for at most this long at a time, then gives it back with its progress
# saved (the next pass goes on at once), so a budget or a stop is never overrun by much.
SLICE_SECONDS = 10.0
# A run that failed is tried again after this long.
RETRY_SECONDS = 60.0


# A cursor rule that starts over walks from the oldest row again once its walk is this old
# (the history rule: a PR's latest row it passed may have been superseded since).
RESTART_SECONDS = 86400.0


@dataclass(frozen=True)
class Rule:
    """One retention rule: its counter and saved-progress key, its statement, whether it walks
    forward from a saved cursor, and whether that walk starts over now and then."""

    name: str
    query: str
    cursor: bool
    restart: bool = False


RULES = (
    Rule("feed", "retention_feed", cursor=False),
    Rule("payloads", "retention_payloads", cursor=True),
    Rule("events", "retention_events", cursor=False),
    Rule("history", "retention_history", cursor=True, restart=True),
    Rule("builds", "retention_builds", cursor=False),
)


@dataclass
class RetentionSummary(DutyCounts):
    """What retention passes did: rows (payloads) each rule removed."""

    passes: int = 0
    runs: int = 0  # passes that held the lease
    batches: int = 0
    feed: int = 0
    payloads: int = 0
    events: int = 0
    history: int = 0
    builds: int = 0
    WORK: ClassVar[tuple[str, ...]] = ("feed", "payloads", "events", "history", "builds")


class LeaseLost(Exception):
    """Another process took the duty over (this one's lease ran out): its batch is undone."""


class RetentionBusy(Exception):
    """Another process is running retention."""


class Retention:
    """The retention duty of one process."""

    def __init__(self, db: Database, settings: Settings, *, lease_seconds: float = 60.0) -> None:
        self.db = db
        self.settings = settings
        self.lease = DutyLease(DUTY, f"{DUTY}:{uuid.uuid4().hex[:8]}", lease_seconds)
        self.batch_size = settings.retention_batch_size
        self.interval = settings.retention_interval_seconds
        # When the last pass that found nothing to do began (None: it had work, or none ran).
        self.idle_since: float | None = None
        self._not_before = 0.0  # no look at the schedule before this (monotonic)
        self._more = False  # the last run stopped with work left
        self.lost = False  # the last run lost its lease to another process

    def params(self, rule: Rule) -> dict[str, Any] | None:
        """The rule's parameters from the settings; None when it keeps everything (0 days)."""
        if rule.name == "feed":
            return {"keep_seconds": FEED_KEEP_SECONDS}
        days = {
            "payloads": self.settings.raw_payload_days,
            "events": self.settings.raw_event_days,
            "history": self.settings.history_days,
            "builds": self.settings.history_days,
        }[rule.name]
        return {"days": days} if days else None

    async def pass_once(
        self,
        *,
        force: bool = False,
        until: float | None = None,
        stop: asyncio.Event | None = None,
        progress: Callable[[RetentionSummary], None] | None = None,
    ) -> RetentionSummary:
        """Run retention when it is due (or `force`) and no other process runs it, for at most
        SLICE_SECONDS (and not past `until`, monotonic, or `stop`); what it removed."""
        summary = RetentionSummary(passes=1)
        now = time.monotonic()
        if (not force and now < self._not_before) or (until is not None and now >= until):
            return summary
        async with self.db.transaction() as tx:
            state = await self.lease.claim(tx, force=force)
            if state is None:
                due = await self.lease.next_due(tx)
        if state is None:
            # Not due, or another process runs it: look again when it is due.
            wait = min(max(due or 0.0, 1.0), self.interval)
            self._not_before = time.monotonic() + wait
            self._more = False
            return summary
        summary.runs = 1
        deadline = now + SLICE_SECONDS if until is None else min(now + SLICE_SECONDS, until)
        self.lost = False
        try:
            finished = await self._work(state, summary, deadline, stop, progress)
        except LeaseLost:
            log.warning("retention: the lease was lost; another process goes on")
            summary.note("retention lease lost")
            self.lost, self._more = True, False
            return summary
        except Exception as exc:
            self._more = False
            self._not_before = time.monotonic() + RETRY_SECONDS
            with contextlib.suppress(Exception):  # the database may be what failed
                await self._complete(state, RETRY_SECONDS, False, f"{type(exc).__name__}: {exc}")
            raise
        await self._complete(state, self.interval if finished else 0.0, finished, None)
        self._more = not finished
        if finished:
            self._not_before = time.monotonic() + self.interval
            log.info("retention done: %s", summary.as_dict())
        return summary

    async def _complete(self, state: dict[str, Any], next_in: float, finished: bool,
                        error: str | None) -> None:  # fmt: skip
        async with self.db.transaction() as tx:
            await self.lease.complete(tx, state, next_in=next_in, finished=finished, error=error)

    async def _work(
        self,
        state: dict[str, Any],
        summary: RetentionSummary,
        deadline: float,
        stop: asyncio.Event | None,
        progress: Callable[[RetentionSummary], None] | None,
    ) -> bool:
        """Batches of each rule in turn until all are done (True) or time is up (False)."""
        for rule in RULES:
            params = self.params(rule)
            if params is None:
                continue
            while True:
                if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    return False
                cursor = state.get(rule.name) or {}
                args = dict(params, limit=self.batch_size)
                if rule.cursor:
                    args.update(after_at=cursor.get("at", "-infinity"),
                                after_id=cursor.get("id", 0))  # fmt: skip
                # The state as it is once this batch commits: `state` itself moves only then
                # (a batch rolled back must not leave its rows behind the cursor).
                after = dict(state)
                async with self.db.transaction() as tx:
                    row = await tx.one(rule.query, **args)
                    assert row is not None
                    # A batch short of the limit was the last: of rows read (a cursor rule's)
                    # or removed (the others' batches hold only rows they remove).
                    finished = row["scanned" if rule.cursor else "done"] < self.batch_size
                    if rule.cursor:
                        after[rule.name] = _moved(rule, cursor, row, finished)
                    if not await self.lease.renew(tx, after):
                        raise LeaseLost
                state.clear()
                state.update(after)
                summary.batches += 1
                setattr(summary, rule.name, getattr(summary, rule.name) + row["done"])
                if progress is not None:
                    progress(summary)
                if finished:
                    break
        return True

    async def run(
        self, budget_seconds: float | None = None, *, stop: asyncio.Event | None = None
    ) -> RetentionSummary:
        """The poller's duty: a look at the schedule every POLL_INTERVAL_SECONDS (the database
        only when it is due), until the budget is spent or stop is set."""
        until = None if budget_seconds is None else time.monotonic() + budget_seconds
        return await run_passes(
            self, lambda: self.pass_once(until=until, stop=stop), RetentionSummary(),
            what="retention", interval=self.settings.poll_interval_seconds,
            budget_seconds=budget_seconds, stop=stop, again=lambda: self._more,
        )  # fmt: skip

    async def sweep(
        self, progress: Callable[[RetentionSummary], None] | None = None
    ) -> RetentionSummary:
        """Run retention now, due or not, until every rule is done (`flowlens retention`).
        Raises RetentionBusy when another process is running it; when another process takes
        it over between two slices, that one goes on and the sweep returns what it did."""
        total = RetentionSummary()
        while True:
            done = await self.pass_once(force=True, until=math.inf, progress=progress)
            if not done.runs:
                if not total.runs:
                    raise RetentionBusy("another process is running retention now; try later")
                total.note("another process took retention over and goes on")
                return total
            total.add(done)
            if self.lost or not self._more:
                return total


def _moved(rule: Rule, cursor: dict[str, Any], row: dict[str, Any], finished: bool
           ) -> dict[str, Any] | None:  # fmt: skip
    """A cursor rule's saved progress after a batch: past its last row, with when the walk
    began; None (start from the oldest row) once a walk that starts over is done and old."""
    began = cursor.get("began") or datetime.now(UTC).isoformat()
    if (
        finished
        and rule.restart
        and (datetime.now(UTC) - datetime.fromisoformat(began)).total_seconds() >= RESTART_SECONDS
    ):
        return None
    if row["after_id"] is None:
        return dict(cursor, began=began)
    return {"at": row["after_at"].isoformat(), "id": row["after_id"], "began": began}
