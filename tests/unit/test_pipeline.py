"""The pipeline state rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowlens import pipeline
from flowlens.github.parse import PayloadError, map_build_status, parse
from flowlens.github.signature import sign, verify
from tests.conftest import load_fixture
from tests.helpers import variant


@pytest.mark.parametrize(
    ("merge", "approval", "build", "expected"),
    [
        ("merged", "approved", "buildFailed", "merged"),
        ("closed", "approved", "buildPassed", "closed"),
        ("pending", "approved", "buildFailed", "approved"),
        ("pending", "changes_requested", "buildFailed", "buildFailed"),
        ("pending", "pending", "buildPassed", "buildPassed"),
        ("pending", "pending", "building", "building"),
        ("pending", "pending", "pending", "pending"),
    ],
)
def test_derived_status_priority(merge: str, approval: str, build: str, expected: str) -> None:
    assert pipeline.derive_status(merge, approval, build) == expected


def test_build_aggregate() -> None:
    assert pipeline.aggregate_build([]) == "pending"
    assert pipeline.aggregate_build(["success", "success"]) == "buildPassed"
    assert pipeline.aggregate_build(["success", "running"]) == "building"
    assert pipeline.aggregate_build(["queued"]) == "building"
    assert pipeline.aggregate_build(["running", "failed", "success"]) == "buildFailed"


def test_approval_aggregate() -> None:
    assert pipeline.aggregate_approval([]) == "pending"
    assert pipeline.aggregate_approval(["approved", "dismissed"]) == "approved"
    assert pipeline.aggregate_approval(["approved", "changes_requested"]) == "changes_requested"


@pytest.mark.parametrize(
    ("status", "conclusion", "expected"),
    [
        ("completed", "success", "success"), ("completed", "skipped", "success"),
        ("completed", "failure", "failed"), ("completed", "cancelled", "failed"),
        ("completed", "timed_out", "failed"), ("in_progress", None, "running"),
        ("queued", None, "queued"), ("waiting", None, "queued"), ("requested", None, "queued"),
        ("success", None, "success"), ("failure", None, "failed"), ("pending", None, "queued"),
        ("completed", "action_required", "queued"),
    ],
)  # fmt: skip
def test_build_status_mapping(status: str, conclusion: str | None, expected: str) -> None:
    assert map_build_status(status, conclusion) == expected


def test_stale_payload_changes_nothing() -> None:
    facts = parse("pull_request", load_fixture("pull_request/opened.payload.json")).pr
    assert facts is not None
    row = {"source_updated_at": datetime(2030, 1, 1, tzinfo=UTC), "title": "newer"}
    assert pipeline.apply_pr_facts(row, facts)["title"] == "newer"
    fresh = pipeline.apply_pr_facts({"source_updated_at": None}, facts)
    assert fresh["title"] == "Update the README with new information."
    assert fresh["status_pr"] == "opened" and fresh["state"] == "open"


def test_reference_facts_only_fill_gaps() -> None:
    payload = load_fixture("workflow_run/completed.with-pull-requests.payload.json")
    # The fixture's PR belongs to another repository (a fork-like reference): not linked.
    assert parse("workflow_run", payload).builds[0].pr_refs == ()
    # Derived: the same run in the PR's own repository.
    own = variant(
        payload, repository=load_fixture("pull_request/opened.payload.json")["repository"]
    )
    ref = parse("workflow_run", own).builds[0].pr_refs[0]
    assert ref.number == 2 and not ref.complete
    filled = pipeline.apply_pr_facts({"head_sha": None, "title": "kept"}, ref)
    assert filled["head_sha"] == ref.head_sha and filled["title"] == "kept"
    kept = pipeline.apply_pr_facts({"head_sha": "other"}, ref)
    assert kept["head_sha"] == "other"


def test_parse_every_fixture_event() -> None:
    cases = {
        "check_run/completed.payload.json": ("check_run", 1),
        "check_suite/completed.payload.json": ("check_suite", 1),
        "status/payload.json": ("status", 1),
        "workflow_job/queued.payload.json": ("workflow_job", 1),
        "workflow_run/requested.payload.json": ("workflow_run", 1),
    }
    for name, (event, n_builds) in cases.items():
        delivery = parse(event, load_fixture(name))
        assert len(delivery.builds) == n_builds, name
        assert delivery.repo is not None
    assert parse("issues", {"action": "opened"}).ignored
    with pytest.raises(PayloadError):
        parse("workflow_run", {"action": "completed"})


def test_needs_analysis_only_for_new_code() -> None:
    opened = parse("pull_request", load_fixture("pull_request/opened.payload.json"))
    labeled = parse("pull_request", load_fixture("pull_request/labeled.payload.json"))
    closed = parse("pull_request", load_fixture("pull_request/closed.payload.json"))
    assert opened.needs_analysis
    assert not labeled.needs_analysis
    assert not closed.needs_analysis


def test_signature() -> None:
    body = b'{"a": 1}'
    assert verify("s", body, sign("s", body))
    assert not verify("s", body, sign("t", body))
    assert not verify("s", body + b" ", sign("s", body))
    assert not verify("s", body, None)
    assert not verify("", body, sign("", body))
