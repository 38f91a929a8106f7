"""A repository rename racing ordinary deliveries: no deadlock, no change under the old name."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest

from flowlens.db import Database
from flowlens.ingest import store
from flowlens.ingest.store import Item, Outcome, record_delivery
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_ingest_state import opened, pr_action

NEW = "Codertocat/Hello-Universe"


def renamed() -> dict[str, Any]:
    """Derived: the repository/edited fixture as a rename of the PRs' repository."""
    repository = variant(opened()["repository"], name="Hello-Universe", full_name=NEW,
                         updated_at="2030-01-01T00:00:00Z")  # fmt: skip
    return variant(load_fixture("repository/edited.payload.json"), action="renamed",
                   changes={"repository": {"name": {"from": "Hello-World"}}},
                   repository=repository)  # fmt: skip


async def deliver(db: Database, event: str, payload: dict[str, Any]) -> Outcome:
    return await record_delivery(db, str(uuid.uuid4()), event, payload, json.dumps(payload))


async def test_a_rename_does_not_deadlock_with_a_delivery_holding_a_pr(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery holds PR #2 and then marks the repository's activity; the rename locks the
    PRs before the repository row, so it waits instead of deadlocking (and running again)."""
    await deliver(db, "pull_request", opened())
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        await conn.execute("UPDATE repositories SET last_activity = now() - interval '1 hour'")
    holding = asyncio.Event()
    runs = {"rename": 0, "edit": 0}
    prefetch = store.Session.prefetch_prs

    async def slow_prefetch(self: store.Session, items: list[Item]) -> None:
        await prefetch(self, items)
        kind = "edit" if any(it.event == "pull_request" for it in items) else "rename"
        runs[kind] += 1
        if kind == "edit" and runs[kind] == 1:
            holding.set()
            await asyncio.sleep(1.0)  # PR #2 stays locked while the rename starts

    monkeypatch.setattr(store.Session, "prefetch_prs", slow_prefetch)

    async def rename_meanwhile() -> Outcome:
        await holding.wait()
        return await deliver(db, "repository", renamed())

    edited = pr_action("edited", "2019-05-15T15:30:00Z", title="edited")
    outcomes = await asyncio.gather(deliver(db, "pull_request", edited), rename_meanwhile())
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert runs == {"rename": 1, "edit": 1}  # a deadlock runs the loser's transaction again


async def test_a_change_that_waited_for_the_rename_goes_out_under_the_new_name(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit read the repository before the rename committed, then waited for PR #2's lock:
    its change follows the announcement, so it must carry the new name too (a socket
    subscribed to the new name would miss it otherwise)."""
    await deliver(db, "pull_request", opened())
    flushing = asyncio.Event()
    flush = store.Session.flush

    async def slow_flush(self: store.Session) -> None:
        if any(c.source == "repository" for c in self._changes):
            flushing.set()
            await asyncio.sleep(0.5)  # every PR locked, the rename not committed yet
        await flush(self)

    monkeypatch.setattr(store.Session, "flush", slow_flush)

    async def edit_meanwhile() -> Outcome:
        await flushing.wait()
        edited = pr_action("edited", "2019-05-15T15:30:00Z", title="edited")
        return await deliver(db, "pull_request", edited)

    outcomes = await asyncio.gather(deliver(db, "repository", renamed()), edit_meanwhile())
    assert outcomes == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT repository, version, payload::text FROM change_feed ORDER BY version"
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == ["Codertocat/Hello-World", NEW, NEW]  # opened, rename, edit
    last = json.loads(rows[-1][2])["data"]
    assert last["repository"] == NEW and last["pull_request"]["repositoryName"] == NEW
    assert last["title"] == "edited"


def other_repository(at: str) -> dict[str, Any]:
    """Derived: another GitHub repository (id 999) under the fixture repository's name, as
    when a deleted repository is created again."""
    return variant(opened()["repository"], id=999, node_id="R_999", updated_at=at)


async def names(db: Database) -> dict[int | None, str]:
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT github_id, full_name FROM repositories")
        return {row[0]: row[1] for row in await cur.fetchall()}


async def titles(db: Database) -> dict[tuple[str, int], str]:
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT r.full_name, p.number, p.title FROM pull_requests p"
            " JOIN repositories r ON r.id = p.repository_id"
        )
        return {(row[0], row[1]): row[2] for row in await cur.fetchall()}


async def test_a_repository_created_again_under_a_name_gets_its_own_rows(db: Database) -> None:
    """A new GitHub repository under a stored repository's name (the old one was deleted):
    the old one's rows keep their PRs under a name that frees this one, announced there; the
    new one's PR #2 is a PR of its own. A late delivery of the old repository, older than the
    new one's claim, does not take the name back (two names flipping on every late delivery,
    each flip announcing every PR)."""
    await deliver(db, "pull_request", opened())  # PR #2 of GitHub repository 186853002
    old_title = (await titles(db))[("Codertocat/Hello-World", 2)]
    new = variant(
        opened("2030-01-01T00:05:00Z"),
        repository=other_repository("2030-01-01T00:00:00Z"),
        **{"pull_request.id": 999002, "pull_request.title": "new"},
    )
    assert await deliver(db, "pull_request", new) == Outcome.ACCEPTED
    stored = await names(db)
    assert stored[999] == "Codertocat/Hello-World"
    previous = stored[186853002]
    assert previous != "Codertocat/Hello-World" and previous.startswith("Codertocat/Hello-World")
    assert await titles(db) == {(previous, 2): old_title, ("Codertocat/Hello-World", 2): "new"}
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM change_feed WHERE repository = %s",
                                 (previous,))  # fmt: skip
        assert (await cur.fetchone()) == (1,)  # the old PR, announced under its new name
        cur = await conn.execute("SELECT count(*) FROM change_feed")
        feed_rows = (await cur.fetchone())[0]

    async def old_row_written() -> Any:
        async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT updated_at FROM repositories WHERE github_id = 186853002"
            )
            return await cur.fetchone()

    written = await old_row_written()
    late = pr_action("edited", "2019-05-15T15:30:00Z", title="late")  # the old repository's
    assert await deliver(db, "pull_request", late) == Outcome.ACCEPTED
    assert await old_row_written() == written  # its name kept without a write (or PR locks)
    assert await names(db) == stored
    assert await titles(db) == {(previous, 2): "late", ("Codertocat/Hello-World", 2): "new"}
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM change_feed")
        assert (await cur.fetchone())[0] == feed_rows + 1  # its own edit, nothing else


async def rename_other_onto_the_name(db: Database, github_id: int, seen: str, at: str) -> None:
    """Derived: repository github_id, stored as Codertocat/Other with a PR #2 (as of `seen`),
    renamed onto the fixture repository's name at `at`."""
    other = variant(other_repository(seen), id=github_id, name="Other",
                    full_name="Codertocat/Other")  # fmt: skip
    pr = variant(opened(), repository=other, **{"pull_request.id": github_id * 1000 + 2})
    await deliver(db, "pull_request", pr)
    moved = variant(other, name="Hello-World", full_name="Codertocat/Hello-World", updated_at=at)
    rename = variant(renamed(), repository=moved,
                     changes={"repository": {"name": {"from": "Other"}}})  # fmt: skip
    assert await deliver(db, "repository", rename) == Outcome.ACCEPTED


async def test_a_rename_onto_a_name_another_repository_held(db: Database) -> None:
    """Repository 999 renamed onto the name of a stored one (deleted on GitHub since): both
    repositories' PRs are announced under their new names, each PR once."""
    await deliver(db, "pull_request", opened())
    await rename_other_onto_the_name(db, 999, "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z")
    stored = await names(db)
    assert stored[999] == "Codertocat/Hello-World"
    previous = stored[186853002]
    assert previous.startswith("Codertocat/Hello-World (previous")
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT f.repository, r.github_id FROM change_feed f"
            " JOIN pull_requests p ON p.id = f.pull_request_id"
            " JOIN repositories r ON r.id = p.repository_id"
            " WHERE f.version = p.version ORDER BY f.id"
        )
        latest = await cur.fetchall()
    assert sorted(latest) == sorted([(previous, 186853002), ("Codertocat/Hello-World", 999)])


async def test_two_first_deliveries_of_a_repository_created_again_move_the_old_one_once(
    db: Database,
) -> None:
    """Both read the old repository as the name's holder (its row held by another session
    meanwhile, as two instances' timing can): only one moves it, once."""
    await deliver(db, "pull_request", opened())
    first = variant(opened("2030-01-01T00:05:00Z"), repository=other_repository(
        "2030-01-01T00:00:00Z"), **{"pull_request.id": 999002})  # fmt: skip
    second = variant(first, **{"pull_request.number": 3, "pull_request.id": 999003})
    async with await psycopg.AsyncConnection.connect(db.dsn) as blocker:
        await blocker.execute("SELECT 1 FROM repositories WHERE github_id = 186853002 FOR UPDATE")
        tasks = [asyncio.create_task(deliver(db, "pull_request", p)) for p in (first, second)]
        await asyncio.sleep(1.0)
        await blocker.rollback()
        assert await asyncio.gather(*tasks) == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    stored = await names(db)
    assert stored[186853002].count("(previous") == 1, stored
    assert set((await titles(db)).keys()) == {
        (stored[186853002], 2), ("Codertocat/Hello-World", 2), ("Codertocat/Hello-World", 3),
    }  # fmt: skip


async def test_a_late_first_delivery_is_kept_apart_and_analysed_as_itself(
    dsn: str, db: Database
) -> None:
    """Repository 999's payload is older than the stored holder's claim on the name: it is
    stored under a name of its own, which the API takes as `repo`, and the poller analyses
    its PR #2, not the holder's PR #2 that the payload's name now points at."""
    from tests.integration.test_api_support import analyse, asgi_api

    holder = variant(opened(), **{"repository.updated_at": "2030-01-01T00:00:00Z"})
    await deliver(db, "pull_request", holder)
    late = variant(opened("2020-01-01T00:05:00Z", sha="b" * 40),
                   repository=other_repository("2020-01-01T00:00:00Z"),
                   **{"pull_request.id": 999002, "pull_request.title": "late"})  # fmt: skip
    assert await deliver(db, "pull_request", late) == Outcome.ACCEPTED
    kept = (await names(db))[999]
    assert kept == "Codertocat/Hello-World (previous, GitHub id 999)"
    assert await analyse(db) == 2
    async with asgi_api(dsn) as (_, client):
        holder_sha = holder["pull_request"]["head"]["sha"]
        for repo, sha in ((kept, "b" * 40), ("Codertocat/Hello-World", holder_sha)):
            resp = await client.get("/api/insights/2", params={"repo": repo})
            assert resp.status_code == 200, resp.text
            assert [(i["repositoryName"], i["commitSha"]) for i in resp.json()] == [(repo, sha)]


async def test_an_event_stored_before_a_rename_is_analysed_after_it(db: Database) -> None:
    """The poller finds the PR by the repository's GitHub id: the name the event carried is
    gone after the rename (before, the event was dropped as if its PR did not exist)."""
    from tests.integration.test_api_support import analyse

    await deliver(db, "pull_request", opened())
    await deliver(db, "repository", renamed())
    assert await analyse(db) == 1
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT r.full_name FROM insights i JOIN repositories r ON r.id = i.repository_id"
        )
        assert await cur.fetchall() == [(NEW,)]


async def test_a_holder_in_another_letter_case_is_moved_too(db: Database) -> None:
    """GitHub's names ignore case: a repository created again as codertocat/hello-world takes
    the name from the old Codertocat/Hello-World rather than living beside it."""
    await deliver(db, "pull_request", opened())
    lower = variant(other_repository("2030-01-01T00:00:00Z"), name="hello-world",
                    full_name="codertocat/hello-world")  # fmt: skip
    new = variant(opened("2030-01-01T00:05:00Z"), repository=lower,
                  **{"pull_request.id": 999002})  # fmt: skip
    assert await deliver(db, "pull_request", new) == Outcome.ACCEPTED
    stored = await names(db)
    assert stored[999] == "codertocat/hello-world"
    assert stored[186853002].startswith("Codertocat/Hello-World (previous")


def ci_report(repository: str, number: int) -> Any:
    from flowlens.ingest.ci import CiBuild

    return CiBuild.model_validate(
        {"repository": repository, "runId": "1", "status": "queued", "prNumber": number}
    )


@pytest.mark.parametrize("with_time", [True, False])
async def test_a_ci_report_in_another_letter_case_is_for_that_repository(
    db: Database, with_time: bool
) -> None:
    """A report without a GitHub id never claims the name from a GitHub repository: before,
    it started a rival row or, against a row without a time, moved the real one away."""
    from flowlens.ingest.ci import record_ci_build

    payload = opened()
    if not with_time:
        del payload["repository"]["updated_at"]
    await deliver(db, "pull_request", payload)
    await record_ci_build(db, ci_report("codertocat/hello-world", 2))
    assert await names(db) == {186853002: "Codertocat/Hello-World"}
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT pr_number, repository_id FROM builds")
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [2] and len(await titles(db)) == 1


async def test_a_placeholder_in_another_letter_case_does_not_hide_the_holder(
    db: Database,
) -> None:
    """A CI placeholder for codertocat/hello-world, made before the real repository was seen:
    a repository created again under the name still gets its own row (the placeholder was
    taken for the holder, and the new one took over the old one's row), and one renamed onto
    the name is stored (it failed on the unique name for ever)."""
    from flowlens.ingest.ci import record_ci_build

    await record_ci_build(db, ci_report("codertocat/hello-world", 7))
    await deliver(db, "pull_request", opened())
    again = variant(opened("2030-01-01T00:05:00Z"),
                    repository=other_repository("2030-01-01T00:00:00Z"),
                    **{"pull_request.id": 999002, "pull_request.title": "new"})  # fmt: skip
    assert await deliver(db, "pull_request", again) == Outcome.ACCEPTED
    stored = await names(db)
    assert stored[999] == "Codertocat/Hello-World"
    assert stored[186853002].startswith("Codertocat/Hello-World (previous")
    assert (await titles(db))[("Codertocat/Hello-World", 2)] == "new"

    await rename_other_onto_the_name(db, 555, "2031-01-01T00:00:00Z", "2032-01-01T00:00:00Z")
    assert (await names(db))[555] == "Codertocat/Hello-World"
