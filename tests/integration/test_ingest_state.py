"""Pipeline state from real payloads, out-of-order safety and concurrency."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from flowlens.db import Database
from flowlens.serialize import short_description
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.conftest import Sender

REPO = "Codertocat/Hello-World"
SHA1 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SHA2 = "2222222222222222222222222222222222222222"


async def pr_row(db: Database, number: int = 2, repo: str = REPO) -> dict[str, Any]:
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository=repo, number=number)
    assert row is not None
    return row


async def history(db: Database, number: int = 2) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return await tx.all("pr_history_for", repository=REPO, number=number)


async def feed(db: Database, number: int = 2) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return await tx.all("change_feed_for", repository=REPO, number=number)


def pipeline(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        row["status_pr"], row["status_build"], row["status_approval"], row["status_merge"],
        row["status"],
    )  # fmt: skip


def opened(at: str = "2019-05-15T15:20:33Z", sha: str = SHA1) -> dict[str, Any]:
    return variant(
        load_fixture("pull_request/opened.payload.json"),
        **{"pull_request.updated_at": at, "pull_request.head.sha": sha},
    )


def pr_action(action: str, at: str, sha: str = SHA1, **changes: Any) -> dict[str, Any]:
    """A pull_request delivery derived from the opened fixture by its action (+ fields)."""
    return variant(
        opened(at, sha),
        action=action,
        **{f"pull_request.{k}": v for k, v in changes.items()},
    )


def workflow_run(status: str, conclusion: str | None, at: str, sha: str = SHA1,
                 run_id: int = 289782451) -> dict[str, Any]:  # fmt: skip
    """The fixture's run, linked to PR #2 by pull_requests[] (derived: status/conclusion/sha)."""
    payload = load_fixture("workflow_run/completed.with-pull-requests.payload.json")
    return variant(
        payload,
        action="completed" if status == "completed" else "requested",
        **{
            "workflow_run.status": status,
            "workflow_run.conclusion": conclusion,
            "workflow_run.updated_at": at,
            "workflow_run.head_sha": sha,
            "workflow_run.id": run_id,
            "workflow_run.pull_requests.0.head.sha": sha,
            "repository": load_fixture("pull_request/opened.payload.json")["repository"],
        },
    )


def review(state: str, at: str, review_id: int = 237895671, login: str = "reviewer") -> dict:
    payload = load_fixture("pull_request_review/submitted.payload.json")
    return variant(
        payload,
        **{"review.state": state, "review.submitted_at": at, "review.id": review_id,
           "review.user.login": login},
    )  # fmt: skip


async def test_lifecycle_opened_build_approval_merge(sender: Sender, db: Database) -> None:
    assert (await sender.send("pull_request", opened())).status_code == 202
    row = await pr_row(db)
    assert pipeline(row) == ("opened", "pending", "pending", "pending", "pending")
    assert row["title"] == "Update the README with new information."
    assert row["author"] == "Codertocat" and row["head_ref"] == "changes"

    await sender.send("workflow_run", workflow_run("in_progress", None, "2019-05-15T15:21:00Z"))
    assert pipeline(await pr_row(db))[1:] == ("building", "pending", "pending", "building")

    # Derived variant: the fixture's successful run, concluding in failure instead.
    await sender.send("workflow_run", workflow_run("completed", "failure", "2019-05-15T15:22:00Z"))
    assert (await pr_row(db))["status"] == "buildFailed"

    # A new head sha resets the build.
    await sender.send("pull_request", pr_action("synchronize", "2019-05-15T15:23:00Z", SHA2))
    row = await pr_row(db)
    assert pipeline(row) == ("updated", "pending", "pending", "pending", "pending")
    assert row["head_sha"] == SHA2

    await sender.send(
        "workflow_run", workflow_run("completed", "success", "2019-05-15T15:24:00Z", SHA2, 9)
    )
    assert (await pr_row(db))["status"] == "buildPassed"

    # Derived variant: the fixture's "commented" review, approving instead.
    await sender.send("pull_request_review", review("approved", "2019-05-15T15:25:00Z"))
    row = await pr_row(db)
    assert row["status_approval"] == "approved" and row["status"] == "approved"

    # Derived variant: the closed fixture, merged.
    closed = load_fixture("pull_request/closed.payload.json")
    merged = variant(
        closed,
        **{"pull_request.merged": True, "pull_request.merged_at": "2019-05-15T15:26:00Z",
           "pull_request.updated_at": "2019-05-15T15:26:00Z", "pull_request.head.sha": SHA2},
    )  # fmt: skip
    await sender.send("pull_request", merged)
    row = await pr_row(db)
    assert pipeline(row) == ("closed", "buildPassed", "approved", "merged", "merged")
    assert row["state"] == "merged"

    states = [h["status"] for h in await history(db)]
    assert states == ["pending", "building", "buildFailed", "pending", "buildPassed",
                      "approved", "merged"]  # fmt: skip
    versions = [f["version"] for f in await feed(db)]
    assert versions == sorted(versions) and len(versions) == len(states)
    last = (await feed(db))[-1]["payload"]
    assert last["event"] == "pr_update"
    assert last["data"]["pipeline_status"]["status_merge"] == "merged"
    assert last["data"]["pull_request"]["status"] == "merged"
    assert last["data"]["ai_insight"] is None


async def test_closed_without_merge(sender: Sender, db: Database) -> None:
    await sender.send("pull_request", opened())
    await sender.send("pull_request", load_fixture("pull_request/closed.payload.json"))
    row = await pr_row(db)
    assert pipeline(row)[0] == "closed" and row["status_merge"] == "closed"
    assert row["status"] == "closed" and row["state"] == "closed"
    # The reopened fixture is older than the closed one: it must not move the PR back.
    reopened = load_fixture("pull_request/reopened.payload.json")
    await sender.send("pull_request", reopened)
    assert (await pr_row(db))["status"] == "closed"
    # Derived variant: reopened after the close.
    later = variant(reopened, **{"pull_request.updated_at": "2019-05-15T15:30:00Z"})
    await sender.send("pull_request", later)
    row = await pr_row(db)
    assert row["status_pr"] == "opened" and row["status_merge"] == "pending"
    assert row["status"] == "pending" and row["state"] == "open"


async def test_a_snapshot_from_the_second_of_a_close_does_not_reopen_it(
    sender: Sender, db: Database
) -> None:
    """GitHub's timestamps have one-second resolution: a label added just before the close,
    delivered after it, carries the close's updated_at and an open state. Only an explicit
    reopen follows a close at the same second, and nothing reopens a merged PR."""
    at = "2019-05-15T15:30:00Z"
    await sender.send("pull_request", opened())
    closed = pr_action("closed", at, state="closed", closed_at=at)
    assert (await sender.send("pull_request", closed)).status_code == 202
    assert (await sender.send("pull_request", pr_action("labeled", at))).status_code == 202
    row = await pr_row(db)
    assert (row["state"], row["status_merge"], row["status"]) == ("closed", "closed", "closed")

    assert (await sender.send("pull_request", pr_action("reopened", at))).status_code == 202
    row = await pr_row(db)
    assert (row["state"], row["status_pr"], row["status"]) == ("open", "opened", "pending")

    merged_at = "2019-05-15T15:40:00Z"
    merged = pr_action("closed", merged_at, state="closed", closed_at=merged_at, merged=True,
                       merged_at=merged_at)  # fmt: skip
    assert (await sender.send("pull_request", merged)).status_code == 202
    for action in ("labeled", "edited", "reopened"):
        late = pr_action(action, merged_at, title="late")
        assert (await sender.send("pull_request", late)).status_code == 202
    row = await pr_row(db)
    assert (row["state"], row["status_merge"], row["status"]) == ("merged", "merged", "merged")
    assert row["title"] != "late"
    # An edit after the merge (its snapshot says closed and merged) still applies.
    edited = pr_action("edited", "2019-05-15T15:41:00Z", state="closed", closed_at=merged_at,
                       merged=True, merged_at=merged_at, title="after the merge")  # fmt: skip
    assert (await sender.send("pull_request", edited)).status_code == 202
    row = await pr_row(db)
    assert (row["title"], row["state"]) == ("after the merge", "merged")


async def test_every_pull_request_action_is_acted_on(sender: Sender, db: Database) -> None:
    actions = ["edited", "labeled", "unlabeled", "assigned", "review_requested",
               "converted_to_draft", "ready_for_review"]  # fmt: skip
    await sender.send("pull_request", opened())
    for i, action in enumerate(actions):
        at = f"2019-05-15T15:3{i}:00Z"
        payload = pr_action(
            action, at, title=f"title {action}", draft=action == "converted_to_draft"
        )
        assert (await sender.send("pull_request", payload)).status_code == 202
        row = await pr_row(db)
        assert row["title"] == f"title {action}", action
        assert row["status_pr"] == "updated"
        assert row["is_draft"] is (action == "converted_to_draft")


async def test_changes_requested_then_approved_by_same_reviewer(
    sender: Sender, db: Database
) -> None:
    await sender.send("pull_request", opened())
    await sender.send("pull_request_review", review("changes_requested", "2019-05-15T15:21:00Z", 1))
    assert (await pr_row(db))["status_approval"] == "changes_requested"
    await sender.send("pull_request_review", review("commented", "2019-05-15T15:22:00Z", 2))
    assert (await pr_row(db))["status_approval"] == "changes_requested"
    await sender.send("pull_request_review", review("approved", "2019-05-15T15:23:00Z", 3))
    assert (await pr_row(db))["status_approval"] == "approved"


async def test_build_linked_by_head_sha(sender: Sender, db: Database) -> None:
    """check_run and status carry no usable pull_requests[]: the head sha links them."""
    await sender.send("pull_request", opened())
    check_run = load_fixture("check_run/completed.payload.json")
    check_run = variant(check_run, **{"check_run.pull_requests": [],
                                      "check_run.conclusion": "failure"})  # fmt: skip
    await sender.send("check_run", check_run)
    assert (await pr_row(db))["status_build"] == "buildFailed"
    status = variant(load_fixture("status/payload.json"), sha=SHA2, state="success")
    await sender.send("pull_request", pr_action("synchronize", "2019-05-15T15:30:00Z", SHA2))
    await sender.send("status", status)
    assert (await pr_row(db))["status_build"] == "buildPassed"
    # Each build names its PR too (/api/builds' prNumber), though its payload does not.
    async with db.transaction() as tx:
        builds = await tx.all("builds_for_repository", repository=REPO)
    assert [(b["provider"], b["pr_number"]) for b in builds] == [("check_run", 2), ("status", 2)]


async def test_a_build_that_ends_after_the_merge_still_ends_for_its_pr(
    sender: Sender, db: Database
) -> None:
    def job(status: str, conclusion: str | None, at: str | None) -> dict[str, Any]:
        return variant(load_fixture("workflow_job/in_progress.payload.json"), **{
            "workflow_job.status": status, "workflow_job.conclusion": conclusion,
            "workflow_job.started_at": "2019-05-15T15:21:00Z", "workflow_job.completed_at": at,
            "workflow_job.head_sha": SHA1, "repository": opened()["repository"]})  # fmt: skip

    await sender.send("pull_request", opened())
    await sender.send("workflow_job", job("in_progress", None, None))
    assert (await pr_row(db))["status_build"] == "building"
    merged_at = "2019-05-15T15:26:00Z"
    merged = pr_action("closed", merged_at, state="closed", closed_at=merged_at, merged=True,
                       merged_at=merged_at)  # fmt: skip
    await sender.send("pull_request", merged)
    await sender.send("workflow_job", job("completed", "failure", "2019-05-15T15:27:00Z"))
    row = await pr_row(db)
    assert pipeline(row) == ("closed", "buildFailed", "pending", "merged", "merged")


async def test_workflow_job_and_check_suite_link_by_sha(sender: Sender, db: Database) -> None:
    await sender.send("pull_request", opened())
    job = variant(load_fixture("workflow_job/in_progress.payload.json"),
                  **{"workflow_job.head_sha": SHA1,
                     "repository": opened()["repository"]})  # fmt: skip
    await sender.send("workflow_job", job)
    assert (await pr_row(db))["status_build"] == "building"
    suite = load_fixture("check_suite/completed.payload.json")
    await sender.send("check_suite", suite)
    # The job still runs: building wins over a passed suite.
    assert (await pr_row(db))["status_build"] == "building"


async def test_repository_metadata_and_rename(sender: Sender, db: Database) -> None:
    await sender.send("pull_request", opened())
    # Derived: the edited fixture (another org's repo) as a rename of this PR's repository.
    repository = variant(
        opened()["repository"],
        name="Hello-Universe", full_name="Codertocat/Hello-Universe", stargazers_count=42,
        updated_at="2030-01-01T00:00:00Z",
    )  # fmt: skip
    renamed = variant(
        load_fixture("repository/edited.payload.json"),
        action="renamed",
        changes={"repository": {"name": {"from": "Hello-World"}}},
        repository=repository,
    )
    assert (await sender.send("repository", renamed)).status_code == 202
    async with db.transaction() as tx:
        repo = await tx.one("repository_by_github_id", github_id=186853002)
    assert repo is not None
    assert repo["full_name"] == "Codertocat/Hello-Universe" and repo["stars"] == 42
    assert repo["owner_avatar"] and repo["default_branch"] == "master"
    row = await pr_row(db, 2, "Codertocat/Hello-Universe")
    assert row["title"]
    # An older payload never takes metadata back.
    await sender.send("pull_request", opened())
    async with db.transaction() as tx:
        repo = await tx.one("repository_by_github_id", github_id=186853002)
    assert repo is not None and repo["full_name"] == "Codertocat/Hello-Universe"
    # A PR change from a payload still carrying the old name is announced under the stored name.
    await sender.send("pull_request", pr_action("edited", "2019-05-15T16:00:00Z", title="later"))
    async with db.transaction() as tx:
        entries = await tx.all("change_feed_for", repository="Codertocat/Hello-Universe", number=2)
    assert entries and entries[-1]["payload"]["data"]["repository"] == "Codertocat/Hello-Universe"
    assert entries[-1]["payload"]["data"]["pull_request"]["title"] == "later"


async def test_a_rename_is_announced_for_every_pr_of_the_repository(
    sender: Sender, db: Database
) -> None:
    """Clients hold rows under the old name: each PR of the repository gets a new version and
    a feed row under the new one, whatever delivery shows the new name first."""
    await sender.send("pull_request", opened())
    await sender.send("pull_request", variant(opened(), **{"pull_request.number": 3}))
    await sender.send("pull_request", pr_action("closed", "2019-05-15T15:25:00Z", merged=True))
    before = {n: await pr_row(db, n) for n in (2, 3)}
    repository = variant(
        opened()["repository"],
        name="Hello-Universe",
        full_name="Codertocat/Hello-Universe",
        updated_at="2030-01-01T00:00:00Z",
    )
    renamed = variant(load_fixture("repository/edited.payload.json"), action="renamed",
                      changes={"repository": {"name": {"from": "Hello-World"}}},
                      repository=repository)  # fmt: skip
    assert (await sender.send("repository", renamed)).status_code == 202
    for number in (2, 3):
        row = await pr_row(db, number, "Codertocat/Hello-Universe")
        assert row["version"] == before[number]["version"] + 1
        assert pipeline(row) == pipeline(before[number])  # the state itself is unchanged
        async with db.transaction() as tx:
            entries = await tx.all(
                "change_feed_for", repository="Codertocat/Hello-Universe", number=number
            )
        assert [e["version"] for e in entries] == [row["version"]]
        data = entries[0]["payload"]["data"]
        assert data["repository"] == "Codertocat/Hello-Universe"
        assert data["pull_request"]["repositoryName"] == "Codertocat/Hello-Universe"
        assert data["pull_request"]["title"] == before[number]["title"]
    # Metadata under the same name changes no PR; a transfer, shown first by a PR's own
    # payload (derived: the new owner in full_name), announces both PRs once more, the
    # delivery's own PR in the same transaction as its change.
    versions = {n: (await pr_row(db, n, "Codertocat/Hello-Universe"))["version"] for n in (2, 3)}
    starred = variant(renamed, **{"repository.stargazers_count": 7,
                                  "repository.updated_at": "2030-01-01T01:00:00Z"})  # fmt: skip
    assert (await sender.send("repository", starred)).status_code == 202
    for number in (2, 3):
        row = await pr_row(db, number, "Codertocat/Hello-Universe")
        assert row["version"] == versions[number]
    moved_to = "Octocat/Hello-Universe"
    moved = variant(repository, full_name=moved_to, updated_at="2030-01-02T00:00:00Z")
    edited = variant(pr_action("edited", "2019-05-15T15:30:00Z", title="moved"), repository=moved)
    assert (await sender.send("pull_request", edited)).status_code == 202
    for number in (2, 3):
        row = await pr_row(db, number, moved_to)
        async with db.transaction() as tx:
            entries = await tx.all("change_feed_for", repository=moved_to, number=number)
        assert entries and entries[-1]["version"] == row["version"]
        assert entries[-1]["payload"]["data"]["pull_request"]["repositoryName"] == moved_to
    assert (await pr_row(db, 2, moved_to))["title"] == "moved"
    assert (await pr_row(db, 3, moved_to))["version"] == versions[3] + 1


async def test_a_description_removed_on_github_is_removed_here(
    sender: Sender, db: Database
) -> None:
    """The repository/edited fixture's change is exactly a description cleared (to null): a
    field set to null clears what is stored; a field a payload does not carry keeps it."""
    await sender.send("pull_request", variant(opened(), **{"repository.description": "My Repo"}))
    edited = load_fixture("repository/edited.payload.json")
    assert edited["changes"] == {"description": {"from": "My Repo"}}
    repository = variant(opened()["repository"], description=None,
                         updated_at="2019-05-15T15:30:00Z")  # fmt: skip
    assert (
        await sender.send("repository", variant(edited, repository=repository))
    ).status_code == 202
    async with db.transaction() as tx:
        repo = await tx.one("repository_by_github_id", github_id=186853002)
    assert repo is not None and repo["description"] is None and repo["language"] is None
    assert repo["default_branch"] == "master"  # carried by every payload: unchanged
    later = {k: v for k, v in repository.items() if k != "default_branch"}
    later.update(description="Back", updated_at="2019-05-15T15:40:00Z")
    await sender.send("repository", variant(edited, repository=later))
    async with db.transaction() as tx:
        repo = await tx.one("repository_by_github_id", github_id=186853002)
    assert repo is not None and repo["description"] == "Back" and repo["default_branch"] == "master"


async def test_push_installation_are_accepted(sender: Sender) -> None:
    for event, name in [
        ("push", "push/payload.json"),
        ("installation", "installation/created.payload.json"),
    ]:
        resp = await sender.send(event, load_fixture(name))
        assert resp.status_code == 202 and resp.json()["status"] == "accepted", event


def story() -> list[tuple[str, dict[str, Any]]]:
    """One PR's deliveries, each with its own timestamp."""
    return [
        ("pull_request", opened("2019-05-15T15:20:00Z")),
        ("pull_request", pr_action("labeled", "2019-05-15T15:20:30Z", title="labelled")),
        ("workflow_run", workflow_run("in_progress", None, "2019-05-15T15:21:00Z")),
        ("workflow_run", workflow_run("completed", "failure", "2019-05-15T15:22:00Z")),
        ("pull_request", pr_action("synchronize", "2019-05-15T15:23:00Z", SHA2, title="fixed")),
        ("workflow_run", workflow_run("queued", None, "2019-05-15T15:23:30Z", SHA2, 9)),
        ("workflow_run", workflow_run("completed", "success", "2019-05-15T15:24:00Z", SHA2, 9)),
        ("pull_request_review", review("changes_requested", "2019-05-15T15:24:30Z", 1)),
        ("pull_request_review", review("approved", "2019-05-15T15:25:00Z", 2)),
        ("pull_request", pr_action("edited", "2019-05-15T15:25:30Z", SHA2, title="final")),
    ]


async def test_shuffled_replays_end_in_the_same_state(
    sender: Sender, db: Database, pg_server, monkeypatch
) -> None:
    import httpx

    from tests.integration.conftest import ingest_app

    deliveries = story()
    for event, payload in deliveries:
        await sender.send(event, payload)
    expected = await pr_row(db)
    assert expected["title"] == "final" and expected["head_sha"] == SHA2
    assert pipeline(expected) == ("updated", "buildPassed", "approved", "pending", "approved")

    rng = random.Random(1234)
    for _ in range(6):
        order = deliveries[:]
        rng.shuffle(order)
        name, dsn = await pg_server.fresh_database()
        app = ingest_app(monkeypatch, dsn)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://x") as client:  # fmt: skip
                other = Sender(client)
                for event, payload in order:
                    assert (await other.send(event, payload)).status_code == 202
            async with Database(dsn, min_size=0, max_size=1) as shuffled:
                got = await pr_row(shuffled)
        finally:
            from flowlens.ingest.app import close_all

            await close_all()
            await pg_server.drop(name)
        for column in ("title", "head_sha", "status_pr", "status_build", "status_approval",
                       "status_merge", "status", "state", "source_updated_at"):  # fmt: skip
            assert got[column] == expected[column], (column, [e for e, _ in order])


async def test_200_concurrent_deliveries_store_each_id_once(sender: Sender, counts) -> None:
    ids = [f"dup-{i % 50}" for i in range(200)]
    random.Random(7).shuffle(ids)
    payloads = {f"dup-{i}": pr_action("edited", f"2019-05-15T16:{i:02d}:00Z", title=f"t{i}")
                for i in range(50)}  # fmt: skip
    results = await asyncio.gather(
        *(sender.send("pull_request", payloads[d], delivery=d) for d in ids)
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(202) == 50
    assert statuses.count(200) == 150
    assert {r.json()["status"] for r in results if r.status_code == 200} == {"duplicate"}
    c = await counts()
    assert c["raw_events"] == 50 and c["pull_requests"] == 1


async def test_rerun_job_replaces_the_failed_one(sender: Sender, db: Database) -> None:
    """Re-running a failed job creates a new job id; the newest run of that job decides."""
    await sender.send("pull_request", opened())
    base = variant(
        load_fixture("workflow_job/completed.success.with-organization.payload.json"),
        **{"workflow_job.head_sha": SHA1, "repository": opened()["repository"]},
    )
    failed = variant(base, **{"workflow_job.id": 1, "workflow_job.conclusion": "failure",
                              "workflow_job.completed_at": "2019-05-15T15:30:00Z"})  # fmt: skip
    passed = variant(base, **{"workflow_job.id": 2, "workflow_job.conclusion": "success",
                              "workflow_job.completed_at": "2019-05-15T15:40:00Z"})  # fmt: skip
    await sender.send("workflow_job", failed)
    assert (await pr_row(db))["status_build"] == "buildFailed"
    await sender.send("workflow_job", passed)
    assert (await pr_row(db))["status_build"] == "buildPassed"


async def test_a_new_run_of_a_workflow_replaces_its_failed_run(
    sender: Sender, db: Database
) -> None:
    """Closing and reopening a PR starts a new run (a new id) of its workflows for the same
    head: the newest run of each workflow and event counts, so a pass turns the PR green. A
    run of the same workflow for another event (a push) still counts on its own."""

    def run(status: str, conclusion: str | None, at: str, run_id: int, event: str) -> dict:
        return variant(workflow_run(status, conclusion, at, run_id=run_id),
                       **{"workflow_run.event": event})  # fmt: skip

    await sender.send("pull_request", opened())
    await sender.send(
        "workflow_run", run("completed", "failure", "2019-05-15T15:22:00Z", 100, "pull_request")
    )
    assert (await pr_row(db))["status_build"] == "buildFailed"
    await sender.send(
        "pull_request",
        pr_action(
            "closed", "2019-05-15T15:23:00Z", state="closed", closed_at="2019-05-15T15:23:00Z"
        ),
    )
    await sender.send("pull_request", pr_action("reopened", "2019-05-15T15:23:05Z"))
    await sender.send(
        "workflow_run", run("queued", None, "2019-05-15T15:23:06Z", 101, "pull_request")
    )
    assert (await pr_row(db))["status_build"] == "building"
    await sender.send(
        "workflow_run", run("completed", "success", "2019-05-15T15:25:00Z", 101, "pull_request")
    )
    assert (await pr_row(db))["status_build"] == "buildPassed"
    # The same workflow run for the push of that commit, failed: it counts beside the other.
    await sender.send(
        "workflow_run", run("completed", "failure", "2019-05-15T15:26:00Z", 102, "push")
    )
    assert (await pr_row(db))["status_build"] == "buildFailed"


async def test_a_commit_status_lasts_from_its_first_pending_state(
    sender: Sender, db: Database
) -> None:
    """Each state of a commit status is a new object (created_at = updated_at): the build's
    start is its first pending state, and its duration runs from there to the finish."""
    from datetime import UTC, datetime

    def status(state: str, at: str) -> dict[str, Any]:
        return variant(load_fixture("status/payload.json"), sha=SHA1, state=state,
                       context="ci/jenkins", created_at=at, updated_at=at)  # fmt: skip

    async def build() -> dict[str, Any]:
        async with db.transaction() as tx:
            cur = await tx.conn.execute(
                "SELECT status, started_at, finished_at, duration_seconds FROM builds"
                " WHERE provider = 'status'"
            )
            rows: list[Any] = await cur.fetchall()
        assert len(rows) == 1
        return dict(rows[0])

    def at(minute: int) -> datetime:
        return datetime(2019, 5, 15, 15, minute, tzinfo=UTC)

    await sender.send("pull_request", opened())
    for state, when in (("pending", "15:21"), ("pending", "15:25"), ("success", "15:31")):
        payload = status(state, f"2019-05-15T{when}:00Z")
        assert (await sender.send("status", payload)).status_code == 202
    assert await build() == {"status": "success", "started_at": at(21), "finished_at": at(31),
                             "duration_seconds": 600.0}  # fmt: skip
    assert (await pr_row(db))["status_build"] == "buildPassed"
    # Run again: a new start, and no finish until it ends.
    await sender.send("status", status("pending", "2019-05-15T15:40:00Z"))
    assert await build() == {"status": "queued", "started_at": at(40), "finished_at": None,
                             "duration_seconds": None}  # fmt: skip
    await sender.send("status", status("failure", "2019-05-15T15:42:00Z"))
    assert (await build())["duration_seconds"] == 120.0
    # A new state without a pending one before it: when that run started is not known.
    await sender.send("status", status("error", "2019-05-15T15:50:00Z"))
    assert (await build())["finished_at"] == at(50)
    assert (await build())["duration_seconds"] is None


async def test_ci_report_without_times_never_moves_a_build_back(
    ingest_client, db: Database
) -> None:
    from tests.integration.conftest import CI_KEY

    auth = {"Authorization": f"Bearer {CI_KEY}"}
    url = "/api/webhook/github-actions"
    done = {"repository": "octo/app", "runId": 9, "status": "success"}
    late = {"repository": "octo/app", "runId": 9, "status": "in_progress"}
    assert (await ingest_client.post(url, json=done, headers=auth)).status_code == 202
    assert (await ingest_client.post(url, json=late, headers=auth)).status_code == 202
    async with db.transaction() as tx:
        builds = await tx.all("builds_for_repository", repository="octo/app")
    assert [b["status"] for b in builds] == ["success"]


async def test_rename_onto_a_name_the_ci_path_created_merges_it(
    sender: Sender, ingest_client, db: Database
) -> None:
    from tests.integration.conftest import CI_KEY

    await sender.send("pull_request", opened())
    report = {"repository": "Codertocat/Renamed", "runId": 5, "status": "failure",
              "commitSha": "abc"}  # fmt: skip
    resp = await ingest_client.post(
        "/api/webhook/github-actions", json=report, headers={"Authorization": f"Bearer {CI_KEY}"}
    )
    assert resp.status_code == 202
    repository = variant(opened()["repository"], name="Renamed", full_name="Codertocat/Renamed",
                         updated_at="2030-01-01T00:00:00Z")  # fmt: skip
    renamed = variant(load_fixture("repository/edited.payload.json"), action="renamed",
                      changes={"repository": {"name": {"from": "Hello-World"}}},
                      repository=repository)  # fmt: skip
    assert (await sender.send("repository", renamed)).status_code == 202
    async with db.transaction() as tx:
        repo = await tx.one("repository_by_github_id", github_id=186853002)
        builds = await tx.all("builds_for_repository", repository="Codertocat/Renamed")
    assert repo is not None and repo["full_name"] == "Codertocat/Renamed"
    assert [b["external_id"] for b in builds] == ["ci:5"]
    assert (await pr_row(db, 2, "Codertocat/Renamed"))["title"]


async def test_long_columns_are_written_only_when_they_change(sender: Sender, db: Database) -> None:
    """A build or a label leaves a long body, file list and insight as stored (same TOAST
    value, not written again); an edit of the body writes the new one."""
    import hashlib
    import json

    def long_text(seed: str) -> str:  # hex digests: too varied to compress under a page
        return "".join(hashlib.sha256(f"{seed}{i}".encode()).hexdigest() for i in range(200))

    body = long_text("body")
    files = [f"src/{long_text(str(i))[:60]}.py" for i in range(300)]
    insight = {"risk_level": "high", "summary": long_text("summary")[:4000], "key_changes": []}
    assert (await sender.send("pull_request", variant(opened(), **{"pull_request.body": body}))
            ).status_code == 202  # fmt: skip
    async with db.transaction() as tx:  # what the poller stores after an analysis
        await tx.conn.execute(
            "UPDATE pull_requests SET files_changed = %s::jsonb, latest_insight = %s::jsonb"
            " WHERE number = 2",
            (json.dumps(files), json.dumps(insight)),
        )

    async def toast_ids() -> tuple[int | None, ...]:
        async with db.transaction() as tx:
            cur = await tx.conn.execute(
                "SELECT pg_column_toast_chunk_id(body) AS body,"
                " pg_column_toast_chunk_id(files_changed) AS files,"
                " pg_column_toast_chunk_id(latest_insight) AS insight"
                " FROM pull_requests WHERE number = 2"
            )
            row: Any = await cur.fetchone()
        return tuple(row.values())

    before = await toast_ids()
    assert None not in before  # all three are stored out of line
    labeled = pr_action("labeled", "2019-05-15T15:21:00Z", body=body)
    check_run = variant(
        load_fixture("check_run/completed.payload.json"),
        **{"check_run.pull_requests": [], "check_run.conclusion": "failure"},
    )
    assert (await sender.send("pull_request", labeled)).status_code == 202
    assert (await sender.send("check_run", check_run)).status_code == 202
    row = await pr_row(db)
    assert (row["status_pr"], row["status_build"]) == ("updated", "buildFailed")
    assert (row["body"], row["files_changed"], row["latest_insight"]) == (body, files, insight)
    assert await toast_ids() == before
    # The feed still carries the complete state (the description as list items carry it).
    data = (await feed(db))[-1]["payload"]["data"]
    assert data["pull_request"]["description"] == short_description(body)
    assert data["ai_insight"] == insight
    assert data["pull_request"]["filesChanged"] == files

    edited = pr_action("edited", "2019-05-15T15:22:00Z", body=long_text("edited"))
    assert (await sender.send("pull_request", edited)).status_code == 202
    row = await pr_row(db)
    assert row["body"] == long_text("edited")
    assert (row["files_changed"], row["latest_insight"]) == (files, insight)
    after = await toast_ids()
    assert after[0] != before[0] and after[1:] == before[1:]
