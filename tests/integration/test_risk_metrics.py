"""GET /api/metrics/risk: per risk level, how many analysed heads met each outcome, on a
scripted history whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

from flowlens.api.schemas import RiskMetrics
from flowlens.db import Database
from tests.conftest import load_fixture
from tests.helpers import variant
from tests.integration.test_api_rest import error_of
from tests.integration.test_api_support import REPO, SHA1, asgi_api, deliver, opened, workflow_run

WIDGETS = "acme/widgets"


async def insight(db: Database, repo: str, number: int, sha: str, level: str,
                  days_ago: int = 0) -> int:  # fmt: skip
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            """INSERT INTO insights (repository_id, pull_request_id, pr_number, commit_sha,
                   risk_level, summary, recommendation, confidence_score, model, created_at)
               SELECT r.id, p.id, p.number, %s, %s, 's', 'r', 0.5, 'risk-model',
                      now() - make_interval(days => %s)
               FROM pull_requests p JOIN repositories r ON r.id = p.repository_id
               WHERE r.full_name = %s AND p.number = %s
               RETURNING id""",
            (sha, level, days_ago, repo, number),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def outcome(db: Database, insight_id: int, kind: str) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(
            "INSERT INTO insight_outcomes (insight_id, outcome) VALUES (%s, %s)", (insight_id, kind)
        )


def closed_unmerged(number: int, sha: str) -> dict[str, Any]:
    return variant(
        load_fixture("pull_request/closed.payload.json"),
        number=number,
        **{
            "pull_request.number": number,
            "pull_request.id": 279147437 + number,
            "pull_request.head.sha": sha,
            "pull_request.merged": False,
            "pull_request.updated_at": "2019-05-15T16:00:00Z",
        },
    )  # fmt: skip  derived: the closed fixture, another PR and head


def rates(metrics: RiskMetrics) -> dict[str, tuple[int, dict[str, tuple[int, float | None]]]]:
    return {
        lv.riskLevel: (lv.count, {k: (v.count, v.rate) for k, v in lv.outcomes.items() if v.count})
        for lv in metrics.levels
    }


async def test_risk_calibration_by_level_and_outcome(db: Database, dsn: str) -> None:
    for number, sha in ((2, SHA1), (3, "3" * 40), (4, "4" * 40), (5, "5" * 40)):
        await deliver(db, "pull_request", opened(number, sha=sha))
    await deliver(db, "pull_request", opened(9, repo=WIDGETS, sha="9" * 40))
    await insight(db, REPO, 2, SHA1, "high")  # its build fails
    await insight(db, REPO, 2, "2" * 40, "high")  # an earlier head: nothing happened to it
    await insight(db, REPO, 3, "3" * 40, "medium")  # closed unmerged at this head
    await outcome(db, await insight(db, REPO, 4, "4" * 40, "high"), "reverted")
    await outcome(db, await insight(db, REPO, 5, "5" * 40, "low"), "follow_up")
    await outcome(db, await insight(db, REPO, 5, "6" * 40, "low", days_ago=40), "reverted")
    await insight(db, WIDGETS, 9, "9" * 40, "low")
    await deliver(db, "workflow_run", workflow_run("completed", "failure", "2019-05-15T15:21:00Z"))
    await deliver(db, "pull_request", closed_unmerged(3, "3" * 40))

    async with asgi_api(dsn) as (_, client):
        every = RiskMetrics.model_validate((await client.get("/api/metrics/risk")).json())
        assert every.windowDays == 30
        assert every.outcomes == ["buildFailed", "closedUnmerged", "reverted", "followUp"]
        assert [lv.riskLevel for lv in every.levels] == ["low", "medium", "high"]
        assert rates(every) == {
            "low": (2, {"followUp": (1, 0.5)}),
            "medium": (1, {"closedUnmerged": (1, 1.0)}),
            "high": (3, {"buildFailed": (1, 0.3333), "reverted": (1, 0.3333)}),
        }
        one = await client.get("/api/metrics/risk", params={"repo": REPO, "days": 60})
        assert rates(RiskMetrics.model_validate(one.json()))["low"] == (
            2, {"followUp": (1, 0.5), "reverted": (1, 0.5)},
        )  # fmt: skip
        widgets = await client.get("/api/metrics/risk", params={"repo": WIDGETS})
        assert rates(RiskMetrics.model_validate(widgets.json())) == {
            "low": (1, {}), "medium": (0, {}), "high": (0, {}),
        }  # fmt: skip
        error_of(await client.get("/api/metrics/risk", params={"days": 0}), 422)
        error_of(await client.get("/api/metrics/risk", params={"repo": "x/y"}), 404)


async def test_no_insights_no_rates(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        metrics = RiskMetrics.model_validate((await client.get("/api/metrics/risk")).json())
    for level in metrics.levels:
        assert level.count == 0
        assert all(v.count == 0 and v.rate is None for v in level.outcomes.values())
