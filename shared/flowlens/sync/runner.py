"""One sync of one repository: runs, then pull requests with their reviews, as deliveries."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from flowlens.db import Database
from flowlens.github.parse import parse, ts
from flowlens.github.rest import GitHubError
from flowlens.ingest.store import Item, Outcome, record_deliveries
from flowlens.sync import payloads
from flowlens.sync.client import GitHubSyncClient, RateLimited

log = logging.getLogger("flowlens.sync")

REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
PER_PAGE = 100
# What GitHub answers for a list the token may not read (404 for a private repository's).
FORBIDDEN = (403, 404)
# How many heads of open pull requests with a failed or running build a sync lists the runs of
# by sha (for re-runs), taken in turn when there are more: a request each (a first page of up
# to 100 runs), a 304 when a warm process asks again and nothing changed.
RERUN_HEADS = 20
SHA = re.compile(r"^[0-9a-f]{40}$")

Progress = Callable[[str], None]


@dataclass
class SyncResult:
    """What one sync of one repository did."""

    repository: str
    complete: bool = False
    pull_requests: int = 0  # in the window
    pull_requests_synced: int = 0  # fetched and written (the rest were already stored)
    reviews: int = 0
    runs: int = 0
    heads_rechecked: int = 0  # failed or running heads whose runs were listed by sha
    accepted: int = 0
    duplicates: int = 0
    pages: int = 0
    requests: int = 0
    not_modified: int = 0
    error: str | None = None
    runs_skipped: str | None = None  # why workflow runs could not be listed (PRs still were)
    prs_cursor: datetime | None = None
    runs_cursor: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("prs_cursor", "runs_cursor"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    def line(self) -> str:
        """One human line for the CLI."""
        state = "done" if self.complete else f"incomplete: {self.error}"
        if self.runs_skipped:
            state += f" (workflow runs skipped: {self.runs_skipped})"
        heads = f" + {self.heads_rechecked} head(s) rechecked" if self.heads_rechecked else ""
        return (
            f"{self.repository}: {state}; {self.pull_requests} pull request(s) in window, "
            f"{self.pull_requests_synced} synced, {self.reviews} review(s), {self.runs} run(s)"
            f"{heads}; {self.accepted} new delivery(ies), {self.duplicates} already stored; "
            f"{self.requests} request(s), {self.not_modified} not modified"
        )


def check_repository(name: str) -> str:
    """owner/name, or a GitHubError."""
    if not REPOSITORY.match(name):
        raise GitHubError(f"sync: bad repository name {name!r} (want owner/name)", retryable=False)
    return name


class RepositorySync:
    """Syncs one repository through the webhook code path."""

    def __init__(
        self,
        db: Database,
        client: GitHubSyncClient,
        repository: str,
        *,
        progress: Progress | None = None,
        notify: bool = True,
    ) -> None:
        self.db = db
        self.client = client
        self.repository = check_repository(repository)
        self.progress = progress or (lambda line: None)
        self.notify = notify
        self.result = SyncResult(repository=repository)
        self._repo: dict[str, Any] = {}

    async def run(self, *, prs_since: datetime, runs_since: datetime) -> SyncResult:
        """Sync runs created and pull requests updated since the given times."""
        requests_before = self.client.stats.requests
        not_modified_before = self.client.stats.not_modified
        try:
            repo, _ = await self.client.get_json(self.client.url(f"/repos/{self.repository}"))
            if not isinstance(repo, dict) or not repo.get("full_name"):
                raise GitHubError(f"github: no repository object for {self.repository}")
            self._repo = repo
            # Read before the walk: heads that failed or ran before it are the ones a re-run
            # may have changed without the walk seeing it.
            async with self.db.transaction() as tx:
                recheck = await tx.all(
                    "sync_heads_to_recheck", github_id=repo.get("id"),
                    repository=repo["full_name"], sync_name=self.repository, limit=RERUN_HEADS,
                )  # fmt: skip
            # Runs first: a pull request written afterwards derives its build state from every
            # build of its head, whatever order GitHub would have delivered them in.
            try:
                await self._runs(runs_since)
            except GitHubError as exc:
                # GitHub answers a rate limit with 403 too: that one waits for its reset.
                if exc.status not in FORBIDDEN or isinstance(exc, RateLimited):
                    raise
                # A token that may read pull requests but not Actions (a fine-grained token
                # without actions:read): pull requests and reviews still sync.
                self.result.runs_skipped = str(exc)
                log.warning("%s: workflow runs not synced: %s", self.repository, exc)
                self.progress(f"{self.repository}: workflow runs skipped: {exc}")
            await self._pulls(prs_since)
            if not self.result.runs_skipped:
                await self._reruns([row["head_sha"] for row in recheck])
            self.result.complete = True
        except GitHubError as exc:
            self.result.error = str(exc)
            raise
        finally:
            self.result.requests = self.client.stats.requests - requests_before
            self.result.not_modified = self.client.stats.not_modified - not_modified_before
        return self.result

    async def _record(self, *deliveries: tuple[str, str, dict[str, Any]]) -> None:
        """Store (delivery id, event, payload) deliveries in one transaction, in order."""
        items = [Item(did, event, parse(event, payload), json.dumps(payload))
                 for did, event, payload in deliveries]  # fmt: skip
        for outcome in await record_deliveries(self.db, items, notify=self.notify):
            if outcome == Outcome.DUPLICATE:
                self.result.duplicates += 1
            else:
                self.result.accepted += 1

    async def _runs(self, since: datetime) -> None:
        url = self.client.url(f"/repos/{self.repository}/actions/runs?per_page={PER_PAGE}")
        newest: datetime | None = None
        oldest_unfinished: datetime | None = None
        async for page in self.client.pages(url, items_key="workflow_runs"):
            self.result.pages += 1
            reached_end = False
            taken: list[tuple[str, str, dict[str, Any]]] = []
            for run in page.items:
                created = ts(run.get("created_at"))
                if created is None or created < since:
                    reached_end = True
                    continue
                newest = created if newest is None or created > newest else newest
                if run.get("status") != "completed" and (
                    oldest_unfinished is None or created < oldest_unfinished
                ):
                    oldest_unfinished = created
                taken.append(self._run_delivery(run))
            # A page in one transaction: a first backfill of thousands of runs has to fit in
            # one poller invocation's budget before the pull requests get their turn.
            if taken:
                await self._record(*taken)
            self.result.runs += len(taken)
            self.progress(
                f"{self.repository}: runs page {page.number}: {len(taken)} in window"
                + (" (not modified)" if page.not_modified else "")
                + f", {self.result.runs} so far"
            )
            if reached_end:
                break
        # Next time, list again from the oldest run that had not finished (it will change).
        self.result.runs_cursor = (
            min(oldest_unfinished, newest) if oldest_unfinished and newest else newest
        )

    def _run_delivery(self, run: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        return (
            payloads.run_delivery_id(run),
            "workflow_run",
            payloads.workflow_run_payload(run, self._repo),
        )

    async def _reruns(self, heads: list[str]) -> None:
        """Each head's latest runs, listed by sha: a re-run keeps its run's id and creation
        time, so the walk by creation time does not reach it once the cursor passed.

        After the walks, and never failing the sync: the cursors and the pull requests are
        what a run is for, and the heads are asked about again next time.
        """
        for sha in dict.fromkeys(h for h in heads if SHA.match(h)):
            url = self.client.url(
                f"/repos/{self.repository}/actions/runs?head_sha={sha}&per_page={PER_PAGE}"
            )
            taken: list[tuple[str, str, dict[str, Any]]] = []
            try:
                # The first page: the sha's newest 100 runs (a head rarely has more).
                async for page in self.client.pages(url, items_key="workflow_runs", max_pages=1):
                    self.result.pages += 1
                    taken = [
                        self._run_delivery(run)
                        for run in page.items
                        if isinstance(run, dict) and run.get("head_sha") == sha
                    ]
            except GitHubError as exc:  # out of time, rate limited, refused, failing
                log.warning("%s: re-runs not checked: %s", self.repository, exc)
                self.progress(f"{self.repository}: re-runs not checked: {exc}")
                return
            if taken:  # versions already stored are duplicates: nothing changes
                await self._record(*taken)
            self.result.heads_rechecked += 1

    async def _pulls(self, since: datetime) -> None:
        url = self.client.url(
            f"/repos/{self.repository}/pulls?state=all&sort=updated&direction=desc"
            f"&per_page={PER_PAGE}"
        )
        async for page in self.client.pages(url):
            self.result.pages += 1
            reached_end = False
            for item in page.items:
                updated = ts(item.get("updated_at"))
                if updated is None or updated < since:
                    # Sorted by updated_at, newest first: the rest of the list is older still.
                    reached_end = True
                    break
                if self.result.prs_cursor is None or updated > self.result.prs_cursor:
                    self.result.prs_cursor = updated
                self.result.pull_requests += 1
                await self._pull(item, updated)
            self.progress(
                f"{self.repository}: pulls page {page.number}"
                + (" (not modified)" if page.not_modified else "")
                + f": {self.result.pull_requests} pull request(s) in window, "
                f"{self.result.pull_requests_synced} synced"
            )
            if reached_end:
                break

    async def _pull(self, item: dict[str, Any], updated: datetime) -> None:
        """One pull request: skipped when this version is stored, else detail + reviews + PR."""
        number = int(item["number"])
        async with self.db.transaction() as tx:
            seen = await tx.value("sync_delivery_seen", delivery_id=payloads.pr_delivery_id(item))
            stored = await tx.one(
                "sync_pr_state", github_id=self._repo.get("id"),
                repository=self._repo["full_name"], number=number,
            )  # fmt: skip
        stored_at = stored.get("source_updated_at") if stored else None
        if seen or (stored_at is not None and stored_at > updated):
            return
        base = f"/repos/{self.repository}/pulls/{number}"
        # The list's objects lack the counts (additions, deletions, changed_files) webhooks carry.
        pr, _ = await self.client.get_json(self.client.url(base))
        if not isinstance(pr, dict) or pr.get("number") != number:
            raise GitHubError(f"github: unexpected pull request object for #{number}")
        reviews: list[dict[str, Any]] = []
        async for page in self.client.pages(self.client.url(f"{base}/reviews?per_page={PER_PAGE}")):
            reviews.extend(r for r in page.items if isinstance(r, dict))
        action = payloads.pr_action(stored, pr)
        # Reviews, then the pull request, in one transaction. Each review carries the PR as it
        # is now, so reviews stored without the PR (a run that died in between) would leave
        # the row current and the next run would find no action to name: the new head would
        # never be analysed. The PR's delivery id marks this version as done.
        deliveries = [
            (payloads.review_delivery_id(review), "pull_request_review", payload)
            for review in reviews
            if (payload := payloads.review_payload(review, pr, self._repo)) is not None
        ]
        self.result.reviews += len(deliveries)
        deliveries.append((payloads.pr_delivery_id(pr), "pull_request",
                           payloads.pull_request_payload(pr, self._repo, action)))  # fmt: skip
        await self._record(*deliveries)
        self.result.pull_requests_synced += 1
