"""Pipeline state rules: how facts from deliveries move a pull request (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flowlens.github.parse import PrFacts
from flowlens.model import (
    STATUS,
    STATUS_APPROVAL,
    STATUS_BUILD,
    STATUS_MERGE,
    STATUS_PR,
    VISIBLE_COLUMNS,
)

__all__ = ["STATUS", "STATUS_APPROVAL", "STATUS_BUILD", "STATUS_MERGE", "STATUS_PR", "VISIBLE"]

# The vocabularies and the columns clients see are the model's (flowlens.model).
VISIBLE = VISIBLE_COLUMNS

_OPENING_ACTIONS = frozenset({"opened", "reopened"})


def derive_status(status_merge: str, status_approval: str, status_build: str) -> str:
    """The single status clients show: merged/closed > approved > build state > pending."""
    if status_merge in ("merged", "closed"):
        return status_merge
    if status_approval == "approved":
        return "approved"
    if status_build in ("buildFailed", "buildPassed", "building"):
        return status_build
    return "pending"


def aggregate_build(statuses: Iterable[str]) -> str:
    """status_build of a head commit from all its builds: any failure > running > all passed."""
    seen = set(statuses)
    if not seen:
        return "pending"
    if "failed" in seen:
        return "buildFailed"
    if seen & {"running", "queued"}:
        return "building"
    return "buildPassed"


def aggregate_approval(latest_per_reviewer: Iterable[str]) -> str:
    """status_approval from each reviewer's latest deciding review."""
    states = set(latest_per_reviewer)
    if "changes_requested" in states:
        return "changes_requested"
    if "approved" in states:
        return "approved"
    return "pending"


def is_stale(stored: datetime | None, incoming: datetime | None) -> bool:
    """True when the incoming payload is older than what is stored (never move backwards)."""
    return stored is not None and incoming is not None and incoming < stored


def reopens_wrongly(row: dict[str, Any], facts: PrFacts) -> bool:
    """An open snapshot that cannot come after the stored close: GitHub never reopens a merged
    PR, and timestamps have one-second resolution, so at the same second as a close only an
    explicit reopen follows it (a label or an edit made just before the close, delivered late,
    does not)."""
    if facts.state == "closed" or row.get("state") not in ("closed", "merged"):
        return False
    if row.get("state") == "merged":
        return True
    return facts.action != "reopened" and facts.updated_at == row.get("source_updated_at")


def apply_pr_facts(row: dict[str, Any], facts: PrFacts) -> dict[str, Any]:
    """New column values after a PR payload; unchanged when the payload is older than the row."""
    new = dict(row)
    if not facts.complete:
        # A reference (from a build or review) only fills what we do not know yet.
        for column, value in (
            ("head_sha", facts.head_sha),
            ("head_ref", facts.head_ref),
            ("base_ref", facts.base_ref),
            ("github_id", facts.github_id),
        ):
            if new.get(column) is None and value is not None:
                new[column] = value
        return new
    if is_stale(row.get("source_updated_at"), facts.updated_at) or reopens_wrongly(row, facts):
        return new
    new.update(
        github_id=facts.github_id if facts.github_id is not None else row.get("github_id"),
        title=facts.title or "",
        body=facts.body or "",
        author=facts.author or "",
        author_avatar=facts.author_avatar,
        head_sha=facts.head_sha or row.get("head_sha"),
        head_ref=facts.head_ref,
        base_ref=facts.base_ref,
        is_draft=bool(facts.is_draft),
        html_url=facts.html_url,
        changed_files=facts.changed_files
        if facts.changed_files is not None
        else row.get("changed_files", 0),
        additions=facts.additions if facts.additions is not None else row.get("additions", 0),
        deletions=facts.deletions if facts.deletions is not None else row.get("deletions", 0),
        gh_created_at=facts.created_at,
        gh_updated_at=facts.updated_at,
        merged_at=facts.merged_at,
        closed_at=facts.closed_at,
        source_updated_at=facts.updated_at or row.get("source_updated_at"),
    )
    if facts.state == "closed":
        new["state"] = "merged" if facts.merged else "closed"
        new["status_pr"] = "closed"
        new["status_merge"] = "merged" if facts.merged else "closed"
    else:
        new["state"] = "open"
        new["status_merge"] = "pending"
        if facts.action in _OPENING_ACTIONS:
            new["status_pr"] = "opened"
        elif facts.action is None:
            # A snapshot (review payload) says nothing about what happened to the PR itself.
            new["status_pr"] = (
                row.get("status_pr") if row.get("status_pr") != "closed" else "opened"
            )
            new["status_pr"] = new["status_pr"] or "opened"
        else:
            new["status_pr"] = "updated"
    return new


def finish(new: dict[str, Any], build_statuses: Iterable[str], approvals: Iterable[str]) -> None:
    """Fill the derived columns (build, approval, status) in place."""
    new["status_build"] = aggregate_build(build_statuses) if new.get("head_sha") else "pending"
    new["status_approval"] = aggregate_approval(approvals)
    new["status"] = derive_status(new["status_merge"], new["status_approval"], new["status_build"])


def visible_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether clients would see a difference."""
    return any(before.get(c) != after.get(c) for c in VISIBLE)
