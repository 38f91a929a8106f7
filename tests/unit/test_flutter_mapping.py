"""The /flutter mapping without I/O: status words, history events, the socket message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flowlens import flutter
from tests import flutter_app as app

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(version: int, pr: str, build: str, approval: str = "pending", merge: str = "pending",
        status: str = "pending") -> dict[str, Any]:  # fmt: skip
    return {"version": version, "status_pr": pr, "status_build": build,
            "status_approval": approval, "status_merge": merge, "status": status,
            "source_event": "pull_request", "at": T0 + timedelta(minutes=version)}  # fmt: skip


def test_status_words_are_the_apps() -> None:
    assert flutter.app_state("pending") == "opened"
    assert flutter.app_state(None) == "opened"
    for word in ("building", "buildPassed", "buildFailed", "approved", "merged", "closed"):
        assert flutter.app_state(word) == word
        # The app maps each back to the status it stands for.
        assert app.convert_state(word) == word
    assert app.convert_state(flutter.app_state("pending")) == "pending"


def test_history_is_one_event_per_changed_field() -> None:
    rows = [row(1, "opened", "pending"), row(2, "opened", "building"),
            row(3, "updated", "pending"), row(4, "closed", "pending", merge="merged")]  # fmt: skip
    events = flutter.history_events(rows)
    assert [(e["field"], e["value"], e["meta"]["version"]) for e in events] == [
        ("status_pr", "opened", 1), ("status_build", "building", 2),
        ("status_pr", "updated", 3), ("status_build", "pending", 3),
        ("status_pr", "closed", 4), ("status_merge", "merged", 4),
    ]  # fmt: skip


def test_a_long_history_shows_its_last_rows_compared_with_the_one_before() -> None:
    rows = [row(1, "opened", "pending")]
    rows += [row(v, "opened", "building" if v % 2 else "buildFailed")
             for v in range(2, flutter.HISTORY_ROWS + 3)]  # fmt: skip
    item = flutter.pipeline(
        {"id": 1, "repository_id": 2, "number": 3, "head_sha": "a", "analysed_sha": "a",
         "created_at": T0, "updated_at": T0}, rows[-flutter.HISTORY_ROWS - 1:],
    )  # fmt: skip
    run = app.pipeline_from_api_json(item, now=T0)
    assert len(run.history) == flutter.HISTORY_ROWS  # one build change per shown row
    assert all(e.field == "status_build" for e in run.history)
    assert run.processed and run.repo_id == "2" and json.loads(item["history"])


def test_the_socket_message_names_the_repository_id() -> None:
    text = json.dumps({"event": "pr_update", "data": {"pr_number": 7,
                       "pull_request": {"status": "buildFailed"}}})  # fmt: skip
    update = app.on_message(flutter.socket_message(text, 12))
    assert update == app.PRStateUpdate("12", 7, "buildFailed")
    assert flutter.socket_message(text, None) is None


def test_a_change_the_app_cannot_be_told_still_reaches_the_others() -> None:
    from flowlens.api.feed import Change
    from flowlens.api.hub import Hub

    hub = Hub(queue_size=4)
    main = hub.add([])
    flutter_client = hub.add([], app=True)
    hub.publish(Change(1, 1, "o/r", "not json", 3))
    assert main.queue.get_nowait() == "not json"
    assert flutter_client.queue.empty()
    good = json.dumps({"event": "pr_update", "data": {"pr_number": 7,
                       "pull_request": {"status": "merged"}}})  # fmt: skip
    hub.publish(Change(1, 2, "o/r", good, 3))
    assert json.loads(flutter_client.queue.get_nowait()) == {
        "repo_id": "3", "pr_number": 7, "state": "merged",
    }  # fmt: skip
