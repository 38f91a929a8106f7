"""load_payload: parse() reads the same facts from it as from the whole JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowlens.github.parse import load_payload, parse
from tests.helpers import variant

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
PAYLOADS = sorted(FIXTURES.glob("*/*.json"))


def test_there_are_fixtures_of_every_event_kind() -> None:
    assert {p.parent.name for p in PAYLOADS} >= {
        "pull_request", "pull_request_review", "workflow_run", "workflow_job", "check_run",
        "check_suite", "status", "push", "ping", "installation", "repository",
    }  # fmt: skip


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_gives_the_same_facts_both_ways(path: Path) -> None:
    text = path.read_text()
    assert parse(path.parent.name, load_payload(text)) == parse(path.parent.name, json.loads(text))


MERGED_AT = "2019-05-15T15:21:18Z"


@pytest.mark.parametrize(
    ("changes", "merged"),
    [({"pull_request.merged": True, "pull_request.merged_at": None}, True),
     ({"pull_request.merged": None, "pull_request.merged_at": MERGED_AT}, True),
     ({"repository.name": "not-the-full-names-last-part"}, False)],
    ids=["merged only", "merged_at only", "name of its own"],
)  # fmt: skip
def test_variants_give_the_same_facts_both_ways(changes: dict[str, object], merged: bool) -> None:
    closed = json.loads((FIXTURES / "pull_request" / "closed.payload.json").read_text())
    payload = variant(closed, **changes)
    facts = parse("pull_request", load_payload(json.dumps(payload)))
    assert facts == parse("pull_request", payload)
    assert facts.pr is not None and facts.pr.merged is merged


def test_only_the_big_objects_lose_keys() -> None:
    text = FIXTURES / "pull_request" / "converted_to_draft.with-installation.payload.json"
    whole = json.loads(text.read_text())
    loaded = load_payload(text.read_text())
    assert set(loaded) == set(whole)
    assert loaded["installation"] == whole["installation"]
    repo = loaded["repository"]
    assert repo["full_name"] == whole["repository"]["full_name"] and "hooks_url" not in repo
    assert repo["owner"] == {k: whole["repository"]["owner"][k] for k in ("login", "avatar_url")}
    pr = loaded["pull_request"]
    assert "_links" not in pr and "labels" not in pr
    assert pr["head"]["sha"] == whole["pull_request"]["head"]["sha"]
    assert "hooks_url" not in pr["head"]["repo"]
    assert len(json.dumps(loaded)) < len(json.dumps(whole)) / 4


def test_unexpected_shapes_are_kept_as_they_are() -> None:
    pr = {"number": 1, "user": None, "head": [], "base": {"repo": 5}}
    odd = {"action": "opened", "repository": None, "sender": "ghost", "pull_request": pr}
    assert load_payload(json.dumps(odd)) == odd
    assert parse("pull_request", load_payload(json.dumps(odd))) == parse("pull_request", odd)


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "payload is not a JSON object"), ('{"a": ', "EOF while parsing"),
     ("", "EOF while parsing")],
)  # fmt: skip
def test_what_is_not_a_json_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_payload(text)
