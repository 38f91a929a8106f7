"""The CI path takes the GitHub Actions event a workflow step forwards ($GITHUB_EVENT_PATH),
beside the flat report: one build per run, 400 naming the field that is wrong."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flowlens.db import Database
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.conftest import CI_KEY, Sender
from tests.integration.test_api_support import SHA1
from tests.integration.test_ingest_state import opened, pr_row

URL = "/api/webhook/github-actions"
AUTH = {"Authorization": f"Bearer {CI_KEY}"}
RUN_ID = 289782451


def run_event(**changes: Any) -> dict[str, Any]:
    """The workflow_run fixture as a step forwards it. Derived: a run that took 95 seconds."""
    return variant(
        load_fixture("workflow_run/completed.with-pull-requests.payload.json"),
        **{"workflow_run.run_started_at": "2020-10-05T16:32:14Z", **changes},
    )


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await client.post(URL, json=body, headers={**AUTH, **headers})


async def builds(db: Database, repository: str = "octo-org/octo-repo") -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return await tx.all("builds_for_repository", repository=repository)


@pytest.mark.parametrize("header", [None, "workflow_run"], ids=["no-header", "x-github-event"])
async def test_a_workflow_run_event_is_a_build(
    ingest_client: httpx.AsyncClient, db: Database, header: str | None
) -> None:
    headers = {"X-GitHub-Event": header} if header else {}
    resp = await post(ingest_client, run_event(), **headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["message"] == "Webhook processed successfully"
    (build,) = await builds(db)
    assert body["build_id"] == build["id"] and isinstance(body["build_id"], int)
    assert build["external_id"] == f"ci:{RUN_ID}" and build["provider"] == "ci"
    assert build["status"] == "success"
    assert build["branch"] == "master"
    assert build["commit_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert build["triggered_by"] == "Codertocat"
    assert build["url"] == f"https://github.com/octo-org/octo-repo/actions/runs/{RUN_ID}"
    assert build["started_at"].isoformat() == "2020-10-05T16:32:14+00:00"
    assert build["finished_at"].isoformat() == "2020-10-05T16:33:49+00:00"
    assert build["duration_seconds"] == 95.0


async def test_the_seeds_two_keys_are_enough(
    ingest_client: httpx.AsyncClient, db: Database
) -> None:
    event = run_event()
    resp = await post(ingest_client, {"workflow_run": event["workflow_run"],
                                      "repository": event["repository"]})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert [b["status"] for b in await builds(db)] == ["success"]
    # github.repository, the name alone, will do too.
    resp = await post(ingest_client, {"workflow_run": {**event["workflow_run"], "id": 5},
                                      "repository": "octo-org/octo-repo"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert len(await builds(db)) == 2


async def test_a_run_in_progress_has_no_finish(
    ingest_client: httpx.AsyncClient, db: Database
) -> None:
    # Derived: the fixture's run, still in progress.
    event = run_event(**{"workflow_run.status": "in_progress", "workflow_run.conclusion": None})
    assert (await post(ingest_client, event)).status_code == 200
    (build,) = await builds(db)
    assert build["status"] == "running" and build["finished_at"] is None
    assert build["duration_seconds"] is None


async def test_a_report_and_the_event_of_one_run_are_one_build(
    ingest_client: httpx.AsyncClient, db: Database
) -> None:
    report = {"repository": "octo-org/octo-repo", "runId": str(RUN_ID), "status": "in_progress",
              "startedAt": "2020-10-05T16:32:14Z", "workflow": "CI"}  # fmt: skip
    first = await post(ingest_client, report)
    assert first.status_code == 202, first.text
    second = await post(ingest_client, run_event())
    assert second.status_code == 200
    again = await post(ingest_client, run_event())
    (build,) = await builds(db)
    assert first.json()["build_id"] == second.json()["build_id"] == again.json()["build_id"]
    assert build["id"] == first.json()["build_id"] and build["status"] == "success"
    # An older report of the run leaves it as it is, and still names it.
    stale = await post(ingest_client, {**report, "updatedAt": "2020-10-05T16:32:20Z"})
    assert stale.json()["build_id"] == build["id"]
    assert [b["status"] for b in await builds(db)] == ["success"]


async def test_a_workflow_job_event_is_a_build_of_its_own(
    ingest_client: httpx.AsyncClient, db: Database
) -> None:
    event = load_fixture("workflow_job/completed.success.with-organization.payload.json")
    resp = await post(ingest_client, event, **{"X-GitHub-Event": "workflow_job"})
    assert resp.status_code == 200, resp.text
    (build,) = await builds(db, "Codertocat/Hello-World")
    assert build["external_id"] == "ci:2202229078/job:289782451"
    assert build["workflow_name"] == "CodeQL / linters" and build["status"] == "success"
    assert build["duration_seconds"] == 198.0


async def test_the_event_moves_its_pr(
    ingest_client: httpx.AsyncClient, sender: Sender, db: Database
) -> None:
    assert (await sender.send("pull_request", opened())).status_code == 202
    # Derived: the fixture's run, for PR #2 of Codertocat/Hello-World, failed.
    pr = load_fixture("pull_request/opened.payload.json")
    event = run_event(
        **{"workflow_run.head_sha": SHA1, "workflow_run.conclusion": "failure",
           "workflow_run.pull_requests.0.head.sha": SHA1, "repository": pr["repository"]}
    )  # fmt: skip
    assert (await post(ingest_client, event)).status_code == 200
    assert (await pr_row(db))["status"] == "buildFailed"


@pytest.mark.parametrize(
    ("body", "headers", "named"),
    [
        ({"workflow_run": {"status": "completed"}, "repository": "o/r"}, {}, "workflow_run.id"),
        ({"workflow_run": {"id": "12", "status": "completed"}, "repository": "o/r"}, {},
         "workflow_run.id"),
        ({"workflow_run": {"id": 12}, "repository": "o/r"}, {}, "workflow_run.status"),
        ({"workflow_run": {"id": 12, "status": "completed"}}, {}, "repository"),
        ({"workflow_run": {"id": 12, "status": "completed"}, "repository": {"id": 3}}, {},
         "repository"),
        ({"workflow_run": [], "repository": "o/r"}, {}, "workflow_run"),
        ({"workflow_job": {"id": 1, "status": "queued"}, "repository": "o/r"}, {},
         "workflow_job.run_id"),
        # The header names the event: a flat report under it lacks the event's object.
        ({"repository": "o/r", "runId": 1, "status": "success"},
         {"X-GitHub-Event": "workflow_run"}, "workflow_run"),
        ({"workflow_run": {"id": 12, "status": "completed", "updated_at": 1e20},
          "repository": "o/r"}, {}, "workflow_run.updated_at"),
        ({"workflow_run": {"id": 12, "status": "completed", "conclusion": 5},
          "repository": "o/r"}, {}, "workflow_run.conclusion"),
        ({"workflow_run": {"id": 12, "status": "completed", "head_branch": {"a": 1}},
          "repository": "o/r"}, {}, "workflow_run.head_branch"),
        ({"workflow_run": {"id": 12, "status": "completed", "name": "CI\u0000"},
          "repository": "o/r"}, {}, "workflow_run.name"),
        ({"workflow_run": {"id": True, "status": "completed"}, "repository": "o/r"}, {},
         "workflow_run.id"),
        ({"workflow_run": {"id": 12, "status": "completed", "pull_requests": [{"number": True}]},
          "repository": "o/r"}, {}, "workflow_run.pull_requests.0.number"),
        ({"workflow_run": {"id": 12, "status": "completed", "actor": {"login": ["x"]}},
          "repository": "o/r"}, {}, "workflow_run.actor.login"),
        ({"workflow_run": {"id": 12, "status": "completed"}, "repository": {"full_name": 7}},
         {}, "repository"),
        ({"workflow_run": {"id": 12, "status": "completed"}, "repository": "no-slash"}, {},
         "repository"),
        ([1, 2], {}, "body"),
    ],
)  # fmt: skip
async def test_a_bad_event_is_400_naming_the_field(
    ingest_client: httpx.AsyncClient, counts: Any, body: Any, headers: dict[str, str], named: str
) -> None:
    resp = await post(ingest_client, body, **headers)
    assert resp.status_code == 400, resp.text
    assert named in resp.json()["error"]
    assert (await counts())["builds"] == 0


async def test_the_event_never_takes_a_repositorys_name_or_metadata(
    ingest_client: httpx.AsyncClient, sender: Sender, db: Database
) -> None:
    """A key holder's body names the repository; it cannot claim it for another GitHub id or
    overwrite what GitHub's own deliveries keep."""
    assert (await sender.send("pull_request", opened())).status_code == 202
    pr = load_fixture("pull_request/opened.payload.json")
    forged = {**pr["repository"], "id": 999, "updated_at": "2100-01-01T00:00:00Z",
              "description": "forged", "default_branch": "forged"}  # fmt: skip
    assert (await post(ingest_client, run_event(repository=forged))).status_code == 200
    async with db.transaction() as tx:
        row = await tx.one("api_repository_id", full_name="Codertocat/Hello-World")
        assert row is not None
        repos = await tx.all("api_repositories", repository_id=None, limit=10)
    assert [(r["id"], r["full_name"]) for r in repos] == [(row["id"], "Codertocat/Hello-World")]
    assert repos[0]["description"] != "forged" and repos[0]["default_branch"] != "forged"
    assert repos[0]["github_id"] == pr["repository"]["id"]
    assert (await pr_row(db))["title"]  # its PR is still its own
    assert [b["external_id"] for b in await builds(db, "Codertocat/Hello-World")] == [
        f"ci:{RUN_ID}"
    ]
    # GitHub's next delivery is still taken.
    later = variant(opened(), **{"pull_request.title": "later", "pull_request.updated_at":
                                 "2019-05-15T16:00:00Z"})  # fmt: skip
    assert (await sender.send("pull_request", later)).status_code == 202
    assert (await pr_row(db))["title"] == "later"


async def test_not_json_is_400(ingest_client: httpx.AsyncClient) -> None:
    resp = await ingest_client.post(URL, content=b"{not json", headers=AUTH)
    assert resp.status_code == 400 and "JSON" in resp.json()["error"]


async def test_the_event_needs_the_key_too(ingest_client: httpx.AsyncClient, counts: Any) -> None:
    assert (await ingest_client.post(URL, json=run_event())).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await ingest_client.post(URL, json=run_event(), headers=wrong)).status_code == 403
    assert (await counts())["builds"] == 0
