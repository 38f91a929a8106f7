"""The shipped Flutter app against the running system: webhooks through ingest, the app's REST
calls and socket under /flutter, parsed as its Dart code parses them (tests/flutter_app.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from flowlens.api.server import serve
from flowlens.db import Database
from flowlens.ingest.app import close_all
from tests import flutter_app as app
from tests.conftest import load_fixture
from tests.helpers import encode, github_headers, variant
from tests.integration.conftest import ingest_app
from tests.integration.test_api_support import analyse, served_api, socket
from tests.integration.test_ingest_state import SHA2, opened, pr_action, review, workflow_run

pytestmark = pytest.mark.e2e

NOW = datetime(2000, 1, 1, tzinfo=UTC)  # what DateTime.now() gives the emulation: never a match


class AppSession:
    """What the app does: its REST calls (ApiService) and its socket (WebSocketService)."""

    def __init__(self, rest: httpx.AsyncClient, ws: ClientConnection) -> None:
        self.rest = rest
        self.ws = ws

    async def get(self, path: str, repository_id: str | None = None) -> Any:
        url = f"/flutter{path}" + (f"?repository_id={repository_id}" if repository_id else "")
        response = await self.rest.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 200, (url, response.text)
        return json.loads(response.text)

    async def pull_requests(self, repository_id: str | None = None) -> list[app.PullRequest]:
        items = await self.get("/api/pull-requests", repository_id)
        return [app.pull_request_from_api_json(item) for item in items]

    async def insights(self, repository_id: str | None = None) -> list[app.AIInsight]:
        items = await self.get("/api/insights", repository_id)
        return [app.insight_from_api_json(item, now=NOW) for item in items]

    async def insights_for_pr(self, number: int, repository_id: str) -> list[app.AIInsight]:
        items = await self.get(f"/api/insights/{number}", repository_id)
        return [app.insight_from_api_json(item, now=NOW) for item in items]

    async def update(self) -> app.PRStateUpdate:
        """The next socket message, as _onMessage emits it (never dropped)."""
        import asyncio

        message = await asyncio.wait_for(self.ws.recv(), 5)
        update = app.on_message(message)
        assert update is not None, f"the app drops {message!r}"
        return update


async def test_the_story_reaches_the_apps_list_and_socket(
    monkeypatch: pytest.MonkeyPatch, dsn: str, db: Database
) -> None:
    ingest = ingest_app(monkeypatch, dsn)
    try:
        async with (
            serve(ingest, lifespan="off") as ingest_url,
            served_api(dsn) as (_, api_url),
            httpx.AsyncClient(base_url=ingest_url) as hook,
            httpx.AsyncClient(base_url=api_url) as rest,
            socket(api_url.replace("http://", "ws://") + "/flutter/ws") as ws,
        ):

            async def send(event: str, payload: dict[str, Any]) -> None:
                body, ctype = encode(payload)
                headers = github_headers(event, body, content_type=ctype)
                response = await hook.post("/", content=body, headers=headers)
                assert response.status_code == 202, response.text

            session = AppSession(rest, ws)
            health = await session.get("/")
            assert health["status"] == "online"  # isApiServiceHealthy
            provider = app.Provider(await session.pull_requests(), None)
            assert provider.pull_requests == []

            # PR opened: the app does not list it yet, and fetches it because it says "opened".
            await send("pull_request", opened())
            update = await session.update()
            assert (update.pr_number, update.state) == (2, "opened")
            assert provider.handle(update) is False
            assert provider.fetch_requests == [(update.repository_id, 2)]
            repo_id = update.repository_id
            # _fetchNewPR: the PR's insights (none yet, but not an error), then its list.
            assert await session.insights_for_pr(2, repo_id) == []
            listed = await session.pull_requests(repo_id)
            new_pr = app.first_where(listed, lambda pr: pr.number == 2)
            assert new_pr.repository_id == repo_id and new_pr.status == "pending"
            assert new_pr.title == "Update the README with new information."
            assert new_pr.author == "Codertocat" and new_pr.branch_name == "changes"
            assert new_pr.repository_name == "Codertocat/Hello-World"
            assert new_pr.created_at == datetime(2019, 5, 15, 15, 20, 33, tzinfo=UTC)
            provider.pull_requests.insert(0, new_pr)
            # The repository list names the same id (Repository.fromApiJson).
            repos = [
                app.repository_from_api_json(r) for r in await session.get("/api/repositories")
            ]
            assert [(r.id, r.full_name) for r in repos] == [(repo_id, "Codertocat/Hello-World")]
            assert repos[0].open_prs == 1 and repos[0].total_prs == 1

            # The risk read: a new version of the PR, same state.
            assert await analyse(db) == 1
            assert (await session.update()).state == "opened"
            (insight,) = await session.insights(repo_id)
            assert (insight.repository_id, insight.pr_number) == (repo_id, 2)
            assert insight.risk_level in ("low", "medium", "high") and insight.summary
            assert insight.created_at != NOW and 0 < insight.confidence_score <= 1
            assert insight.author == "Codertocat" and insight.id
            # PRProvider keys insights by '${repositoryId}_$prNumber' and looks them up by the
            # listed PR's repositoryId.
            assert f"{new_pr.repository_id}_{new_pr.number}" == f"{insight.repository_id}_2"
            assert (await session.insights_for_pr(2, repo_id))[0] == insight

            steps: list[tuple[str, dict[str, Any], str]] = [
                ("workflow_run", workflow_run("in_progress", None, "2019-05-15T15:21:00Z"),
                 "building"),
                # Derived variant: the fixture's successful run, concluding in failure instead.
                ("workflow_run", workflow_run("completed", "failure", "2019-05-15T15:22:00Z"),
                 "buildFailed"),
                # A new head: the build starts again from nothing.
                ("pull_request", pr_action("synchronize", "2019-05-15T15:23:00Z", SHA2),
                 "pending"),
                ("workflow_run",
                 workflow_run("completed", "success", "2019-05-15T15:24:00Z", SHA2, 9),
                 "buildPassed"),
                # Derived variant: the fixture's "commented" review, approving instead.
                ("pull_request_review", review("approved", "2019-05-15T15:25:00Z"), "approved"),
                # Derived variant: the closed fixture, merged.
                ("pull_request", variant(
                    load_fixture("pull_request/closed.payload.json"),
                    **{"pull_request.merged": True,
                       "pull_request.merged_at": "2019-05-15T15:26:00Z",
                       "pull_request.updated_at": "2019-05-15T15:26:00Z",
                       "pull_request.head.sha": SHA2}), "merged"),
            ]  # fmt: skip
            for event, payload, status in steps:
                await send(event, payload)
                update = await session.update()
                assert (update.repository_id, update.pr_number) == (repo_id, 2), event
                assert provider.index_of(update) == 0, "the socket names another PR than REST"
                assert app.convert_state(update.state) == status, (event, update.state)
                provider.handle(update)
                (listed_pr,) = await session.pull_requests(repo_id)
                assert listed_pr.status == status, (event, listed_pr.status)
                assert (listed_pr.repository_id, listed_pr.number) == (repo_id, 2)
                if event == "pull_request" and status == "pending":
                    # The new head's risk read: a new version of the PR, same state.
                    assert await analyse(db) == 1
                    assert (await session.update()).state == "opened"
            assert listed_pr.commit_sha == SHA2

            # The provider's own priority rules kept the later states it accepts.
            assert provider.pull_requests[0].status == "merged"

            # The head's risk read marks the pipeline processed.
            (run,) = [
                app.pipeline_from_api_json(item, now=NOW)
                for item in await session.get("/api/pipelines", repo_id)
            ]
            assert (run.repo_id, run.pr_number, run.commit_sha) == (repo_id, 2, SHA2)
            assert (run.status_pr, run.status_build, run.status_approval, run.status_merge) == (
                "closed", "buildPassed", "approved", "merged",
            )  # fmt: skip
            assert app.overall_status(run) == "merged" and run.processed
            assert run.created_at == datetime(2019, 5, 15, 15, 20, 33, tzinfo=UTC)
            builds = [e.value for e in run.history if e.field == "status_build"]
            assert builds == ["building", "buildFailed", "pending", "buildPassed"]
            assert [e.value for e in run.history if e.field == "status_pr"] == [
                "opened", "updated", "closed",
            ]  # fmt: skip
            assert all(e.timestamp != NOW for e in run.history)
            repos = [
                app.repository_from_api_json(r) for r in await session.get("/api/repositories")
            ]
            assert (repos[0].open_prs, repos[0].merged_prs, repos[0].total_prs) == (0, 1, 1)
    finally:
        await close_all()
