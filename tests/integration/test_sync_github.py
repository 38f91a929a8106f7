"""The sync against a local fake GitHub API, with the real httpx client: pagination, ETags,
rate limits, Retry-After, a 502 in the middle of a list, progress, tokens, the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from flowlens.db import Database
from flowlens.sync import GitHubError, GitHubSyncClient, RateLimited, sync_once
from tests.fakes.fake_github_sync import FakeGitHubSync, GitHubWorld

PRS = 5
RUNS = 5


def populate(world: GitHubWorld) -> None:
    """Five PRs, each with a review and a run; one PR merged (enough for three pages of two)."""
    for n in range(1, PRS + 1):
        sha = f"{n:x}" * 40
        world.open_pr(n, sha=sha)
        world.run(100 + n, sha=sha, status="completed",
                  conclusion="failure" if n == 2 else "success", number=n)  # fmt: skip
        world.review(n, "approved" if n % 2 else "commented", review_id=1000 + n)
    world.close(1, merged=True)


@pytest.fixture
def github() -> Iterator[FakeGitHubSync]:
    fake = FakeGitHubSync(max_per_page=2)
    populate(GitHubWorld(fake))
    with fake.running():
        yield fake


def client_for(github: FakeGitHubSync, **kwargs: Any) -> GitHubSyncClient:
    assert github.url is not None
    kwargs.setdefault("retry_delay", 0.01)
    return GitHubSyncClient(github.url, **kwargs)


REPO = "Codertocat/Hello-World"


async def deliveries(db: Database) -> list[str]:
    async with db.transaction() as tx:
        return [r["delivery_id"] for r in await tx.all("sync_snapshot_deliveries")]


async def counts(db: Database) -> dict[str, int]:
    async with db.transaction() as tx:
        row = await tx.one("table_counts")
    assert row is not None
    return dict(row)


async def test_pages_are_followed_and_progress_is_shown(
    db: Database, github: FakeGitHubSync
) -> None:
    lines: list[str] = []
    client = client_for(github)
    try:
        result = await sync_once(db, client, REPO, since_days=1, progress=lines.append)
    finally:
        await client.aclose()
    assert result.complete and result.error is None
    assert (result.pull_requests, result.pull_requests_synced, result.runs) == (PRS, PRS, RUNS)
    assert result.reviews == PRS and result.accepted == PRS + PRS + RUNS
    # Three pages of pulls and of runs (2 per page), one detail and one review list per PR.
    pulls = [p for p in github.paths() if p.startswith(f"/repos/{REPO}/pulls?")]
    assert pulls == [f"/repos/{REPO}/pulls?page={n}" for n in (1, 2, 3)]
    assert len([p for p in github.paths() if "/actions/runs" in p]) == 3
    assert result.requests == 1 + 3 + 3 + PRS * 2
    assert [line for line in lines if "pulls page" in line] == [
        f"{REPO}: pulls page 1: 2 pull request(s) in window, 2 synced",
        f"{REPO}: pulls page 2: 4 pull request(s) in window, 4 synced",
        f"{REPO}: pulls page 3: 5 pull request(s) in window, 5 synced",
    ]
    assert any(line.startswith(f"{REPO}: runs page 3: 1 in window") for line in lines)
    # The request was the one documented: all states, most recently updated first.
    first = next(r for r in github.requests if r.path.endswith("/pulls"))
    assert first.query == {"state": "all", "sort": "updated", "direction": "desc",
                           "per_page": "100"}  # fmt: skip
    assert (await counts(db))["pull_requests"] == PRS and (await counts(db))["builds"] == RUNS
    # A page of runs is stored in one transaction (rows one transaction wrote share its xmin).
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT count(DISTINCT xmin::text) AS n FROM raw_events WHERE event = 'workflow_run'"
        )
        assert await cur.fetchone() == {"n": 3}


async def test_second_run_is_conditional_and_writes_nothing(
    db: Database, github: FakeGitHubSync
) -> None:
    client = client_for(github)
    try:
        await sync_once(db, client, REPO, since_days=1)
        before = await counts(db)
        # The second run lists PR 2's failed head by sha (for re-runs), for the first time.
        second = await sync_once(db, client, REPO, since_days=1)
        assert second.heads_rechecked == 1 and second.requests == 1 + 3 + 3 + 1
        assert (second.accepted, second.duplicates, second.not_modified) == (0, RUNS + 1, 7)
        github.requests.clear()
        remaining = github.remaining
        again = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    # The repository, every list page and the head's runs answer 304 from the kept ETags; no
    # PR needs a fetch.
    assert again.complete and again.requests == 1 + 3 + 3 + 1
    assert again.not_modified == again.requests
    assert {r.status for r in github.requests} == {304}
    assert all("if-none-match" in r.headers for r in github.requests)
    assert github.remaining == remaining  # 304s cost no rate limit
    assert (again.accepted, again.pull_requests_synced) == (0, 0)
    assert await counts(db) == before


async def test_a_502_in_the_middle_of_pagination_is_retried_without_duplicates(
    db: Database, github: FakeGitHubSync
) -> None:
    github.fail(502, when=lambda r: r.path.endswith("/pulls") and r.page == 2)
    github.fail(502, times=2, when=lambda r: r.path.endswith("/actions/runs") and r.page == 3)
    client = client_for(github)
    try:
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert result.complete
    pulls = [p for p in github.paths() if p.startswith(f"/repos/{REPO}/pulls?")]
    # Page 2 asked again (not the whole list from page 1), then page 3.
    assert pulls == [f"/repos/{REPO}/pulls?page={n}" for n in (1, 2, 2, 3)]
    assert client.stats.retries == 3
    ids = await deliveries(db)
    assert len(ids) == len(set(ids)) == PRS + PRS + RUNS
    assert (await counts(db))["pull_requests"] == PRS


async def test_a_502_that_outlasts_the_retries_fails_the_run_and_the_next_one_resumes(
    db: Database, github: FakeGitHubSync
) -> None:
    github.fail(502, times=10, when=lambda r: r.path.endswith("/pulls") and r.page == 2)
    client = client_for(github, max_attempts=3)
    try:
        with pytest.raises(GitHubError, match="502 on /repos/Codertocat/Hello-World/pulls"):
            await sync_once(db, client, REPO, since_days=1)
        partial = await deliveries(db)
        assert 0 < len(partial) < PRS + PRS + RUNS
        async with db.transaction() as tx:
            state = await tx.one("sync_state_get", repository=REPO)
        assert state is not None and "502" in state["last_error"] and state["prs_cursor"] is None
        github._failures.clear()
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    # What the first run wrote was skipped (PRs) or deduplicated (runs, and PR 2's failed head's
    # run listed again by sha), never written twice.
    assert result.complete and result.duplicates == RUNS + 1 and result.heads_rechecked == 1
    assert result.pull_requests_synced == PRS - 2
    ids = await deliveries(db)
    assert len(ids) == len(set(ids)) == PRS + PRS + RUNS
    assert set(partial) <= set(ids)
    async with db.transaction() as tx:
        state = await tx.one("sync_state_get", repository=REPO)
    assert state is not None and state["last_error"] is None
    # Only the complete run set the cursors, and they vouch for its own one day alone.
    assert state["prs_cursor"] is not None
    assert state["prs_covered_from"] > datetime.now(UTC) - timedelta(days=1.1)


async def test_a_run_that_fails_between_reviews_and_pull_request_loses_no_action(
    db: Database,
) -> None:
    """A new head and a new review: a run that fails on the PR's own delivery stores neither,
    so the next run still names the push (`synchronize`) and queues the new head."""
    fake = FakeGitHubSync()
    world = GitHubWorld(fake)
    world.open_pr(1, sha="a" * 40)
    with fake.running():
        client = client_for(fake)
        try:
            await sync_once(db, client, REPO, since_days=1)
            world.push(1, "b" * 40)
            world.review(1, "approved", review_id=2001)
            async with db.transaction() as tx:  # the database refuses the PR's delivery once
                await tx.conn.execute(FAIL_PR_DELIVERY)
            with pytest.raises(psycopg.errors.RaiseException, match="refused"):
                await sync_once(db, client, REPO, since_days=1)
            assert "sync:pull_request_review:2001:approved" not in await deliveries(db)
            async with db.transaction() as tx:
                await tx.conn.execute("DROP TRIGGER refuse_pr ON raw_events")
            result = await sync_once(db, client, REPO, since_days=1)
        finally:
            await client.aclose()
    assert result.complete and result.pull_requests_synced == 1 and result.reviews == 1
    async with db.transaction() as tx:
        queued = await tx.all("sync_snapshot_analysis", repository=REPO)
        actions = [(r["event"], r["action"]) for r in await tx.all("sync_snapshot_deliveries")]
    assert [(r["pr_number"], r["head_sha"]) for r in queued] == [(1, "a" * 40), (1, "b" * 40)]
    assert actions[-2:] == [("pull_request_review", "submitted"), ("pull_request", "synchronize")]


FAIL_PR_DELIVERY = """
CREATE FUNCTION refuse_pr() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event = 'pull_request' THEN RAISE EXCEPTION 'refused for the test'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_pr BEFORE INSERT ON raw_events FOR EACH ROW EXECUTE FUNCTION refuse_pr();
"""


async def test_rate_limit_exhaustion_waits_for_the_reset(
    db: Database, github: FakeGitHubSync
) -> None:
    # Four requests left in this window, which resets in about a second.
    github.rate_limit(4, reset_in=1.0)
    client = client_for(github, max_wait=10)
    started = time.monotonic()
    try:
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert result.complete and result.accepted == PRS + PRS + RUNS
    # It saw X-RateLimit-Remaining: 0 and paused instead of hammering into 403s.
    assert client.stats.waited_seconds > 0.5 and time.monotonic() - started >= 0.5
    assert [r.status for r in github.requests].count(403) <= 1


async def test_a_403_rate_limit_waits_and_a_secondary_limit_honours_retry_after(
    db: Database, github: FakeGitHubSync
) -> None:
    github.rate_limit(0, reset_in=0.5)
    github.secondary_limit(0.3, when=lambda r: "/reviews" in r.path)
    client = client_for(github, max_wait=10)
    try:
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert result.complete
    statuses = [r.status for r in github.requests]
    assert statuses[0] == 403 and 429 in statuses
    assert client.stats.waited_seconds >= 0.3 + 0.5


async def test_a_reset_beyond_the_wait_limit_stops_the_run_with_the_reset_time(
    db: Database, github: FakeGitHubSync
) -> None:
    github.rate_limit(0, reset_in=3600)
    client = client_for(github, max_wait=5)
    started = time.monotonic()
    try:
        with pytest.raises(RateLimited) as info:
            await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 2
    assert info.value.reset_in > 3500
    assert "resets in" in str(info.value) and (await counts(db))["raw_events"] == 0


async def test_token_is_sent_as_bearer_and_only_to_the_api_host(
    db: Database, github: FakeGitHubSync
) -> None:
    client = client_for(github, token="t0ken")
    try:
        await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert {r.headers.get("authorization") for r in github.requests} == {"Bearer t0ken"}
    assert {r.headers.get("x-github-api-version") for r in github.requests} == {"2022-11-28"}

    anonymous = client_for(github)
    github.requests.clear()
    try:
        await sync_once(db, anonymous, REPO, since_days=1)
    finally:
        await anonymous.aclose()
    assert all("authorization" not in r.headers for r in github.requests)


async def test_since_limits_the_window(db: Database) -> None:
    from datetime import UTC, datetime, timedelta

    fake = FakeGitHubSync()
    # Derived: a world ten days old, then one fresh PR and run today.
    old = GitHubWorld(fake, start=datetime.now(UTC) - timedelta(days=10))
    populate(old)
    old.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    old.open_pr(9, sha="9" * 40)
    old.run(109, sha="9" * 40, status="in_progress", number=9)
    with fake.running() as url:
        client = GitHubSyncClient(url)
        try:
            result = await sync_once(db, client, REPO, since_days=2)
        finally:
            await client.aclose()
    assert (result.pull_requests, result.runs) == (1, 1)
    assert (await counts(db))["pull_requests"] == 1


async def test_a_token_without_actions_access_still_syncs_pull_requests(
    db: Database, github: FakeGitHubSync
) -> None:
    """A fine-grained token without actions:read: GitHub answers 403 for the runs; pull
    requests and reviews still sync, and the result says why the runs did not."""
    github.fail(403, times=100, when=lambda r: "/actions/runs" in r.path)
    client = client_for(github)
    try:
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert result.complete and result.runs == 0
    assert result.runs_skipped is not None and "403" in result.runs_skipped
    assert "workflow runs skipped" in result.line()
    assert (await counts(db))["pull_requests"] == PRS and (await counts(db))["builds"] == 0


async def test_a_rate_limit_on_the_runs_is_not_taken_for_missing_access(
    db: Database, github: FakeGitHubSync
) -> None:
    github.secondary_limit(0.01, status=403, times=100, when=lambda r: "/actions/runs" in r.path)
    client = client_for(github, max_attempts=2)
    try:
        with pytest.raises(RateLimited):
            await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()


async def test_a_failing_head_listing_does_not_fail_the_sync(
    db: Database, github: FakeGitHubSync
) -> None:
    """The runs of a failed head (listed by sha, for re-runs) are refused or fail: the sync
    still completes, with its cursors and pull requests; the heads are asked about next time."""
    client = client_for(github)
    lines: list[str] = []
    try:
        await sync_once(db, client, REPO, since_days=1)
        github.fail(403, times=100, when=lambda r: "head_sha" in r.query)
        result = await sync_once(db, client, REPO, since_days=1, progress=lines.append)
        assert result.complete and result.error is None and result.runs_skipped is None
        assert result.heads_rechecked == 0 and result.runs == RUNS
        assert any("re-runs not checked" in line and "403" in line for line in lines)
        async with db.transaction() as tx:
            state = await tx.one("sync_state_get", repository=REPO)
        assert state is not None and state["last_error"] is None
        assert state["runs_cursor"] is not None

        github._failures.clear()
        again = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert again.heads_rechecked == 1


async def test_failed_heads_are_rechecked_in_turn(
    db: Database, github: FakeGitHubSync, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More failed heads than a sync rechecks: each sync takes the next ones, so all are seen
    within a few syncs; a closed PR's failed head is not asked about."""
    from flowlens.sync import runner

    world = GitHubWorld(github)
    for n in (6, 7, 8):
        world.open_pr(n, sha=f"{n:x}" * 40)
        world.run(100 + n, sha=f"{n:x}" * 40, status="completed", conclusion="failure", number=n)
    world.close(8)
    failing = {"2" * 40, "6" * 40, "7" * 40}  # open, build failed (PR 2 from populate)
    monkeypatch.setattr(runner, "RERUN_HEADS", 2)
    client = client_for(github)
    asked: list[list[str]] = []
    try:
        await sync_once(db, client, REPO, since_days=1)
        for _ in range(3):
            github.requests.clear()
            result = await sync_once(db, client, REPO, since_days=1)
            asked.append([r.query["head_sha"] for r in github.requests if "head_sha" in r.query])
            assert result.heads_rechecked == 2
    finally:
        await client.aclose()
    assert all(len(set(heads)) == 2 and set(heads) <= failing for heads in asked)
    # Two syncs in a row cover all three, whichever two the first took.
    assert set(asked[0]) | set(asked[1]) == failing
    assert set(asked[1]) | set(asked[2]) == failing


async def test_unknown_repository_and_bad_name(db: Database, github: FakeGitHubSync) -> None:
    client = client_for(github)
    try:
        with pytest.raises(GitHubError, match="404"):
            await sync_once(db, client, "nobody/nothing", since_days=1)
        with pytest.raises(GitHubError, match="bad repository name"):
            await sync_once(db, client, "no-slash", since_days=1)
    finally:
        await client.aclose()


def _env(dsn: str, url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "GITHUB_API_URL": url,
        "LOG_FORMAT": "text",
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
    }


async def test_cli_sync_prints_progress_and_a_summary(
    db: Database, dsn: str, github: FakeGitHubSync
) -> None:
    assert github.url is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "sync", REPO, "--since", "2",
        env=_env(dsn, github.url), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith(f"{REPO}: done; 5 pull request(s) in window, 5 synced")
    assert f"{REPO}: pulls page 3: 5 pull request(s) in window, 5 synced" in err.decode()
    assert (await counts(db))["pull_requests"] == PRS

    github.rate_limit(0, reset_in=3600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "sync", REPO, "--quiet",
        env={**_env(dsn, github.url), "SYNC_MAX_WAIT_SECONDS": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1 and out == b""
    assert "rate limited" in err.decode() and "resets in" in err.decode()


async def test_cli_sync_without_a_repository_explains(dsn: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "sync",
        env=_env(dsn, "http://127.0.0.1:9"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2 and b"SYNC_REPOSITORIES" in err


async def test_the_sync_compares_with_its_own_repository_not_the_names_holder(
    db: Database, github: FakeGitHubSync
) -> None:
    """Another GitHub repository (id 555) holds the name with a newer claim (ingest keeps the
    synced one apart, under a name of its own): the synced PR #2 is compared with nothing
    stored of its own repository, so it is `opened`, not a `synchronize` of the other
    repository's PR #2."""
    from flowlens.ingest.store import record_delivery
    from tests.conftest import load_fixture
    from tests.helpers import variant

    other = variant(load_fixture("pull_request/opened.payload.json"),
                    **{"repository.id": 555, "repository.updated_at": "2099-01-01T00:00:00Z",
                       "pull_request.head.sha": "f" * 40})  # fmt: skip
    await record_delivery(db, "other-555", "pull_request", other, "{}")
    client = client_for(github)
    try:
        result = await sync_once(db, client, REPO, since_days=1)
    finally:
        await client.aclose()
    assert result.complete and result.error is None
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT r.github_id, p.status_pr, p.head_sha FROM pull_requests p"
            " JOIN repositories r ON r.id = p.repository_id WHERE p.number = 2"
            " ORDER BY r.github_id"
        )
        rows = await cur.fetchall()
    assert rows == [(555, "opened", "f" * 40), (186853002, "opened", "2" * 40)]
