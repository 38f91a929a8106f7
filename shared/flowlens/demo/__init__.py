"""The bundled demo story: a PR opened, CI fails, a fix, CI passes, approved, merged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any


def story(now: datetime | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, title, payload) steps, stamped from `now` so each replay is newer than the last."""
    data = json.loads(resources.files("flowlens.demo").joinpath("story.json").read_text("utf-8"))
    start = now or datetime.now(UTC)
    created = start.strftime("%Y-%m-%dT%H:%M:%SZ")  # every step's: one PR
    steps = []
    for i, step in enumerate(data["steps"]):
        at = (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        payload = step["payload"]
        pr = payload.get("pull_request")
        if pr is not None:
            pr["updated_at"] = at
            pr["created_at"] = created
            if pr.get("state") == "closed":
                pr["closed_at"] = at
                pr["merged_at"] = at if pr.get("merged") else None
        run = payload.get("workflow_run")
        if run is not None:
            run["updated_at"] = at
            run["run_started_at"] = (start + timedelta(seconds=max(0, i - 1))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        review = payload.get("review")
        if review is not None:
            review["submitted_at"] = at
            review["id"] = int(start.timestamp())
        payload.get("repository", {})["updated_at"] = at
        steps.append((step["event"], step["title"], payload))
    return steps
