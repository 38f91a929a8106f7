"""Every answer of the ingest function's table, against the real function app."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from flowlens.db import Database
from tests.conftest import load_fixture
from tests.helpers import encode, github_headers, variant
from tests.integration.conftest import CI_KEY, Sender

OPENED = "pull_request/opened.payload.json"


async def raw_event(db: Database, delivery: str) -> dict | None:
    async with db.transaction() as tx:
        return await tx.one("raw_event_by_delivery", delivery_id=delivery)


async def test_accepted_is_durable(sender: Sender, db: Database) -> None:
    resp = await sender.send("pull_request", load_fixture(OPENED), delivery="d-1")
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "delivery": "d-1", "event": "pull_request"}
    row = await raw_event(db, "d-1")
    assert row is not None and row["processed"] is False and row["event"] == "pull_request"
    assert row["action"] == "opened" and row["pr_number"] == 2 and row["needs_analysis"]


async def test_form_encoded_body_is_accepted(sender: Sender, db: Database) -> None:
    resp = await sender.send("pull_request", load_fixture(OPENED), delivery="d-form", form=True)
    assert resp.status_code == 202, resp.text
    assert (await raw_event(db, "d-form")) is not None


async def test_same_delivery_twice_is_a_duplicate(sender: Sender, counts) -> None:
    first = await sender.send("pull_request", load_fixture(OPENED), delivery="d-2")
    before = await counts()
    second = await sender.send("pull_request", load_fixture(OPENED), delivery="d-2")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert await counts() == before


async def test_ping_is_answered_pong(sender: Sender, db: Database) -> None:
    resp = await sender.send("ping", load_fixture("ping/payload.json"), delivery="d-ping")
    assert resp.status_code == 200
    assert resp.json()["status"] == "pong"
    assert (await raw_event(db, "d-ping")) is not None


async def test_unknown_event_is_stored_and_ignored(sender: Sender, db: Database, counts) -> None:
    payload = {"action": "created", "issue": {"number": 1}, "repository": None}
    resp = await sender.send("issues", payload, delivery="d-issue")
    assert resp.status_code == 202
    assert resp.json() == {"status": "ignored", "delivery": "d-issue", "event": "issues"}
    assert (await raw_event(db, "d-issue")) is not None
    assert (await counts())["pull_requests"] == 0


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, "sha1=abc", "garbage", b"sha256=" + b"\xe9" * 64],
)
async def test_missing_or_wrong_signature_is_401_and_stores_nothing(
    ingest_client: httpx.AsyncClient, counts, signature: str | bytes | None
) -> None:
    body, ctype = encode(load_fixture(OPENED))
    headers = github_headers("pull_request", body, delivery="d-bad", content_type=ctype)
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    resp = await ingest_client.post("/", content=body, headers=headers)
    assert resp.status_code == 401
    assert "error" in resp.json()
    assert (await counts())["raw_events"] == 0


async def test_signature_of_another_secret_is_401(ingest_client: httpx.AsyncClient) -> None:
    body, ctype = encode(load_fixture(OPENED))
    headers = github_headers("pull_request", body, secret="other", content_type=ctype)
    assert (await ingest_client.post("/", content=body, headers=headers)).status_code == 401


async def test_tampered_body_is_401(ingest_client: httpx.AsyncClient) -> None:
    body, ctype = encode(load_fixture(OPENED))
    headers = github_headers("pull_request", body, content_type=ctype)
    resp = await ingest_client.post(
        "/", content=body.replace(b"opened", b"closed"), headers=headers
    )
    assert resp.status_code == 401


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_not_post_is_405(ingest_client: httpx.AsyncClient, method: str) -> None:
    resp = await ingest_client.request(method, "/")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_required_header_is_400(
    ingest_client: httpx.AsyncClient, counts, missing: str
) -> None:
    body, ctype = encode(load_fixture(OPENED))
    headers = github_headers("pull_request", body, content_type=ctype)
    del headers[missing]
    resp = await ingest_client.post("/", content=body, headers=headers)
    assert resp.status_code == 400
    assert "X-GitHub" in resp.json()["error"]
    assert (await counts())["raw_events"] == 0


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"nopayload=1", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/json"),
    ],
)
async def test_unparseable_body_is_400(
    ingest_client: httpx.AsyncClient, counts, body: bytes, ctype: str
) -> None:
    headers = github_headers("pull_request", body, content_type=ctype)
    resp = await ingest_client.post("/", content=body, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert (await counts())["raw_events"] == 0


@pytest.mark.parametrize("repository", ["octo/repo", 7, ["octo/repo"]])
async def test_a_repository_of_another_shape_is_still_answered(
    sender: Sender, db: Database, repository: object
) -> None:
    payload = {"action": "created", "issue": {"number": 1}, "repository": repository}
    resp = await sender.send("issues", payload, delivery=f"d-odd-{repository!r}")
    assert resp.status_code == 202 and resp.json()["status"] == "ignored"
    assert (await raw_event(db, f"d-odd-{repository!r}")) is not None


async def test_payload_missing_its_object_is_kept_unapplied(sender: Sender, counts) -> None:
    """Signed, so GitHub's: kept whole, never half-applied, answered 202 naming why."""
    resp = await sender.send("pull_request", {"action": "opened"}, delivery="no-object")
    assert resp.status_code == 202
    assert resp.json()["status"] == "unapplied" and "pull_request" in resp.json()["reason"]
    assert (await counts())["raw_events"] == 1 and (await counts())["pull_requests"] == 0
    again = await sender.send("pull_request", {"action": "opened"}, delivery="no-object")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


async def test_body_over_25_mib_is_413(ingest_client: httpx.AsyncClient, counts) -> None:
    body = b'{"pad": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    headers = github_headers("pull_request", body)
    resp = await ingest_client.post("/", content=body, headers=headers)
    assert resp.status_code == 413
    assert (await counts())["raw_events"] == 0


async def test_ci_path_requires_bearer(ingest_client: httpx.AsyncClient, counts) -> None:
    report = {"repository": "octo/app", "runId": 1, "status": "success"}
    no_auth = await ingest_client.post("/api/webhook/github-actions", json=report)
    wrong = await ingest_client.post(
        "/api/webhook/github-actions", json=report, headers={"Authorization": "Bearer nope"}
    )
    assert no_auth.status_code == 401
    assert wrong.status_code == 403
    assert (await counts())["builds"] == 0


async def report_build(
    client: httpx.AsyncClient, db: Database, report: dict[str, Any]
) -> list[dict[str, Any]]:
    """POST a CI report (202 expected); the builds of its repository."""
    resp = await client.post(
        "/api/webhook/github-actions", json=report, headers={"Authorization": f"Bearer {CI_KEY}"}
    )
    assert resp.status_code == 202, resp.text
    async with db.transaction() as tx:
        return await tx.all("builds_for_repository", repository=report["repository"])


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("success", "success"), ("skipped", "success"), ("failure", "failed"),
        ("cancelled", "failed"), ("timed_out", "failed"), ("in_progress", "running"),
        ("queued", "queued"), ("waiting", "queued"), ("requested", "queued"),
    ],
)  # fmt: skip
async def test_ci_path_maps_status_and_duration(
    ingest_client: httpx.AsyncClient, db: Database, status: str, expected: str
) -> None:
    report = {
        "repository": "octo/app", "runId": "77", "status": status, "workflow": "CI",
        "branch": "main", "commitSha": "abc123", "startedAt": "2026-01-01T10:00:00Z",
        "finishedAt": "2026-01-01T10:01:30Z", "actor": "octocat",
    }  # fmt: skip
    builds = await report_build(ingest_client, db, report)
    assert len(builds) == 1
    assert builds[0]["status"] == expected
    assert builds[0]["duration_seconds"] == 90.0
    assert builds[0]["workflow_name"] == "CI" and builds[0]["triggered_by"] == "octocat"


async def test_ci_path_reads_a_time_without_offset_as_utc(
    ingest_client: httpx.AsyncClient, db: Database
) -> None:
    report = {
        "repository": "octo/app", "runId": "78", "status": "success",
        "startedAt": "2026-01-01T10:00:00", "finishedAt": "2026-01-01T10:01:30Z",
    }  # fmt: skip
    builds = await report_build(ingest_client, db, report)
    assert [b["duration_seconds"] for b in builds] == [90.0]
    assert builds[0]["started_at"].isoformat() == "2026-01-01T10:00:00+00:00"


async def test_ci_path_rejects_bad_report(ingest_client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {CI_KEY}"}
    bad = await ingest_client.post(
        "/api/webhook/github-actions",
        content=json.dumps({"repository": "no-slash", "runId": 1, "status": "exploded"}),
        headers=auth,
    )
    assert bad.status_code == 400
    assert "repository" in bad.json()["error"] and "status" in bad.json()["error"]


async def test_nul_character_in_a_payload_is_stored(sender: Sender, db: Database) -> None:
    """PostgreSQL cannot hold NUL; a commit message with one must not cost the delivery."""
    payload = load_fixture(OPENED)
    payload["pull_request"]["body"] = "before\u0000after"
    resp = await sender.send("pull_request", payload, delivery="nul")
    assert resp.status_code == 202, resp.text
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["body"] == "before\ufffdafter"


async def test_a_literal_backslash_u0000_in_a_title_is_kept(sender: Sender, db: Database) -> None:
    """Only a JSON escape for NUL is replaced: a title that shows the six characters \\u0000
    (written \\\\u0000 in JSON) is stored as it is."""
    payload = load_fixture(OPENED)
    payload["pull_request"]["title"] = 'Strip "\\u0000" escapes'
    assert (await sender.send("pull_request", payload, delivery="literal")).status_code == 202
    async with db.transaction() as tx:
        row = await tx.one("pull_request_by_number", repository="Codertocat/Hello-World", number=2)
    assert row is not None and row["title"] == 'Strip "\\u0000" escapes'


@pytest.mark.parametrize(
    "change",
    [
        {"pull_request.number": 2**40, "number": 2**40},
        {"pull_request.updated_at": 1e20},
        # Storable, but past what Python reads back: it would fail every later delivery.
        {"pull_request.updated_at": "9999-12-31T23:59:59-05:00"},
        {"pull_request.additions": "many"},
        {"pull_request.additions": 2**70},
    ],
)
async def test_a_signed_payload_with_values_out_of_range_is_kept_unapplied(
    sender: Sender, counts, change: dict[str, Any]
) -> None:
    """Signed, well-formed JSON, but a value no column can hold: stored whole, 202 unapplied,
    nothing of it applied."""
    resp = await sender.send("pull_request", variant(load_fixture(OPENED), **change))
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "unapplied" and resp.json()["reason"]
    stored = await counts()
    assert (stored["raw_events"], stored["repositories"], stored["pull_requests"]) == (1, 0, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"workflow": "CI\u0000"},
        {"branch": "main\u0000"},
        {"prNumber": 2**31},
        {"finishedAt": "9999-12-31T23:59:59-05:00"},
    ],
)
async def test_ci_path_refuses_values_the_database_cannot_hold(
    ingest_client: httpx.AsyncClient, counts, change: dict[str, Any]
) -> None:
    report = {"repository": "acme/widgets", "runId": 7, "status": "success", **change}
    resp = await ingest_client.post("/api/webhook/github-actions", json=report,
                                    headers={"Authorization": f"Bearer {CI_KEY}"})  # fmt: skip
    assert resp.status_code == 400, resp.text
    assert (await counts())["builds"] == 0


async def test_unknown_build_status_is_accepted_as_queued(sender: Sender, db: Database) -> None:
    # Derived: a check run in a status GitHub may add later.
    payload = variant(
        load_fixture("check_run/completed.payload.json"),
        **{"check_run.status": "pending_approval", "check_run.conclusion": None},
    )
    assert (await sender.send("check_run", payload)).status_code == 202
    async with db.transaction() as tx:
        builds = await tx.all("builds_for_repository", repository="Codertocat/Hello-World")
    assert [b["status"] for b in builds] == ["queued"]


async def test_stored_payload_reads_back_byte_for_byte(sender: Sender, dsn: str) -> None:
    """Raw payloads are stored compressed; `flowlens events payload` gives back the JSON sent."""
    import asyncio
    import os
    import sys

    payload = load_fixture(OPENED)
    body, _ = encode(payload)
    assert (await sender.send("pull_request", payload, delivery="kept")).status_code == 202
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "text"}
    for delivery, code in (("kept", 0), ("never-sent", 1)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowlens", "events", "payload", delivery, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == code, err.decode()
        if code == 0:
            assert out.rstrip(b"\n") == body
        else:
            assert b"no delivery 'never-sent'" in err
