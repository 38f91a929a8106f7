"""The alert pass: find new subjects, claim due alerts, send each, record the outcome.

It runs beside event processing (the poller's extra duty), never inside it: a slow or
broken channel delays nothing but its own alerts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowlens.alerts.channels import Channel, ChannelError
from flowlens.alerts.config import AlertConfig
from flowlens.alerts.message import Alert, build_alert, insight_alert
from flowlens.db import Database
from flowlens.loop import DutyCounts, run_passes
from flowlens.retry import backoff, jitter
from flowlens.workqueue import AlertQueue

log = logging.getLogger("flowlens.alerts")

# The longest pause between two attempts of one alert, however many failed before.
MAX_RETRY_DELAY = 3600.0


@dataclass
class AlertSummary(DutyCounts):
    """What alert passes did (part of the poller's JSON summary)."""

    passes: int = 0
    enqueued: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # claims another pass took over while they waited for a slot
    dropped: int = 0  # builds that passed on a re-run before their alert's turn came
    deferred: int = 0  # builds being re-run when their alert's turn came: looked at again later
    WORK = ("enqueued", "sent", "retried", "failed")


class AlertDispatcher:
    """Turns failed builds and high-risk insights into alert_history rows and sends them."""

    def __init__(
        self,
        db: Database,
        config: AlertConfig,
        channels: list[Channel],
        *,
        batch_size: int = 50,
        concurrency: int = 8,
        jitter: Callable[[], float] = jitter,
    ) -> None:
        self.db = db
        self.config = config
        self.channels = {c.name: c for c in channels}
        self.batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._jitter = jitter
        # A send may take a connect and a transfer; the lease must outlast both.
        self.send_timeout = config.timeout_seconds * 3
        self.lease_seconds = self.send_timeout + 30.0
        # When the last pass that found nothing to do began (None: it had work, or none ran).
        self.idle_since: float | None = None

    @property
    def queue(self) -> AlertQueue:
        """The deliveries due on this dispatcher's channels, leased for lease_seconds."""
        return AlertQueue(tuple(self.channels), self.lease_seconds)

    def retry_delay(self, attempts: int, hint: float | None = None) -> float:
        """Backoff with jitter after `attempts` failures (at least the server's hint)."""
        delay = backoff(
            attempts, base=self.config.retry_seconds, cap=MAX_RETRY_DELAY, spread=self._jitter
        )
        return max(delay, min(hint, MAX_RETRY_DELAY)) if hint is not None else delay

    async def enqueue(self) -> int:
        """Insert a pending row per (new subject, channel); returns how many."""
        names = list(self.channels)
        if not names:
            return 0
        count = 0
        async with self.db.transaction() as tx:
            if self.config.on_build_failed:
                rows = await tx.all(
                    "alert_enqueue_build_alerts",
                    channels=names,
                    window_seconds=self.config.window_seconds,
                    providers=list(self.config.build_providers),
                )
                count += len(rows)
            if self.config.on_high_risk:
                rows = await tx.all(
                    "alert_enqueue_insight_alerts",
                    channels=names,
                    window_seconds=self.config.window_seconds,
                )
                count += len(rows)
        return count

    async def pass_once(self) -> AlertSummary:
        """One pass: enqueue new subjects, then send what is due."""
        summary = AlertSummary(passes=1)
        summary.enqueued = await self.enqueue()
        async with self.db.transaction() as tx:
            claims = await self.queue.claim(tx, self.batch_size)
        if not claims:
            return summary
        alerts = await self._load(claims)
        outcomes = await asyncio.gather(*(self._deliver(c, alerts) for c in claims))
        for outcome, error in outcomes:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if error:
                summary.note(error)
        return summary

    async def _load(self, claims: list[dict[str, Any]]) -> dict[tuple[str, int], Alert | str]:
        """The alert of every claimed subject, keyed by (kind, id); for a build that is no longer
        failed, its status."""
        out: dict[tuple[str, int], Alert | str] = {}
        build_ids = sorted({c["subject_id"] for c in claims if c["subject_kind"] == "build"})
        insight_ids = sorted({c["subject_id"] for c in claims if c["subject_kind"] == "insight"})
        async with self.db.transaction() as tx:
            if build_ids:
                for row in await tx.all("alert_build_alert_subjects", ids=build_ids):
                    # A re-run of the same run (one build row) may have started or passed
                    # meanwhile: the alert would describe a build that is not failing.
                    if row["status"] == "failed":
                        out[("build", row["id"])] = build_alert(row)
                    else:
                        out[("build", row["id"])] = row["status"]
            if insight_ids:
                for row in await tx.all("alert_insight_alert_subjects", ids=insight_ids):
                    out[("insight", row["id"])] = insight_alert(row)
        return out

    async def _deliver(
        self, claim: dict[str, Any], alerts: dict[tuple[str, int], Alert | str]
    ) -> tuple[str, str | None]:
        """Send one claimed alert and record what happened: (sent | retried | failed | skipped |
        dropped | deferred, error)."""
        found = alerts.get((claim["subject_kind"], claim["subject_id"]))
        channel = self.channels.get(claim["channel"])
        where = f"{claim['channel']} {claim['subject_kind']}:{claim['subject_id']}"
        if found == "success":
            error = "not sent: the build passed on a re-run"
            await self._record(self.queue.dead_letter, claim, error=error)
            log.info("alert dropped: %s: %s", where, error)
            return "dropped", None
        if isinstance(found, str):  # queued or running: a re-run that may fail again
            age = (datetime.now(UTC) - claim["created_at"]).total_seconds()
            if age > self.config.window_seconds:
                error = "not sent: the build's re-run did not finish within the alert window"
                await self._record(self.queue.dead_letter, claim, error=error)
                return "dropped", None
            delay = self.config.retry_seconds
            await self._record(self.queue.defer, claim, delay=delay)
            return "deferred", None
        alert = found
        if alert is None or channel is None:
            error = "subject no longer exists" if alert is None else "channel not configured"
            await self._record(self.queue.dead_letter, claim, error=error)
            return "failed", f"{where}: {error}"
        hint: float | None = None
        try:
            async with self._slots:
                async with self.db.transaction() as tx:
                    renewed = await self.queue.renew(tx, claim)
                if not renewed:  # claimed again by another pass while this one waited
                    await self._record(self.queue.not_sent, claim)
                    return "skipped", None
                await asyncio.wait_for(channel.send(alert), timeout=self.send_timeout)
        except ChannelError as exc:
            error, permanent, hint = str(exc), exc.permanent, exc.retry_after
        except TimeoutError:
            error, permanent = f"{claim['channel']}: timed out after {self.send_timeout:g}s", False
        except Exception as exc:  # a bug in one channel must not stop the others
            log.exception("alert channel %s raised", claim["channel"])
            error, permanent = f"{claim['channel']}: {type(exc).__name__}: {exc}"[:300], False
        else:
            await self._record(self.queue.complete, claim)
            log.info("alert sent: %s", where, extra={"repository": alert.repository})
            return "sent", None
        async with self.db.transaction() as tx:  # failed ones, this included
            attempts = await self.queue.failures(tx, claim)
        if permanent or attempts >= self.config.max_attempts:
            await self._record(self.queue.dead_letter, claim, error=error)
            log.error("alert failed for good (%d attempts): %s: %s", attempts, where, error)
            return "failed", f"{where}: {error}"
        delay = self.retry_delay(attempts, hint)
        await self._record(self.queue.retry, claim, error=error, delay=delay)
        log.warning("alert send failed, retry in %.0fs: %s: %s", delay, where, error)
        return "retried", f"{where}: {error}"

    async def _record(self, step: Any, claim: dict[str, Any], **params: Any) -> None:
        """One queue step for a claim, in its own transaction."""
        async with self.db.transaction() as tx:
            await step(tx, claim, **params)

    async def run(
        self, budget_seconds: float | None = None, *, stop: asyncio.Event | None = None
    ) -> AlertSummary:
        """Pass every ALERT_INTERVAL_SECONDS until the budget is spent or stop is set."""
        return await run_passes(
            self, self.pass_once, AlertSummary(), what="alert",
            interval=self.config.interval_seconds, budget_seconds=budget_seconds, stop=stop,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close every channel."""
        for channel in self.channels.values():
            try:
                await channel.aclose()
            except Exception:  # closing is best effort
                log.exception("closing alert channel %s", channel.name)
