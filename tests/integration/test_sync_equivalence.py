"""The sync writes the state webhooks would have written: two databases, one fed each way.

Database A gets GitHub's webhooks through the real ingest function; database B gets nothing
but `sync_once` against a local fake GitHub API serving the same objects. Pull requests,
pipeline state, approvals, builds and reviews must come out identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.sync import GitHubSyncClient, sync_once
from tests.fakes.fake_github_sync import FakeGitHubSync, GitHubWorld
from tests.integration.conftest import Sender
from tests.pg import PgServer

SHA = [f"{i:x}" * 40 for i in range(1, 10)]

# Row columns that say when or in which order rows were written, not what they say.
VOLATILE = {
    "id", "repository_id", "pull_request_id", "version", "created_at", "updated_at",
    "last_activity", "analysis_owner", "analysis_leased_until",
}  # fmt: skip


@pytest.fixture
async def db_b(pg_server: PgServer) -> AsyncIterator[Database]:
    """A second fresh database: the one only the sync writes to."""
    name, url = await pg_server.fresh_database()
    database = Database(url, min_size=0, max_size=10)
    await database.open()
    yield database
    await database.close()
    await pg_server.drop(name)


@pytest.fixture
def github() -> Iterator[FakeGitHubSync]:
    fake = FakeGitHubSync(max_per_page=2)  # pagination even with a handful of objects
    with fake.running():
        yield fake


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in VOLATILE}


async def snapshot(db: Database, repository: str) -> dict[str, Any]:
    """Everything clients and the poller see of one repository."""
    async with db.transaction() as tx:
        repo = await tx.one("sync_snapshot_repository", repository=repository)
        pulls = await tx.all("sync_snapshot_pull_requests", repository=repository)
        builds = await tx.all("builds_for_repository", repository=repository)
        reviews = await tx.all("sync_snapshot_reviews", repository=repository)
        analysis = await tx.all("sync_snapshot_analysis", repository=repository)
    assert repo is not None
    return {
        "repository": _clean(repo),
        "pull_requests": {p["number"]: _clean(p) for p in pulls},
        "builds": {b["external_id"]: _clean(b) for b in builds},
        "reviews": [dict(r) for r in reviews],
        "analysis": [(a["pr_number"], a["head_sha"]) for a in analysis],
    }


def assert_same(a: dict[str, Any], b: dict[str, Any], step: str) -> None:
    assert a["repository"] == b["repository"], step
    assert a["pull_requests"].keys() == b["pull_requests"].keys(), step
    for number, row in a["pull_requests"].items():
        differ = {k: (v, b["pull_requests"][number].get(k)) for k, v in row.items()
                  if b["pull_requests"][number].get(k) != v}  # fmt: skip
        assert not differ, f"after {step}: PR #{number} differs (webhook, sync): {differ}"
    assert a["builds"] == b["builds"], step
    assert a["reviews"] == b["reviews"], step


async def sync(db: Database, github: FakeGitHubSync, world: GitHubWorld) -> None:
    assert github.url is not None
    client = GitHubSyncClient(github.url, retry_delay=0.01)
    try:
        result = await sync_once(db, client, world.full_name, since_days=1)
    finally:
        await client.aclose()
    assert result.complete


async def test_final_state_of_a_sync_equals_the_webhooks(
    sender: Sender, db: Database, db_b: Database, github: FakeGitHubSync
) -> None:
    world = GitHubWorld(github)
    changes = [
        # PR 1: a failed build, a fix, a green build, an approval, merged.
        world.open_pr(1, sha=SHA[1]),
        world.run(11, sha=SHA[1], status="in_progress", number=1),
        world.run(11, sha=SHA[1], status="completed", conclusion="failure"),
        world.push(1, SHA[2]),
        world.run(12, sha=SHA[2], status="queued", number=1),
        world.run(12, sha=SHA[2], status="completed", conclusion="success"),
        world.review(1, "approved", review_id=101),
        world.close(1, merged=True),
        # PR 2: changes requested by one reviewer, approved by another, a red build.
        world.open_pr(2, sha=SHA[3]),
        world.review(2, "changes_requested", review_id=201, login="alice"),
        world.review(2, "approved", review_id=202, login="bob"),
        world.review(2, "commented", review_id=203, login="carol"),
        world.run(21, sha=SHA[3], status="completed", conclusion="failure", number=2),
        # PR 3: closed unmerged.
        world.open_pr(3, sha=SHA[4]),
        world.close(3),
        # PR 4: an approval dismissed, a queued build.
        world.open_pr(4, sha=SHA[5]),
        world.review(4, "approved", review_id=401),
        world.dismiss(4, 401),
        world.run(41, sha=SHA[5], status="queued", number=4),
        # A push to main: a build without a pull request.
        world.run(51, sha=SHA[6], status="completed", conclusion="success", branch="main"),
    ]
    for event, payload in changes:
        assert (await sender.send(event, payload)).status_code == 202, event
    await sync(db_b, github, world)

    hooks, synced = await snapshot(db, world.full_name), await snapshot(db_b, world.full_name)
    assert_same(hooks, synced, "the whole story")
    prs = hooks["pull_requests"]
    assert [prs[n]["status"] for n in (1, 2, 3, 4)] == ["merged", "buildFailed", "closed",
                                                        "building"]  # fmt: skip
    assert prs[2]["status_approval"] == "changes_requested"
    assert prs[4]["status_approval"] == "pending"
    assert prs[1]["additions"] == 5 and prs[1]["changed_files"] == 2  # from the detail object
    assert len(hooks["builds"]) == 5
    # The newest head of each open PR is queued for analysis either way.
    assert {(2, SHA[3]), (4, SHA[5])} <= set(synced["analysis"])


async def test_sync_after_every_webhook_tracks_the_same_state(
    sender: Sender, db: Database, db_b: Database, github: FakeGitHubSync
) -> None:
    """Step by step, the sync names each change as the webhook did (synchronize, edited...)."""
    world = GitHubWorld(github)
    steps = [
        ("open", lambda: world.open_pr(1, sha=SHA[1])),
        ("run starts", lambda: world.run(11, sha=SHA[1], status="in_progress", number=1)),
        ("run fails", lambda: world.run(11, sha=SHA[1], status="completed", conclusion="failure")),
        # An edit while the PR still shows "opened": status_pr must become "updated".
        ("edit title", lambda: world.edit(1, title="Better title", body="New body")),
        ("push", lambda: world.push(1, SHA[2])),
        ("retarget", lambda: world.edit(1, base="develop")),
        ("run passes", lambda: world.run(12, sha=SHA[2], status="completed",
                                         conclusion="success", number=1)),
        ("open draft", lambda: world.open_pr(2, sha=SHA[3], draft=True)),
        ("ready", lambda: world.set_draft(2, False)),
        ("back to draft", lambda: world.set_draft(2, True)),
        ("changes requested", lambda: world.review(2, "changes_requested", review_id=201,
                                                   login="alice")),
        ("approved by bob", lambda: world.review(2, "approved", review_id=202, login="bob")),
        ("approved by alice", lambda: world.review(2, "approved", review_id=203, login="alice")),
        ("bob dismissed", lambda: world.dismiss(2, 202)),
        ("approve PR 1", lambda: world.review(1, "approved", review_id=101)),
        ("merge PR 1", lambda: world.close(1, merged=True)),
        ("close PR 2", lambda: world.close(2)),
        ("reopen PR 2", lambda: world.reopen(2)),
        ("push to main", lambda: world.run(51, sha=SHA[6], status="completed",
                                           conclusion="failure", branch="main")),
    ]  # fmt: skip
    for name, change in steps:
        event, payload = change()
        assert (await sender.send(event, payload)).status_code == 202, name
        await sync(db_b, github, world)
        hooks, synced = await snapshot(db, world.full_name), await snapshot(db_b, world.full_name)
        assert_same(hooks, synced, name)
        assert hooks["analysis"] == synced["analysis"], name
    prs = hooks["pull_requests"]
    assert (prs[1]["status"], prs[1]["title"], prs[1]["base_ref"]) == (
        "merged", "Better title", "develop",
    )  # fmt: skip
    assert (prs[2]["status_pr"], prs[2]["is_draft"], prs[2]["status_approval"]) == (
        "opened", True, "approved",
    )  # fmt: skip
