"""A signed delivery is never answered 5xx for its content: a field of another type or range
than FlowLens takes keeps the delivery whole, unapplied (202, naming the field), listed and
reapplied by `flowlens events` once the code handles it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.ingest.store import reapply_unapplied, record_unapplied
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.conftest import Sender

OPENED = "pull_request/opened.payload.json"
CHECK_RUN = "check_run/completed.payload.json"
REVIEW = "pull_request_review/submitted.payload.json"
STATUS = "status/payload.json"


@pytest.mark.parametrize(
    ("fixture", "event", "change", "named"),
    [
        # The review's examples, each a 500 before.
        (CHECK_RUN, "check_run", {"check_run.status": 5}, "check_run"),
        (CHECK_RUN, "check_run", {"check_run.pull_requests": "none"}, "check_run"),
        (OPENED, "pull_request", {"repository.id": {"a": 1}}, "repository.id"),
        (OPENED, "pull_request", {"repository.full_name": {"a": 1}}, "repository"),
        (OPENED, "pull_request", {"pull_request.title": ["a"]}, "pull_request.title"),
        (OPENED, "pull_request", {"pull_request.user": {"login": 7}}, "pull_request.user.login"),
        (OPENED, "pull_request", {"pull_request.additions": 2**40}, "pull_request.additions"),
        (OPENED, "pull_request", {"pull_request.state": "weird"}, "pull_request"),
        (OPENED, "pull_request", {"pull_request.head": "main"}, "pull_request"),
        (OPENED, "pull_request", {"repository.default_branch": 1.5},
         "repository.default_branch"),
        # After a review: infinity where an id goes (an OverflowError, a 500), and identifiers
        # too long for an index entry (a 503, as if the database were down).
        (REVIEW, "pull_request_review", {"review.id": float("inf")}, "review.id"),
        (OPENED, "pull_request", {"pull_request.head.sha": "a" * 12_000},
         "pull_request.head.sha"),
        (OPENED, "pull_request", {"repository.full_name": "o/" + "r" * 12_000},
         "repository.full_name"),
        (STATUS, "status", {"context": "c" * 12_000}, "status"),
        (REVIEW, "pull_request_review", {"review.state": {"a": 1}}, "review.state"),
    ],
)  # fmt: skip
async def test_a_field_that_does_not_fit_is_kept_unapplied(
    sender: Sender, counts: Any, fixture: str, event: str, change: dict[str, Any], named: str
) -> None:
    resp = await sender.send(event, variant(load_fixture(fixture), **change))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "unapplied" and named in body["reason"], body
    stored = await counts()
    assert stored["raw_events"] == 1
    assert (stored["pull_requests"], stored["builds"], stored["change_feed"]) == (0, 0, 0)


async def test_a_known_repository_is_not_half_updated(sender: Sender, db: Database) -> None:
    """default_branch=1.5 once the repository exists was a COALESCE type clash (a 500)."""
    assert (await sender.send("pull_request", load_fixture(OPENED))).status_code == 202
    bad = variant(load_fixture(OPENED), **{"repository.default_branch": 1.5,
                                           "pull_request.title": "changed"})  # fmt: skip
    resp = await sender.send("pull_request", bad)
    assert resp.json()["status"] == "unapplied"
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["title"] != "changed"


async def test_unapplied_deliveries_are_reapplied_once_they_fit(
    sender: Sender, db: Database, dsn: str, counts: Any
) -> None:
    # As an older version would have kept it: a good payload, with the reason it gave then.
    good = load_fixture(OPENED)
    import json

    await record_unapplied(db, "older-1", "pull_request", json.dumps(good), "opened", "old")
    bad = variant(load_fixture(OPENED), **{"pull_request.title": ["a"], "number": 3,
                                           "pull_request.number": 3})  # fmt: skip
    assert (await sender.send("pull_request", bad, delivery="still-bad")).status_code == 202
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "text"}
    listed = subprocess.run(
        [sys.executable, "-m", "flowlens", "events", "unapplied"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "older-1" in listed.stdout and "still-bad" in listed.stdout
    assert "pull_request.title" in listed.stdout
    reapplied = subprocess.run(
        [sys.executable, "-m", "flowlens", "events", "reapply", "--all"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reapplied.returncode == 1, reapplied.stderr  # one is still unapplied
    assert "applied 1 event(s)" in reapplied.stdout and "still unapplied" in reapplied.stdout
    assert (await counts())["pull_requests"] == 1
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="older-1")
    # Applied as if it had just arrived: its head is now the poller's to analyse.
    assert row is not None and row["needs_analysis"] and not row["processed"]
    assert row["repository"] == "Codertocat/Hello-World" and row["pr_number"] == 2
    again = await reapply_unapplied(db)
    assert again.applied == [] and len(again.still) == 1


async def test_a_long_reason_is_cut(sender: Sender) -> None:
    bad = variant(load_fixture(OPENED), **{"pull_request.state": "x" * 1_000_000})
    resp = await sender.send("pull_request", bad)
    assert resp.json()["status"] == "unapplied" and len(resp.json()["reason"]) <= 500
