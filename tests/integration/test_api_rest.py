"""REST contract: every endpoint's shape (extra fields forbidden), filters, pagination, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import TypeAdapter

from flowlens.api.schemas import Build, Error, Health, Insight, MetricsSummary, PullRequest
from flowlens.api.schemas import Repository as RepositoryModel
from flowlens.db import Database
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_api_support import (
    REPO,
    analyse,
    asgi_api,
    deliver,
    opened,
    workflow_run,
)

PRS = TypeAdapter(list[PullRequest])
INSIGHTS = TypeAdapter(list[Insight])
BUILDS = TypeAdapter(list[Build])
REPOS = TypeAdapter(list[RepositoryModel])


def has_offset(value: str | None) -> bool:
    """ISO-8601 with an explicit UTC offset, as the contract asks."""
    return value is None or datetime.fromisoformat(value).utcoffset() is not None


def error_of(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    return Error.model_validate(resp.json()).error


async def seed(db: Database) -> None:
    """Two repositories; PR #2 with a failed run of one workflow, then a passed run of
    another, and an approval; PR #3 merged."""
    await deliver(db, "pull_request", opened(2))
    await deliver(db, "workflow_run", workflow_run("completed", "failure", "2019-05-15T15:21:00Z"))
    passed = workflow_run("completed", "success", "2019-05-15T15:22:00Z", run_id=7, branch="other")
    await deliver(db, "workflow_run", variant(passed, **{"workflow_run.workflow_id": 2823526}))
    review = variant(
        load_fixture("pull_request_review/submitted.payload.json"),
        **{"review.state": "approved", "review.submitted_at": "2019-05-15T15:23:00Z"},
    )  # derived: the fixture's "commented" review, approving instead
    await deliver(db, "pull_request_review", review)
    await deliver(db, "pull_request", opened(3, title="third"))
    closed = load_fixture("pull_request/closed.payload.json")
    merged = variant(
        closed,
        number=3,
        **{
            "pull_request.number": 3,
            "pull_request.id": 279147440,
            "pull_request.merged": True,
            "pull_request.merged_at": "2019-05-15T15:30:00Z",
            "pull_request.updated_at": "2019-05-15T15:30:00Z",
        },
    )  # fmt: skip  derived: the closed fixture, merged
    await deliver(db, "pull_request", merged)
    await deliver(db, "pull_request", opened(9, repo="acme/widgets", title="widgets"))


async def test_empty_database_answers_every_shape(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        assert PRS.validate_python((await client.get("/api/prs")).json()) == []
        assert REPOS.validate_python((await client.get("/api/repositories")).json()) == []
        assert BUILDS.validate_python((await client.get("/api/builds")).json()) == []
        assert "no repositories" in error_of(await client.get("/api/repository"), 404)
        assert "#5" in error_of(await client.get("/api/insights/5"), 404)
        error_of(await client.get("/api/builds/1"), 404)
        resp = await client.get("/api/metrics/summary")
        assert resp.status_code == 200
        metrics = MetricsSummary.model_validate(resp.json())
        assert metrics.model_dump() == {
            "windowDays": 7, "buildCount": 0, "successRate": 0.0, "failureRate": 0.0,
            "avgBuildTimeSeconds": None, "lastBuildStatus": None, "lastUpdated": None,
        }  # fmt: skip
        for path in ("/healthz", "/health"):  # /health for checks from outside Cloud Run
            health = await client.get(path)
            assert Health.model_validate(health.json()).status == "ok"


async def test_pull_requests(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        resp = await client.get("/api/prs")
        assert resp.status_code == 200
        items = PRS.validate_python(resp.json())
        raw = resp.json()
        assert sorted((p.repositoryName, p.number) for p in items) == [
            (REPO, 2), (REPO, 3), ("acme/widgets", 9),
        ]  # fmt: skip
        # Most recently updated first: #3 at 15:30:00, #2 at 15:20:38 (its review), #9 at 15:20:33.
        order = [p.number for p in items]
        assert order == [3, 2, 9]
        for item in raw:
            assert has_offset(item["createdAt"]) and has_offset(item["updatedAt"])
            assert isinstance(item["filesChanged"], list)
        two = next(p for p in items if p.number == 2)
        assert two.status == "approved" and two.state == "open"
        assert two.pipelineStatus.statusBuild == "buildFailed"  # one of its runs failed
        assert two.pipelineStatus.statusApproval == "approved"
        assert two.branchName == "changes" and two.baseBranch == "master"
        assert two.author == "Codertocat" and two.commitSha
        assert two.riskLevel is None
        three = next(p for p in items if p.number == 3)
        assert (three.status, three.state, three.pipelineStatus.statusMerge) == (
            "merged", "merged", "merged",
        )  # fmt: skip

        async def numbers(**params: Any) -> list[int]:
            r = await client.get("/api/prs", params=params)
            assert r.status_code == 200, r.text
            return [p.number for p in PRS.validate_python(r.json())]

        assert await numbers(repo=REPO) == [3, 2]
        assert await numbers(repo="acme/widgets") == [9]
        assert await numbers(state="open") == [n for n in order if n != 3]
        assert await numbers(state="merged") == [3]
        assert await numbers(state="closed") == []
        assert await numbers(state="all", repo=REPO) == [3, 2]
        assert await numbers(limit=2) == order[:2]
        assert await numbers(limit=2, offset=2) == order[2:]
        assert await numbers(offset=10) == []
        # A tie on updatedAt: the newest PR first.
        await deliver(db, "pull_request", opened(10, repo="acme/widgets", title="tied"))
        assert await numbers(repo="acme/widgets") == [10, 9]

        assert "acme/nothing" in error_of(await client.get("/api/prs?repo=acme/nothing"), 404)
        assert "owner/name" in error_of(await client.get("/api/prs?repo=nonsense"), 400)
        assert "state" in error_of(await client.get("/api/prs?state=weird"), 422)
        assert "limit" in error_of(await client.get("/api/prs?limit=0"), 422)
        assert "limit" in error_of(await client.get("/api/prs?limit=5000"), 422)
        assert "offset" in error_of(await client.get("/api/prs?offset=-1"), 422)
        # An offset is read row by row: capped, so no request reads the whole table.
        for path in ("/api/prs", f"/api/prs?repo={REPO}", "/api/builds"):
            sep = "&" if "?" in path else "?"
            assert "offset" in error_of(await client.get(f"{path}{sep}offset=10001"), 422)
            assert "offset" in error_of(await client.get(f"{path}{sep}offset=3000000000"), 422)
            assert (await client.get(f"{path}{sep}offset=10000&limit=1000")).json() == []
        assert "limit" in error_of(await client.get("/api/prs?limit=ten"), 422)
        assert "branch" in error_of(await client.get("/api/builds?branch=main%00"), 422)
        dora = "/api/metrics/dora?environment=prod%00"
        assert "environment" in error_of(await client.get(dora), 422)
        # GitHub's names ignore letter case; answers carry the stored spelling.
        exact = (await client.get("/api/prs", params={"repo": REPO})).json()
        lower = await client.get("/api/prs", params={"repo": REPO.lower()})
        assert lower.status_code == 200 and lower.json() == exact and exact
        assert {p["repositoryName"] for p in exact} == {REPO}


async def test_insights_empty_then_newest_first(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        resp = await client.get("/api/insights/2", params={"repo": REPO})
        assert resp.status_code == 200 and INSIGHTS.validate_python(resp.json()) == []
        assert await analyse(db) >= 1
        # A new head sha, analysed again: two insights for #2.
        await deliver(db, "pull_request", opened(2, at="2019-05-15T16:00:00Z", sha="b" * 40,
                                                 action="synchronize"))  # fmt: skip
        assert await analyse(db) >= 1
        resp = await client.get("/api/insights/2", params={"repo": REPO})
        items = INSIGHTS.validate_python(resp.json())
        assert [i.commitSha for i in items] == ["b" * 40, opened(2)["pull_request"]["head"]["sha"]]
        assert all(i.prNumber == 2 and i.repositoryName == REPO for i in items)
        assert all(i.model == "risk-model" for i in items)
        assert all(has_offset(i["createdAt"]) for i in resp.json())
        # Without repo: that number in every repository.
        same = await client.get("/api/insights/2")
        assert [i["id"] for i in same.json()] == [i.id for i in items]
        # The list item now carries the latest risk.
        prs = PRS.validate_python((await client.get("/api/prs", params={"repo": REPO})).json())
        assert next(p for p in prs if p.number == 2).riskLevel == items[0].riskLevel
        error_of(await client.get("/api/insights/77", params={"repo": REPO}), 404)
        error_of(await client.get("/api/insights/2", params={"repo": "acme/nothing"}), 404)
        error_of(await client.get("/api/insights/abc"), 422)
        error_of(await client.get("/api/insights/0"), 422)


async def test_repositories(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        repos = REPOS.validate_python((await client.get("/api/repositories")).json())
        assert {r.fullName for r in repos} == {REPO, "acme/widgets"}
        hello = next(r for r in repos if r.fullName == REPO)
        assert (hello.name, hello.owner, hello.openPRs, hello.totalPRs) == (
            "Hello-World", "Codertocat", 1, 2,
        )  # fmt: skip
        assert hello.defaultBranch == "master" and hello.isPrivate is False
        assert isinstance(hello.languages, list)
        one = await client.get("/api/repository", params={"repo": REPO})
        assert RepositoryModel.model_validate(one.json()).fullName == REPO
        assert has_offset(one.json()["lastActivity"])
        latest = await client.get("/api/repository")
        assert RepositoryModel.model_validate(latest.json()).fullName == repos[0].fullName
        error_of(await client.get("/api/repository", params={"repo": "acme/nothing"}), 404)
        error_of(await client.get("/api/repository", params={"repo": "a/b/c"}), 400)


async def test_builds_and_metrics(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        resp = await client.get("/api/builds")
        builds = BUILDS.validate_python(resp.json())
        assert {(b.status, b.branch) for b in builds} == {("failed", "changes"),
                                                          ("success", "other")}  # fmt: skip
        assert all(b.repositoryName == REPO and b.provider for b in builds)
        assert all(has_offset(b["startedAt"]) for b in resp.json())
        by_status = await client.get("/api/builds", params={"status": "failed"})
        assert [b["branch"] for b in by_status.json()] == ["changes"]
        by_branch = await client.get("/api/builds", params={"branch": "other", "repo": REPO})
        assert [b["status"] for b in by_branch.json()] == ["success"]
        assert len((await client.get("/api/builds", params={"limit": 1})).json()) == 1
        assert len((await client.get("/api/builds", params={"offset": 1})).json()) == 1
        error_of(await client.get("/api/builds", params={"status": "green"}), 422)
        one = await client.get(f"/api/builds/{builds[0].id}")
        assert Build.model_validate(one.json()) == builds[0]
        error_of(await client.get("/api/builds/999999"), 404)
        error_of(await client.get("/api/builds/x"), 422)

        # The fixture builds ran in 2019: outside any window, but still the "last build".
        old = MetricsSummary.model_validate((await client.get("/api/metrics/summary")).json())
        assert old.buildCount == 0 and old.lastBuildStatus in ("failed", "success")
        assert old.lastUpdated is not None
        recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        await deliver(db, "workflow_run", workflow_run("completed", "success", recent, run_id=8))
        resp = await client.get("/api/metrics/summary", params={"repo": REPO, "days": 30})
        metrics = MetricsSummary.model_validate(resp.json())
        assert metrics.windowDays == 30 and metrics.buildCount == 1
        assert (metrics.successRate, metrics.failureRate) == (1.0, 0.0)
        assert metrics.lastBuildStatus == "success"
        error_of(await client.get("/api/metrics/summary", params={"days": 0}), 422)
        error_of(await client.get("/api/metrics/summary", params={"repo": "x/y"}), 404)


async def test_docs_openapi_and_unknown_paths(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        for path in ("/api/prs", "/api/insights/{pr_number}", "/api/repository",
                     "/api/repositories", "/api/builds", "/api/builds/{build_id}",
                     "/api/metrics/summary", "/healthz"):  # fmt: skip
            assert path in spec["paths"], path
        assert "PullRequest" in spec["components"]["schemas"]
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        error_of(await client.get("/api/nothing"), 404)
        assert "not allowed" in error_of(await client.post("/api/prs"), 405).lower()


async def test_database_down_is_503(dsn: str) -> None:
    # A port nobody listens on: the pool cannot connect.
    dead = Database("postgresql://flowlens@127.0.0.1:9/none", min_size=0, connect_timeout=1)
    async with asgi_api(dsn, database=dead) as (_, client):
        assert "database" in error_of(await client.get("/api/prs"), 503)
        assert "database" in error_of(await client.get("/healthz"), 503)
        error_of(await client.get("/api/metrics/summary"), 503)
    await dead.close()


async def test_a_pr_known_only_from_a_build_lists_by_the_builds_time(
    dsn: str, db: Database
) -> None:
    """A run names PR #7 before its pull_request delivery (a hook added to a busy
    repository): the row lists by the run's time among the others, not after all of them
    with an updatedAt that said otherwise; its own delivery then sets GitHub's times."""
    await deliver(db, "pull_request", opened(2, at="2019-05-15T15:20:33Z"))
    sha = "c" * 40
    run = variant(workflow_run("in_progress", None, "2019-05-15T16:00:00Z", run_id=7),
                  **{"workflow_run.pull_requests.0.number": 7, "workflow_run.head_sha": sha,
                     "workflow_run.pull_requests.0.head.sha": sha})  # fmt: skip
    await deliver(db, "workflow_run", run)
    async with asgi_api(dsn) as (_, client):
        items = (await client.get("/api/prs", params={"limit": 1})).json()
        assert [(p["number"], p["title"], p["status"]) for p in items] == [(7, "", "building")]
        assert items[0]["updatedAt"] == "2019-05-15T16:00:00+00:00"
        await deliver(db, "pull_request", opened(7, at="2019-05-15T15:50:00Z", sha=sha))
        items = (await client.get("/api/prs")).json()
        assert [(p["number"], p["updatedAt"]) for p in items] == [
            (7, "2019-05-15T15:50:00+00:00"), (2, "2019-05-15T15:20:33+00:00"),
        ]  # fmt: skip
        assert items[0]["title"] and items[0]["status"] == "building"
