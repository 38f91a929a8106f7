"""load_payload: parse() reads the same facts from it as from the whole JSON."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from typing_extensions import is_typeddict

from flowlens.github import parse as parse_module
from flowlens.github.parse import PayloadError, load_payload, parse
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


class Reads(dict[str, Any]):
    """A payload object that notes every key parse() asks of it, under the object's path."""

    def __init__(self, data: dict[str, Any], path: tuple[str, ...], seen: set[Any]) -> None:
        super().__init__(data)
        self.path, self.seen = path, seen

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add((self.path, key))
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.seen.add((self.path, key))
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add((self.path, key))
        return super().__contains__(key)


def noting(value: Any, path: tuple[str, ...], seen: set[Any]) -> Any:
    if isinstance(value, dict):
        return Reads({k: noting(v, (*path, k), seen) for k, v in value.items()}, path, seen)
    if isinstance(value, list):
        return [noting(v, (*path, "[]"), seen) for v in value]
    return value


def pruned_shape(path: tuple[str, ...]) -> Any:
    """The TypedDict load_payload builds the object at `path` with, or None if kept whole."""
    shape: Any = parse_module._Payload
    for key in path:
        hint = typing.get_type_hints(shape, include_extras=True).get(key)
        if hint is None:
            return None
        union = typing.get_args(hint)[0]  # Annotated[Shape | Any, ...]
        shape = next((t for t in typing.get_args(union) if is_typeddict(t)), None)
        if shape is None:
            return None
    return None if shape is parse_module._Payload else shape


def test_every_key_parse_reads_of_a_pruned_object_is_kept() -> None:
    """A key added to a reader but not to load_payload's shapes would read as missing."""
    checked = 0
    for path in PAYLOADS:
        seen: set[Any] = set()
        parse(path.parent.name, noting(json.loads(path.read_text()), (), seen))
        for where, key in seen:
            shape = pruned_shape(where)
            if shape is not None:
                assert key in typing.get_type_hints(shape), (path.name, where, key)
                checked += 1
    assert checked > 100


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
    pr = {"number": 1, "user": None, "head": "main", "base": {"repo": 5}}
    odd = {"action": "opened", "repository": None, "sender": "ghost", "pull_request": pr}
    assert load_payload(json.dumps(odd)) == odd
    # A head that is no object is named, read either way.
    for payload in (odd, load_payload(json.dumps(odd))):
        with pytest.raises(PayloadError, match=r"pull_request\.head: expected an object"):
            parse("pull_request", payload)
    pr["head"] = None
    assert parse("pull_request", load_payload(json.dumps(odd))) == parse("pull_request", odd)


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1, 2]", "payload is not a JSON object"), ('{"a": ', "EOF while parsing"),
     ("", "EOF while parsing")],
)  # fmt: skip
def test_what_is_not_a_json_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_payload(text)


def _own(relative: str, **changes: Any) -> dict[str, Any]:
    from tests.conftest import load_fixture

    return variant(load_fixture(relative), **changes)


def test_flowlens_own_check_and_status_are_not_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-back's check run, its check suite (by the App's id) and its commit status come
    back as webhooks; none of them is a build of the PR."""
    other = parse("check_run", _own("check_run/completed.payload.json"))
    assert other.builds, "another app's check run is a build"
    own = parse("check_run", _own("check_run/completed.payload.json",
                                  **{"check_run.name": "FlowLens risk"}))  # fmt: skip
    assert own.builds == [] and not own.needs_analysis
    status = _own("status/payload.json", context="FlowLens risk")
    assert parse("status", status).builds == []
    suite = _own("check_suite/completed.payload.json")
    assert parse("check_suite", suite).builds
    monkeypatch.setattr(parse_module, "OWN_APP_ID", suite["check_suite"]["app"]["id"])
    assert parse("check_suite", suite).builds == []


def test_a_rerequested_flowlens_check_asks_for_a_new_analysis() -> None:
    pr = {"number": 2, "id": 5, "head": {"sha": "7" * 40, "ref": "changes"},
          "base": {"ref": "master", "repo": {"id": 526}}}  # fmt: skip
    changes = {"check_run.name": "FlowLens risk", "check_run.pull_requests": [pr]}
    payload = _own("check_run/rerequested.payload.json", **changes)
    facts = parse("check_run", payload)
    assert facts.needs_analysis and facts.pr_number == 2 and facts.builds == []
    # Another app's check asked to re-run: a build event, no analysis.
    theirs = parse("check_run", variant(payload, **{"check_run.name": "CI"}))
    assert not theirs.needs_analysis and theirs.rerun is None
    # A PR of another repository (a fork's base): nothing to analyse here.
    fork = variant(payload, **{"check_run.pull_requests.0.base.repo.id": 9})
    assert not parse("check_run", fork).needs_analysis


def test_installation_events_name_the_installation_and_its_repositories() -> None:
    created = parse("installation", _own("installation/created.payload.json"))
    assert created.installation is not None
    assert created.installation.installation_id == 957387
    assert created.installation.action == "installation.created"
    assert created.installation.added == ("Codertocat/Hello-World",)
    added = parse("installation_repositories",
                  _own("installation_repositories/added.payload.json"))  # fmt: skip
    assert added.installation is not None and added.installation.added == ("Codertocat/Space",)
    removed = parse("installation_repositories", _own(
        "installation_repositories/added.payload.json", action="removed",
        repositories_removed=[{"id": 1, "full_name": "Codertocat/Space", "name": "Space",
                               "private": False, "node_id": "x"}],
        repositories_added=[],
    ))  # fmt: skip
    assert removed.installation is not None
    assert removed.installation.removed == ("Codertocat/Space",) and not removed.installation.added
