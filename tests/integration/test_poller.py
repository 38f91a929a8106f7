"""The poller: leases, coalescing, exactly-once analysis, failures and their recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from typing import Any

import httpx
import pytest

from flowlens.db import Database
from flowlens.ingest.store import record_delivery
from flowlens.insights.builtin import RiskModelAnalyser
from flowlens.insights.models import AnalysisError, ChangeContext, Insight
from flowlens.poller.worker import Poller
from flowlens.settings import PollerSettings
from tests.conftest import load_fixture
from tests.fakes.fake_gemini import FakeGemini, Reply
from tests.helpers import variant

REPO = "Codertocat/Hello-World"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CountingAnalyser:
    """The built-in analyser, counting calls per (repository, PR, sha) and optionally slow."""

    name = "risk-model"

    def __init__(self, delay: float = 0.0, fail: str | None = None) -> None:
        self.calls: Counter[tuple[str, int, str]] = Counter()
        self.delay = delay
        self.fail = fail
        self.contexts: list[ChangeContext] = []

    async def analyse(self, ctx: ChangeContext) -> Insight:
        self.calls[(ctx.repository, ctx.pr_number, ctx.head_sha)] += 1
        self.contexts.append(ctx)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise AnalysisError(self.fail, retryable=True)
        return await RiskModelAnalyser().analyse(ctx)


def settings(**overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {"database_url": "postgresql://unused", "poll_interval_seconds": 0.05}
    base.update(overrides)
    return PollerSettings(**base)


def pr_delivery(number: int, sha: str, action: str, minute: int) -> dict[str, Any]:
    """Derived from the opened fixture: another PR number / head sha / action / time."""
    return variant(
        load_fixture("pull_request/opened.payload.json"),
        action=action,
        number=number,
        **{
            "pull_request.number": number,
            "pull_request.head.sha": sha,
            "pull_request.updated_at": f"2019-05-15T{16 + minute // 60:02d}:{minute % 60:02d}:00Z",
            "pull_request.title": f"PR {number} at {minute}",
        },
    )


async def deliver(db: Database, event: str, payload: dict[str, Any], delivery: str) -> None:
    import json

    await record_delivery(db, delivery, event, payload, json.dumps(payload))


async def pending(db: Database) -> int:
    async with db.transaction() as tx:
        return int(await tx.value("pending_event_count"))


async def test_many_events_for_one_pr_cost_one_analysis_of_the_newest_head(db: Database) -> None:
    await deliver(db, "pull_request", pr_delivery(2, "a" * 40, "opened", 0), "e1")
    await deliver(db, "pull_request", pr_delivery(2, "b" * 40, "synchronize", 1), "e2")
    await deliver(db, "pull_request", pr_delivery(2, "c" * 40, "synchronize", 2), "e3")
    review = load_fixture("pull_request_review/submitted.payload.json")
    await deliver(db, "pull_request_review", review, "e4")
    await deliver(db, "ping", load_fixture("ping/payload.json"), "e5")
    analyser = CountingAnalyser()
    summary = await Poller(db, settings(), analyser).scan_once()
    assert analyser.calls == Counter({(REPO, 2, "c" * 40): 1})
    assert summary.events == 5 and summary.insights == 1 and summary.ai_calls == 1
    assert await pending(db) == 0
    ctx = analyser.contexts[0]
    assert ctx.title == "PR 2 at 2" and ctx.author == "Codertocat" and ctx.branch == "changes"
    async with db.transaction() as tx:
        insights = await tx.all("insights_for_pr", repository=REPO, number=2)
        feed = await tx.all("change_feed_for", repository=REPO, number=2)
        pr = await tx.one("pull_request_by_number", repository=REPO, number=2)
    assert [i["commit_sha"] for i in insights] == ["c" * 40]
    assert pr is not None and pr["risk_level"] == insights[0]["risk_level"]
    last = feed[-1]
    assert last["kind"] == "insight"
    assert last["payload"]["data"]["ai_insight"]["commit_sha"] == "c" * 40
    assert last["payload"]["data"]["pull_request"]["riskLevel"] == insights[0]["risk_level"]

    # The same head again (e.g. an edit) is never analysed twice.
    await deliver(db, "pull_request", pr_delivery(2, "c" * 40, "edited", 3), "e6")
    summary = await Poller(db, settings(), analyser).scan_once()
    assert summary.ai_calls == 0 and sum(analyser.calls.values()) == 1


async def test_two_pollers_over_500_events_analyse_each_head_exactly_once(
    db: Database, dsn: str
) -> None:
    heads = {}
    for i in range(500):
        number, step = 1 + i % 100, i // 100
        sha = f"{number:04d}{step:036d}"
        action = "opened" if step == 0 else "synchronize"
        await deliver(db, "pull_request", pr_delivery(number, sha, action, step), f"ev-{i}")
        heads[number] = sha
    analyser = CountingAnalyser(delay=0.005)
    s = settings(poll_batch_size=37, ai_concurrency=4)
    async with Database(dsn, min_size=0, max_size=10) as db2:
        pollers = [Poller(db, s, analyser, owner="p1"), Poller(db2, s, analyser, owner="p2")]

        async def drain(p: Poller) -> int:
            events = 0
            for _ in range(400):
                summary = await p.scan_once()
                events += summary.events
                if await pending(db) == 0:
                    break
                if summary.events == 0:
                    await asyncio.sleep(0.02)
            return events

        counts = await asyncio.gather(*(drain(p) for p in pollers))
    assert await pending(db) == 0
    assert all(n > 0 for n in counts), counts  # both really worked
    # Every PR's newest head analysed exactly once; never an older, superseded head twice.
    assert max(analyser.calls.values()) == 1
    final = {(REPO, n, sha) for n, sha in heads.items()}
    assert final <= set(analyser.calls)
    async with db.transaction() as tx:
        for number, sha in list(heads.items())[:10]:
            rows = await tx.all("insights_for_pr", repository=REPO, number=number)
            assert sha in [r["commit_sha"] for r in rows]


async def test_a_head_back_on_an_analysed_commit_shows_that_commits_insight(
    db: Database,
) -> None:
    """A force-push back to a commit analysed before costs no new call, and its insight (and
    risk, and files) is the PR's latest again, announced on the feed."""
    from flowlens.insights.models import FileChange

    class Files:  # what GitHub lists for the PR's head at the moment
        paths: list[str] = []

        async def list_files(self, repository: str, number: int) -> list[FileChange]:
            return [FileChange(path=p, status="modified", additions=1, deletions=0)
                    for p in self.paths]  # fmt: skip

    a, b = "a" * 40, "b" * 40
    analyser = CountingAnalyser()
    files = Files()
    poller = Poller(db, settings(), analyser, files)
    story = ((a, "opened", ["src/a.py"]), (b, "synchronize", ["src/b.py", "infra/main.tf"]),
             (a, "synchronize", ["src/a.py"]))  # fmt: skip
    for n, (sha, action, paths) in enumerate(story):
        files.paths = paths
        await deliver(db, "pull_request", pr_delivery(5, sha, action, n), f"back-{n}")
        await poller.scan_once()
    assert sum(analyser.calls.values()) == 2  # a and b, once each
    async with db.transaction() as tx:
        pr = await tx.one("pull_request_by_number", repository=REPO, number=5)
        feed = await tx.all("change_feed_for", repository=REPO, number=5)
    assert pr is not None and pr["head_sha"] == a
    assert pr["latest_insight"]["commit_sha"] == a
    assert pr["files_changed"] == ["src/a.py"]  # not b's list
    last = feed[-1]["payload"]["data"]
    assert last["ai_insight"]["commit_sha"] == a and last["pull_request"]["commitSha"] == a
    assert last["pull_request"]["riskLevel"] == pr["risk_level"]


async def test_a_failure_while_restoring_an_earlier_insight_is_retried(db: Database) -> None:
    """The head goes back to an analysed commit and restoring its insight fails (here the
    files lookup raises): the events are retried and counted like a failed analysis, not
    left to cycle unseen."""
    from flowlens.insights.models import FileChange

    class Files:
        broken = False

        async def list_files(self, repository: str, number: int) -> list[FileChange]:
            if self.broken:
                raise RuntimeError("files client bug")
            return []

    files = Files()
    poller = Poller(db, settings(), CountingAnalyser(), files)
    a, b = "a" * 40, "b" * 40
    for n, (sha, action) in enumerate(((a, "opened"), (b, "synchronize"), (a, "synchronize"))):
        files.broken = n == 2
        await deliver(db, "pull_request", pr_delivery(7, sha, action, n), f"restore-{n}")
        summary = await poller.scan_once()
    assert summary.retries == 1 and "files client bug" in summary.errors[0], summary
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="restore-2")
    assert row is not None and row["attempts"] == 1 and "files client bug" in row["last_error"]


async def test_failed_analysis_retries_then_fails_then_can_be_requeued(
    db: Database, dsn: str
) -> None:
    await deliver(db, "pull_request", pr_delivery(7, "f" * 40, "opened", 0), "fails")
    analyser = CountingAnalyser(fail="gemini: 500 INTERNAL after 4 attempts")
    poller = Poller(db, settings(max_attempts=2), analyser)
    first = await poller.scan_once()
    assert first.retries == 1 and first.failures == 0
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="fails")
    assert row is not None and not row["failed"] and "500" in row["last_error"]
    # Not claimable before its backoff ends.
    assert (await poller.scan_once()).events == 0
    await _expire_backoff(db, "fails")
    second = await poller.scan_once()
    assert second.failures == 1
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="fails")
    assert row is not None and row["failed"] and row["attempts"] == 2

    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "text"}
    listed = await _cli(env, "events", "failed")
    assert "fails" not in listed  # ids, not delivery ids, are listed
    assert f"{row['id']}\tpull_request.opened\t{REPO}#7" in listed and "500 INTERNAL" in listed
    assert "requeued 1 event(s)" in await _cli(env, "events", "retry", str(row["id"]))
    analyser.fail = None
    third = await poller.scan_once()
    assert third.insights == 1
    assert "no failed events" in await _cli(env, "events", "failed")


async def test_a_quota_answer_sets_when_the_event_is_tried_again(db: Database) -> None:
    """Gemini's 429 asks for 40 s (RetryInfo): the event waits at least that long, rather than
    the first backoff's second or two, which would only pay for another 429."""
    from flowlens.insights.gemini import GeminiAnalyser

    await deliver(db, "pull_request", pr_delivery(70, "7" * 40, "opened", 0), "quota")
    gemini = FakeGemini(default=Reply.error(429, retry_delay="40s"))
    with gemini.running() as url:
        analyser = GeminiAnalyser(
            "k", "gemini-2.5-flash", timeout_seconds=5, max_attempts=1, base_url=url
        )
        try:
            summary = await Poller(db, settings(), analyser).scan_once()
        finally:
            await analyser.aclose()
    assert summary.retries == 1 and "429" in summary.errors[0]
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT EXTRACT(EPOCH FROM next_attempt_at - now()) AS wait FROM raw_events"
            " WHERE delivery_id = 'quota'"
        )
        row = await cur.fetchone()
    assert row is not None and 35 < float(row["wait"]) <= 40


async def test_a_full_batch_is_followed_by_another_scan_at_once(db: Database) -> None:
    """A backlog is worked through within one invocation, not one batch per interval."""
    for n in range(1, 7):
        await deliver(db, "pull_request", pr_delivery(20 + n, f"{n:040x}", "opened", n), f"b-{n}")
    poller = Poller(db, settings(poll_batch_size=2, poll_interval_seconds=30), CountingAnalyser())
    total = await poller.run(budget_seconds=20)
    assert (total.scans, total.events, total.insights) == (4, 6, 6)  # 2 + 2 + 2, then none
    assert await pending(db) == 0


async def test_an_analyser_that_crashes_loses_no_event(db: Database) -> None:
    """Not an AnalysisError but a bug: the events are released with the error, to retry."""

    class Crashing(CountingAnalyser):
        async def analyse(self, ctx: ChangeContext) -> Insight:
            raise RuntimeError("analyser bug")

    await deliver(db, "pull_request", pr_delivery(8, "e" * 40, "opened", 0), "crash")
    summary = await Poller(db, settings(), Crashing()).scan_once()
    assert summary.retries == 1 and summary.insights == 0
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="crash")
    assert row is not None and not row["processed"] and not row["failed"]
    assert "analyser bug" in row["last_error"]


async def _expire_backoff(db: Database, delivery: str) -> None:
    """Tests only: pretend the retry delay has passed."""
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id=delivery)
        assert row is not None
        await tx.execute(
            "work_events_release", ids=[row["id"]], owner=await _owner(db, delivery),
            delay_seconds=-1, error=None, refund=0,
        )  # fmt: skip


async def _owner(db: Database, delivery: str) -> str:
    async with db.transaction() as tx:
        return str(await tx.value("raw_event_owner", delivery_id=delivery))


async def _cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def kill_poll_mid_ai_calls(
    db: Database, dsn: str, gemini_delay: float, **env_extra: str
) -> None:
    """Five PRs delivered; `flowlens poll` runs until all five AI calls hang, then SIGKILL."""
    for n in range(1, 6):
        await deliver(db, "pull_request", pr_delivery(n, f"{n:040d}", "opened", 0), f"k{n}")
    gemini = FakeGemini(default=Reply.answer(risk_level="high"), delay=gemini_delay)
    with gemini.running() as url:
        env = {
            **os.environ, "DATABASE_URL": dsn, "GEMINI_API_KEY": "fake-key",
            "GOOGLE_GEMINI_BASE_URL": url, "GITHUB_API_URL": "",
            "LOG_FORMAT": "text", "POLL_INTERVAL_SECONDS": "0.1", **env_extra,
        }  # fmt: skip
        if "LEASE_SECONDS" not in env_extra:
            env.pop("LEASE_SECONDS", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowlens", "poll", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(600):
                if len(gemini.calls) >= 5:
                    break
                await asyncio.sleep(0.05)
            assert len(gemini.calls) >= 5, "the first poller never reached the AI calls"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()


async def test_poller_killed_mid_batch_loses_nothing(db: Database, dsn: str) -> None:
    await kill_poll_mid_ai_calls(db, dsn, 30.0, LEASE_SECONDS="1")
    assert await pending(db) == 5  # claimed, not processed: nothing lost
    await asyncio.sleep(1.2)  # the lease ends
    analyser = CountingAnalyser()
    summary = await Poller(db, settings(), analyser).scan_once()
    assert summary.insights == 5 and await pending(db) == 0


async def test_function_returns_json_summary(db: Database, dsn: str, monkeypatch) -> None:
    from functions_framework.aio import create_asgi_app

    await deliver(db, "pull_request", pr_delivery(3, "d" * 40, "opened", 0), "fn")
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("POLL_BUDGET_SECONDS", "0.3")
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "0.1")
    monkeypatch.setenv("GITHUB_API_URL", "")
    app = create_asgi_app(target="poll", source=os.path.join(ROOT, "functions/poller/main.py"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://poller"
    ) as client:
        resp = await client.post("/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["scans"] >= 2 and body["events"] == 1 and body["insights"] == 1
    assert body["ai_calls"] == 1 and body["failures"] == 0
    async with db.transaction() as tx:
        rows = await tx.all("insights_for_pr", repository=REPO, number=3)
    assert rows[0]["model"] == "risk-model"


async def test_no_ai_call_starts_after_the_budget(db: Database) -> None:
    """Calls queued for an AI slot when the budget ends are given back, attempts refunded,
    for the next invocation (which analyses them)."""
    for n in range(4):
        await deliver(db, "pull_request", pr_delivery(40 + n, f"{n:040x}", "opened", n), f"q-{n}")
    slow = CountingAnalyser(delay=1.0)
    # One slot: calls start at about 0 s and 1 s; the next two would start past 1.5 s.
    poller = Poller(db, settings(ai_concurrency=1), slow)
    first = await poller.run(1.5)
    assert (first.ai_calls, first.insights, first.deferred) == (2, 2, 2), first
    async with db.transaction() as tx:
        rows = [await tx.one("raw_event_by_delivery", delivery_id=f"q-{n}") for n in range(4)]
    waiting = [r for r in rows if r is not None and not r["processed"]]
    assert len(waiting) == 2 and all(r["attempts"] == 0 for r in waiting)
    second = await Poller(db, settings(), CountingAnalyser()).run(0.0)
    assert second.insights == 2 and await pending(db) == 0


async def test_a_call_under_way_is_given_up_after_the_overrun_and_counts_as_an_attempt(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invocation ends within its budget plus OVERRUN_SECONDS (kept below the function's
    timeout), whatever the AI does. The call given up counts as an attempt, so an AI that
    keeps hanging ends in the dead letters after MAX_ATTEMPTS invocations instead of being
    called (and paid for) every minute."""
    import time

    from flowlens.poller import worker

    monkeypatch.setattr(worker, "OVERRUN_SECONDS", 0.3)
    await deliver(db, "pull_request", pr_delivery(50, "5" * 40, "opened", 0), "hangs")
    hanging = CountingAnalyser(delay=30)
    s = settings(max_attempts=2, gemini_timeout_seconds=0.3)  # the call outlasts a timeout
    started = time.monotonic()
    summary = await Poller(db, s, hanging).run(1.0)
    # A loose bound: the call would take 30 s.
    assert time.monotonic() - started < 10
    assert (summary.ai_calls, summary.insights, summary.retries) == (1, 0, 1), summary
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="hangs")
    assert row is not None and not row["processed"] and row["attempts"] == 1
    assert "given up" in row["last_error"]
    await _expire_backoff(db, "hangs")
    second = await Poller(db, s, hanging).run(1.0)
    assert (second.ai_calls, second.failures) == (1, 1), second
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="hangs")
    assert row is not None and row["failed"] and sum(hanging.calls.values()) == 2


async def test_a_call_that_started_late_is_not_counted_against_its_events(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call cut off before it had one whole AI timeout (it started near the end of the
    budget) is no fault of the AI: its events go back refunded, however often that happens."""
    from flowlens.poller import worker

    monkeypatch.setattr(worker, "OVERRUN_SECONDS", 0.3)
    await deliver(db, "pull_request", pr_delivery(52, "8" * 40, "opened", 0), "late")
    s = settings(max_attempts=1, gemini_timeout_seconds=60)
    for _ in range(2):
        summary = await Poller(db, s, CountingAnalyser(delay=30)).run(0.2)
        assert (summary.ai_calls, summary.deferred, summary.failures) == (1, 1, 0), summary
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="late")
    assert row is not None and not row["failed"] and row["attempts"] == 0


async def test_a_files_lookup_is_bounded_by_the_budget_and_the_ai_slots(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub's files lookups run in the AI slots (AI_CONCURRENCY at once, not one per PR of
    the batch) and by the cut-off: one that outlasts it spends nothing and defers."""
    from flowlens.insights.models import FileChange
    from flowlens.poller import worker

    class SlowFiles:
        def __init__(self, delay: float) -> None:
            self.delay, self.in_flight, self.peak = delay, 0, 0

        async def list_files(self, repository: str, number: int) -> list[FileChange]:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            return [FileChange(path="src/app.py", status="modified", additions=1, deletions=0)]

    for n in range(1, 9):
        await deliver(db, "pull_request", pr_delivery(100 + n, f"{n:040x}", "opened", n), f"f{n}")
    files = SlowFiles(0.05)
    summary = await Poller(db, settings(ai_concurrency=2), CountingAnalyser(), files).scan_once()
    assert summary.insights == 8 and files.peak == 2
    monkeypatch.setattr(worker, "OVERRUN_SECONDS", 0.5)
    await deliver(db, "pull_request", pr_delivery(120, "c" * 40, "opened", 20), "slow-files")
    analyser = CountingAnalyser()
    stuck = SlowFiles(30)  # a rate-limit wait longer than the invocation
    started = asyncio.get_running_loop().time()
    summary = await Poller(db, settings(), analyser, stuck).run(0.1)
    assert asyncio.get_running_loop().time() - started < worker.OVERRUN_SECONDS + 10
    assert (summary.ai_calls, summary.deferred, sum(analyser.calls.values())) == (0, 1, 0)
    async with db.transaction() as tx:
        row = await tx.one("raw_event_by_delivery", delivery_id="slow-files")
    assert row is not None and not row["processed"] and row["attempts"] == 0


async def test_a_failing_group_does_not_leave_the_others_running(db: Database) -> None:
    """One PR's group fails outside its analysis (here the database refuses its lease): the
    scan still waits for the other PRs' analyses, so none runs on after the invocation."""
    await deliver(db, "pull_request", pr_delivery(60, "6" * 40, "opened", 0), "slow")
    await deliver(db, "pull_request", pr_delivery(61, "7" * 40, "opened", 1), "refused")
    async with db.transaction() as tx:
        await tx.conn.execute(REFUSE_LEASE_OF_61)
    summary = await Poller(db, settings(), CountingAnalyser(delay=0.5)).run(0.0)
    assert any("refused for the test" in e for e in summary.errors), summary
    assert (summary.ai_calls, summary.insights) == (1, 1)  # #60's count is kept too
    async with db.transaction() as tx:  # #60's analysis finished within the invocation
        rows = await tx.all("insights_for_pr", repository=REPO, number=60)
    assert len(rows) == 1


REFUSE_LEASE_OF_61 = """
CREATE FUNCTION refuse_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.number = 61 AND NEW.analysis_owner IS DISTINCT FROM OLD.analysis_owner THEN
        RAISE EXCEPTION 'refused for the test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_lease BEFORE UPDATE ON pull_requests
    FOR EACH ROW EXECUTE FUNCTION refuse_lease();
"""


async def test_overlapping_invocations_of_one_process_never_analyse_a_commit_twice(
    db: Database, dsn: str
) -> None:
    """Cloud Scheduler is at-least-once and a request past its timeout goes on: the next
    invocation in the same process has a lease owner of its own, so it waits for the PR's
    lease instead of analysing the same commit again."""
    from flowlens.poller.service import PollerService

    service = PollerService(settings(database_url=dsn, github_api_url=""))
    slow = CountingAnalyser(delay=1.0)
    service.analyser = slow
    try:
        await deliver(db, "pull_request", pr_delivery(60, "6" * 40, "opened", 0), "o-1")
        first = asyncio.create_task(service.invoke(budget_seconds=0.5))
        while not slow.calls:
            await asyncio.sleep(0.02)
        # A new event for the same commit, claimed by the second invocation meanwhile.
        await deliver(db, "pull_request", pr_delivery(60, "6" * 40, "edited", 1), "o-2")
        second = await service.invoke(budget_seconds=2.0)
        await first
    finally:
        await service.close()
    assert sum(slow.calls.values()) == 1
    assert second["events"] >= 1 and await pending(db) == 0


async def test_a_new_event_is_not_given_up_with_an_old_one(db: Database, dsn: str) -> None:
    """Each event keeps its own attempts: one failure gives up only the events that used
    theirs, and a PR's new event gets its full retries."""
    import psycopg

    await deliver(db, "pull_request", pr_delivery(70, "1" * 40, "opened", 0), "old")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("UPDATE raw_events SET attempts = 4 WHERE delivery_id = 'old'")
    await deliver(db, "pull_request", pr_delivery(70, "2" * 40, "synchronize", 1), "new")
    failing = CountingAnalyser(fail="gemini: 503 UNAVAILABLE")
    summary = await Poller(db, settings(max_attempts=5), failing).scan_once()
    assert (summary.failures, summary.retries) == (1, 1)
    async with db.transaction() as tx:
        old = await tx.one("raw_event_by_delivery", delivery_id="old")
        new = await tx.one("raw_event_by_delivery", delivery_id="new")
    assert old is not None and old["failed"]
    assert new is not None and not new["failed"] and new["attempts"] == 1


@pytest.mark.parametrize("budget", [0.0])
async def test_budget_zero_is_one_scan(db: Database, budget: float) -> None:
    summary = await Poller(db, settings(), CountingAnalyser()).run(budget)
    assert summary.scans == 1


async def test_leases_are_kept_alive_during_a_long_analysis(db: Database, dsn: str) -> None:
    """An analysis longer than the lease is not claimed and analysed again by another poller."""
    await deliver(db, "pull_request", pr_delivery(9, "9" * 40, "opened", 0), "slow")
    slow = CountingAnalyser(delay=1.5)
    fast = CountingAnalyser()
    s = settings(lease_seconds=0.4)
    async with Database(dsn, min_size=0, max_size=4) as db2:
        first = asyncio.create_task(Poller(db, s, slow, owner="slow").scan_once())
        await asyncio.sleep(0.8)  # twice the lease: without renewal the event would be free
        second = await Poller(db2, s, fast, owner="other").scan_once()
        done = await first
    assert second.events == 0 and sum(fast.calls.values()) == 0
    assert done.insights == 1 and sum(slow.calls.values()) == 1
    assert await pending(db) == 0


async def test_events_from_before_and_after_migration_008_cost_one_analysis(
    db: Database,
) -> None:
    """An event stored before raw events kept the repository's GitHub id, and a newer one of
    the same PR and head: one group, one analysis (two groups ran at once and paid twice)."""
    import psycopg

    sha = "a" * 40
    await deliver(db, "pull_request", pr_delivery(2, sha, "opened", 1), "before-008")
    async with await psycopg.AsyncConnection.connect(db.dsn, autocommit=True) as conn:
        await conn.execute("UPDATE raw_events SET repository_github_id = NULL")
    await deliver(db, "pull_request", pr_delivery(2, sha, "edited", 2), "after-008")
    analyser = CountingAnalyser(delay=0.3)
    summary = await Poller(db, settings(), analyser).scan_once()
    assert sum(analyser.calls.values()) == 1, (summary, dict(analyser.calls))
    assert (summary.ai_calls, summary.insights, summary.events) == (1, 1, 2)
