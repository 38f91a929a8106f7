"""Rows to the shipped FlowLens Flutter app's JSON (the /flutter surface).

The app's `fromApiJson` factories and `WebSocketService._onMessage` are the specification:
snake_case keys, ids as strings, every field it casts as non-nullable present with that type.
Each function maps a row the main API already reads (flowlens.serialize's inputs), so the two
surfaces cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flowlens.serialize import iso, short_description

# The app's PullRequest.convertStateValue and PRProvider.convertState read "opened" for a PR
# with nothing further to show (our "pending"); the other statuses are the same words.
_APP_STATE = {"pending": "opened"}
# PipelineRun's words for a review that asks for changes (_isBackwardsProgression,
# displayValue, eventDescription) are "rejected".
_APP_APPROVAL = {"changes_requested": "rejected"}
# The app's Repository.defaultBranch is a non-nullable String; a repository known only from a
# CI report has no default branch yet.
DEFAULT_BRANCH = "main"
# History rows a pipeline item shows (the app shows the last 8 steps).
HISTORY_ROWS = 50
PIPELINE_FIELDS = ("status_pr", "status_build", "status_approval", "status_merge")
# History before the first row: a PR starts with nothing built, reviewed or merged, so the
# first row's "pending" fields are not events (the app infers "opened" when none is sent).
_HISTORY_START = {"status_pr": None, "status_build": "pending",
                  "status_approval": "pending", "status_merge": "pending"}  # fmt: skip


def app_state(status: str | None) -> str:
    """A PR's status in the app's vocabulary: opened, building, buildPassed, buildFailed,
    approved, merged, closed."""
    status = status or "pending"
    return _APP_STATE.get(status, status)


def repository(row: dict[str, Any]) -> dict[str, Any]:
    """One /flutter/api/repositories item (Repository.fromApiJson), from an api_repositories row."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "full_name": row["full_name"],
        "description": row.get("description") or "",
        "owner": row["owner"],
        "owner_avatar": row.get("owner_avatar") or f"https://github.com/{row['owner']}.png",
        "is_private": bool(row.get("is_private")),
        "default_branch": row.get("default_branch") or DEFAULT_BRANCH,
        "open_prs": int(row.get("open_prs") or 0),
        "total_prs": int(row.get("total_prs") or 0),
        "merged_prs": int(row.get("merged_prs") or 0),
        "closed_prs": int(row.get("closed_prs") or 0),
        "draft_prs": int(row.get("draft_prs") or 0),
        "last_activity": iso(row.get("last_activity") or row.get("updated_at")),
        "language": row.get("language") or None,
        "stars": int(row.get("stars") or 0),
        "forks": int(row.get("forks") or 0),
        "html_url": row.get("html_url") or f"https://github.com/{row['full_name']}",
    }


def _pr_identity(row: dict[str, Any]) -> dict[str, Any]:
    """What names a PR and dates it, alike in its list item and its pipeline item."""
    return {
        "id": str(row["id"]),
        "repo_id": str(row["repository_id"]),
        "pr_number": row["number"],
        "created_at": iso(row.get("gh_created_at") or row.get("created_at")),
        "updated_at": iso(row.get("gh_updated_at") or row.get("updated_at")),
    }


def pull_request(row: dict[str, Any]) -> dict[str, Any]:
    """One /flutter/api/pull-requests item (PullRequest.fromApiJson), from a PR list row."""
    # GitHub's count; the paths are known only once the head is analysed.
    changed = max(int(row.get("changed_files") or 0), len(row.get("files_changed") or []))
    return {
        **_pr_identity(row),
        "title": row.get("title") or "",
        "description": short_description(row.get("body")),
        "author": row.get("author") or "",
        "author_avatar": row.get("author_avatar") or "",
        "commit_sha": row.get("head_sha") or "",
        "repository_name": row.get("repository") or "",
        "status": app_state(row.get("status")),
        "merged": row.get("state") == "merged",
        # The app makes placeholder names from the count; the paths are in /api/prs.
        "changed_files": changed,
        "additions": int(row.get("additions") or 0),
        "deletions": int(row.get("deletions") or 0),
        "branch_name": row.get("head_ref") or "",
        "is_draft": bool(row.get("is_draft")),
    }


def insight(row: dict[str, Any]) -> dict[str, Any]:
    """One /flutter/api/insights item (AIInsight.fromApiJson), from an insights row joined with
    its PR's author."""
    return {
        "id": str(row["id"]),
        "repo_id": str(row["repository_id"]),
        "pr_number": row["pr_number"],
        "commit_sha": row["commit_sha"],
        "author": row.get("author") or "",
        "avatar_url": row.get("author_avatar") or "",
        "risk_level": row["risk_level"],
        "summary": row["summary"],
        "recommendation": row["recommendation"],
        "created_at": iso(row["created_at"]),
        # The one camelCase key the app reads here (AIInsight.fromApiJson).
        "keyChanges": list(row.get("key_changes") or []),
        "confidence_score": float(row["confidence_score"]),
        "model": row.get("model") or "",
    }


def history_events(
    rows: Iterable[dict[str, Any]], before: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A PR's pr_history rows (oldest first) as the app's PipelineHistoryEvent list: one event
    per field that changed, {at, field, value, meta}. `before`: the row preceding the first
    (None: the first row is the PR's first)."""
    events: list[dict[str, Any]] = []
    for row in rows:
        previous = before if before is not None else _HISTORY_START
        for field in PIPELINE_FIELDS:
            if row[field] != previous[field]:
                value = row[field]
                if field == "status_approval":
                    value = _APP_APPROVAL.get(value, value)
                events.append(
                    {
                        "at": iso(row["at"]),
                        "field": field,
                        "value": value,
                        "meta": {"source_event": row["source_event"], "version": row["version"]},
                    }
                )
        before = row
    return events


def pipeline(row: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """One /flutter/api/pipelines item (PipelineRun.fromApiJson): a PR's pipeline state.

    `history`: its last HISTORY_ROWS + 1 history rows, oldest first (the extra one, when there,
    is only what the first shown row is compared with). The item's `history` is a JSON
    *string*: PipelineRun.fromApiJson hands it to jsonDecode.
    """
    before = None
    if len(history) > HISTORY_ROWS:
        before, history = history[-HISTORY_ROWS - 1], history[-HISTORY_ROWS:]
    head = row.get("head_sha") or ""
    approval = row.get("status_approval") or "pending"
    return {
        **_pr_identity(row),
        "commit_sha": head,
        "author": row.get("author") or "",
        "avatar_url": row.get("author_avatar") or "",
        "title": row.get("title") or "",
        "status_pr": row.get("status_pr") or "opened",
        "status_build": row.get("status_build") or "pending",
        "status_approval": _APP_APPROVAL.get(approval, approval),
        "status_merge": row.get("status_merge") or "pending",
        "history": json.dumps(history_events(history, before), separators=(",", ":")),
        # Whether the current head has its risk read.
        "processed": bool(head) and row.get("analysed_sha") == head,
    }


def socket_message(pr_update_text: str, repository_id: int | None) -> str | None:
    """The app's socket message {repo_id, pr_number, state} for a stored pr_update message,
    or None when the PR is gone (no repository to name)."""
    if repository_id is None:
        return None
    data = json.loads(pr_update_text)["data"]
    return json.dumps(
        {
            "repo_id": str(repository_id),
            "pr_number": data["pr_number"],
            "state": app_state(data["pull_request"]["status"]),
        }
    )
