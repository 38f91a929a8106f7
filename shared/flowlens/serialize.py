"""Rows to the public JSON contract (camelCase REST items, the pr_update message)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    """ISO-8601 with offset, or None."""
    return value.isoformat() if value is not None else None


# A list item's (and a pr_update's) description is cut to this many characters, so a page of
# PRs stays small whatever their authors wrote; GET /api/prs/{number} has the whole text.
DESCRIPTION_MAX = 1000
_MORE = "…"


def short_description(body: str | None) -> str:
    """`body` cut to DESCRIPTION_MAX characters, the last one "…" where text was left out."""
    text = body or ""
    if len(text) <= DESCRIPTION_MAX:
        return text
    return text[: DESCRIPTION_MAX - len(_MORE)] + _MORE


def pr_item(row: dict[str, Any], repository: str, *, full: bool = False) -> dict[str, Any]:
    """One /api/prs item from a pull_requests row (`full`: the whole description)."""
    return {
        "number": row["number"],
        "title": row.get("title") or "",
        "description": (row.get("body") or "") if full else short_description(row.get("body")),
        "author": row.get("author") or "",
        "authorAvatar": row.get("author_avatar"),
        "commitSha": row.get("head_sha"),
        "repositoryName": repository,
        "createdAt": iso(row.get("gh_created_at") or row.get("created_at")),
        "updatedAt": iso(row.get("gh_updated_at") or row.get("updated_at")),
        "status": row.get("status") or "pending",
        "filesChanged": list(row.get("files_changed") or []),
        "additions": row.get("additions") or 0,
        "deletions": row.get("deletions") or 0,
        "branchName": row.get("head_ref"),
        "baseBranch": row.get("base_ref"),
        "isDraft": bool(row.get("is_draft")),
        "state": row.get("state") or "open",
        "url": row.get("html_url"),
        "pipelineStatus": {
            "statusPr": row.get("status_pr") or "opened",
            "statusBuild": row.get("status_build") or "pending",
            "statusApproval": row.get("status_approval") or "pending",
            "statusMerge": row.get("status_merge") or "pending",
        },
        "riskLevel": row.get("risk_level"),
    }


def pr_update(row: dict[str, Any], repository: str) -> dict[str, Any]:
    """The WebSocket pr_update message for a PR row (complete state, version included)."""
    insight = row.get("latest_insight")
    return {
        "event": "pr_update",
        "data": {
            "pr_number": row["number"],
            "repository": repository,
            "title": row.get("title") or "",
            "updated_at": iso(row.get("updated_at")),
            "version": row.get("version"),
            "pipeline_status": {
                "status_pr": row.get("status_pr") or "opened",
                "status_build": row.get("status_build") or "pending",
                "status_approval": row.get("status_approval") or "pending",
                "status_merge": row.get("status_merge") or "pending",
            },
            "ai_insight": dict(insight) if insight else None,
            "pull_request": pr_item(row, repository),
        },
    }


def insight_snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """The ai_insight object of pr_update, from an insights row."""
    return {
        "risk_level": row["risk_level"],
        "summary": row["summary"],
        "recommendation": row["recommendation"],
        "key_changes": list(row.get("key_changes") or []),
        "confidence_score": row["confidence_score"],
        "commit_sha": row["commit_sha"],
        "model": row["model"],
    }


def insight_item(row: dict[str, Any], repository: str) -> dict[str, Any]:
    """One /api/insights item."""
    return {
        "id": row["id"],
        "prNumber": row["pr_number"],
        "repositoryName": repository,
        "commitSha": row["commit_sha"],
        "riskLevel": row["risk_level"],
        "summary": row["summary"],
        "recommendation": row["recommendation"],
        "keyChanges": list(row.get("key_changes") or []),
        "confidenceScore": row["confidence_score"],
        "createdAt": iso(row.get("created_at")),
        "model": row["model"],
    }


def build_item(row: dict[str, Any]) -> dict[str, Any]:
    """One /api/builds item (row joined with its repository's full_name)."""
    return {
        "id": row["id"],
        "provider": row["provider"],
        "externalId": row["external_id"],
        "workflowName": row.get("workflow_name") or "",
        "status": row["status"],
        "branch": row.get("branch"),
        "commitSha": row.get("commit_sha"),
        "prNumber": row.get("pr_number"),
        "triggeredBy": row.get("triggered_by"),
        "url": row.get("url"),
        "startedAt": iso(row.get("started_at")),
        "finishedAt": iso(row.get("finished_at")),
        "durationSeconds": row.get("duration_seconds"),
        "repositoryName": row.get("repository"),
    }


def repository_item(row: dict[str, Any]) -> dict[str, Any]:
    """One /api/repository item (row with open_prs / total_prs counts)."""
    return {
        "name": row["name"],
        "fullName": row["full_name"],
        "description": row.get("description"),
        "owner": row["owner"],
        "ownerAvatar": row.get("owner_avatar"),
        "isPrivate": bool(row.get("is_private")),
        "defaultBranch": row.get("default_branch"),
        "openPRs": int(row.get("open_prs") or 0),
        "totalPRs": int(row.get("total_prs") or 0),
        "lastActivity": iso(row.get("last_activity")),
        "languages": [row["language"]] if row.get("language") else [],
        "stars": row.get("stars") or 0,
        "forks": row.get("forks") or 0,
    }
