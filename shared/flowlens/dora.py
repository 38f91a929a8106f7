"""DORA's four keys, live (docs/METRICS.md): what ingest records, and the metrics computed from it.

Ingest records, in the delivery's transaction and out-of-order safe: deployments with their
latest terminal status (by the status's own `created_at`), the earliest commit timestamp seen
pushed to each branch, and, for the workflow fallback, completed default-branch runs of
workflows named like DEPLOY_WORKFLOWS. A request reads only the window's deployments, the
last successful one before it per environment, and the PRs those ship.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from statistics import median
from typing import Any

DAY = 86400.0
TERMINAL = {"success": "success", "failure": "failed", "error": "failed"}
RUN_OUTCOMES = {"success": "success", "failure": "failed"}
FALLBACK_ENVIRONMENT = "production"


def deploy_workflows() -> re.Pattern[str]:
    """DEPLOY_WORKFLOWS (a regular expression, matched case-insensitively; default
    `deploy|release`), as the settings read it (they refuse one that does not compile)."""
    return _pattern(os.environ.get("DEPLOY_WORKFLOWS") or "deploy|release")


@lru_cache(maxsize=8)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


@dataclass(frozen=True)
class DeploymentFacts:
    """A deployment (from `deployment` or `deployment_status`), with the status if any."""

    github_id: int
    environment: str
    sha: str | None
    ref: str | None
    created_at: datetime | None
    status_id: int | None = None
    state: str | None = None  # success | failed (terminal statuses only)
    status_at: datetime | None = None


@dataclass(frozen=True)
class PushFacts:
    """A push to a branch: the earliest commit timestamp it carries."""

    branch: str
    first_commit_at: datetime


@dataclass(frozen=True)
class DeployRunFacts:
    """A completed default-branch run of a deploy workflow (the fallback)."""

    run_id: int
    state: str  # success | failed
    at: datetime


@dataclass
class DoraFacts:
    deployment: DeploymentFacts | None = None
    push: PushFacts | None = None
    run: DeployRunFacts | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def facts(event: str, payload: dict[str, Any]) -> DoraFacts | None:
    """What a delivery tells the DORA keys (pure); None when nothing."""
    if event in ("deployment", "deployment_status"):
        item = payload.get("deployment")
        if not isinstance(item, dict) or _int(item.get("id")) is None:
            return None
        environment = item.get("environment")
        deployment = DeploymentFacts(
            github_id=item["id"],
            environment=environment if isinstance(environment, str) else "",
            sha=item.get("sha") if isinstance(item.get("sha"), str) else None,
            ref=item.get("ref") if isinstance(item.get("ref"), str) else None,
            created_at=_time(item.get("created_at")),
        )
        status = payload.get("deployment_status")
        if event == "deployment_status" and isinstance(status, dict):
            state = TERMINAL.get(str(status.get("state") or "").lower())
            at = _time(status.get("created_at"))
            if state is not None and at is not None:
                deployment = DeploymentFacts(
                    **{**deployment.__dict__, "status_id": _int(status.get("id")),
                       "state": state, "status_at": at}
                )  # fmt: skip
        return DoraFacts(deployment=deployment)
    if event == "push":
        ref = payload.get("ref")
        if not isinstance(ref, str) or not ref.startswith("refs/heads/"):
            return None
        stamps = [_time(c.get("timestamp")) for c in payload.get("commits") or []
                  if isinstance(c, dict)]  # fmt: skip
        known = [s for s in stamps if s is not None]
        if not known:
            return None
        return DoraFacts(push=PushFacts(ref.removeprefix("refs/heads/"), min(known)))
    if event == "workflow_run":
        run = payload.get("workflow_run")
        repo = payload.get("repository")
        if not isinstance(run, dict) or not isinstance(repo, dict):
            return None
        state = RUN_OUTCOMES.get(str(run.get("conclusion") or "").lower())
        at = _time(run.get("updated_at"))
        if (
            run.get("status") != "completed" or state is None or at is None
            or _int(run.get("id")) is None
            or run.get("head_branch") != repo.get("default_branch")
        ):  # fmt: skip
            return None
        name = run.get("name") or ""
        if not name:  # an unnamed workflow is known by its file
            name = str(run.get("path") or "").rsplit("/", 1)[-1]
        if not deploy_workflows().search(name):
            return None
        return DoraFacts(run=DeployRunFacts(run["id"], state, at))
    return None


async def apply(tx: Any, repository_id: int, found: DoraFacts) -> None:
    """Record a delivery's DORA facts."""
    if found.push is not None:
        await tx.execute("dora_push", repository_id=repository_id, branch=found.push.branch,
                         at=found.push.first_commit_at)  # fmt: skip
        return
    if found.deployment is not None:
        d = found.deployment
        kind, github_id, environment, state, at, status_id = (
            "deployment",
            d.github_id,
            d.environment,
            d.state,
            d.status_at,
            d.status_id,
        )
        sha, ref, created_at = d.sha, d.ref, d.created_at
    elif found.run is not None:
        r = found.run
        kind, github_id, environment, state, at, status_id = (
            "workflow",
            r.run_id,
            FALLBACK_ENVIRONMENT,
            r.state,
            r.at,
            None,
        )
        sha = ref = None
        created_at = None
    else:
        return
    deployment = await tx.value(
        "dora_deployment", repository_id=repository_id, kind=kind, github_id=github_id,
        environment=environment, sha=sha, ref=ref, created_at=created_at,
    )  # fmt: skip
    if state is not None:
        await tx.execute("dora_outcome", id=deployment, outcome=state, outcome_at=at,
                         status_id=status_id)  # fmt: skip


# --------------------------------------------------------------------------- the metrics


def band_frequency(per_day: float | None) -> str | None:
    if per_day is None:
        return None
    if per_day > 1:
        return "elite"
    if per_day * 7 >= 1:
        return "high"
    if per_day * 30 >= 1:
        return "medium"
    return "low"


def band_lead(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < DAY:
        return "elite"
    if seconds < 7 * DAY:
        return "high"
    if seconds < 30 * DAY:
        return "medium"
    return "low"


def band_failure(rate: float | None) -> str | None:
    if rate is None:
        return None
    if rate <= 0.05:
        return "elite"
    if rate <= 0.10:
        return "high"
    if rate <= 0.15:
        return "medium"
    return "low"


def band_recovery(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 3600:
        return "elite"
    if seconds < DAY:
        return "high"
    if seconds < 7 * DAY:
        return "medium"
    return "low"


def _median(values: list[float]) -> float | None:
    return float(median(values)) if values else None  # the mean of the middle two when even


@dataclass
class _Day:
    deployments: int = 0
    failed: int = 0
    leads: list[float] = field(default_factory=list)


def compute(
    deployments: list[dict[str, Any]],
    merged: list[dict[str, Any]],
    *,
    now: datetime,
    days: int,
    environment: str,
) -> dict[str, Any]:
    """The four keys over [now - days, now] (pure).

    `deployments`: every counted deployment of the environment in the window, plus the last
    successful one before it and the first successful one after each failure, per repository:
    dicts with repository_id, outcome (success | failed) and at. `merged`: the merged PRs of
    those repositories that any successful deployment here may ship: repository_id, merged_at,
    first_commit_at.
    """
    start = now - timedelta(days=days)
    by_repo: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in deployments:
        by_repo[d["repository_id"]].append(d)
    prs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pr in merged:
        prs[pr["repository_id"]].append(pr)
    merged_at: dict[int, list[datetime]] = {}
    for repository, items in prs.items():  # in merge order, to find a deployment's by bisection
        items.sort(key=lambda pr: pr["merged_at"])
        merged_at[repository] = [pr["merged_at"] for pr in items]
    series = {(start + timedelta(days=i)).date(): _Day() for i in range((now.date()
              - start.date()).days + 1)}  # fmt: skip
    successes = failures = 0
    leads: list[float] = []
    recoveries: list[float] = []
    for repository, items in by_repo.items():
        items.sort(key=lambda d: (d["at"], d.get("id", 0)))
        previous: datetime | None = None  # the last successful deployment so far
        for i, d in enumerate(items):
            inside = start <= d["at"] <= now
            if d["outcome"] == "success":
                if inside:
                    successes += 1
                    day = series.get(d["at"].date())
                    times = merged_at.get(repository, [])
                    # Merged after the previous success (if any), no later than this one.
                    low = 0 if previous is None else bisect_right(times, previous)
                    for pr in prs[repository][low : bisect_right(times, d["at"])]:
                        lead = (d["at"] - pr["first_commit_at"]).total_seconds()
                        leads.append(lead)
                        if day is not None:
                            day.leads.append(lead)
                    if day is not None:
                        day.deployments += 1
                previous = d["at"]
            elif inside:
                failures += 1
                day = series.get(d["at"].date())
                if day is not None:
                    day.deployments += 1
                    day.failed += 1
                recovered = next((n for n in items[i + 1 :] if n["outcome"] == "success"), None)
                if recovered is not None:
                    recoveries.append((recovered["at"] - d["at"]).total_seconds())
    total = successes + failures
    per_day = successes / days
    lead = _median(leads)
    rate = failures / total if total else None
    recovery = _median(recoveries)
    return {
        "windowDays": days,
        "environment": environment,
        "deploymentFrequency": {
            "perDay": per_day,
            "perWeek": per_day * 7,
            "band": band_frequency(per_day) if total else None,
        },
        "leadTimeForChanges": {
            "medianSeconds": lead,
            "band": band_lead(lead),
            "changes": len(leads),
        },
        "changeFailureRate": {
            "rate": rate,
            "band": band_failure(rate),
            "deployments": total,
            "failed": failures,
        },
        "failedDeploymentRecoveryTime": {
            "medianSeconds": recovery,
            "band": band_recovery(recovery),
            "recoveries": len(recoveries),
        },
        "series": [
            {
                "day": day.isoformat(),
                "deployments": v.deployments,
                "failed": v.failed,
                "medianLeadSeconds": _median(v.leads),
            }
            for day, v in series.items()
        ],
    }
