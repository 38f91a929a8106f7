"""GET /api/metrics/dora: DORA's four keys on scripted histories stored through ingest's own
code path, against answers worked out by hand (docs/METRICS.md has the definitions)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowlens import dora
from flowlens.api.schemas import DoraMetrics
from flowlens.db import Database
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_api_rest import error_of
from tests.integration.test_api_support import (
    REPO,
    asgi_api,
    deliver,
    next_update,
    served_api,
    socket,
    ws_url,
)

WIDGETS = "acme/widgets"
H = 3600.0


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_time() -> datetime:
    """Ten days ago at 08:00 UTC: the history's hours stay on two whole days."""
    return (datetime.now(UTC) - timedelta(days=10)).replace(hour=8, minute=0, second=0,
                                                            microsecond=0)  # fmt: skip


def merged(number: int, branch: str, created: datetime, at: datetime) -> dict[str, Any]:
    """The closed fixture as a merged PR (derived: number, id, branch, times)."""
    return variant(
        load_fixture("pull_request/closed.payload.json"),
        number=number,
        **{"pull_request.number": number, "pull_request.id": 279147437 + number,
           "pull_request.head.ref": branch, "pull_request.head.sha": f"{number:040x}",
           "pull_request.merged": True, "pull_request.merged_at": iso(at),
           "pull_request.created_at": iso(created), "pull_request.updated_at": iso(at),
           "pull_request.closed_at": iso(at)},
    )  # fmt: skip


def push(branch: str, *stamps: datetime) -> dict[str, Any]:
    commit = load_fixture("push/1.payload.json")["head_commit"] or {
        "id": "0" * 40, "message": "m", "author": {"name": "a", "email": "a@example.com"},
    }  # fmt: skip
    commits = [dict(commit, id=f"{i + 1:040x}", timestamp=iso(s)) for i, s in enumerate(stamps)]
    return variant(load_fixture("push/payload.json"), ref=f"refs/heads/{branch}", commits=commits)


def deployment(deployment_id: int, environment: str = "production", *,
               repo: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    payload = variant(load_fixture("deployment/payload.json"),
                      **{"deployment.id": deployment_id,
                         "deployment.environment": environment})  # fmt: skip
    if repo is not None:
        payload["repository"] = repo
    return payload


def status(deployment_id: int, status_id: int, state: str, at: datetime,
           environment: str = "production") -> dict[str, Any]:  # fmt: skip
    return variant(
        load_fixture("deployment_status/payload.json"),
        **{"deployment.id": deployment_id, "deployment.environment": environment,
           "deployment_status.id": status_id, "deployment_status.state": state,
           "deployment_status.created_at": iso(at), "deployment_status.environment": environment},
    )  # fmt: skip


def widgets_repo() -> dict[str, Any]:
    repo = load_fixture("deployment/payload.json")["repository"]
    return dict(
        repo,
        id=999001,
        name="widgets",
        full_name=WIDGETS,
        owner=dict(repo["owner"], login="acme", id=999002),
        default_branch="main",
    )


def run(run_id: int, name: str, conclusion: str, at: datetime, *, branch: str = "main",
        path: str = ".github/workflows/x.yml") -> dict[str, Any]:  # fmt: skip
    payload = variant(
        load_fixture("workflow_run/completed.with-pull-requests.payload.json"),
        **{"workflow_run.id": run_id, "workflow_run.name": name, "workflow_run.path": path,
           "workflow_run.conclusion": conclusion, "workflow_run.status": "completed",
           "workflow_run.updated_at": iso(at), "workflow_run.head_branch": branch,
           "workflow_run.pull_requests": []},
    )  # fmt: skip
    payload["repository"] = widgets_repo()
    return payload


async def metrics(client: Any, **params: Any) -> DoraMetrics:
    response = await client.get("/api/metrics/dora", params=params)
    assert response.status_code == 200, response.text
    return DoraMetrics.model_validate(response.json())


async def test_the_four_keys_on_a_scripted_history(db: Database, dsn: str) -> None:
    t0 = base_time()
    # PR 2 (squash-merged): commits pushed to its branch two days and one day before t0.
    await deliver(db, "push", push("feature-a", t0 - timedelta(days=2), t0 - timedelta(days=1)))
    await deliver(
        db, "pull_request", merged(2, "feature-a", t0 - timedelta(days=1), t0 + timedelta(hours=1))
    )
    # PR 3 (merged with a merge commit): no push seen, so its first commit is its creation.
    await deliver(
        db,
        "pull_request",
        merged(3, "feature-b", t0 - timedelta(hours=12), t0 + timedelta(hours=2)),
    )
    # PR 3's merge commit lands on the default branch with the branch's old commits, PR 2's
    # squash as one new commit: pushes to the default branch are no PR's head branch, so
    # neither moves a change's first commit.
    await deliver(db, "push", push("master", t0 - timedelta(days=30), t0 + timedelta(hours=2)))
    await deliver(db, "push", push("master", t0 + timedelta(hours=1)))
    # D1 succeeds at t0+3h: ships PRs 2 and 3 (no success before it).
    await deliver(db, "deployment", deployment(1001))
    await deliver(db, "deployment_status", status(1001, 1, "success", t0 + timedelta(hours=3)))
    # D2 re-deploys the same sha at t0+5h: nothing new to ship.
    await deliver(db, "deployment", deployment(1002))
    await deliver(db, "deployment_status", status(1002, 2, "success", t0 + timedelta(hours=5)))
    # PR 4: first commit pushed at t0+1d, merged at t0+1d+2h.
    await deliver(db, "push", push("feature-c", t0 + timedelta(days=1)))
    await deliver(
        db,
        "pull_request",
        merged(4, "feature-c", t0 + timedelta(days=1), t0 + timedelta(days=1, hours=2)),
    )
    # D3: its failure (t0+1d+4h) arrives before an older success (t0+1d+3h) and a later
    # in_progress: the latest terminal status by its own time decides, so D3 failed.
    await deliver(db, "deployment", deployment(1003))
    await deliver(
        db, "deployment_status", status(1003, 31, "failure", t0 + timedelta(days=1, hours=4))
    )
    await deliver(
        db, "deployment_status", status(1003, 30, "success", t0 + timedelta(days=1, hours=3))
    )
    await deliver(
        db, "deployment_status", status(1003, 32, "in_progress", t0 + timedelta(days=1, hours=5))
    )
    # D4: its success status (t0+1d+6h) arrives before the deployment event itself.
    await deliver(
        db, "deployment_status", status(1004, 40, "success", t0 + timedelta(days=1, hours=6))
    )
    await deliver(db, "deployment", deployment(1004))
    # D1 made inactive later: an inactive status never undoes a success.
    await deliver(db, "deployment_status", status(1001, 3, "inactive", t0 + timedelta(days=2)))
    # Staging is another environment.
    await deliver(
        db, "deployment_status", status(1005, 50, "failure", t0 + timedelta(days=2), "staging")
    )
    # A repository with no deployments at all (it only has a PR).
    await deliver(db, "pull_request", merged(7, "x", t0, t0 + timedelta(hours=1)) | {
        "repository": widgets_repo()})  # fmt: skip

    async with asgi_api(dsn) as (_, client):
        prod = await metrics(client, repo=REPO)
        # Successes D1, D2, D4; D3 failed. 3 / 30 days.
        assert prod.windowDays == 30 and prod.environment == "production"
        assert prod.deploymentFrequency.perDay == pytest.approx(0.1)
        assert prod.deploymentFrequency.perWeek == pytest.approx(0.7)
        assert prod.deploymentFrequency.band == "medium"  # under 1 a week, at least 1 a month
        # Leads: PR 2 51 h (t0+3h - (t0-2d)), PR 3 15 h, PR 4 6 h (D4 - its first push).
        assert prod.leadTimeForChanges.changes == 3
        assert prod.leadTimeForChanges.medianSeconds == 15 * H
        assert prod.leadTimeForChanges.band == "elite"
        assert (prod.changeFailureRate.deployments, prod.changeFailureRate.failed) == (4, 1)
        assert prod.changeFailureRate.rate == 0.25 and prod.changeFailureRate.band == "low"
        # D3 failed at t0+1d+4h, D4 succeeded at t0+1d+6h: 2 h.
        assert prod.failedDeploymentRecoveryTime.recoveries == 1
        assert prod.failedDeploymentRecoveryTime.medianSeconds == 2 * H
        assert prod.failedDeploymentRecoveryTime.band == "high"
        days = {d.day: d for d in prod.series}
        assert len(prod.series) == 31 and prod.series[0].day < prod.series[-1].day
        first, second = (
            days[t0.date().isoformat()],
            days[(t0 + timedelta(days=1)).date().isoformat()],
        )
        assert (first.deployments, first.failed, first.medianLeadSeconds) == (
            2,
            0,
            (51 + 15) / 2 * H,
        )
        assert (second.deployments, second.failed, second.medianLeadSeconds) == (2, 1, 6 * H)
        assert sum(d.deployments for d in prod.series) == 4

        staging = await metrics(client, repo=REPO, environment="staging")
        assert (staging.changeFailureRate.deployments, staging.changeFailureRate.failed) == (1, 1)
        assert staging.changeFailureRate.rate == 1.0 and staging.deploymentFrequency.perDay == 0.0
        assert staging.deploymentFrequency.band == "low"  # deployments, none successful
        assert staging.failedDeploymentRecoveryTime.medianSeconds is None

        recent = await metrics(client, repo=REPO, days=7)  # the history is 8-10 days old
        assert recent.changeFailureRate.deployments == 0 and len(recent.series) == 8

        none = await metrics(client, repo=WIDGETS)
        assert none.deploymentFrequency.perDay == 0.0 and none.deploymentFrequency.perWeek == 0.0
        assert none.deploymentFrequency.band is None
        assert (
            none.leadTimeForChanges.medianSeconds is None and none.leadTimeForChanges.band is None
        )
        assert none.changeFailureRate.rate is None and none.changeFailureRate.deployments == 0
        assert none.failedDeploymentRecoveryTime.medianSeconds is None

        every = await metrics(client)  # all repositories: widgets adds nothing
        assert every.changeFailureRate.deployments == 4

        error_of(await client.get("/api/metrics/dora", params={"days": 0}), 422)
        error_of(await client.get("/api/metrics/dora", params={"days": 366}), 422)
        error_of(await client.get("/api/metrics/dora", params={"repo": "no/such"}), 404)


async def test_the_workflow_fallback(db: Database, dsn: str) -> None:
    t0 = base_time()
    deliveries = [
        run(1, "Deploy to production", "success", t0),  # counted
        run(2, "", "failure", t0 + timedelta(hours=1), path=".github/workflows/Release.yml"),
        run(3, "CI", "failure", t0 + timedelta(hours=2)),  # not a deploy workflow
        run(4, "deploy", "success", t0 + timedelta(hours=3), branch="feature"),  # not default
        run(5, "deploy", "cancelled", t0 + timedelta(hours=4)),  # neither outcome
        run(6, "deploy", "success", t0 + timedelta(hours=5)),  # recovers run 2
    ]
    for payload in deliveries:
        await deliver(db, "workflow_run", payload)
    async with asgi_api(dsn) as (_, client):
        fallback = await metrics(client, repo=WIDGETS)
        assert (fallback.changeFailureRate.deployments, fallback.changeFailureRate.failed) == (3, 1)
        assert fallback.deploymentFrequency.perDay == pytest.approx(2 / 30)
        assert fallback.failedDeploymentRecoveryTime.medianSeconds == 4 * H
        # Once the repository sends a deployment event, its workflow runs no longer count.
        await deliver(db, "deployment", deployment(77, repo=widgets_repo()))
        after = await metrics(client, repo=WIDGETS)
        assert after.changeFailureRate.deployments == 0


@pytest.mark.parametrize(
    ("per_day", "band"),
    [(1.01, "elite"), (1.0, "high"), (1 / 7, "high"), (1 / 8, "medium"), (1 / 30, "medium"),
     (1 / 31, "low"), (0.0, "low")],
)  # fmt: skip
def test_frequency_bands(per_day: float, band: str) -> None:
    assert dora.band_frequency(per_day) == band


def test_other_bands_at_their_edges() -> None:
    day = 86400
    assert [dora.band_lead(s) for s in (day - 1, day, 7 * day, 30 * day)] == [
        "elite", "high", "medium", "low"]  # fmt: skip
    assert [dora.band_failure(r) for r in (0.05, 0.0501, 0.10, 0.15, 0.1501)] == [
        "elite", "high", "high", "medium", "low"]  # fmt: skip
    assert [dora.band_recovery(s) for s in (3599, 3600, day, 7 * day)] == [
        "elite", "high", "medium", "low"]  # fmt: skip
    assert dora.band_lead(None) is None and dora.band_failure(None) is None


async def test_a_changed_outcome_tells_the_subscribed_sockets(db: Database, dsn: str) -> None:
    """A deployment status that changes the numbers reaches the sockets of its repository as
    metrics_update (dashboards refetch); another repository's sockets do not get it."""
    t0 = datetime.now(UTC) - timedelta(hours=1)
    later = t0 + timedelta(minutes=1)
    async with (
        served_api(dsn) as (_, base),
        socket(ws_url(base, REPO)) as mine,
        socket(ws_url(base, WIDGETS)) as other,
    ):
        await asyncio.sleep(0.6)  # the watcher's first look has learned the clock
        await deliver(db, "deployment_status", status(2001, 1, "success", t0))
        assert await next_update(mine) == {
            "event": "metrics_update",
            "data": {"repository": REPO, "environment": "production"},
        }
        # The next change is told too (the same pair, a later outcome).
        await deliver(db, "deployment_status", status(2001, 2, "failure", later))
        assert (await next_update(mine))["event"] == "metrics_update"
        with pytest.raises(TimeoutError):
            await next_update(other, timeout=0.2)
