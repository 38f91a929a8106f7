"""Write-back: the risk read on the pull request, as one check run "FlowLens risk" per head
(App mode) or one commit status of that context (token mode), updated in place.

A poller duty on the work queue (flowlens.workqueue.CheckQueue): the poller records what each
head's check should show (in progress when its analysis starts, completed with the insight),
and `CheckWriter` passes send it, leased and retried with the one backoff, waiting out GitHub's
rate limits rather than spending attempts on them (a rate-limited send gives its attempt
back, and no send is claimed while the client is paused). Analysis never waits for GitHub.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from flowlens.db import Database
from flowlens.github.app import API_VERSION, USER_AGENT, TokenSource
from flowlens.github.parse import CHECK_NAME
from flowlens.github.rest import GitHubError, error_message, parse_float, rate_limit_wait
from flowlens.loop import DutyCounts, run_passes
from flowlens.retry import backoff
from flowlens.settings import Settings
from flowlens.workqueue import CheckQueue

log = logging.getLogger("flowlens.checks")
# The dashboard's idSafe (format.js): what an element id may not hold, escaped as _hhhh.
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9-]")

LEVELS = ("low", "medium", "high")
MAX_RETRY_DELAY = 900.0
# GitHub's limits on a check run's output and a status's description.
MAX_OUTPUT = 60_000
MAX_DESCRIPTION = 140


def conclusion(level: str | None, fail_at: str) -> str:
    """The check's conclusion for a risk level under CHECK_FAIL_AT (off: always neutral)."""
    if level is None or fail_at == "off":
        return "neutral"
    return "failure" if LEVELS.index(level) >= LEVELS.index(fail_at) else "success"


def dashboard_link(base: str, repository: str, number: int) -> str | None:
    """The PR's card on the dashboard (DASHBOARD_URL), or None without one. The fragment is
    the card's element id (`cardId` in the dashboard's view.js)."""
    if not base:
        return None
    card = _ID_UNSAFE.sub(lambda m: f"_{ord(m.group()):04x}", repository)
    return f"{base.rstrip('/')}/?repo={quote(repository, safe='/')}#pr-{card}-{number}"


@dataclass(frozen=True)
class Shown:
    """What one head's check shows."""

    status: str  # in_progress | completed
    conclusion: str | None
    title: str
    summary: str
    text: str
    details_url: str | None


def render(row: dict[str, Any], claim: dict[str, Any], settings: Settings) -> Shown:
    """The check for a claimed write-back and its insight (row: insight + repository)."""
    link = dashboard_link(settings.dashboard_url, row["repository"], claim["pr_number"])
    if claim["wanted"] == "in_progress":
        return Shown("in_progress", None, "Reading the risk of this commit…",
                     "FlowLens is analysing this head.", "", link)  # fmt: skip
    if row.get("risk_level") is None:
        reason = claim.get("reason") or "the analysis did not finish"
        why = f"FlowLens could not read this commit's risk: {reason}."
        return Shown("completed", "neutral", "No risk read", why, "", link)
    level = row["risk_level"]
    score = row.get("risk_score")
    drivers = list(row.get("risk_drivers") or [])
    title = f"{level.capitalize()} risk" + (f" (defect probability {score:.2f})"
                                            if score is not None else "")  # fmt: skip
    lines = [row["summary"], "", f"**Recommendation:** {row['recommendation']}"]
    if drivers:
        lines += ["", "**Top drivers** (log-odds against an average change):"]
        lines += [f"- {d['label']}: {d['value']:g} ({d['contribution']:+.2f})" for d in drivers]
    text_lines = ["**Key changes**", *(f"- {k}" for k in row.get("key_changes") or [])]
    if link:
        text_lines += ["", f"[This pull request on the FlowLens dashboard]({link})"]
    gate = settings.check_fail_at
    if gate != "off":
        lines += ["", f"Quality gate: fails at {gate} risk or above (CHECK_FAIL_AT)."]
    return Shown("completed", conclusion(level, gate), title, "\n".join(lines)[:MAX_OUTPUT],
                 "\n".join(text_lines)[:MAX_OUTPUT], link)  # fmt: skip


@dataclass
class CheckSummary(DutyCounts):
    """What write-back passes did (part of the poller's JSON summary)."""

    passes: int = 0
    posted: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    WORK = ("posted", "retried", "failed", "expired")


class ChecksClient:
    """GitHub's check runs and commit statuses, over httpx, with the credentials given."""

    def __init__(
        self, api_url: str, tokens: TokenSource, *, timeout_seconds: float = 10.0,
        client: httpx.AsyncClient | None = None, app_id: int | None = None,
    ) -> None:  # fmt: skip
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.app_id = app_id  # App mode: only this App's check runs are FlowLens's
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        # GitHub's primary limit, as its last answer put it: no request before this time.
        self.paused_until = 0.0

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _request(self, method: str, repository: str, path: str,
                       body: dict[str, Any] | None = None) -> Any:  # fmt: skip
        wait = self.paused_until - time.time()
        if wait > 0:
            raise GitHubError(f"github: rate limit, resets in {wait:.0f}s", retry_after=wait)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": USER_AGENT}  # fmt: skip
        authorization = await self.tokens.authorization(repository)
        if authorization:
            headers["Authorization"] = authorization
        url = f"{self.api_url}/repos/{repository}{path}"
        try:
            response = await self._client.request(method, url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise GitHubError(f"github: {method} {path} timed out") from None
        except httpx.TransportError as exc:
            raise GitHubError(f"github: {type(exc).__name__} on {method} {path}") from None
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset = parse_float(response.headers.get("X-RateLimit-Reset"))
            if reset is not None:
                self.paused_until = max(self.paused_until, reset)
        if response.is_success:
            return response.json() if response.content else None
        limit = rate_limit_wait(response)
        status = response.status_code
        message = error_message(response)
        # A revoked or outdated installation token: the next try exchanges a new one.
        renewed = status == 401 and self.tokens.refused(repository)
        raise GitHubError(
            f"github: {status} on {method} {path}" + (f": {message}" if message else ""),
            status=status,
            retryable=limit is not None or status >= 500 or status == 408 or renewed,
            retry_after=limit,
        )  # fmt: skip

    async def find_check_run(self, repository: str, sha: str) -> int | None:
        """FlowLens's check run on a commit, if one exists already (a send that reached GitHub
        but whose answer was lost): updating it keeps the one check per head."""
        query = f"check_name={quote(CHECK_NAME)}" + (
            f"&app_id={self.app_id}" if self.app_id else ""
        )
        found = await self._request("GET", repository, f"/commits/{sha}/check-runs?{query}")
        runs = found.get("check_runs") if isinstance(found, dict) else None
        return int(runs[0]["id"]) if runs else None

    async def put_check_run(self, repository: str, sha: str, shown: Shown,
                            check_run_id: int | None) -> int:  # fmt: skip
        """Create the head's check run, or update it in place; its id."""
        body: dict[str, Any] = {"name": CHECK_NAME, "status": shown.status,
                                "output": {"title": shown.title, "summary": shown.summary,
                                           "text": shown.text}}  # fmt: skip
        if shown.details_url:
            body["details_url"] = shown.details_url
        if shown.conclusion is not None:
            body["conclusion"] = shown.conclusion
        if check_run_id is None:
            created = await self._request("POST", repository, "/check-runs",
                                          {**body, "head_sha": sha})  # fmt: skip
            return int(created["id"])
        await self._request("PATCH", repository, f"/check-runs/{check_run_id}", body)
        return check_run_id

    async def put_status(self, repository: str, sha: str, shown: Shown) -> None:
        """The head's commit status of context "FlowLens risk" (replaced by the next one)."""
        state = {"failure": "failure", None: "pending"}.get(shown.conclusion, "success")
        description = shown.title if shown.status == "completed" else "Reading the risk…"
        body: dict[str, Any] = {"state": state, "context": CHECK_NAME,
                                "description": description[:MAX_DESCRIPTION]}  # fmt: skip
        if shown.details_url:
            body["target_url"] = shown.details_url
        await self._request("POST", repository, f"/statuses/{sha}", body)


class CheckWriter:
    """The write-back duty: expire overdue checks, claim due sends, send each."""

    def __init__(self, db: Database, settings: Settings, client: ChecksClient, *,
                 batch_size: int = 20, max_attempts: int = 8) -> None:  # fmt: skip
        self.db = db
        self.settings = settings
        self.client = client
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.queue = CheckQueue(f"checks:{uuid.uuid4().hex[:8]}", lease_seconds=60.0)
        self.interval = settings.poll_interval_seconds
        # When the last pass that found nothing to do began (None: it had work, or none ran).
        self.idle_since: float | None = None

    async def aclose(self) -> None:
        await self.client.aclose()
        closer = getattr(self.client.tokens, "aclose", None)
        if closer is not None:
            await closer()

    async def pass_once(self) -> CheckSummary:
        summary = CheckSummary(passes=1)
        bound = self.settings.check_timeout_seconds
        paused = self.client.paused_until > time.time()  # GitHub said wait: claim nothing
        async with self.db.transaction() as tx:
            summary.expired = await CheckQueue.expire(
                tx, bound, f"the analysis did not finish within {bound:g} s"
            )
            claims = [] if paused else await self.queue.claim(tx, self.batch_size)
        results = await asyncio.gather(*(self._send(c) for c in claims))
        for outcome, error in results:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if error:
                summary.note(error)
        return summary

    async def _send(self, claim: dict[str, Any]) -> tuple[str, str | None]:
        async with self.db.transaction() as tx:
            row = await tx.one("checks_subject", repository_id=claim["repository_id"],
                               insight_id=claim["insight_id"])  # fmt: skip
        assert row is not None
        repository = row["repository"]
        where = f"{repository}@{claim['head_sha'][:12]}"
        shown = render(row, claim, self.settings)
        external = claim["external_id"]
        try:
            # Well inside the lease: a send still running when it ran out could meet another
            # writer's send of the same head (and make a second check run).
            async with asyncio.timeout(self.queue.lease_seconds / 2):
                external = await self._put(claim, row, shown)
        except Exception as exc:
            if isinstance(exc, GitHubError):
                error, retryable, wait = str(exc), exc.retryable, exc.retry_after
            elif isinstance(exc, TimeoutError):
                error, retryable, wait = "github: the send did not finish in time", True, None
            else:  # a bug or the database: retried, and failed for good like any other
                log.exception("write-back of %s failed", where)
                error, retryable, wait = f"write-back error: {exc!r}", True, None
            if isinstance(exc, GitHubError) and exc.status == 404 and external is not None:
                # The check run is gone at GitHub (deleted with its suite): create it anew.
                async with self.db.transaction() as tx:
                    await tx.execute("checks_forget_run", id=claim["id"])
                retryable, wait = True, 0.0
            if not retryable or claim["attempts"] >= self.max_attempts:
                await self._give_up(claim, repository, external, error)
                log.error("write-back failed for good: %s: %s", where, error)
                return "failed", f"{where}: {error}"
            delay = backoff(claim["attempts"], base=2.0, cap=MAX_RETRY_DELAY)
            limited = isinstance(exc, GitHubError) and exc.retry_after is not None
            if wait is not None:  # a rate limit: wait for its reset, not spending an attempt
                delay = min(wait + 1.0, MAX_RETRY_DELAY) if wait > 0 else 0.0
            async with self.db.transaction() as tx:
                await self.queue.retry(tx, claim, error=error, delay=delay, refund=limited)
            log.warning("write-back retry in %.0fs: %s: %s", delay, where, error)
            return "retried", f"{where}: {error}"
        async with self.db.transaction() as tx:
            await self.queue.posted(tx, claim, shown.status, external)
        log.info("write-back %s %s (%s)", shown.status, where, shown.conclusion or "-")
        return "posted", None

    async def _put(self, claim: dict[str, Any], row: dict[str, Any], shown: Shown) -> int | None:
        """Make GitHub show `shown` for the claimed head; the check run's id (App mode)."""
        repository, sha = row["repository"], claim["head_sha"]
        # GitHub shows the check in progress first, also when the analysis finished before
        # this send: a reviewer (and a required check) sees FlowLens at work, then its read.
        first = None
        if claim["posted"] is None and shown.status == "completed":
            first = render(row, {**claim, "wanted": "in_progress"}, self.settings)
        if claim["mode"] != "check_run":
            if first is not None:
                await self.client.put_status(repository, sha, first)
            await self.client.put_status(repository, sha, shown)
            return None
        external: int | None = claim["external_id"]
        if external is None:  # a send whose answer was lost may have created it
            external = await self.client.find_check_run(repository, sha)
        if first is not None:
            external = await self.client.put_check_run(repository, sha, first, external)
            async with self.db.transaction() as tx:
                await tx.execute("checks_remember_run", id=claim["id"], external_id=external)
        return await self.client.put_check_run(repository, sha, shown, external)

    async def _give_up(self, claim: dict[str, Any], repository: str, external: int | None,
                       error: str) -> None:  # fmt: skip
        """Dead-letter the send; a check run GitHub shows in progress is completed neutral
        with the reason, if GitHub takes that much (never left in progress)."""
        async with self.db.transaction() as tx:
            await self.queue.dead_letter(tx, claim, error=error)
        if claim["mode"] != "check_run" or external is None:
            return
        why = f"FlowLens could not post its read of this commit: {error[:500]}"
        try:
            async with asyncio.timeout(10.0):
                await self.client.put_check_run(
                    repository, claim["head_sha"],
                    Shown("completed", "neutral", "No risk read", why, "", None), external,
                )  # fmt: skip
        except Exception as exc:  # already failed for good: this was the last resort
            log.warning("could not complete the check of %s neutral: %s", repository, exc)

    async def run(self, budget_seconds: float | None = None, *,
                  stop: asyncio.Event | None = None) -> CheckSummary:  # fmt: skip
        """A pass every POLL_INTERVAL_SECONDS until the budget is spent or stop is set."""
        return await run_passes(
            self, self.pass_once, CheckSummary(), what="write-back", interval=self.interval,
            budget_seconds=budget_seconds, stop=stop,
        )  # fmt: skip


def check_writer(db: Database, settings: Settings, tokens: TokenSource, *,
                 timeout_seconds: float = 10.0) -> CheckWriter | None:  # fmt: skip
    """The write-back duty when GitHub credentials allow it (docs/GITHUB_APP.md), else None."""
    mode = settings.write_back
    if mode is None:
        return None
    log.info("write-back on: a %s per analysed head", mode.replace("_", " "))
    client = ChecksClient(settings.github_api_url, tokens, app_id=settings.github_app_id,
                          timeout_seconds=timeout_seconds)  # fmt: skip
    return CheckWriter(db, settings, client)
