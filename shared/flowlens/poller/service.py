"""The poller deployable's state: one pool, one analyser, one GitHub client per process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from flowlens.alerts import AlertConfig, AlertDispatcher, build_channels
from flowlens.db import Database
from flowlens.github.app import AppTokens, TokenSource
from flowlens.github.checks import check_writer
from flowlens.insights.factory import make_analyser
from flowlens.insights.github_files import GitHubFilesClient
from flowlens.installations import token_source
from flowlens.loop import pause
from flowlens.poller.worker import Poller, Summary
from flowlens.retention import Retention
from flowlens.settings import ConfigError, PollerSettings
from flowlens.sync import GitHubError, SyncScheduler
from flowlens.wake import BEAT_SECONDS, Heartbeat

log = logging.getLogger("flowlens.poller")


async def is_wake_up(request: Any) -> bool:
    """Whether an invocation request is ingest's wake-up (`{"wake": true}`), not a tick."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("wake") is True


class PollerService:
    """Builds a Poller from settings and runs invocations of it."""

    def __init__(self, settings: PollerSettings) -> None:
        self.settings = settings
        self.db = Database(
            settings.dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        self.analyser = make_analyser(settings)
        # GitHub credentials for every client of this process: the App's installation tokens
        # (one cache) or GITHUB_TOKEN.
        self.tokens = token_source(settings, self.db)
        self.files: GitHubFilesClient | None = None
        if settings.github_api_url:
            self.files = GitHubFilesClient(
                settings.github_api_url,
                None,
                patch_max_bytes=settings.github_patch_max_bytes,
                tokens=self.tokens,
            )
        # AI_CONCURRENCY holds for the whole process, overlapping invocations included.
        self.ai_slots = asyncio.Semaphore(settings.ai_concurrency)
        self.poller = self.new_poller()
        log.info("analyser: %s", getattr(self.analyser, "name", type(self.analyser).__name__))
        # Extra duties beside event processing; each is off unless configured.
        self.alerts = _alert_dispatcher(self.db, settings)
        self.sync = _sync_scheduler(self.db, settings, self.tokens)
        self.checks = check_writer(self.db, settings, self.tokens)
        self.retention = Retention(self.db, settings)
        # Set when the process stops: invocations under way end after their current scan.
        self.shutdown = asyncio.Event()

    def new_poller(self) -> Poller:
        """A Poller with a lease owner of its own."""
        return Poller(self.db, self.settings, self.analyser, self.files, ai_slots=self.ai_slots)

    async def _duties(self, budget: float | None, stop: asyncio.Event | None) -> dict[str, Any]:
        """Run the alert pass and the scheduled sync until budget/stop; their summaries."""
        names: list[str] = []
        jobs: list[Any] = []
        if self.alerts is not None:
            names.append("alerts")
            jobs.append(self.alerts.run(budget, stop=stop))
        if self.sync is not None:
            names.append("sync")
            jobs.append(self.sync.run(budget, stop=stop))
        if self.checks is not None:
            names.append("checks")
            jobs.append(self.checks.run(budget, stop=stop))
        names.append("retention")
        jobs.append(self.retention.run(budget, stop=stop))
        out: dict[str, Any] = {}
        for name, result in zip(
            names, await asyncio.gather(*jobs, return_exceptions=True), strict=True
        ):
            if isinstance(result, BaseException):
                # A duty must never fail the invocation that processes events.
                log.error("%s duty failed: %r", name, result)
                out[name] = {"errors": [repr(result)[:300]]}
            else:
                out[name] = result.as_dict()
        return out

    async def invoke(self, budget_seconds: float | None = None, *, wake: bool = False
                     ) -> dict[str, Any]:  # fmt: skip
        """One invocation (Cloud Scheduler's tick, or ingest's wake-up): scan until the budget
        is spent, or until POLL_IDLE_SCANS scans in a row found nothing to do and no duty has
        work; a JSON summary. A wake-up while another invocation runs does nothing."""
        budget = self.settings.poll_budget_seconds if budget_seconds is None else budget_seconds
        # Its own lease owner: an invocation still running when the next one arrives (Cloud
        # Scheduler is at-least-once; a request past its timeout goes on) must not pass the
        # other's lease checks, or both would analyse the same commit.
        poller = self.new_poller()
        heartbeat = Heartbeat(poller.owner)
        async with self.db.transaction() as tx:
            mine = await heartbeat.start(tx)
        if wake and not mine:
            log.info("wake-up: another invocation is running")
            return {"skipped": "another invocation is running"}
        # A tick while another invocation runs still scans (leases keep the two apart): it
        # takes what the other gave back at its budget's end, and a long AI call of the other
        # does not hold up the queue. The heartbeat stays the other's.
        started = time.monotonic()
        stop = asyncio.Event()
        beats: _Beats | None = _Beats(self, heartbeat) if mine else None

        async def scans() -> Summary:
            nonlocal beats, mine
            total = Summary()
            try:
                while True:
                    left = max(0.0, budget - (time.monotonic() - started))
                    total.add(await poller.run(
                        left, stop=self.shutdown, idle_scans=self.settings.poll_idle_scans,
                        others_idle=self._duties_idle,
                    ))  # fmt: skip
                    if beats is not None:
                        await beats.stop()
                        beats = None
                    # Gone from the heartbeat first, then one more look: a delivery committed
                    # meanwhile either saw no heartbeat (and woke a poller) or is seen here.
                    async with self.db.transaction() as tx:
                        await heartbeat.end(tx)
                        pending = await heartbeat.pending_events(tx)
                        if not (pending and total.idle_end) or (
                            time.monotonic() - started >= budget
                        ):
                            return total
                        mine = await heartbeat.start(tx)
                    if not mine:  # the invocation it woke runs: the work is that one's
                        return total
                    beats = _Beats(self, heartbeat)
            finally:
                if beats is not None:
                    await beats.stop()
                    with contextlib.suppress(Exception):
                        async with self.db.transaction() as tx:
                            await heartbeat.end(tx)
                stop.set()  # the duties end with the scans

        summary, extra = await asyncio.gather(scans(), self._duties(budget, stop))
        result: dict[str, Any] = summary.as_dict()
        result["seconds"] = round(time.monotonic() - started, 3)
        result.update(extra)
        log.info("invocation done: %s", result)
        return result

    async def beat(self, heartbeat: Heartbeat, stop: asyncio.Event) -> None:
        """Keep the heartbeat fresh for the whole invocation, long AI calls included."""
        while not await pause(BEAT_SECONDS, stop):
            try:
                async with self.db.transaction() as tx:
                    await heartbeat.beat(tx)
            except Exception as exc:  # a missed beat only lets a wake-up start a second one
                log.warning("heartbeat failed: %s", exc)

    def _duties_idle(self, since: float) -> bool:
        """Whether every duty has finished a pass that began after `since` and did nothing."""
        return all(
            d.idle_since is not None and d.idle_since >= since
            for d in (self.alerts, self.sync, self.checks, self.retention)
            if d is not None
        )

    async def once(self) -> Summary:
        """A single scan."""
        started = time.monotonic()
        summary = await self.poller.scan_once()
        summary.seconds = time.monotonic() - started
        return summary

    async def loop(self, stop: asyncio.Event) -> Summary:
        """Scan until stop is set (the CLI's `flowlens poll` and `make dev`)."""
        total = Summary()
        duties = asyncio.create_task(self._duties(None, stop))
        try:
            while not stop.is_set():
                total.add(await self.poller.run(3600.0, stop=stop))
        finally:
            if not stop.is_set():  # the scan loop died: its duties go with it
                duties.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await duties
        return total

    async def close(self) -> None:
        """Release the pool and HTTP clients."""
        if self.alerts is not None:
            await self.alerts.aclose()
        if self.sync is not None:
            await self.sync.aclose()
        if self.checks is not None:
            await self.checks.aclose()
        elif isinstance(self.tokens, AppTokens):
            await self.tokens.aclose()
        await self.db.close()
        if self.files is not None:
            await self.files.aclose()
        closer = getattr(self.analyser, "aclose", None)
        if closer is not None:
            await closer()


def _alert_dispatcher(db: Database, settings: PollerSettings) -> AlertDispatcher | None:
    """The alert pass when ALERT_CHANNELS names a channel; bad alert settings only disable it."""
    try:
        config = AlertConfig.from_settings(settings)
    except ConfigError as exc:
        log.error("alerts disabled: %s", exc)
        return None
    if not config.enabled:
        return None
    log.info("alerts on: %s via %s", ", ".join(config.channels), settings.alert_email_transport)
    return AlertDispatcher(db, config, build_channels(settings, config))


def _sync_scheduler(db: Database, settings: PollerSettings, tokens: TokenSource
                    ) -> SyncScheduler | None:  # fmt: skip
    """The scheduled sync when SYNC_REPOSITORIES lists repositories."""
    repositories = settings.sync_repository_list
    if not repositories:
        return None
    try:
        scheduler = SyncScheduler(db, settings, repositories, tokens=tokens)
    except GitHubError as exc:
        log.error("scheduled sync disabled: %s", exc)
        return None
    log.info("scheduled sync of %s", ", ".join(repositories))
    return scheduler


class _Beats:
    """The heartbeat's side task, stopped by a flag as well as a cancel (on 3.11 a cancel can
    be swallowed inside the pool's wait_for, and a loop would then beat on for ever)."""

    def __init__(self, service: PollerService, heartbeat: Heartbeat) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(service.beat(heartbeat, self._stop), name="heartbeat")

    async def stop(self) -> None:
        self._stop.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
