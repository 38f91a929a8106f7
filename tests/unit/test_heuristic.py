"""The heuristic analyser's scoring, pinned: given inputs give given risk levels and words."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from flowlens.insights import (
    Analyser,
    ChangeContext,
    FileChange,
    HeuristicAnalyser,
    Insight,
    ground_key_changes,
)
from flowlens.insights.heuristic import classify_path, is_doc_path, is_test_path


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
    analyser: Analyser = HeuristicAnalyser()
    return await analyser.analyse(c)


async def test_docs_only_change_is_low() -> None:
    insight = await analyse(
        ctx([fc("README.md", 3, 1), fc("docs/guide.md", 40, 2)], ci_state="buildPassed")
    )
    assert insight.risk_level == "low"
    assert insight.model == "heuristic"
    assert insight.summary == (
        "Low risk (heuristic score 0): 46 lines changed across 2 files; "
        "documentation only; CI build passed."
    )
    assert insight.recommendation == "Routine review is enough."
    assert insight.key_changes == [
        "docs/guide.md: modified (+40/-2)",
        "README.md: modified (+3/-1)",
    ]
    assert insight.confidence_score == 0.6


async def test_small_code_change_without_tests_is_low_but_says_so() -> None:
    insight = await analyse(ctx([fc("src/app.py", 15, 5)]))
    assert insight.risk_level == "low"
    assert insight.summary == (
        "Low risk (heuristic score 1): 20 lines changed across 1 file; "
        "no tests changed; CI not reported yet."
    )
    assert "Add or update tests" in insight.recommendation
    assert insight.confidence_score == 0.5


async def test_auth_change_is_medium_even_with_tests() -> None:
    insight = await analyse(
        ctx([fc("src/auth/login.py", 40, 5), fc("tests/test_app.py", 30)], ci_state="building")
    )
    assert insight.risk_level == "medium"
    assert "touches auth/security code (src/auth/login.py)" in insight.summary
    assert "tests changed" in insight.summary
    assert "no tests changed" not in insight.summary
    assert "CI build still running" in insight.summary
    assert insight.key_changes[0] == "src/auth/login.py: modified (+40/-5), auth/security code"
    assert "Ask an owner of the auth/security code" in insight.recommendation


async def test_failed_build_raises_risk() -> None:
    files = [fc("src/app.py", 8, 2), fc("tests/test_app.py", 5)]
    passed = await analyse(ctx(files, ci_state="buildPassed"))
    failed = await analyse(ctx(files, ci_state="buildFailed"))
    assert passed.risk_level == "low"
    assert failed.risk_level == "medium"
    assert "CI build failed" in failed.summary
    assert failed.recommendation.startswith("Fix the failing CI build before merging.")

    # The same failed build on an auth change is high.
    auth = await analyse(ctx([fc("src/auth/session.py", 8, 2)], ci_state="buildFailed"))
    assert auth.risk_level == "high"


async def test_large_sensitive_untested_failing_change_is_high() -> None:
    files = [fc(f"src/module_{i}.py", 40, 10) for i in range(22)]
    files += [fc("billing/stripe_webhook.py", 60), fc("db/migrations/0042_invoices.sql", 30)]
    insight = await analyse(ctx(files, ci_state="buildFailed"))
    assert insight.risk_level == "high"
    assert insight.summary.startswith("High risk (heuristic score 13): 1,190 lines changed across")
    assert "touches payments code (billing/stripe_webhook.py)" in insight.summary
    assert "touches database migrations (db/migrations/0042_invoices.sql)" in insight.summary
    assert "no tests changed" in insight.summary
    assert "splitting" in insight.recommendation
    assert "migration is reversible" in insight.recommendation
    # Sensitive files come first among the (at most five) key changes.
    assert len(insight.key_changes) == 5
    assert insight.key_changes[0].startswith("billing/stripe_webhook.py: ")
    assert insight.key_changes[1].startswith("db/migrations/0042_invoices.sql: ")


async def test_size_alone_can_make_a_change_high() -> None:
    files = [fc(f"src/m{i}.py", 50, 0) for i in range(21)] + [fc("tests/test_m.py", 10)]
    insight = await analyse(ctx(files, ci_state="buildPassed"))
    assert insight.risk_level == "high"  # 1,060 lines (3) + 22 files (2)


async def test_lock_files_do_not_count_towards_size() -> None:
    files = [fc("package.json", 2, 2), fc("package-lock.json", 4000, 3000)]
    insight = await analyse(ctx(files, ci_state="buildPassed"))
    assert insight.risk_level == "low"
    assert insight.summary.startswith(
        "Low risk (heuristic score 1): 4 lines changed across 2 files"
    )
    assert "touches dependency manifests (package.json)" in insight.summary
    assert "no tests changed" not in insight.summary  # manifests are not code to test


async def test_infrastructure_and_ci_config_are_medium() -> None:
    files = [fc("infra/terraform/main.tf", 30), fc(".github/workflows/ci.yml", 10)]
    insight = await analyse(ctx(files))
    assert insight.risk_level == "medium"
    assert "touches infrastructure (infra/terraform/main.tf)" in insight.summary
    assert "touches CI configuration (.github/workflows/ci.yml)" in insight.summary


async def test_sensitive_points_are_capped() -> None:
    files = [
        fc("auth/jwt.py"),
        fc("payments/charge.py"),
        fc("migrations/0001.sql"),
        fc("deploy/k8s.yaml"),
        fc("tests/test_all.py"),
    ]
    insight = await analyse(ctx(files))
    # 2 + 2 + 2 + 2 sensitive points, capped at 4: medium, not high.
    assert insight.risk_level == "medium"
    assert "(heuristic score 4)" in insight.summary


async def test_without_a_file_list_totals_are_used_with_lower_confidence() -> None:
    insight = await analyse(ctx([], additions=600, deletions=100))
    assert insight.risk_level == "medium"
    assert (
        insight.summary
        == "Medium risk (heuristic score 2): 700 lines changed; CI not reported yet."
    )
    assert insight.key_changes == []
    assert insight.confidence_score == 0.3


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
    # Grounding keeps every heuristic key change: they name files in the change.
    assert ground_key_changes(insight.key_changes, files) == insight.key_changes


async def test_deterministic() -> None:
    c = ctx([fc("src/auth/a.py", 70), fc("README.md", 3)], ci_state="buildFailed")
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
