"""One poller: leases events, coalesces them per PR, analyses each new head sha once."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from psycopg.types.json import Jsonb

from flowlens import logs, serialize
from flowlens.db import Database, Tx
from flowlens.db.codec import unpack_payload
from flowlens.github.parse import load_payload
from flowlens.github.rest import GitHubError
from flowlens.ingest.store import save_pr_now
from flowlens.insights.models import Analyser, AnalysisError, ChangeContext, FileChange, Insight
from flowlens.loop import pause
from flowlens.retry import retrying
from flowlens.risk.history import History, PgHistory
from flowlens.risk.outcomes import commit_reverts, followed_up, revert_targets
from flowlens.risk.replay import observe
from flowlens.settings import Settings
from flowlens.workqueue import CheckQueue, EventQueue, PrAnalysisLease

log = logging.getLogger("flowlens.poller")

# After an invocation's budget no AI call starts (its events go back to the queue for the next
# invocation); one under way may go on this much longer, then it is given up and its events go
# back too. Terraform keeps the function's timeout more than 30 s above the budget.
OVERRUN_SECONDS = 25.0


class FilesSource(Protocol):
    """Where the changed files of a PR come from (GitHub's pulls/{n}/files API)."""

    async def list_files(self, repository: str, number: int) -> list[FileChange]: ...


@dataclass
class Summary:
    """What an invocation did; returned as JSON to Cloud Scheduler."""

    scans: int = 0
    events: int = 0
    insights: int = 0
    ai_calls: int = 0
    failures: int = 0
    retries: int = 0
    skipped: int = 0
    deferred: int = 0  # events given back at the end of the budget, for the next invocation
    seconds: float = 0.0
    idle_end: bool = False  # it ended early: nothing to do (POLL_IDLE_SCANS)
    errors: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        for name in ("scans", "events", "insights", "ai_calls", "failures", "retries", "skipped",
                     "deferred"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.idle_end = other.idle_end
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


class Poller:
    """Claims leased batches of raw events and turns analysable ones into insights."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        analyser: Analyser,
        files: FilesSource | None = None,
        *,
        owner: str | None = None,
        ai_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.analyser = analyser
        self.files = files
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.queue = EventQueue(self.owner, settings.lease_seconds)
        self.pr_lease = PrAnalysisLease(self.owner, settings.lease_seconds)
        self._ai_slots = ai_slots or asyncio.Semaphore(settings.ai_concurrency)
        self._deadline: float | None = None  # while run() goes: when its budget ends

    async def scan_once(self) -> Summary:
        """Claim one batch, finish it, and say what happened."""
        summary = Summary(scans=1)
        async with self.db.transaction() as tx:
            claimed = await self.queue.claim(tx, self.settings.poll_batch_size)
        summary.events = len(claimed)
        if not claimed:
            return summary
        plain: list[int] = []
        groups: dict[tuple[int | None, str, int], list[dict[str, Any]]] = defaultdict(list)
        unnamed: list[dict[str, Any]] = []
        for event in claimed:
            if event["needs_analysis"] and event["repository"] and event["pr_number"]:
                # One group per PR: by the repository's GitHub id (its events may carry the
                # names before and after a rename), else by name.
                gid = event["repository_github_id"]
                if gid is None:
                    unnamed.append(event)
                else:
                    groups[(gid, "", event["pr_number"])].append(event)
            else:
                plain.append(event["id"])
        # Events stored before the id was kept (migration 008) join their PR's group when one
        # of its events has the id: two groups of one PR would each analyse it.
        known = {(e["repository"], key[2]): key for key, events in groups.items() for e in events}
        for event in unnamed:
            name, number = event["repository"], event["pr_number"]
            groups[known.get((name, number), (None, name, number))].append(event)
        if plain:
            pushes = [e["id"] for e in claimed if e["event"] == "push" and not e["needs_analysis"]]
            if pushes:
                try:
                    await self._push_reverts(pushes)
                except Exception as exc:  # an outcome is a bonus: never what holds events up
                    log.warning("reading pushes for reverts failed: %s", exc)
            # Reviews, builds, pings...: their PR changes reached the feed in ingest's transaction.
            await self._mark(plain)
        # Every group is waited for, also when one fails: none may run on past its scan.
        results = await asyncio.gather(
            *(
                self._analyse_group(gid, events[0]["repository"], number, events)
                for (gid, _, number), events in groups.items()
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Summary):
                summary.add(result)
            else:  # its events' leases run out and a later scan takes them again
                log.error("analysis of a pull request failed", exc_info=result)
                summary.errors.append(f"scan failed: {result}"[:300])
        return summary

    async def _push_reverts(self, ids: list[int]) -> None:
        """Commits pushed to the default branch that revert analysed heads ("This reverts
        commit <sha>.") record it; a revert on a side branch has not undone anything yet."""
        async with self.db.transaction() as tx:
            for row in await tx.all("risk_push_payloads", ids=ids):
                payload = load_payload(unpack_payload(row["payload"]))
                repo = payload.get("repository")
                if (
                    not isinstance(repo, dict)
                    or not repo.get("default_branch")
                    or (payload.get("ref") != f"refs/heads/{repo['default_branch']}")
                ):
                    continue
                for commit in payload.get("commits") or []:
                    if not isinstance(commit, dict) or not isinstance(commit.get("message"), str):
                        continue
                    reverts = commit_reverts(commit["message"], str(repo.get("full_name") or ""))
                    if reverts is not None:
                        await tx.execute(
                            "risk_outcome_reverted", repository_id=row["repository_id"],
                            shas=reverts.shas, numbers=reverts.numbers,
                            detail=f"push {str(commit.get('id') or '')[:12]}".strip(),
                        )  # fmt: skip

    async def _mark(self, ids: list[int]) -> None:
        async with self.db.transaction() as tx:
            await self.queue.complete(tx, ids)

    async def _release(self, ids: list[int], delay: float, error: str | None, refund: int) -> None:
        async with self.db.transaction() as tx:
            await self.queue.release(tx, ids, delay=delay, error=error, refund=refund)

    async def _analyse_group(
        self, github_id: int | None, repository: str, number: int, events: list[dict[str, Any]]
    ) -> Summary:
        """Many events of one PR cost one analysis: of its newest head sha."""
        held: dict[str, int] = {}  # the PR whose analysis lease this group holds, once it does
        # The events' leases are renewed from the claim to the end, whatever the group waits
        # for (an AI slot, GitHub's file list); the PR's once it is leased.
        # Stopped by a flag as well as a cancel: on 3.11 a cancel landing inside the pool's
        # wait_for can be swallowed, and the loop would then renew for ever (a hung scan).
        done = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(held, [e["id"] for e in events], done))
        try:
            return await self._group(github_id, repository, number, events, held)
        finally:
            done.set()
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _group(
        self,
        github_id: int | None,
        repository: str,
        number: int,
        events: list[dict[str, Any]],
        held: dict[str, int],
    ) -> Summary:
        summary = Summary()
        ids = [e["id"] for e in events]
        with logs.bind(repository=repository, pr=number):
            async with self.db.transaction() as tx:
                pr = await tx.one(
                    "poller_pr_for_analysis",
                    github_id=github_id,
                    repository=repository,
                    number=number,
                )
                if pr is None or pr["state"] != "open" or not pr["head_sha"]:
                    await self.queue.complete(tx, ids)
                    summary.skipped += len(ids)
                    return summary
                # GitHub asked to run FlowLens's check again: the head is analysed anew.
                rerun = any(e["event"] == "check_run" and e["action"] == "rerequested"
                            for e in events)  # fmt: skip
                known = (
                    None
                    if rerun
                    else await tx.one(
                        "poller_insight_for_commit",
                        repository_id=pr["repository_id"],
                        pr_number=number,
                        commit_sha=pr["head_sha"],
                    )
                )
                if not known:
                    leased = await self.pr_lease.take(tx, pr["id"], again=rerun)
            if known:
                # Analysed before (the head went back to it): no new call, but it is the head's
                # insight again, shown with the head's files.
                if self._spent():
                    return await self._defer(ids, summary)
                try:
                    files = await self._bounded_files(pr)
                    if files is None:
                        return await self._defer(ids, summary)
                    async with self.db.transaction() as tx:
                        await self._make_latest(tx, pr, known, files)
                        await self.queue.complete(tx, ids)
                except Exception as exc:  # as for an analysis: back off, lose nothing
                    log.exception("restoring the insight of %s#%s failed", repository, number)
                    await self._failed(events, f"poller error: {exc!r}", True, summary)
                    return summary
                summary.skipped += len(ids)
                return summary
            if not leased:
                # Another poller is analysing this PR right now; look again shortly.
                await self._release(ids, self.settings.poll_interval_seconds, None, refund=1)
                summary.retries += len(ids)
                return summary
            held["pr"] = pr["id"]
            held["again"] = int(rerun)
            try:
                return await self._analyse(pr, events, summary, rerun)
            except Exception as exc:  # an analyser bug or a failed store: back off, lose nothing
                log.exception("analysis of %s#%s failed", repository, number)
                await self._failed(events, f"poller error: {exc!r}", True, summary)
                return summary
            finally:
                held.pop("pr", None)
                async with self.db.transaction() as tx:
                    await self.pr_lease.release(tx, pr["id"])

    async def _heartbeat(self, held: dict[str, int], ids: list[int], done: asyncio.Event
                         ) -> None:  # fmt: skip
        """Keep the events' leases alive while their group runs (until `done`), and the PR's
        analysis lease while `held` names it (AI waits and retries)."""
        lease = self.settings.lease_seconds
        while not await pause(lease / 3, done):
            try:
                async with self.db.transaction() as tx:
                    await self.queue.renew(tx, ids)
                    pr_id = held.get("pr")
                    if pr_id is not None:
                        # Renews our own lease (and takes nothing from another poller's).
                        await self.pr_lease.take(tx, pr_id, again=bool(held.get("again")))
            except Exception as exc:  # the lease may lapse; another poller then takes over
                log.warning("could not extend leases: %s", exc)

    async def _analyse(
        self,
        pr: dict[str, Any],
        events: list[dict[str, Any]],
        summary: Summary,
        rerun: bool = False,
    ) -> Summary:
        ids = [e["id"] for e in events]
        sha = pr["head_sha"]
        with logs.bind(sha=sha[:12]):
            if self._spent():
                return await self._defer(ids, summary)
            limit: asyncio.Timeout | None = None
            called: float | None = None  # when the AI call started (event loop time)
            try:
                # The files lookup too is inside the slot (at most AI_CONCURRENCY GitHub
                # lookups at once, each for the head as it is when its analysis starts) and
                # under the cut-off (a rate-limit wait must not outlast the invocation).
                async with self._ai_slots:
                    if self._spent():  # the budget ran out while waiting for a slot
                        return await self._defer(ids, summary)
                    async with asyncio.timeout_at(self._cutoff()) as limit:
                        files = await self._files(pr)
                        if self._spent():  # the lookup took what was left of the budget
                            return await self._defer(ids, summary)
                        at = datetime.now(UTC)
                        history = await retrying(self._observe, pr, files, at)
                        summary.ai_calls += 1
                        called = asyncio.get_running_loop().time()
                        ctx = self._context(pr, files, history, at)
                        insight = await self.analyser.analyse(ctx)
            except AnalysisError as exc:
                await self._failed(events, str(exc), exc.retryable, summary, exc.retry_after,
                                   pr=pr)  # fmt: skip
                return summary
            except TimeoutError:
                if limit is None or not limit.expired():
                    raise
                ran = 0.0 if called is None else asyncio.get_running_loop().time() - called
                if ran < self.settings.gemini_timeout_seconds:
                    # Cut off while listing files, or a call that started late and had less
                    # than one AI timeout: no fault of the AI, so no attempt; try next time
                    # (given-back events are taken first, at the start of an invocation).
                    log.warning("analysis given up %.0fs after the budget, %.0fs into its "
                                "call; next time", OVERRUN_SECONDS, ran)  # fmt: skip
                    return await self._defer(ids, summary)
                # A call that outlasted a whole AI timeout counts as an attempt, so an AI that
                # keeps hanging ends in the dead letters instead of being paid for every minute.
                error = f"analysis given up after {ran:.0f}s, past the poll budget"
                await self._failed(events, error, True, summary, pr=pr)
                return summary
            stored = await retrying(self._store, pr, insight, files, ids, rerun)
            summary.insights += int(stored)
            log.info("insight %s (%s) for %s", insight.risk_level, insight.model, sha[:12])
            return summary

    async def _observe(self, pr: dict[str, Any], files: list[FileChange], at: datetime
                       ) -> History:  # fmt: skip
        """The risk model's history for this head, the PR recorded into it, and what this
        change tells of earlier ones (a follow-up of their files, a revert): one transaction."""
        change = f"pr:{pr['id']}"
        async with self.db.transaction() as tx:
            if self.settings.write_back is not None:
                await CheckQueue.want_started(tx, pr, self.settings.write_back)
            history = await observe(PgHistory(tx), pr["repository_id"], change,
                                    pr["author"] or "", [f.path for f in files], at)  # fmt: skip
            earlier = [int(k[3:]) for k in followed_up(history, at, change)
                       if k.startswith("pr:")]  # fmt: skip
            if earlier:
                await tx.execute("risk_outcome_for_changes", repository_id=pr["repository_id"],
                                 pr_ids=earlier, detail=f"#{pr['number']}")  # fmt: skip
            reverts = revert_targets(pr["title"] or "", pr["body"] or "", pr["repository"])
            if reverts is not None:
                await tx.execute(
                    "risk_outcome_reverted", repository_id=pr["repository_id"],
                    shas=reverts.shas, numbers=[n for n in reverts.numbers if n != pr["number"]],
                    detail=f"#{pr['number']}",
                )  # fmt: skip
        return history

    @staticmethod
    def _context(
        pr: dict[str, Any], files: list[FileChange], history: History | None = None,
        at: datetime | None = None,
    ) -> ChangeContext:  # fmt: skip
        return ChangeContext(
            repository=pr["repository"],
            pr_number=pr["number"],
            title=pr["title"] or "",
            body=pr["body"] or "",
            branch=pr["head_ref"] or "",
            base_branch=pr["base_ref"] or "",
            author=pr["author"] or "",
            head_sha=pr["head_sha"],
            ci_state=pr["status_build"],
            files=files,
            additions=pr["additions"] or 0,
            deletions=pr["deletions"] or 0,
            history=history or History(),
            at=at,
        )

    def _cutoff(self) -> float | None:
        """When work under way is given up (event loop time); None without a budget."""
        return None if self._deadline is None else self._deadline + OVERRUN_SECONDS

    def _spent(self) -> bool:
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline

    async def _defer(self, ids: list[int], summary: Summary) -> Summary:
        """Give events back for the next invocation, without counting an attempt."""
        await self._release(ids, 0.0, None, refund=1)
        summary.deferred += len(ids)
        return summary

    async def _bounded_files(self, pr: dict[str, Any]) -> list[FileChange] | None:
        """The head's files, in an AI slot and by the cut-off; None when cut off."""
        async with self._ai_slots:
            try:
                async with asyncio.timeout_at(self._cutoff()):
                    return await self._files(pr)
            except TimeoutError:
                return None

    async def _files(self, pr: dict[str, Any]) -> list[FileChange]:
        if self.files is None:
            return []
        try:
            return await self.files.list_files(pr["repository"], pr["number"])
        except (GitHubError, httpx.HTTPError) as exc:
            # GitHub is optional: analyse what the payload told us rather than nothing.
            log.warning("changed files unavailable, analysing without them: %s", exc)
            return []

    async def _failed(
        self,
        events: list[dict[str, Any]],
        error: str,
        retryable: bool,
        summary: Summary,
        retry_after: float | None = None,
        *,
        pr: dict[str, Any] | None = None,
    ) -> None:
        summary.errors.append(error[:300])
        # Each event by its own attempts: a new event is not given up with an old one.
        spent = [e for e in events if not retryable or e["attempts"] >= self.settings.max_attempts]
        given_up = {e["id"] for e in spent}
        again = [e for e in events if e["id"] not in given_up]
        if again:
            attempts = max(e["attempts"] for e in again)
            async with self.db.transaction() as tx:
                delay = await self.queue.retry_later(
                    tx, [e["id"] for e in again], attempts=attempts, error=error[:2000],
                    hint=retry_after,
                )  # fmt: skip
            summary.retries += len(again)
            log.warning(
                "analysis failed (attempt %d), retrying in %.0fs: %s", attempts, delay, error
            )
        if spent:
            ids = [e["id"] for e in spent]
            async with self.db.transaction() as tx:
                await self.queue.dead_letter(tx, ids, error[:2000])
                if pr is not None and self.settings.write_back is not None:
                    # Its check is completed (neutral) rather than left in progress.
                    await CheckQueue.want_completed(
                        tx, pr["repository_id"], pr["head_sha"], insight_id=None,
                        reason=error[:300],
                    )  # fmt: skip
            summary.failures += len(spent)
            log.error(
                "analysis failed for good after %d attempt(s): %s",
                max(e["attempts"] for e in spent), error,
            )  # fmt: skip

    async def _store(
        self,
        pr: dict[str, Any],
        insight: Insight,
        files: list[FileChange],
        ids: list[int],
        rerun: bool = False,
    ) -> bool:
        """Insight + PR row + feed entry + processed marks, in one transaction."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "poller_insert_insight",
                repository_id=pr["repository_id"],
                pull_request_id=pr["id"],
                pr_number=pr["number"],
                commit_sha=pr["head_sha"],
                risk_level=insight.risk_level,
                summary=insight.summary,
                recommendation=insight.recommendation,
                key_changes=Jsonb(list(insight.key_changes)),
                confidence_score=insight.confidence_score,
                model=insight.model,
                risk_score=insight.risk_score,
                risk_drivers=Jsonb([d.model_dump() for d in insight.drivers]),
                replace=rerun,
            )
            if row is not None:
                await self._make_latest(tx, pr, row, files)
            if self.settings.write_back is not None:
                # Another poller may have stored this head's insight first: the check shows it.
                shown = row or await tx.one(
                    "poller_insight_for_commit", repository_id=pr["repository_id"],
                    pr_number=pr["number"], commit_sha=pr["head_sha"],
                )  # fmt: skip
                await CheckQueue.want_completed(
                    tx, pr["repository_id"], pr["head_sha"],
                    insight_id=shown["id"] if shown else None,
                    reason=None if shown else "the analysis stored no insight",
                )  # fmt: skip
            await self.queue.complete(tx, ids)
            return row is not None

    async def _make_latest(
        self, tx: Tx, pr: dict[str, Any], insight: dict[str, Any], files: list[FileChange]
    ) -> None:
        """Show an insight as the PR's latest (and its risk) if its commit is still the head;
        a visible change reaches the feed."""
        locked = await tx.one("poller_lock_pull_request_by_id", id=pr["id"])
        assert locked is not None
        # A newer head may have arrived meanwhile: only the head's insight is "latest".
        if locked["head_sha"] != insight["commit_sha"]:
            return
        new = dict(locked)
        new["latest_insight"] = serialize.insight_snapshot(insight)
        new["risk_level"] = insight["risk_level"]
        # The head's files; none when GitHub could not list them (another commit's list
        # would be wrong).
        new["files_changed"] = [f.path for f in files]
        await save_pr_now(
            tx, locked, new, pr["repository"], source="insight", delivery_id=None,
            notify=self.settings.feed_notify, kind="insight",
        )  # fmt: skip

    async def run(
        self,
        budget_seconds: float,
        *,
        stop: asyncio.Event | None = None,
        idle_scans: int = 0,
        others_idle: Callable[[float], bool] | None = None,
    ) -> Summary:
        """Scan every POLL_INTERVAL_SECONDS until the budget is spent (or stop is set).

        No AI call starts after the budget (OVERRUN_SECONDS for one under way); a budget of 0
        is one scan, done in full. With `idle_scans`, it ends early once that many scans in a
        row claimed nothing and `others_idle(t)` (the other duties, each with a pass since
        `t`, the end of the last scan that had work) agrees.
        """
        started = time.monotonic()
        # In the event loop's clock, which asyncio.timeout_at takes.
        now = asyncio.get_running_loop().time()
        self._deadline = now + budget_seconds if budget_seconds > 0 else None
        try:
            return await self._run(started, budget_seconds, stop, idle_scans, others_idle)
        finally:
            self._deadline = None

    async def _run(
        self,
        started: float,
        budget_seconds: float,
        stop: asyncio.Event | None,
        idle_scans: int = 0,
        others_idle: Callable[[float], bool] | None = None,
    ) -> Summary:
        total = Summary()
        idle = 0  # scans in a row that claimed nothing
        last_work = started  # when the last scan that had work ended
        interval = self.settings.poll_interval_seconds
        while True:
            scan_started = time.monotonic()
            backlog = False
            try:
                scanned = await self.scan_once()
                total.add(scanned)
                # A full batch means a backlog: scan again at once, not after the interval.
                backlog = scanned.events >= self.settings.poll_batch_size
                idle = idle + 1 if scanned.events == 0 else 0
                if scanned.events:
                    last_work = time.monotonic()
            except Exception as exc:  # keep the loop alive; the lease returns the events
                log.exception("scan failed")
                total.errors.append(f"scan failed: {exc}"[:300])
                idle = 0
            if stop is not None and stop.is_set():
                break
            if (
                idle_scans
                and idle >= idle_scans
                and (others_idle is None or others_idle(last_work))
            ):
                total.idle_end = True
                break
            if time.monotonic() - started + (0.0 if backlog else interval) > budget_seconds:
                break
            wait = 0.0 if backlog else max(0.0, interval - (time.monotonic() - scan_started))
            if await pause(wait, stop):
                break
        total.seconds = time.monotonic() - started
        return total
