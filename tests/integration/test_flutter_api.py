"""/flutter: every answer parses as the shipped app parses it (tests/flutter_app.py), with
defaults where FlowLens has no value; filters, tokens and CORS as on the main API."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from websockets.exceptions import ConnectionClosed

from flowlens.api.schemas import (
    FlutterInsight,
    FlutterPipeline,
    FlutterPullRequest,
    FlutterRepository,
    FlutterStateUpdate,
    PrUpdate,
)
from flowlens.db import Database
from flowlens.ingest.ci import CiBuild, record_ci_build
from tests import flutter_app as app
from tests.integration.test_api_support import (
    REPO,
    analyse,
    asgi_api,
    deliver,
    next_update,
    opened,
    served_api,
    socket,
    ws_url,
)

NOW = datetime(2000, 1, 1, tzinfo=UTC)
OTHER = "octo/other"


def parsers() -> dict[str, Any]:
    return {
        "/flutter/api/repositories": app.repository_from_api_json,
        "/flutter/api/pull-requests": app.pull_request_from_api_json,
        "/flutter/api/insights": lambda j: app.insight_from_api_json(j, now=NOW),
        "/flutter/api/pipelines": lambda j: app.pipeline_from_api_json(j, now=NOW),
    }


MODELS: dict[str, Any] = {
    "/flutter/api/repositories": FlutterRepository,
    "/flutter/api/pull-requests": FlutterPullRequest,
    "/flutter/api/insights": FlutterInsight,
    "/flutter/api/pipelines": FlutterPipeline,
}
# Sent for people and other clients, not read by the app's fromApiJson.
NOT_READ = {"/flutter/api/repositories": {"owner_avatar"}, "/flutter/api/insights": {"model"}}
# PipelineRun.fromApiJson reads pr_number as an int or as text (int.tryParse) on purpose.
TOLERATED = {("/flutter/api/pipelines", "pr_number")}


async def seed(db: Database) -> None:
    """Two repositories, an analysed PR and a PR with a description of null."""
    await deliver(db, "pull_request", opened(2))
    await deliver(db, "pull_request", opened(9, repo=OTHER, body=None, title="other"))
    assert await analyse(db) == 2


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def distinct(key: str, value: Any) -> Any:
    """A value of the same type that the app shows differently from its default for `key`, so
    that a renamed field cannot pass for one at its default."""
    if isinstance(value, bool):
        return True  # every boolean the app reads defaults to false
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return 0.25 if value != 0.25 else 0.5
    if isinstance(value, list):
        return [*value, "README: another line"]
    if key == "history":
        return value
    if key.endswith("_at") or key == "last_activity":
        return "2001-02-03T04:05:06+00:00"
    if key == "risk_level":
        return "high" if value != "high" else "low"
    if key == "status":
        return "approved"
    return f"{value}-x" if value else "x"


def retyped(value: Any) -> Any:
    """A value of another JSON type than `value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 1
    return "x"


async def test_every_list_parses_and_matches_its_schema(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        for path, parse in parsers().items():
            items = await get(client, path)
            assert len(items) == 2, path
            TypeAdapter(list[MODELS[path]]).validate_python(items)
            for item in items:
                parse(item)


async def test_renaming_or_retyping_any_field_the_app_reads_changes_what_it_shows(
    dsn: str, db: Database
) -> None:
    """A field renamed or sent with another type makes the app throw, or show something else
    than it shows now: the emulation catches every drift of the contract."""
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        for path, parse in parsers().items():
            item = (await get(client, path))[0]
            for key in sorted(set(item) - NOT_READ.get(path, set())):
                marked = {**copy.deepcopy(item), key: distinct(key, item[key])}
                renamed = {k: v for k, v in marked.items() if k != key}
                renamed[f"{key}_x"] = marked[key]
                for label, before, changed in (
                    ("renamed", marked, renamed),
                    ("retyped", item, {**copy.deepcopy(item), key: retyped(item[key])}),
                ):
                    if label == "retyped" and (path, key) in TOLERATED:
                        continue
                    shown = parse(before)
                    try:
                        after = parse(changed)
                    except (app.DartTypeError, app.DartFormatError, app.DartStateError):
                        continue
                    assert after != shown, f"{path}: {key} {label} goes unnoticed"


async def test_ids_are_strings_and_the_same_across_lists(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        listed = await get(client, "/flutter/api/repositories")
        repos = {r.full_name: r.id for r in map(app.repository_from_api_json, listed)}
        assert set(repos) == {REPO, OTHER}
        assert all(isinstance(i, str) and i.isdigit() for i in repos.values())
        prs = [
            app.pull_request_from_api_json(p)
            for p in await get(client, "/flutter/api/pull-requests")
        ]
        assert {(p.repository_name, p.repository_id, p.number) for p in prs} == {
            (REPO, repos[REPO], 2), (OTHER, repos[OTHER], 9),
        }  # fmt: skip
        insights = await get(client, "/flutter/api/insights")
        assert {(i["repo_id"], i["pr_number"]) for i in insights} == {
            (repos[REPO], 2), (repos[OTHER], 9),
        }  # fmt: skip
        assert all(isinstance(i["id"], str) and i["id"] for i in insights)
        # A null description is the app's empty text, not a crash.
        other = app.first_where(prs, lambda p: p.number == 9)
        assert other.description == "" and other.title == "other"


async def test_repository_id_filters_every_list(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn) as (_, client):
        repos = {r["full_name"]: r["id"] for r in await get(client, "/flutter/api/repositories")}
        for full_name, number in ((REPO, 2), (OTHER, 9)):
            rid = repos[full_name]
            for path in ("/flutter/api/pull-requests", "/flutter/api/insights",
                         "/flutter/api/pipelines"):  # fmt: skip
                items = await get(client, path, repository_id=rid)
                assert [(i["repo_id"], i["pr_number"]) for i in items] == [(rid, number)], path
            (insight,) = await get(client, f"/flutter/api/insights/{number}", repository_id=rid)
            assert insight["repo_id"] == rid
            # That PR number in the other repository is no PR at all.
            wrong = repos[OTHER if full_name == REPO else REPO]
            resp = await client.get(
                f"/flutter/api/insights/{number}", params={"repository_id": wrong}
            )
            assert resp.status_code == 404 and "error" in resp.json()
        for bad, status in (("abc", 400), ("-1", 400), ("1e3", 400), ("99999999", 404)):
            resp = await client.get("/flutter/api/pull-requests", params={"repository_id": bad})
            assert resp.status_code == status, bad
            assert set(resp.json()) == {"error"}
        # Without the filter, the same PR number in two repositories gives both insights.
        await deliver(db, "pull_request", opened(2, repo=OTHER, sha="3" * 40))
        assert await analyse(db) == 1
        both = await get(client, "/flutter/api/insights/2")
        assert sorted(i["repo_id"] for i in both) == sorted(repos.values())


async def test_a_repository_and_pr_known_only_from_a_ci_report_parse(
    dsn: str, db: Database
) -> None:
    """No description, language, default branch, avatar, title or head: defaults the app reads."""
    report = CiBuild.model_validate(
        {"repository": "ci/only", "runId": "7", "status": "in_progress", "prNumber": 4}
    )
    await record_ci_build(db, report)
    async with asgi_api(dsn) as (_, client):
        (repo,) = [
            app.repository_from_api_json(r) for r in await get(client, "/flutter/api/repositories")
        ]
        assert (repo.full_name, repo.owner, repo.description) == ("ci/only", "ci", "")
        assert repo.default_branch == "main" and repo.languages == ["Unknown"]
        (pr,) = [
            app.pull_request_from_api_json(p)
            for p in await get(client, "/flutter/api/pull-requests")
        ]
        # No head sha to tie the build to: nothing built yet, as on /api/prs.
        assert (pr.number, pr.status, pr.repository_id) == (4, "pending", repo.id)
        assert pr.author == "" and pr.author_avatar == "" and pr.commit_sha == ""
        (run,) = [app.pipeline_from_api_json(p, now=NOW)
                  for p in await get(client, "/flutter/api/pipelines")]  # fmt: skip
        assert run.status_build == "pending" and not run.processed
        assert await get(client, "/flutter/api/insights") == []


async def test_status_answers_online_without_a_token(dsn: str) -> None:
    async with asgi_api(dsn, api_tokens="t1") as (_, client):
        resp = await client.get("/flutter/")
        assert resp.status_code == 200 and resp.json()["status"] == "online"


async def test_tokens_guard_flutter_as_the_rest(dsn: str, db: Database) -> None:
    await seed(db)
    async with asgi_api(dsn, api_tokens="t1,t2") as (_, client):
        for path in ("/flutter/api/repositories", "/flutter/api/pull-requests",
                     "/flutter/api/insights", "/flutter/api/insights/2",
                     "/flutter/api/pipelines"):  # fmt: skip
            resp = await client.get(path)
            assert resp.status_code == 401 and set(resp.json()) == {"error"}, path
            ok = await client.get(
                path, params={"repository_id": "1"}, headers={"Authorization": "Bearer t2"}
            )
            assert ok.status_code == 200 and ok.json(), path
    async with served_api(dsn, api_tokens="t1") as (_, base):
        url = base.replace("http://", "ws://") + "/flutter/ws"
        async with socket(url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        async with (
            socket(url, additional_headers={"Authorization": "Bearer t1"}) as by_header,
            # What the app's WebSocketChannel.connect can send: the token in its URL.
            socket(f"{url}?token=t1") as by_query,
        ):
            await deliver(db, "pull_request", opened(5))
            for ws in (by_header, by_query):
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert (message["pr_number"], message["state"]) == (5, "opened")


async def test_cors_applies_to_flutter(dsn: str) -> None:
    origin = "https://app.example.com"
    async with asgi_api(dsn, cors_origins=origin) as (_, client):
        resp = await client.get("/flutter/api/pull-requests", headers={"Origin": origin})
        assert resp.headers["access-control-allow-origin"] == origin
        other = await client.get(
            "/flutter/api/pull-requests", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    async with served_api(dsn, cors_origins=origin) as (_, base):
        url = base.replace("http://", "ws://") + "/flutter/ws"
        async with socket(url, additional_headers={"Origin": "https://evil.example"}) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_both_sockets_get_their_own_shape_of_one_change(dsn: str, db: Database) -> None:
    async with (
        served_api(dsn) as (_, base),
        socket(ws_url(base)) as main,
        socket(base.replace("http://", "ws://") + "/flutter/ws") as flutter_ws,
        socket(base.replace("http://", "ws://") + f"/flutter/ws?repo={OTHER}") as filtered,
    ):
        await deliver(db, "pull_request", opened(2))
        await deliver(db, "pull_request", opened(9, repo=OTHER))
        first = PrUpdate.model_validate(await next_update(main))
        assert first.data.pr_number == 2 and first.data.pull_request.status == "pending"
        mine = [FlutterStateUpdate.model_validate(await next_update(flutter_ws)) for _ in range(2)]
        assert [(m.pr_number, m.state) for m in mine] == [(2, "opened"), (9, "opened")]
        assert mine[0].repo_id != mine[1].repo_id
        # ?repo= filters the app's socket as it filters /ws.
        only = FlutterStateUpdate.model_validate(await next_update(filtered))
        assert (only.pr_number, only.repo_id) == (9, mine[1].repo_id)
        with pytest.raises(TimeoutError):
            await next_update(filtered, timeout=0.3)


def test_the_emulation_follows_darts_rules() -> None:
    """The emulation itself: casts, DateTime.parse's grammar, ?? laziness, _onMessage drops."""
    assert app.date_time_parse("2019-05-15T15:20:33+00:00") == datetime(
        2019, 5, 15, 15, 20, 33, tzinfo=UTC
    )
    assert app.date_time_parse("2019-05-15T17:20:33.1234567+02:00") == datetime(
        2019, 5, 15, 15, 20, 33, 123456, tzinfo=UTC
    )
    for bad in ("yesterday", "2019-05-15T15:20:33+0000Z", "", "15/05/2019",
                "2019-05-15T15:20:33Z\n"):  # fmt: skip
        with pytest.raises(app.DartFormatError):
            app.date_time_parse(bad)
    # Dart rolls over out-of-range parts, and reads a time without an offset as local time.
    assert app.date_time_parse("2019-13-01T00:00:00Z") == datetime(2020, 1, 1, tzinfo=UTC)
    assert app.date_time_parse("2019-05-15T15:20:33").tzinfo is None
    assert app.date_time_try_parse("2019-05-15 15:20:33") != datetime(
        2019, 5, 15, 15, 20, 33, tzinfo=UTC
    )
    assert app.int_try_parse("1_000") is None and app.int_try_parse(" -0x1f ") == -31
    with pytest.raises(app.DartTypeError):
        app.cast(True, "int")
    with pytest.raises(app.DartTypeError):
        app.cast(None, "String")
    with pytest.raises(app.DartTypeError):
        app.cast(1.0, "int")
    assert app.cast(None, "String?") is None and app.cast(3, "num") == 3
    assert app.coalesce(None, lambda: 2, lambda: 1 / 0) == 2
    assert app.on_message('{"repo_id": 1, "pr_number": 2, "state": "opened"}') is None
    assert app.on_message('{"repo_id": "1", "pr_number": 2}') is None
    assert app.on_message(
        '{"repo_id": "1", "pr_number": 2, "state": "merged"}'
    ) == app.PRStateUpdate("1", 2, "merged")
    with pytest.raises(app.DartStateError):
        app.first_where([1, 2], lambda x: x > 2)
    assert app.should_override("merged", "approved") and not app.should_override(
        "building", "buildFailed"
    )


async def test_openapi_documents_the_flutter_surface(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        for path in ("/flutter/", "/flutter/api/repositories", "/flutter/api/pull-requests",
                     "/flutter/api/insights", "/flutter/api/insights/{pr_number}",
                     "/flutter/api/pipelines"):  # fmt: skip
            assert path in spec["paths"], path
        for name in (
            "FlutterPullRequest",
            "FlutterInsight",
            "FlutterPipeline",
            "FlutterRepository",
        ):
            assert name in spec["components"]["schemas"]


async def test_database_down_is_503_and_not_online(dsn: str) -> None:
    dead = Database("postgresql://flowlens@127.0.0.1:9/none", min_size=0, connect_timeout=1)
    async with asgi_api(dsn, database=dead) as (_, client):
        status = await client.get("/flutter/")
        assert status.status_code == 503 and status.json().get("status") != "online"
        resp = await client.get("/flutter/api/pull-requests")
        assert resp.status_code == 503 and "database" in resp.json()["error"]
    await dead.close()


async def test_counts_language_links_and_files_as_the_app_reads_them(
    dsn: str, db: Database
) -> None:
    # Derived: the fixture's PR opened as a draft, one merged and one closed unmerged, in a
    # repository with a language.
    for payload in (
        opened(2, draft=True, changed_files=4),
        opened(3, state="closed", merged=True, merged_at="2019-05-15T16:00:00Z"),
        opened(4, state="closed", merged=False),
    ):
        payload["repository"]["language"] = "Ruby"
        await deliver(db, "pull_request", payload)
    async with asgi_api(dsn) as (_, client):
        (repo,) = map(app.repository_from_api_json, await get(client, "/flutter/api/repositories"))
        counts = (repo.open_prs, repo.draft_prs, repo.merged_prs, repo.closed_prs, repo.total_prs)
        assert counts == (1, 1, 1, 1, 3)
        assert repo.languages == ["Ruby"]
        assert repo.html_url == "https://github.com/Codertocat/Hello-World"
        items = await get(client, "/flutter/api/pull-requests")
        prs = {p.number: p for p in map(app.pull_request_from_api_json, items)}
        assert prs[2].files_changed == ["File 1", "File 2", "File 3", "File 4"]
        assert prs[2].is_draft and prs[2].status == "pending"
        assert prs[3].status == "merged" and prs[4].status == "closed"


async def test_changes_requested_is_the_apps_rejected(dsn: str, db: Database) -> None:
    from tests.integration.test_ingest_state import review

    await deliver(db, "pull_request", opened(2))
    await deliver(db, "pull_request_review", review("changes_requested", "2019-05-15T15:25:00Z"))
    async with asgi_api(dsn) as (_, client):
        (item,) = await get(client, "/flutter/api/pipelines")
        FlutterPipeline.model_validate(item)
        run = app.pipeline_from_api_json(item, now=NOW)
        assert run.status_approval == "rejected"
        assert [(e.field, e.value) for e in run.history][-1] == ("status_approval", "rejected")


async def test_a_long_history_is_its_last_rows(dsn: str, db: Database) -> None:
    """More history than a pipeline item carries: the last rows, each compared with the row
    before it (the query reads one more), never with an invented start."""
    from flowlens.flutter import HISTORY_ROWS
    from tests.integration.test_api_support import workflow_run

    await deliver(db, "pull_request", opened(2))
    for i in range(HISTORY_ROWS + 5):
        status, conclusion = ("in_progress", None) if i % 2 == 0 else ("completed", "failure")
        at = f"2019-05-15T16:{i // 60:02d}:{i % 60:02d}Z"
        await deliver(db, "workflow_run", workflow_run(status, conclusion, at, run_id=1000 + i))
    async with asgi_api(dsn) as (_, client):
        (item,) = await get(client, "/flutter/api/pipelines")
    run = app.pipeline_from_api_json(item, now=NOW)
    assert len(run.history) == HISTORY_ROWS
    assert {e.field for e in run.history} == {"status_build"}
    values = [e.value for e in run.history]
    assert all(a != b for a, b in itertools.pairwise(values))
    assert [e.meta["version"] for e in run.history] == sorted(
        e.meta["version"] for e in run.history
    )
