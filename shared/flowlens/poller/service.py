"""The poller deployable's state: one pool, one analyser, one GitHub client per process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from flowlens.db import Database
from flowlens.insights.factory import make_analyser
from flowlens.insights.github_files import GitHubFilesClient
from flowlens.poller.worker import Poller, Summary
from flowlens.settings import PollerSettings

log = logging.getLogger("flowlens.poller")


class PollerService:
    """Builds a Poller from settings and runs invocations of it."""

    def __init__(self, settings: PollerSettings) -> None:
        self.settings = settings
        self.db = Database(
            settings.dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        self.analyser = make_analyser(settings)
        self.files: GitHubFilesClient | None = None
        if settings.github_api_url:
            self.files = GitHubFilesClient(
                settings.github_api_url,
                settings.secret("github_token"),
                patch_max_bytes=settings.github_patch_max_bytes,
            )
        self.poller = Poller(self.db, settings, self.analyser, self.files)
        log.info("analyser: %s", getattr(self.analyser, "name", type(self.analyser).__name__))

    async def invoke(self, budget_seconds: float | None = None) -> dict[str, Any]:
        """One Cloud Scheduler invocation: scan until the budget is spent; a JSON summary."""
        budget = self.settings.poll_budget_seconds if budget_seconds is None else budget_seconds
        summary = await self.poller.run(budget)
        log.info("invocation done: %s", summary.as_dict())
        return summary.as_dict()

    async def once(self) -> Summary:
        """A single scan."""
        return await self.poller.scan_once()

    async def loop(self, stop: asyncio.Event) -> Summary:
        """Scan until stop is set (the CLI's `flowlens poll` and `make dev`)."""
        total = Summary()
        while not stop.is_set():
            total.add(await self.poller.run(3600.0, stop=stop))
        return total

    async def close(self) -> None:
        """Release the pool and HTTP clients."""
        await self.db.close()
        if self.files is not None:
            await self.files.aclose()
        closer = getattr(self.analyser, "aclose", None)
        if closer is not None:
            await closer()
