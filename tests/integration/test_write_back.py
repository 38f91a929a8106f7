"""Write-back: from a webhook to a completed "FlowLens risk" check on the pull request (App
mode) or a commit status (token mode), with the real clients against a local fake GitHub that
verifies the App's JWT and the installation tokens. Also: the installation webhooks through the
real ingest function, the quality gate, re-runs GitHub asks for, checks that are never left in
progress, rate limits, and failed write-backs listed and retried with `flowlens checks`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.github.app import AppTokens
from flowlens.github.checks import check_writer
from flowlens.insights import GitHubFilesClient
from flowlens.insights.models import AnalysisError, ChangeContext, Insight
from flowlens.installations import InstallationLookup, token_source
from flowlens.poller.service import PollerService
from flowlens.poller.worker import Poller
from flowlens.settings import PollerSettings
from flowlens.workqueue import CheckQueue
from tests.conftest import load_fixture
from tests.fakes import github_file
from tests.fakes.fake_github_app import FakeGitHubApp
from tests.helpers import variant
from tests.integration.conftest import Sender
from tests.integration.test_cli import flowlens
from tests.integration.test_poller import REPO, CountingAnalyser, deliver, pr_delivery

INSTALLATION = 957387  # the installation fixtures' id; they cover Codertocat/Hello-World
DASHBOARD = "https://flowlens.example/dash"
BIG = [github_file(f"{d}/mod{i}.py", additions=400, deletions=40)
       for d in ("core", "api", "auth", "db") for i in range(3)]  # fmt: skip
SMALL = [github_file("docs/readme.md", additions=1)]


@pytest.fixture
def fake() -> Iterator[FakeGitHubApp]:
    app = FakeGitHubApp()
    app.install(INSTALLATION, REPO)
    with app.running():
        yield app


def app_settings(fake: FakeGitHubApp, dsn: str, **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {
        "database_url": dsn, "poll_interval_seconds": 0.05, "github_api_url": fake.url,
        "github_app_id": fake.app_id, "github_app_private_key": fake.private_pem,
        "dashboard_url": DASHBOARD,
    }  # fmt: skip
    base.update(overrides)
    return PollerSettings(**base)


def token_settings(fake: FakeGitHubApp, dsn: str, **overrides: Any) -> PollerSettings:
    fake.static_tokens.add("t0ken")
    base: dict[str, Any] = {
        "database_url": dsn, "poll_interval_seconds": 0.05, "github_api_url": fake.url,
        "github_token": "t0ken", "dashboard_url": DASHBOARD,
    }  # fmt: skip
    base.update(overrides)
    return PollerSettings(**base)


async def opened(db: Database, fake: FakeGitHubApp, number: int, sha: str,
                 files: list[dict[str, Any]], minute: int = 0) -> None:  # fmt: skip
    fake.files.add_pull(REPO, number, files)
    await deliver(db, "pull_request", pr_delivery(number, sha, "opened", minute),
                  f"pr-{number}-{sha[:6]}")  # fmt: skip


async def analyse(db: Database, s: PollerSettings, analyser: Any = None) -> None:
    """One poller scan with the product's files client and credentials."""
    tokens = token_source(s, db)
    files = GitHubFilesClient(s.github_api_url, None, tokens=tokens, retry_delay=0.01)
    try:
        await Poller(db, s, analyser or CountingAnalyser(), files).scan_once()
    finally:
        await files.aclose()
        if isinstance(tokens, AppTokens):
            await tokens.aclose()


async def write(db: Database, s: PollerSettings, passes: int = 2) -> list[dict[str, Any]]:
    """Write-back passes as the poller's duty runs them; their summaries."""
    writer = check_writer(db, s, token_source(s, db), timeout_seconds=0.5)
    assert writer is not None
    try:
        return [(await writer.pass_once()).as_dict() for _ in range(passes)]
    finally:
        await writer.aclose()


async def analyse_and_write(db: Database, s: PollerSettings, analyser: Any = None,
                            passes: int = 2) -> list[dict[str, Any]]:  # fmt: skip
    await analyse(db, s, analyser)
    return await write(db, s, passes)


async def levels(db: Database) -> dict[str, str]:
    async with db.transaction() as tx:
        cur = await tx.conn.execute("SELECT commit_sha, risk_level FROM insights")
        return {r["commit_sha"]: r["risk_level"] for r in await cur.fetchall()}


async def write_rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT id, head_sha, wanted, posted, status, attempts, last_error, external_id, "
            "EXTRACT(EPOCH FROM next_attempt_at - now())::float8 AS due_in "
            "FROM check_writes ORDER BY id"
        )
        return list(await cur.fetchall())


async def test_the_installation_webhooks_keep_the_installed_repositories(
    db: Database, sender: Sender
) -> None:
    lookup = InstallationLookup(db)
    created = load_fixture("installation/created.payload.json")
    assert (await sender.send("installation", created)).status_code == 202
    assert await lookup.installation_of(REPO) == INSTALLATION
    # A repository added to the installation later.
    added = load_fixture("installation_repositories/added.payload.json")
    assert (await sender.send("installation_repositories", added)).status_code == 202
    assert await lookup.installation_of("Codertocat/Space") == INSTALLATION
    # ... and removed again.
    removed = variant(added, action="removed", repositories_removed=added["repositories_added"],
                      repositories_added=[])  # fmt: skip
    assert (await sender.send("installation_repositories", removed)).status_code == 202
    assert await lookup.installation_of("Codertocat/Space") is None
    # Suspended: no token is asked for its repositories; unsuspended: they are back.
    suspend = variant(created, action="suspend")
    assert (await sender.send("installation", suspend)).status_code == 202
    with pytest.raises(Exception, match="suspended or deleted"):
        await lookup.installation_of(REPO)
    # (The unsuspend fixture is another installation's: the same event for this one.)
    unsuspend = variant(created, action="unsuspend")
    assert (await sender.send("installation", unsuspend)).status_code == 202
    assert await lookup.installation_of(REPO) == INSTALLATION
    # Deleted: the repositories are no longer covered.
    deleted = variant(load_fixture("installation/deleted.payload.json"),
                      installation=created["installation"],
                      repositories=created["repositories"])  # fmt: skip
    assert (await sender.send("installation", deleted)).status_code == 202
    assert await lookup.installation_of(REPO) is None


async def test_story_webhook_to_a_completed_check_gate_off(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    """Through the poller service as deployed: installation tokens shared by the files client
    and the write-back, the check in progress first, then completed neutral with the read."""
    sha = "1" * 40
    await opened(db, fake, 2, sha, BIG)
    service = PollerService(app_settings(fake, dsn))
    try:
        summary = await service.invoke(budget_seconds=1.5)
    finally:
        await service.close()
    assert summary["insights"] == 1 and summary["checks"]["posted"] >= 1, summary
    (run,) = fake.runs_for(REPO, sha)
    assert run.name == "FlowLens risk" and run.history[0] == "in_progress"
    assert run.status == "completed" and run.conclusion == "neutral"
    level = (await levels(db))[sha]
    assert run.output["title"].startswith(f"{level.capitalize()} risk (defect probability ")
    summary_text = run.output["summary"]
    assert "**Recommendation:**" in summary_text and "**Top drivers**" in summary_text
    assert "lines added" in summary_text
    assert "**Key changes**" in run.output["text"]
    link = f"{DASHBOARD}/?repo={REPO}#pr-Codertocat_002fHello-World-2"
    assert run.details_url == link and link in run.output["text"]
    # One token for the files and the check: exchanged once, with a JWT GitHub verified.
    assert len(fake.calls("POST", "/access_tokens")) == 1 and fake.jwt_claims
    files_call = fake.calls("GET", "/pulls/2/files")[0]
    assert files_call.authorization is not None and files_call.authorization.startswith(
        "Bearer ghs_"
    )
    assert [r["status"] for r in await write_rows(db)] == ["done"]


async def test_story_with_the_gate_on(db: Database, dsn: str, fake: FakeGitHubApp) -> None:
    big, small = "2" * 40, "3" * 40
    await opened(db, fake, 2, big, BIG)
    await opened(db, fake, 3, small, SMALL, minute=1)
    await analyse_and_write(db, app_settings(fake, dsn, check_fail_at="medium"))
    read = await levels(db)
    assert read[big] in ("medium", "high") and read[small] == "low", read
    assert [r.conclusion for r in fake.runs_for(REPO, big)] == ["failure"]
    assert [r.conclusion for r in fake.runs_for(REPO, small)] == ["success"]
    (gated,) = fake.runs_for(REPO, big)
    assert "Quality gate: fails at medium risk or above" in gated.output["summary"]


async def test_token_mode_posts_one_commit_status_per_head(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    big, small = "4" * 40, "5" * 40
    await opened(db, fake, 2, big, BIG)
    await opened(db, fake, 3, small, SMALL, minute=1)
    await analyse_and_write(db, token_settings(fake, dsn, check_fail_at="medium"))
    assert fake.check_runs == {} and fake.calls("POST", "/access_tokens") == []
    by_sha = {sha: [s for s in fake.statuses if s.sha == sha] for sha in (big, small)}
    assert [s.state for s in by_sha[big]] == ["pending", "failure"]
    assert [s.state for s in by_sha[small]] == ["pending", "success"]
    final = by_sha[small][-1]
    assert final.context == "FlowLens risk" and final.description.startswith("Low risk")
    assert final.target_url == f"{DASHBOARD}/?repo={REPO}#pr-Codertocat_002fHello-World-3"
    assert all(r.authorization == "Bearer t0ken" for r in fake.requests)


async def test_a_new_head_gets_its_own_check_and_a_rerun_updates_the_same_one(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    s = app_settings(fake, dsn)
    first, second = "6" * 40, "7" * 40
    await opened(db, fake, 2, first, SMALL)
    await analyse_and_write(db, s)
    await deliver(db, "pull_request", pr_delivery(2, second, "synchronize", 5), "sync-2")
    analyser = CountingAnalyser()
    await analyse_and_write(db, s, analyser)
    assert len(fake.runs_for(REPO, first)) == 1 and len(fake.runs_for(REPO, second)) == 1
    (run,) = fake.runs_for(REPO, second)
    creates = len(fake.calls("POST", "/check-runs"))
    # GitHub's "Re-run" on FlowLens's check: the head is analysed anew, the same check updated.
    rerun = variant(
        load_fixture("check_run/rerequested.payload.json"),
        repository=pr_delivery(2, second, "opened", 0)["repository"],
        **{"check_run.name": "FlowLens risk", "check_run.head_sha": second,
           "check_run.pull_requests": [{"number": 2, "id": 191568743,
                                        "head": {"sha": second, "ref": "changes"},
                                        "base": {"ref": "master",
                                                 "repo": {"id": 186853002}}}]},
    )  # fmt: skip
    await deliver(db, "check_run", rerun, "rerun-1")
    await analyse_and_write(db, s, analyser)
    assert analyser.calls[(REPO, 2, second)] == 2  # analysed again, not skipped as known
    assert len(fake.calls("POST", "/check-runs")) == creates  # no second check
    assert fake.runs_for(REPO, second) == [run] and run.history[-2:] == ["in_progress", "completed"]
    async with db.transaction() as tx:
        count = await tx.conn.execute("SELECT count(*) AS n FROM builds")
        builds = (await count.fetchone())["n"]
    assert builds == 0  # FlowLens's own check is not a build of the PR


async def test_a_failed_analysis_completes_the_check_neutral_with_the_reason(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    class Broken(CountingAnalyser):
        async def analyse(self, ctx: ChangeContext) -> Insight:
            raise AnalysisError("the analyser cannot read this change", retryable=False)

    sha = "8" * 40
    await opened(db, fake, 2, sha, SMALL)
    await analyse_and_write(db, app_settings(fake, dsn), Broken())
    (run,) = fake.runs_for(REPO, sha)
    assert run.status == "completed" and run.conclusion == "neutral"
    assert "the analyser cannot read this change" in run.output["summary"]


async def test_a_check_is_never_left_in_progress(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    """An analysis that never ends (its poller died mid-way): past CHECK_TIMEOUT_SECONDS the
    check is completed neutral, saying why."""
    s = app_settings(fake, dsn, check_timeout_seconds=0.2)
    sha = "9" * 40
    await opened(db, fake, 2, sha, SMALL)
    async with db.transaction() as tx:
        cur = await tx.conn.execute("SELECT * FROM pull_requests WHERE number = 2")
        pr = await cur.fetchone()
        assert pr is not None
        await CheckQueue.want_started(tx, pr, "check_run")
    await write(db, s, passes=1)
    (run,) = fake.runs_for(REPO, sha)
    assert run.status == "in_progress"
    await asyncio.sleep(0.3)
    (summary,) = await write(db, s, passes=1)
    assert summary["expired"] == 1 and summary["posted"] == 1
    assert fake.runs_for(REPO, sha) == [run] and run.conclusion == "neutral"
    assert "did not finish within 0.2 s" in run.output["summary"]


async def test_rate_limits_delay_the_write_back_never_the_analysis(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    s = app_settings(fake, dsn)
    sha = "b" * 40
    await opened(db, fake, 2, sha, SMALL)
    fake.secondary_limit(5, times=50, only="/check-runs")  # every check-run request for now
    summaries = await analyse_and_write(db, s, passes=1)
    assert sha in await levels(db)  # analysed (with its files) while the write-back waits
    assert summaries[0]["retried"] == 1 and fake.check_runs == {}
    (row,) = await write_rows(db)
    assert row["status"] == "pending" and "403" in row["last_error"]
    assert row["due_in"] >= 5  # not before GitHub's Retry-After
    assert row["attempts"] == 0  # a rate limit spends no attempt
    fake.clear_faults()
    async with db.transaction() as tx:  # time passes
        await tx.conn.execute("UPDATE check_writes SET next_attempt_at = now()")
    assert (await write(db, s, passes=1))[0]["posted"] == 1
    (run,) = fake.runs_for(REPO, sha)
    assert run.status == "completed" and sha in await levels(db)


async def test_a_write_back_that_failed_for_good_is_listed_and_retried(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    s = app_settings(fake, dsn)
    sha = "c" * 40
    await deliver(db, "installation", load_fixture("installation/created.payload.json"), "i-1")
    await opened(db, fake, 2, sha, SMALL)
    # The installation no longer covers the repository at GitHub: 403, which waiting won't fix.
    fake.installations[INSTALLATION].discard(REPO)
    summaries = await analyse_and_write(db, s, passes=1)
    assert summaries[0]["failed"] == 1, summaries
    code, out, err = await flowlens("checks", "failed", DATABASE_URL=dsn)
    assert code == 0, err
    (line,) = out.splitlines()
    assert f"{REPO}#2" in line and sha[:12] in line and "403" in line
    write_id = line.split("\t")[0]
    fake.installations[INSTALLATION].add(REPO)
    code, out, err = await flowlens("checks", "retry", write_id, DATABASE_URL=dsn)
    assert code == 0 and f"requeued 1 write-back(s): [{write_id}]" in out, err
    code, _, err = await flowlens("checks", "retry", write_id, DATABASE_URL=dsn)
    assert code == 1 and "has not failed" in err
    assert (await write(db, s, passes=1))[0]["posted"] == 1
    assert [r.conclusion for r in fake.runs_for(REPO, sha)] == ["neutral"]
    code, out, _ = await flowlens("checks", "failed", DATABASE_URL=dsn)
    assert code == 0 and out.strip() == "no failed write-backs"


async def test_without_credentials_nothing_is_written_back(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    s = PollerSettings(database_url=dsn, poll_interval_seconds=0.05,
                       github_api_url=fake.url)  # fmt: skip
    assert s.write_back is None
    sha = "d" * 40
    await opened(db, fake, 2, sha, SMALL)
    await analyse(db, s)
    assert sha in await levels(db) and await write_rows(db) == []
    assert fake.check_runs == {} and fake.statuses == []


async def test_a_send_whose_answer_was_lost_updates_the_run_it_made(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    """GitHub created the check run but the answer never came back (a timeout): the next
    attempt finds that run and completes it, rather than making a second one."""
    s = app_settings(fake, dsn)
    sha = "e" * 40
    await opened(db, fake, 2, sha, SMALL)
    await analyse(db, s)
    fake.lose_answer(1.0, only="/check-runs")
    (first,) = await write(db, s, passes=1)  # the writer's client gives up after 0.5 s
    assert first["retried"] == 1, first
    await asyncio.sleep(0.6)  # the fake has made the run meanwhile
    async with db.transaction() as tx:
        await tx.conn.execute("UPDATE check_writes SET next_attempt_at = now()")
    (second,) = await write(db, s, passes=1)
    assert second["posted"] == 1, second
    (run,) = fake.runs_for(REPO, sha)
    assert run.status == "completed" and len(fake.calls("POST", "/check-runs")) == 1
    assert fake.calls("GET", f"/commits/{sha}/check-runs")[-1].query["app_id"] == str(fake.app_id)


async def test_a_check_run_deleted_at_github_is_made_anew(
    db: Database, dsn: str, fake: FakeGitHubApp
) -> None:
    s = app_settings(fake, dsn)
    sha = "f" * 40
    await opened(db, fake, 2, sha, SMALL)
    await analyse_and_write(db, s)
    fake.check_runs.clear()  # GitHub deleted it (its suite went, say)
    async with db.transaction() as tx:  # ... and the head is to be shown again
        cur = await tx.conn.execute("SELECT * FROM pull_requests WHERE number = 2")
        pr = await cur.fetchone()
        assert pr is not None
        await CheckQueue.want_started(tx, pr, "check_run")
    summaries = await write(db, s, passes=2)
    assert [x["retried"] for x in summaries] == [1, 0] and summaries[1]["posted"] == 1
    (run,) = fake.runs_for(REPO, sha)
    assert run.status == "in_progress"  # a new run, shown as the check now stands
    assert [r["status"] for r in await write_rows(db)] == ["done"]


async def test_a_failed_send_of_an_old_want_never_fails_the_newer_one(db: Database) -> None:
    """The analysis completed the head while its in-progress send was under way; that send then
    failed for good: the completion is still sent, at once."""
    await deliver(db, "pull_request", pr_delivery(2, "1" * 40, "opened", 0), "d")
    queue = CheckQueue("w1", lease_seconds=60)
    async with db.transaction() as tx:
        cur = await tx.conn.execute("SELECT * FROM pull_requests WHERE number = 2")
        pr = await cur.fetchone()
        assert pr is not None
        await CheckQueue.want_started(tx, pr, "check_run")
        (claim,) = await queue.claim(tx, 10)
        await CheckQueue.want_completed(tx, pr["repository_id"], pr["head_sha"],
                                        insight_id=None, reason="x")  # fmt: skip
        await queue.dead_letter(tx, claim, error="403 on POST /check-runs")
    (row,) = await write_rows(db)
    assert row["status"] == "pending" and row["wanted"] == "completed" and row["due_in"] <= 0
    async with db.transaction() as tx:  # the same for a retry: not delayed by the old send
        (claim,) = await queue.claim(tx, 10)
        await CheckQueue.want_started(tx, pr, "check_run")
        await queue.retry(tx, claim, error="502", delay=600)
    (row,) = await write_rows(db)
    assert row["status"] == "pending" and row["due_in"] <= 0
