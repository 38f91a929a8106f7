"""The built-in analyser (the statistical risk model): probability, level, drivers, words."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowlens.insights import (
    Analyser,
    ChangeContext,
    FileChange,
    Insight,
    RiskModelAnalyser,
    ground_key_changes,
)
from flowlens.insights.builtin import model_read
from flowlens.insights.paths import classify_path, is_doc_path, is_test_path
from flowlens.risk.features import FileLines, measure
from flowlens.risk.history import FileHistory, History
from flowlens.risk.model import fitted

ROOT = Path(__file__).resolve().parents[2]


def fc(path: str, additions: int = 1, deletions: int = 0, **kw: Any) -> FileChange:
    return FileChange(path=path, status=kw.pop("status", "modified"), additions=additions,
                      deletions=deletions, **kw)  # fmt: skip


def ctx(files: list[FileChange], ci_state: str = "pending", **kw: Any) -> ChangeContext:
    fields: dict[str, Any] = {
        "repository": "octo/app",
        "pr_number": 7,
        "title": "A change",
        "body": "",
        "branch": "feature",
        "base_branch": "main",
        "author": "octocat",
        "head_sha": "a" * 40,
        "ci_state": ci_state,
        "files": files,
        "additions": sum(f.additions for f in files),
        "deletions": sum(f.deletions for f in files),
    }
    fields.update(kw)
    return ChangeContext(**fields)


async def analyse(c: ChangeContext) -> Insight:
    analyser: Analyser = RiskModelAnalyser()
    return await analyser.analyse(c)


def fitted_logit(c: ChangeContext) -> float:
    """The model's log-odds for a change, by hand from the committed coefficients."""
    coefficients = json.loads(
        (ROOT / "shared/flowlens/risk/coefficients.json").read_text(encoding="utf-8")
    )
    files = [FileLines(f.path, f.additions, f.deletions) for f in c.files]
    raw = measure(files, c.title, c.history, c.at or datetime.now(UTC),
                  additions=c.additions, deletions=c.deletions).as_dict()  # fmt: skip
    logit = coefficients["intercept"]
    for name, term in coefficients["terms"].items():
        x = math.log1p(raw[name]) if term["transform"] == "log1p" else raw[name]
        logit += term["weight"] * (x - term["mean"]) / term["scale"]
    return logit


async def test_a_fixed_example_agrees_on_probability_cut_and_drivers() -> None:
    """The probability is the logistic of the committed terms; the level follows the
    documented cuts; the drivers are those terms, largest first, summing to the log-odds."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    history = History(author_changes=2, files={
        "core/src/Broker.java": FileHistory(40, 9, at - timedelta(days=3), "c1"),
        "core/src/Queue.java": FileHistory(25, 6, at - timedelta(days=30), "c2"),
    })  # fmt: skip
    files = [fc("core/src/Broker.java", 420, 80), fc("core/src/Queue.java", 150, 40),
             fc("client/src/Api.java", 90, 10), fc("docs/guide.md", 12, 0)]  # fmt: skip
    c = ctx(files, title="Fix broker failover", history=history, at=at)
    insight = await analyse(c)
    logit = fitted_logit(c)
    assert insight.risk_score == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-4)
    coefficients = fitted()
    assert insight.risk_score >= coefficients.high_at
    assert insight.risk_level == "high"
    read = model_read(c)
    assert sum(d.contribution for d in read.drivers) + coefficients.intercept == (
        pytest.approx(logit)
    )
    contributions = [d.contribution for d in read.drivers]
    assert contributions == sorted(contributions, reverse=True)
    # Stored: the top five, as named in the summary with their signed log-odds.
    assert [d.feature for d in insight.drivers] == [d.name for d in read.drivers[:5]]
    assert insight.drivers[0].feature == "la" and insight.drivers[0].value == 672
    assert f"lines added 672 ({insight.drivers[0].contribution:+.2f})" in insight.summary
    assert insight.summary.startswith(f"High risk: defect probability {insight.risk_score:.2f}")
    # Confidence comes from the model: the probability that its "high" call is right.
    assert insight.confidence_score == round(insight.risk_score, 2)
    assert insight.model == "risk-model"


async def test_docs_only_change_is_low() -> None:
    insight = await analyse(
        ctx([fc("README.md", 3, 1), fc("docs/guide.md", 40, 2)], ci_state="buildPassed")
    )
    assert insight.risk_level == "low"
    assert insight.risk_score is not None and insight.risk_score < fitted().medium_at
    assert insight.summary.endswith("43 lines added, 3 lines deleted in 2 files; CI build passed.")
    assert insight.recommendation == "Routine review is enough."
    assert insight.key_changes == [
        "docs/guide.md: modified (+40/-2)",
        "README.md: modified (+3/-1)",
    ]
    assert insight.confidence_score == round(1 - insight.risk_score, 2)


async def test_more_added_lines_never_lower_the_score() -> None:
    scores = []
    for added in (5, 50, 500, 5000):
        insight = await analyse(ctx([fc("src/app.py", added, 5)]))
        assert insight.risk_score is not None
        scores.append(insight.risk_score)
    assert scores == sorted(scores) and scores[0] < scores[-1]


async def test_history_of_the_files_moves_the_score() -> None:
    """Files changed often before (Kamei's NUC) read riskier than files never seen."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    files = [fc("src/app.py", 60, 10), fc("src/db.py", 30, 5)]
    fresh = await analyse(ctx(files, at=at))
    busy = History(author_changes=0, files={
        f.path: FileHistory(60, 12, at - timedelta(days=2), "x") for f in files})  # fmt: skip
    churned = await analyse(ctx(files, at=at, history=busy))
    assert fresh.risk_score is not None and churned.risk_score is not None
    assert churned.risk_score > fresh.risk_score
    assert any(d.feature == "nuc" for d in churned.drivers)


async def test_auth_change_asks_an_owner_without_moving_the_score() -> None:
    plain = await analyse(ctx([fc("src/api/handlers.py", 40, 5)], ci_state="building"))
    auth = await analyse(ctx([fc("src/auth/login.py", 40, 5)], ci_state="building"))
    assert auth.risk_score == plain.risk_score  # the model was fitted without categories
    assert "touches auth/security code" in auth.summary
    assert "CI build still running" in auth.summary
    assert auth.key_changes[0] == "src/auth/login.py: modified (+40/-5), auth/security code"
    assert "Ask an owner of the auth/security code" in auth.recommendation
    assert "Ask an owner" not in plain.recommendation


async def test_failed_build_is_advice_not_score() -> None:
    files = [fc("src/app.py", 8, 2), fc("tests/test_app.py", 5)]
    passed = await analyse(ctx(files, ci_state="buildPassed"))
    failed = await analyse(ctx(files, ci_state="buildFailed"))
    # A failed build is an outcome the risk read is checked against (/api/metrics/risk).
    assert failed.risk_score == passed.risk_score
    assert "CI build failed" in failed.summary
    assert failed.recommendation.startswith("Fix the failing CI build before merging.")


async def test_large_change_is_high_and_asks_for_a_split() -> None:
    files = [fc(f"src/module_{i}/impl.py", 400, 100) for i in range(22)]
    files += [fc("billing/stripe_webhook.py", 60), fc("db/migrations/0042_invoices.sql", 30)]
    insight = await analyse(ctx(files, ci_state="buildFailed"))
    assert insight.risk_level == "high"
    assert "touches payments code" in insight.summary
    assert "touches database migrations" in insight.summary
    assert "splitting" in insight.recommendation
    assert "migration is reversible" in insight.recommendation
    # Sensitive files come first among the (at most five) key changes.
    assert len(insight.key_changes) == 5
    assert insight.key_changes[0].startswith("billing/stripe_webhook.py: ")
    assert insight.key_changes[1].startswith("db/migrations/0042_invoices.sql: ")


async def test_lock_files_do_not_count_towards_size() -> None:
    with_lock = await analyse(ctx([fc("package.json", 2, 2), fc("package-lock.json", 4000, 3000)]))
    without = await analyse(ctx([fc("package.json", 2, 2)]))
    lock = ctx([fc("package.json", 2, 2), fc("package-lock.json", 4000, 3000)])
    la = {d.name: d.value for d in model_read(lock).drivers}
    assert la["la"] == 2 and la["ld"] == 2
    assert with_lock.risk_level == without.risk_level == "low"
    assert "touches dependency manifests" in with_lock.summary


async def test_without_a_file_list_totals_are_used_with_lower_confidence() -> None:
    totals = await analyse(ctx([], additions=600, deletions=100))
    assert totals.key_changes == []
    assert totals.risk_score is not None
    read = model_read(ctx([], additions=600, deletions=100))
    call_right = read.score if read.level == "high" else 1 - read.score
    assert totals.confidence_score == round(call_right * 0.7, 2)
    assert "600 lines added, 100 lines deleted;" in totals.summary


async def test_key_changes_describe_real_files() -> None:
    files = [
        fc("src/new.py", 12, status="added"),
        fc("src/old.py", 0, 30, status="removed"),
        fc("src/moved.py", 1, 1, status="renamed", previous_path="src/legacy.py"),
    ]
    insight = await analyse(ctx(files))
    assert insight.key_changes == [
        "src/old.py: removed (+0/-30)",
        "src/new.py: added (+12/-0)",
        "src/moved.py: renamed from src/legacy.py (+1/-1)",
    ]
    # Grounding keeps every built-in key change: they name files in the change.
    assert ground_key_changes(insight.key_changes, files) == insight.key_changes


async def test_deterministic() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    c = ctx([fc("src/auth/a.py", 70), fc("README.md", 3)], ci_state="buildFailed", at=at)
    assert await analyse(c) == await analyse(c)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/auth/login.py", {"auth"}),
        ("app/services/AuthService.java", {"auth"}),
        (".env.production", {"auth"}),
        ("billing/stripe_webhook.py", {"payments"}),
        ("db/migrations/0001_init.sql", {"migrations"}),
        ("alembic/versions/abc_add_users.py", {"migrations"}),
        ("prisma/schema.prisma", {"migrations"}),
        ("infra/terraform/main.tf", {"infra"}),
        ("Dockerfile", {"infra"}),
        ("deploy/helm/values.yaml", {"infra"}),
        (".github/workflows/ci.yml", {"ci"}),
        ("cloudbuild.yaml", {"ci"}),
        ("requirements-dev.txt", {"dependencies"}),
        ("package.json", {"dependencies"}),
        ("pyproject.toml", {"dependencies"}),
        ("go.mod", {"dependencies"}),
        ("Cargo.toml", {"dependencies"}),
        ("src/components/BarChart.tsx", set()),
        ("AUTHORS.md", set()),
        ("src/tokenizer.py", set()),
    ],
)
def test_classify_path(path: str, expected: set[str]) -> None:
    assert classify_path(path) == expected


def test_test_and_doc_paths() -> None:
    assert is_test_path("tests/test_app.py")
    assert is_test_path("src/app.test.ts")
    assert is_test_path("pkg/server_test.go")
    assert not is_test_path("src/latest.py")
    assert is_doc_path("docs/setup.py")
    assert is_doc_path("CHANGELOG.md")
    assert is_doc_path("LICENSE")
    assert not is_doc_path("requirements.txt")
    assert not is_doc_path("src/app.py")


# The stored shape: anything outside the schema is rejected, never clamped.


def good_insight(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "risk_level": "low",
        "summary": "s",
        "recommendation": "r",
        "key_changes": [],
        "confidence_score": 0.5,
        "model": "m",
    }
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    "overrides",
    [
        {"risk_level": "critical"},
        {"confidence_score": 1.2},
        {"confidence_score": -0.1},
        {"confidence_score": math.nan},
        {"key_changes": [f"a.py: {i}" for i in range(6)]},
        {"summary": "   "},
        {"extra": "field"},
    ],
)
def test_insight_rejects_out_of_schema_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Insight(**good_insight(**overrides))


def test_ground_key_changes() -> None:
    files = [
        fc("src/app.py"),
        fc("src/app.py.bak"),
        fc("new/name.py", status="renamed", previous_path="old/name.py"),
    ]
    assert ground_key_changes(
        [
            "src/app.py: adds retries",
            "`src/app.py.bak`: backup kept",
            "- old/name.py: moved",
            "secrets/prod.env: leaked keys",
            "src/app.py adds nothing",  # no `path:` form
            "src/app.py:   ",  # says nothing
            "Overall this looks fine",
        ],
        files,
    ) == ["src/app.py: adds retries", "src/app.py.bak: backup kept", "old/name.py: moved"]
