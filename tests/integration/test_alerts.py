"""Alerts: Slack (a local fake), SMTP (real aiosmtpd), SES (moto); retries; one per subject."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from flowlens.alerts import AlertConfig, AlertDispatcher, build_channels
from flowlens.alerts.dispatch import AlertSummary
from flowlens.db import Database
from flowlens.ingest.ci import CiBuild, record_ci_build
from flowlens.ingest.store import record_delivery
from flowlens.insights.models import ChangeContext, Insight
from flowlens.poller.worker import Poller
from flowlens.settings import ConfigError, PollerSettings
from tests.fakes.fake_github_sync import FakeGitHubSync, GitHubWorld
from tests.fakes.fake_slack import FakeSlack, SlackReply

SHA = "a" * 40
SENDER = "flowlens@example.com"


def settings(dsn: str = "postgresql://unused", **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {
        "database_url": dsn,
        "alert_retry_seconds": 30.0,
        "alert_interval_seconds": 0.05,
        "alert_timeout_seconds": 2.0,
        "poll_interval_seconds": 0.05,
        "github_api_url": "",
    }
    base.update(overrides)
    return PollerSettings(**base)


def dispatcher(db: Database, s: PollerSettings) -> AlertDispatcher:
    config = AlertConfig.from_settings(s)
    # No jitter: the backoff a test sees is exactly the documented one.
    return AlertDispatcher(db, config, build_channels(s, config), jitter=lambda: 1.0)


async def deliver(db: Database, event: str, payload: dict[str, Any]) -> None:
    await record_delivery(db, f"test:{time.monotonic_ns()}", event, payload, json.dumps(payload))


async def failed_build(db: Database, world: GitHubWorld, run_id: int = 501) -> None:
    """An open PR whose workflow run ran ~2 minutes and failed (recent timestamps)."""
    if (world.full_name, 7) not in world.github.pulls:
        await deliver(db, *world.open_pr(7, sha=SHA, title="Fix the flux capacitor"))
    await deliver(db, *world.run(run_id, sha=SHA, status="in_progress", number=7))
    world.tick(2)
    await deliver(db, *world.run(run_id, sha=SHA, status="completed", conclusion="failure"))


async def history(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return list(reversed(await tx.all("alert_history_list", limit=100)))


async def make_due(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("alert_make_due")


@pytest.fixture
def world() -> GitHubWorld:
    return GitHubWorld(FakeGitHubSync())


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack()
    with fake.running() as url:
        yield fake, url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """aiosmtpd handler: keeps every message; scripted SMTP replies first."""

    def __init__(self, *replies: str) -> None:
        self.messages: list[Any] = []
        self.script = deque(replies)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.script:
            return self.script.popleft()
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_failed_build_alerts_slack_once_with_everything_it_needs(
    db: Database, world: GitHubWorld, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    await failed_build(db, world)
    alerts = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
    try:
        summary = await alerts.pass_once()
        assert (summary.enqueued, summary.sent, summary.failed) == (1, 1, 0)
        assert len(fake.posts) == 1
        text = fake.posts[0]["blocks"][0]["text"]["text"]
        assert fake.posts[0]["text"].startswith("Build failed: Codertocat/Hello-World #7 CI")
        for expected in ("Codertocat/Hello-World", "#7 Fix the flux capacitor", "feature-7",
                         "aaaaaaa", "*Workflow:* CI", "*Duration:* 3m 0s", "failure",
                         f"<https://github.com/{world.full_name}/actions/runs/501|"):  # fmt: skip
            assert expected in text, expected
        assert text.endswith("|Open on github.com>")
        rows = await history(db)
        assert [(r["subject_kind"], r["channel"], r["status"], r["attempts"]) for r in rows] == [
            ("build", "slack", "sent", 1)
        ]
        assert rows[0]["sent_at"] is not None and rows[0]["last_error"] is None

        # One alert per (build, channel), ever: more passes, even a later redelivery, send nothing.
        for _ in range(3):
            assert (await alerts.pass_once()).sent == 0
        await deliver(db, *world.run(501, sha=SHA, status="completed", conclusion="failure"))
        assert (await alerts.pass_once()).enqueued == 0
        assert len(fake.posts) == 1
    finally:
        await alerts.aclose()


async def test_a_ci_reports_link_is_labelled_by_the_host_it_opens(
    db: Database, world: GitHubWorld, slack: tuple[FakeSlack, str]
) -> None:
    """The CI path stores whatever `url` the CI_WRITE_KEY holder sent: Slack names its host."""
    from datetime import UTC, datetime, timedelta

    fake, url = slack
    await deliver(db, *world.open_pr(7, sha=SHA, title="Fix the flux capacitor"))
    now = datetime.now(UTC)
    report = CiBuild(
        repository=world.full_name, run_id="77", status="completed", conclusion="failure",
        workflow="deploy", commit_sha=SHA, pr_number=7, url="https://ci.example.com/job/77",
        started_at=now - timedelta(minutes=2), finished_at=now,
    )  # fmt: skip
    await record_ci_build(db, report)
    alerts = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
    try:
        assert (await alerts.pass_once()).sent == 1
    finally:
        await alerts.aclose()
    (post,) = fake.posts
    text = post["blocks"][0]["text"]["text"]
    assert text.endswith("\n<https://ci.example.com/job/77|Open on ci.example.com>")
    assert "GitHub" not in text and "github.com" not in text


async def test_only_recent_failures_of_top_level_builds_alert(
    db: Database, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    # Derived: a world two days old, so its failed run is outside the 24 h window ...
    from datetime import UTC, datetime, timedelta

    old = GitHubWorld(FakeGitHubSync(), start=datetime.now(UTC) - timedelta(days=2))
    await failed_build(db, old, run_id=601)
    # ... a passing run now, and a failed job (jobs repeat their run: not alerted by default).
    recent = GitHubWorld(FakeGitHubSync())
    await deliver(db, *recent.open_pr(8, sha="b" * 40))
    await deliver(db, *recent.run(602, sha="b" * 40, status="completed", conclusion="success"))
    async with db.transaction() as tx:
        repository_id = (await tx.one("pull_request_by_number", repository=recent.full_name,
                                      number=8))["repository_id"]  # fmt: skip
        await tx.one(
            "ingest_upsert_build", repository_id=repository_id, provider="github_actions_job",
            external_id="job:1", workflow_name="CI / test", status="failed",
            conclusion="failure", branch="feature-8", commit_sha="b" * 40, pr_number=8,
            triggered_by=None, url=None, started_at=None, finished_at=None,
            duration_seconds=None, source_updated_at=None, rerun_key=None,
        )  # fmt: skip
    alerts = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
    try:
        summary = await alerts.pass_once()
    finally:
        await alerts.aclose()
    assert summary.enqueued == 0 and fake.posts == []


async def test_email_through_a_real_smtp_server(
    db: Database, world: GitHubWorld, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    await failed_build(db, world)
    s = settings(
        alert_channels="email", alert_email_to="dev@example.com, lead@example.com",
        alert_email_from=SENDER, alert_smtp_host="127.0.0.1", alert_smtp_port=port,
        alert_smtp_tls="none",
    )  # fmt: skip
    alerts = dispatcher(db, s)
    try:
        assert (await alerts.pass_once()).sent == 1
    finally:
        await alerts.aclose()
    (envelope,) = inbox.messages
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["dev@example.com", "lead@example.com"]
    import email

    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "[FlowLens] Build failed: Codertocat/Hello-World #7 CI"
    body = message.get_payload(decode=True).decode()
    assert "Pull request: #7 Fix the flux capacitor" in body
    assert "Commit: aaaaaaa" in body and "Duration: 3m 0s" in body
    assert f"Link: https://github.com/{world.full_name}/actions/runs/501" in body
    assert [r["channel"] for r in await history(db)] == ["email"]


async def test_smtp_temporary_refusal_is_retried_with_backoff(
    db: Database, world: GitHubWorld, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    inbox.script.append("451 4.3.0 Try again later")
    await failed_build(db, world)
    s = settings(
        alert_channels="email", alert_email_to="dev@example.com", alert_email_from=SENDER,
        alert_smtp_host="127.0.0.1", alert_smtp_port=port, alert_smtp_tls="none",
    )  # fmt: skip
    alerts = dispatcher(db, s)
    try:
        assert (await alerts.pass_once()).retried == 1
        (row,) = await history(db)
        assert row["status"] == "pending" and row["attempts"] == 1
        assert "451" in row["last_error"]
        # Not due yet (30 s backoff): another pass does nothing.
        assert (await alerts.pass_once()).sent == 0
        await make_due(db)
        assert (await alerts.pass_once()).sent == 1
    finally:
        await alerts.aclose()
    (row,) = await history(db)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(inbox.messages) == 1


async def test_email_through_amazon_ses(db: Database, world: GitHubWorld) -> None:
    import boto3
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    await failed_build(db, world)
    s = settings(
        alert_channels="email", alert_email_to="dev@example.com", alert_email_from=SENDER,
        alert_email_transport="ses", alert_ses_region="eu-west-1",
    )  # fmt: skip
    with mock_aws():
        alerts = dispatcher(db, s)
        try:
            # SES refuses an unverified sender: a permanent failure, not retried.
            summary = await alerts.pass_once()
            assert summary.failed == 1
            (row,) = await history(db)
            assert row["status"] == "failed" and "MessageRejected" in row["last_error"]

            boto3.client("ses", region_name="eu-west-1").verify_email_identity(EmailAddress=SENDER)
            await failed_build(db, world, run_id=502)
            assert (await alerts.pass_once()).sent == 1
        finally:
            await alerts.aclose()
        (sent,) = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
    assert sent.source == SENDER and sent.destinations["ToAddresses"] == ["dev@example.com"]
    assert sent.subject == "[FlowLens] Build failed: Codertocat/Hello-World #7 CI"
    assert "Commit: aaaaaaa" in sent.body and "Workflow: CI" in sent.body


async def test_slack_errors_backoff_retry_after_and_give_up(
    db: Database, world: GitHubWorld
) -> None:
    fake = FakeSlack(
        SlackReply(500, "internal_error"),
        SlackReply(429, "rate_limited", retry_after=120),
        default=SlackReply(503, "unavailable"),
    )
    await failed_build(db, world)
    with fake.running() as url:
        s = settings(alert_channels="slack", alert_slack_webhook_url=url, alert_max_attempts=3)
        alerts = dispatcher(db, s)
        try:
            now = time.time()
            assert (await alerts.pass_once()).retried == 1
            (row,) = await history(db)
            assert row["attempts"] == 1 and "HTTP 500" in row["last_error"]
            # First backoff: ALERT_RETRY_SECONDS.
            assert 25 < row["next_attempt_at"].timestamp() - now < 40
            await make_due(db)
            assert (await alerts.pass_once()).retried == 1
            (row,) = await history(db)
            # The second (60 s) is stretched to Slack's Retry-After.
            assert 110 < row["next_attempt_at"].timestamp() - now < 130
            assert "HTTP 429" in row["last_error"]
            await make_due(db)
            assert (await alerts.pass_once()).failed == 1
        finally:
            await alerts.aclose()
    (row,) = await history(db)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "HTTP 503" in row["last_error"] and fake.posts == []


async def test_slack_permanent_error_fails_at_once(db: Database, world: GitHubWorld) -> None:
    fake = FakeSlack(default=SlackReply(404, "no_service"))
    await failed_build(db, world)
    with fake.running() as url:
        alerts = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
        try:
            assert (await alerts.pass_once()).failed == 1
        finally:
            await alerts.aclose()
    (row,) = await history(db)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "no_service" in row["last_error"]


async def test_a_failing_channel_does_not_stop_the_others(
    db: Database, world: GitHubWorld, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    await failed_build(db, world)
    s = settings(
        alert_channels="email,slack", alert_slack_webhook_url=url,
        alert_email_to="dev@example.com", alert_smtp_host="127.0.0.1",
        alert_smtp_port=free_port(), alert_smtp_tls="none",  # nothing listens there
    )  # fmt: skip
    alerts = dispatcher(db, s)
    try:
        summary = await alerts.pass_once()
    finally:
        await alerts.aclose()
    assert (summary.sent, summary.retried) == (1, 1)
    rows = {r["channel"]: r for r in await history(db)}
    assert rows["slack"]["status"] == "sent" and len(fake.posts) == 1
    assert rows["email"]["status"] == "pending" and "smtp:" in rows["email"]["last_error"]


async def test_two_dispatchers_at_once_send_each_alert_once(
    db: Database, world: GitHubWorld
) -> None:
    fake = FakeSlack(default=SlackReply(delay=0.2))
    for run_id in range(700, 710):
        await failed_build(db, world, run_id=run_id)
    with fake.running() as url:
        s = settings(alert_channels="slack", alert_slack_webhook_url=url)
        first, second = dispatcher(db, s), dispatcher(db, s)
        try:
            await asyncio.gather(*(d.pass_once() for d in (first, second, first, second)))
        finally:
            await first.aclose()
            await second.aclose()
    assert fake.attempts == 10 and len(fake.posts) == 10
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in await history(db))


async def test_a_claim_older_than_a_deferral_cannot_send(db: Database, world: GitHubWorld) -> None:
    """Claim A loads the build as failed and waits for a send slot past its lease; claim B
    finds the build re-running and defers; the re-run passes. A must not send "Build failed"
    now: a deferral keeps the claim count, so A is no longer the latest claim."""
    await failed_build(db, world, run_id=950)
    fake = FakeSlack()
    with fake.running() as url:
        d = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
        try:
            await d.enqueue()
            async with db.transaction() as tx:
                claims = await tx.all("work_alerts_claim", channels=["slack"],
                                      lease_seconds=d.lease_seconds, limit=50)  # fmt: skip
            loaded = await d._load(claims)
            await make_due(db)  # A's lease ends while it waits
            await deliver(db, *world.run(950, sha=SHA, status="in_progress"))
            assert (await d.pass_once()).deferred == 1  # claim B
            world.tick(2)
            await deliver(db, *world.run(950, sha=SHA, status="completed", conclusion="success"))
            assert await d._deliver(claims[0], loaded) == ("skipped", None)
        finally:
            await d.aclose()
    assert fake.posts == []


async def test_a_claim_that_gave_up_is_not_a_failed_attempt(
    db: Database, world: GitHubWorld
) -> None:
    """Claim A waits for a send slot past its lease and gives up when it finds claim B; B's
    send fails. With ALERT_MAX_ATTEMPTS=2 that is B's first failure, not its second: the
    alert is retried, not failed for good."""
    await failed_build(db, world, run_id=970)
    fake = FakeSlack(SlackReply(status=503))
    with fake.running() as url:
        s = settings(alert_channels="slack", alert_slack_webhook_url=url, alert_max_attempts=2)
        d = dispatcher(db, s)
        try:
            await d.enqueue()

            async def claim() -> list[dict[str, Any]]:
                async with db.transaction() as tx:
                    return await tx.all("work_alerts_claim", channels=["slack"],
                                        lease_seconds=d.lease_seconds, limit=50)  # fmt: skip

            [a] = await claim()
            loaded = await d._load([a])
            await make_due(db)  # A's lease ends while it waits
            [b] = await claim()
            assert await d._deliver(a, loaded) == ("skipped", None)
            outcome, error = await d._deliver(b, loaded)
        finally:
            await d.aclose()
    assert outcome == "retried" and error and "503" in error
    [row] = await history(db)
    assert (row["status"], row["attempts"]) == ("pending", 2) and len(fake.posts) == 0


async def test_a_re_run_that_never_finishes_ends_its_alert_after_the_window(
    db: Database, world: GitHubWorld
) -> None:
    await failed_build(db, world, run_id=960)
    fake = FakeSlack(SlackReply(status=503))
    async with refused_once_then(db, fake) as d:
        await deliver(db, *world.run(960, sha=SHA, status="in_progress"))  # its end is lost
        async with db.transaction() as tx:
            await tx.conn.execute("UPDATE alert_history SET created_at = now() - interval '2 days'")
        await make_due(db)
        assert (await d.pass_once()).dropped == 1
    [row] = await history(db)
    assert row["status"] == "failed" and "did not finish" in row["last_error"]


@contextlib.asynccontextmanager
async def refused_once_then(db: Database, fake: FakeSlack) -> AsyncIterator[AlertDispatcher]:
    """A Slack dispatcher whose first pass has its one alert refused (retried later)."""
    with fake.running() as url:
        d = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
        try:
            assert (await d.pass_once()).retried == 1
            yield d
        finally:
            await d.aclose()


async def test_a_build_that_passed_on_a_re_run_before_its_alert_went_out_is_not_alerted(
    db: Database, world: GitHubWorld
) -> None:
    """The alert waits for a retry (Slack down) while the same run is re-run and passes: it
    would say "Build failed ... Conclusion: success". It is dropped instead."""
    await failed_build(db, world, run_id=900)
    fake = FakeSlack(default=SlackReply(status=503))
    async with refused_once_then(db, fake) as d:
        await deliver(db, *world.run(900, sha=SHA, status="in_progress"))
        await deliver(db, *world.run(900, sha=SHA, status="completed", conclusion="success"))
        await make_due(db)
        summary = await d.pass_once()
    assert (summary.dropped, summary.sent) == (1, 0)
    assert fake.attempts == 1  # only the first, refused, attempt
    [row] = await history(db)
    assert row["status"] == "failed" and "passed on a re-run" in row["last_error"]


async def test_a_build_being_re_run_when_its_alert_is_due_is_alerted_if_it_fails_again(
    db: Database, world: GitHubWorld
) -> None:
    await failed_build(db, world, run_id=901)
    fake = FakeSlack(SlackReply(status=503))  # the first attempt is refused, then all is well
    async with refused_once_then(db, fake) as d:
        await deliver(db, *world.run(901, sha=SHA, status="in_progress"))
        await make_due(db)
        assert (await d.pass_once()).deferred == 1
        [row] = await history(db)
        # Claimed twice, failed once: the deferral is not a failed attempt.
        assert (row["status"], row["attempts"], row["deferrals"]) == ("pending", 2, 1)
        world.tick(2)
        await deliver(db, *world.run(901, sha=SHA, status="completed", conclusion="failure"))
        await make_due(db)
        assert (await d.pass_once()).sent == 1
    assert fake.attempts == 2 and len(fake.posts) == 1  # posts: the accepted ones
    assert "failure" in fake.posts[0]["blocks"][0]["text"]["text"]


class SlowChannel:
    """A channel whose sends take a while; what it sent, in order."""

    name = "slack"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[str] = []

    async def send(self, alert: Any) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append(alert.text())  # each build's facts differ (its run, its link)

    async def aclose(self) -> None:
        pass


async def test_a_claim_whose_lease_ended_while_it_waited_for_a_slot_is_not_sent_twice(
    db: Database, world: GitHubWorld
) -> None:
    """Sends wait for one of a few slots, and a lease can end meanwhile: a second pass then
    claims the alert. The first renews its claim before sending and leaves the alert to the
    second; outcomes are recorded only by the latest claim."""
    for run_id in range(800, 804):
        await failed_build(db, world, run_id=run_id)
    s = settings(alert_channels="slack", alert_slack_webhook_url="http://unused/")
    config = AlertConfig.from_settings(s)
    channel = SlowChannel(1.0)
    first, second = (
        AlertDispatcher(db, config, [channel], concurrency=1, jitter=lambda: 1.0) for _ in range(2)
    )
    # Scaled down: 1 s sends one at a time under a 1.5 s lease (60 s by default). The first
    # pass claims all four at 0 s and sends two; the leases of the other two end at 1.5 s, the
    # second pass claims them at 1.75 s, and the first reaches them at 2 s.
    first.lease_seconds = second.lease_seconds = 1.5

    async def second_pass_later() -> AlertSummary:
        await asyncio.sleep(1.75)
        return await second.pass_once()

    one, two = await asyncio.gather(first.pass_once(), second_pass_later())
    assert len(set(channel.sent)) == len(channel.sent) == 4
    assert (one.sent, one.skipped, two.sent) == (2, 2, 2)
    assert all(r["status"] == "sent" for r in await history(db))


class HighRisk:
    """An analyser that finds every change risky."""

    name = "test-high"

    async def analyse(self, ctx: ChangeContext) -> Insight:
        return Insight(risk_level="high", summary="Touches the payment path.",
                       recommendation="Have a second reviewer.", key_changes=[],
                       confidence_score=0.9, model=self.name)  # fmt: skip


async def test_high_risk_insights_alert_only_when_enabled(
    db: Database, world: GitHubWorld, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    await deliver(db, *world.open_pr(9, sha="c" * 40, title="Rework payments"))
    await Poller(db, settings(), HighRisk()).scan_once()
    off = dispatcher(db, settings(alert_channels="slack", alert_slack_webhook_url=url))
    on = dispatcher(
        db, settings(alert_channels="slack", alert_slack_webhook_url=url,
                     alert_on="build_failed,high_risk"),
    )  # fmt: skip
    try:
        assert (await off.pass_once()).enqueued == 0
        assert (await on.pass_once()).sent == 1
    finally:
        await off.aclose()
        await on.aclose()
    (post,) = fake.posts
    text = post["blocks"][0]["text"]["text"]
    assert post["text"] == "High-risk change: Codertocat/Hello-World #9"
    assert "#9 Rework payments" in text and "ccccccc" in text and "high (confidence 0.90)" in text
    assert "Touches the payment path." in text
    assert f"<https://github.com/{world.full_name}/pull/9|" in text
    assert [r["subject_kind"] for r in await history(db)] == ["insight"]


async def test_a_high_risk_commit_the_pr_moved_on_from_pages_nobody(
    db: Database, world: GitHubWorld, slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    await deliver(db, *world.open_pr(9, sha="c" * 40, title="Rework payments"))
    await Poller(db, settings(), HighRisk()).scan_once()  # an insight for ccc...
    await deliver(db, *world.push(9, sha="d" * 40))  # the PR moves on before the alert pass
    s = settings(alert_channels="slack", alert_slack_webhook_url=url, alert_on="high_risk")
    d = dispatcher(db, s)
    try:
        assert (await d.pass_once()).enqueued == 0
        await Poller(db, settings(), HighRisk()).scan_once()  # the new head's insight
        assert (await d.pass_once()).sent == 1
    finally:
        await d.aclose()
    (post,) = fake.posts
    assert "ddddddd" in post["blocks"][0]["text"]["text"]


def test_alert_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown channel 'pager'"):
        AlertConfig.from_settings(settings(alert_channels="pager"))
    with pytest.raises(ConfigError, match="ALERT_SLACK_WEBHOOK_URL is unset"):
        AlertConfig.from_settings(settings(alert_channels="slack"))
    with pytest.raises(ConfigError, match="ALERT_EMAIL_TO is unset"):
        AlertConfig.from_settings(settings(alert_channels="email"))
    with pytest.raises(ConfigError, match="unknown event 'flaky'"):
        AlertConfig.from_settings(settings(alert_on="flaky"))
    with pytest.raises(ConfigError, match="ALERT_SMTP_TLS: want none, starttls or ssl"):
        AlertConfig.from_settings(settings(alert_smtp_tls="tls"))
    with pytest.raises(ConfigError, match="ALERT_EMAIL_TRANSPORT: want smtp or ses"):
        AlertConfig.from_settings(settings(alert_email_transport="sendgrid"))
    assert not AlertConfig.from_settings(settings()).enabled


async def test_poller_sends_alerts_beside_events_and_a_hung_channel_blocks_nothing(
    db: Database, dsn: str, world: GitHubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowlens.poller.service import PollerService

    # Slack hangs far longer than the alert timeout; the invocation still processes events
    # and returns on budget.
    fake = FakeSlack(SlackReply(delay=5.0))
    await failed_build(db, world)
    await deliver(db, *world.open_pr(10, sha="d" * 40))
    with fake.running() as url:
        s = settings(dsn, alert_channels="slack", alert_slack_webhook_url=url,
                     alert_timeout_seconds=0.2)  # fmt: skip
        service = PollerService(s)
        try:
            started = time.monotonic()
            out = await service.invoke(budget_seconds=1.0)
            elapsed = time.monotonic() - started
        finally:
            await service.close()
    assert elapsed < 3.0
    assert out["insights"] == 2 and out["events"] >= 4
    assert out["alerts"]["retried"] >= 1 and out["alerts"]["sent"] == 0
    (row,) = await history(db)
    assert row["status"] == "pending" and "timed out" in row["last_error"]


async def test_bad_alert_settings_disable_alerts_not_the_poller(
    db: Database, dsn: str, world: GitHubWorld, caplog: pytest.LogCaptureFixture
) -> None:
    from flowlens.poller.service import PollerService

    await deliver(db, *world.open_pr(11, sha="e" * 40))
    service = PollerService(settings(dsn, alert_channels="slack"))
    try:
        out = await service.invoke(budget_seconds=0.0)
    finally:
        await service.close()
    assert out["insights"] == 1 and "alerts" not in out
    assert "alerts disabled" in caplog.text
