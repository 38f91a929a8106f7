"""Synthetic webhook deliveries built from GitHub REST objects (pure, no I/O).

The sync writes through the webhook code path (`record_delivery`), so it has to say what a
webhook would have said: the REST objects of pulls, reviews and workflow runs are the same
objects webhooks carry, and the action is named by comparing the pull request with what is
stored. Delivery ids are deterministic, so syncing the same object version twice is a no-op.
"""

from __future__ import annotations

from typing import Any

# Actions a pull_request delivery can carry that the sync can recognise from two snapshots.
OPENED, CLOSED, REOPENED, SYNCHRONIZE = "opened", "closed", "reopened", "synchronize"
EDITED, TO_DRAFT, READY = "edited", "converted_to_draft", "ready_for_review"


def pr_delivery_id(pr: dict[str, Any]) -> str:
    """sync:pull_request:<id>:<updated_at>: one per version of a pull request."""
    return f"sync:pull_request:{pr['id']}:{pr.get('updated_at')}"


def review_delivery_id(review: dict[str, Any]) -> str:
    """sync:pull_request_review:<id>:<state>: a review changes only by being dismissed."""
    return f"sync:pull_request_review:{review['id']}:{str(review.get('state') or '').lower()}"


def run_delivery_id(run: dict[str, Any]) -> str:
    """sync:workflow_run:<id>:<updated_at>: one per version of a run."""
    return f"sync:workflow_run:{run['id']}:{run.get('updated_at')}"


def pr_action(stored: dict[str, Any] | None, pr: dict[str, Any]) -> str | None:
    """The action a webhook would have carried to move `stored` to `pr` (None: no PR change).

    A pull request the database has never seen in full is `opened` (or `closed`); otherwise the
    difference names it: state, then head commit, then draft flag, then title/body/base. When
    none of those changed (a label, a comment, a review bumped updated_at) the delivery is a
    snapshot without an action, which, like a review's pull request, leaves status_pr alone.
    """
    now_open = pr.get("state") == "open"
    if stored is None or stored.get("source_updated_at") is None:
        return OPENED if now_open else CLOSED
    was_open = stored.get("state") == "open"
    if was_open and not now_open:
        return CLOSED
    if not was_open and now_open:
        return REOPENED
    if not now_open:
        return EDITED
    head = (pr.get("head") or {}).get("sha")
    if head and head != stored.get("head_sha"):
        return SYNCHRONIZE
    draft = bool(pr.get("draft", False))
    if draft != bool(stored.get("is_draft")):
        return TO_DRAFT if draft else READY
    base = (pr.get("base") or {}).get("ref")
    if (
        (pr.get("title") or "") != (stored.get("title") or "")
        or (pr.get("body") or "") != (stored.get("body") or "")
        or (base is not None and base != stored.get("base_ref"))
    ):
        return EDITED
    return None


def pull_request_payload(
    pr: dict[str, Any], repository: dict[str, Any], action: str | None
) -> dict[str, Any]:
    """A `pull_request` delivery carrying the full pull request object."""
    payload: dict[str, Any] = {
        "number": pr["number"],
        "pull_request": pr,
        "repository": repository,
        "sender": pr.get("user"),
    }
    if action is not None:
        payload = {"action": action, **payload}
    return payload


def review_payload(
    review: dict[str, Any], pr: dict[str, Any], repository: dict[str, Any]
) -> dict[str, Any] | None:
    """A `pull_request_review` delivery (None for a PENDING review nobody else can see)."""
    state = str(review.get("state") or "").lower()
    if state in ("", "pending"):
        return None
    return {
        "action": "dismissed" if state == "dismissed" else "submitted",
        "review": review,
        "pull_request": pr,
        "repository": repository,
        "sender": review.get("user"),
    }


def workflow_run_action(run: dict[str, Any]) -> str:
    """completed, in_progress or requested, from the run's status."""
    status = str(run.get("status") or "")
    if status == "completed":
        return "completed"
    if status == "in_progress":
        return "in_progress"
    return "requested"


def workflow_run_payload(run: dict[str, Any], repository: dict[str, Any]) -> dict[str, Any]:
    """A `workflow_run` delivery carrying the run object."""
    return {
        "action": workflow_run_action(run),
        "workflow_run": run,
        "repository": repository,
        "sender": run.get("triggering_actor") or run.get("actor"),
    }
