"""Leased work: claim with FOR UPDATE SKIP LOCKED and a lease, renew, complete, release with the
one backoff, dead letter, list and retry the dead. Workers hold the control flow; the SQL is
in db/sql/workqueue.sql, and only this module runs it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from flowlens.db import Tx
from flowlens.retry import backoff

Row = dict[str, Any]


class WorkState(enum.StrEnum):
    """Where a unit of leased work is."""

    PENDING = "pending"  # waiting for its time (next_attempt_at) and a worker
    LEASED = "leased"  # a worker holds it until its lease ends
    DONE = "done"
    DEAD = "dead"  # given up after its attempts, with its error: listed, retried by hand


def state_of(row: Row, now: Any) -> WorkState:
    """The state of a raw_events row (processed, failed, leased_until)."""
    if row["processed"]:
        return WorkState.DONE
    if row["failed"]:
        return WorkState.DEAD
    leased = row.get("leased_until")
    return WorkState.LEASED if leased is not None and leased > now else WorkState.PENDING


@dataclass(frozen=True)
class EventQueue:
    """The deliveries the poller works on (raw_events), as one owner sees them."""

    owner: str
    lease_seconds: float

    async def claim(self, tx: Tx, limit: int) -> list[Row]:
        """Lease up to `limit` due events (oldest due first), counting an attempt each."""
        return await tx.all(
            "work_events_claim", owner=self.owner, lease_seconds=self.lease_seconds, limit=limit
        )

    async def renew(self, tx: Tx, ids: list[int]) -> None:
        """Extend the leases this owner still holds."""
        await tx.execute(
            "work_events_renew", ids=ids, owner=self.owner, lease_seconds=self.lease_seconds
        )

    async def complete(self, tx: Tx, ids: list[int]) -> None:
        """Done: never claimed again."""
        await tx.execute("work_events_complete", ids=ids, owner=self.owner)

    async def release(
        self, tx: Tx, ids: list[int], *, delay: float, error: str | None = None, refund: int = 0
    ) -> None:
        """Back to the queue in `delay` seconds; `refund` gives the attempt back when nothing
        was tried."""
        await tx.execute(
            "work_events_release",
            ids=ids,
            owner=self.owner,
            delay_seconds=delay,
            error=error,
            refund=refund,
        )

    async def retry_later(
        self, tx: Tx, ids: list[int], *, attempts: int, error: str, hint: float | None = None
    ) -> float:
        """Back to the queue after the backoff for `attempts` failures (at least a server's
        hint, up to an hour); returns the delay."""
        delay = backoff(attempts, base=2.0, cap=300.0)
        if hint is not None:  # a quota's reset: calling sooner only pays for a 429
            delay = max(delay, min(hint, 3600.0))
        await self.release(tx, ids, delay=delay, error=error)
        return delay

    async def dead_letter(self, tx: Tx, ids: list[int], error: str) -> None:
        """Given up, with its error."""
        await tx.execute("work_events_dead_letter", ids=ids, owner=self.owner, error=error)


@dataclass(frozen=True)
class PrAnalysisLease:
    """One poller at a time analyses a PR's head: a lease on the PR row, as one owner holds it."""

    owner: str
    lease_seconds: float

    async def take(self, tx: Tx, pr_id: int, *, again: bool = False) -> bool:
        """Lease the PR's analysis (or renew this owner's lease); False when another owner
        holds it or its head was analysed meanwhile (unless `again`: a re-analysis)."""
        row = await tx.one(
            "work_pr_analysis_lease", id=pr_id, owner=self.owner,
            lease_seconds=self.lease_seconds, again=again,
        )  # fmt: skip
        return row is not None

    async def release(self, tx: Tx, pr_id: int) -> None:
        """Give the lease back."""
        await tx.execute("work_pr_analysis_release", id=pr_id, owner=self.owner)


@dataclass(frozen=True)
class AlertQueue:
    """Alert deliveries due on the configured channels (alert_history)."""

    channels: tuple[str, ...]
    lease_seconds: float

    async def claim(self, tx: Tx, limit: int) -> list[Row]:
        """Lease up to `limit` due deliveries."""
        return await tx.all(
            "work_alerts_claim",
            channels=list(self.channels),
            lease_seconds=self.lease_seconds,
            limit=limit,
        )

    async def renew(self, tx: Tx, claim: Row) -> bool:
        """Extend a claim just before sending; False when another pass claimed it since."""
        row = await tx.one("work_alerts_renew", **_mine(claim), lease_seconds=self.lease_seconds)
        return row is not None

    async def complete(self, tx: Tx, claim: Row) -> None:
        """Sent."""
        await tx.execute("work_alerts_complete", **_mine(claim))

    async def retry(self, tx: Tx, claim: Row, *, error: str, delay: float) -> None:
        """Failed this time: again in `delay` seconds (an attempt spent)."""
        await tx.execute("work_alerts_retry", **_mine(claim), error=error, delay_seconds=delay)

    async def defer(self, tx: Tx, claim: Row, *, delay: float) -> None:
        """Not yet (its build re-runs): again in `delay` seconds, no attempt spent."""
        await tx.execute("work_alerts_defer", **_mine(claim), delay_seconds=delay)

    async def not_sent(self, tx: Tx, claim: Row) -> None:
        """Another pass holds it now: this one's attempt is given back."""
        await tx.execute("work_alerts_not_sent", id=claim["id"])

    async def failures(self, tx: Tx, claim: Row) -> int:
        """Attempts that failed so far (this one included)."""
        return int(await tx.value("work_alerts_failures", id=claim["id"]) or claim["attempts"])

    async def dead_letter(self, tx: Tx, claim: Row, *, error: str) -> None:
        """Given up (or not to be sent), with why."""
        await tx.execute("work_alerts_dead_letter", **_mine(claim), error=error)


def _mine(claim: Row) -> dict[str, Any]:
    """A claim as the alert queries name it: the row, and the attempt this pass made."""
    return {"id": claim["id"], "attempts": claim["attempts"]}


@dataclass(frozen=True)
class SyncClaims:
    """Sync runs (sync_state), as one process sees them: a due repository is one owner's."""

    owner: str

    async def claim(self, tx: Tx, repository: str, *, lease_seconds: float) -> Row | None:
        """The repository's sync state when it is due and nobody holds it, now leased."""
        return await tx.one(
            "work_sync_claim", repository=repository, owner=self.owner, lease_seconds=lease_seconds
        )

    async def complete(self, tx: Tx, repository: str, **cursors: Any) -> None:
        """A run ended: its cursors (moved forward only), the lease given back, the next run
        scheduled (`schedule`, `next_in_seconds`)."""
        await tx.execute("work_sync_complete", repository=repository, owner=self.owner, **cursors)

    async def fail(
        self, tx: Tx, repository: str, *, error: str, schedule: bool, next_in: float
    ) -> None:
        """A run failed: the lease given back, the error kept, the next run scheduled."""
        await tx.execute(
            "work_sync_fail",
            repository=repository,
            owner=self.owner,
            error=error[:500],
            schedule=schedule,
            next_in_seconds=next_in,
        )

    @staticmethod
    async def next_due(tx: Tx, repositories: list[str]) -> float | None:
        """Seconds until the earliest of these repositories is due (None: none is known)."""
        value = await tx.value("work_sync_next_due", repositories=repositories)
        return float(value) if value is not None else None


async def dead_events(tx: Tx, limit: int) -> list[Row]:
    """The dead letters, oldest first."""
    return await tx.all("work_events_dead", limit=limit)


async def retry_dead_events(tx: Tx, event_id: int | None = None) -> list[int]:
    """Put one dead letter (or all) back in the queue, attempts reset; the ids requeued."""
    return [r["id"] for r in await tx.all("work_events_retry", id=event_id)]


@dataclass(frozen=True)
class CheckQueue:
    """Write-back to GitHub (check_writes): what a head's check or status should show, and
    the leased sends that make GitHub show it."""

    owner: str
    lease_seconds: float

    @staticmethod
    async def want_started(tx: Tx, pr: Row, mode: str) -> None:
        """The head's analysis starts: the check shows in progress."""
        await tx.execute(
            "work_checks_want_started", repository_id=pr["repository_id"],
            pull_request_id=pr["id"], pr_number=pr["number"], head_sha=pr["head_sha"], mode=mode,
        )  # fmt: skip

    @staticmethod
    async def want_completed(
        tx: Tx, repository_id: int, head_sha: str, *, insight_id: int | None,
        reason: str | None = None,
    ) -> None:  # fmt: skip
        """The head's analysis ended, with its insight or the reason it has none."""
        await tx.execute(
            "work_checks_want_completed", repository_id=repository_id, head_sha=head_sha,
            insight_id=insight_id, reason=reason,
        )  # fmt: skip

    @staticmethod
    async def expire(tx: Tx, after_seconds: float, reason: str) -> int:
        """Checks in progress for longer than `after_seconds` are to be completed neutral."""
        rows = await tx.all("work_checks_expire", after_seconds=after_seconds, reason=reason)
        return len(rows)

    async def claim(self, tx: Tx, limit: int) -> list[Row]:
        """Lease up to `limit` due sends."""
        return await tx.all("work_checks_claim", owner=self.owner,
                            lease_seconds=self.lease_seconds, limit=limit)  # fmt: skip

    async def posted(self, tx: Tx, claim: Row, posted: str, external_id: int | None) -> None:
        """GitHub shows `posted` now."""
        await tx.execute("work_checks_posted", id=claim["id"], owner=self.owner, posted=posted,
                         external_id=external_id, version=claim["version"])  # fmt: skip

    async def retry(self, tx: Tx, claim: Row, *, error: str, delay: float,
                    refund: bool = False) -> None:  # fmt: skip
        """Send again after `delay` (at once when something newer is wanted meanwhile);
        `refund`: the attempt did not count (GitHub's rate limit)."""
        await tx.execute("work_checks_retry", id=claim["id"], owner=self.owner,
                         error=error[:2000], delay_seconds=delay, version=claim["version"],
                         refund=int(refund))  # fmt: skip

    async def dead_letter(self, tx: Tx, claim: Row, *, error: str) -> None:
        """Failed for good, unless something newer is wanted meanwhile: that is sent now."""
        await tx.execute("work_checks_dead_letter", id=claim["id"], owner=self.owner,
                         error=error[:2000], version=claim["version"])  # fmt: skip


async def failed_checks(tx: Tx, limit: int) -> list[Row]:
    """Write-backs that failed for good, oldest first."""
    return await tx.all("work_checks_failed", limit=limit)


async def retry_failed_checks(tx: Tx, check_id: int | None = None) -> list[int]:
    """Put one failed write-back (or all) back in the queue; the ids requeued."""
    return [r["id"] for r in await tx.all("work_checks_retry_failed", id=check_id)]


@dataclass(frozen=True)
class DutyLease:
    """A duty that runs on a schedule (duty_runs), in one process at a time: claim it when due,
    save progress (its `state`) and renew as it goes, complete with when it is next due."""

    duty: str
    owner: str
    lease_seconds: float

    async def claim(self, tx: Tx, *, force: bool = False) -> dict[str, Any] | None:
        """The duty's saved state, leased to this owner, when it is due (or `force`) and nobody
        else holds it; None otherwise."""
        await tx.execute("work_duty_register", duty=self.duty)
        row = await tx.one("work_duty_claim", duty=self.duty, owner=self.owner,
                           lease_seconds=self.lease_seconds, force=force)  # fmt: skip
        return None if row is None else dict(row["state"])

    async def renew(self, tx: Tx, state: dict[str, Any]) -> bool:
        """Save progress and extend the lease; False when the lease was lost meanwhile."""
        row = await tx.one("work_duty_renew", duty=self.duty, owner=self.owner,
                           state=Jsonb(state), lease_seconds=self.lease_seconds)  # fmt: skip
        return row is not None

    async def complete(self, tx: Tx, state: dict[str, Any], *, next_in: float,
                       finished: bool, error: str | None = None) -> None:  # fmt: skip
        """Give the lease back: progress saved, next due in `next_in` seconds; `finished`: the
        run got through its work (its time is recorded)."""
        await tx.execute("work_duty_complete", duty=self.duty, owner=self.owner,
                         state=Jsonb(state), next_in_seconds=next_in, finished=finished,
                         error=None if error is None else error[:500])  # fmt: skip

    async def next_due(self, tx: Tx) -> float | None:
        """Seconds until the duty is due (None: it never ran)."""
        value = await tx.value("work_duty_next_due", duty=self.duty)
        return None if value is None else float(value)

    async def status(self, tx: Tx) -> Row | None:
        """The duty's row: owner, lease, next due, progress, last run and error."""
        return await tx.one("work_duty_status", duty=self.duty)
