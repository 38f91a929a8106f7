"""The risk model's inputs (Kamei et al.'s change metrics), its outcome readers and the commit
stream format of `flowlens risk-eval`."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from flowlens.risk.features import FileLines, entropy, measure, names_a_fix, subsystem
from flowlens.risk.history import FileHistory, History
from flowlens.risk.outcomes import FOLLOW_UP_DAYS, followed_up, revert_targets
from flowlens.risk.replay import StreamError, parse

AT = datetime(2026, 5, 1, tzinfo=UTC)


def test_change_metrics_by_hand() -> None:
    files = [
        FileLines("core/src/a/A.java", 30, 10),
        FileLines("core/src/a/B.java", 10, 0),
        FileLines("client/C.java", 0, 0),
        FileLines("README", 5, 5),
        FileLines("web/yarn.lock", 900, 900),  # generated: no lines counted
    ]
    history = History(author_changes=4, files={
        "core/src/a/A.java": FileHistory(10, 3, AT - timedelta(days=2), "x"),
        "client/C.java": FileHistory(4, 5, AT - timedelta(days=6), "y"),
        "README": FileHistory(0, 0, None),  # left out by its own change: as never seen
    })  # fmt: skip
    f = measure(files, "Fix the NPE in A", history, AT)
    assert (f.la, f.ld, f.nf, f.nd, f.ns) == (45, 15, 5, 4, 4)  # dirs: core/src/a, client, ., web
    assert f.entropy == pytest.approx(entropy([40, 10, 0, 10]))
    assert f.fix and f.exp == 4 and f.nuc == 14 and f.ndev == 5
    assert f.age_days == pytest.approx(4.0)
    assert f.unseen == pytest.approx(3 / 5)


def test_totals_serve_without_a_file_list() -> None:
    f = measure([], "Add a feature", History(), AT, additions=70, deletions=3)
    assert (f.la, f.ld, f.nf, f.entropy, f.unseen, f.fix) == (70, 3, 0, 0.0, 0.0, False)


def test_entropy_is_normalised() -> None:
    assert entropy([10]) == 0.0
    assert entropy([5, 5]) == pytest.approx(1.0)
    assert entropy([5, 5, 5, 5]) == pytest.approx(1.0)
    assert entropy([9, 1]) == pytest.approx(-(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1)))
    assert entropy([0, 0]) == 0.0


@pytest.mark.parametrize(
    ("title", "fix"),
    [("Fix race in consumer", True), ("KAFKA-123: fixes bug in log cleaner", True),
     ("Hotfix for crash on start", True), ("Add prefix option", False),
     ("Refactor fixtures", False), ("Bump version", False)],
)  # fmt: skip
def test_a_title_names_a_fix(title: str, fix: bool) -> None:
    assert names_a_fix(title) is fix


def test_subsystem() -> None:
    assert subsystem("core/src/A.java") == "core" and subsystem("README") == ""


@pytest.mark.parametrize(
    ("title", "body", "shas", "numbers"),
    [
        ('Revert "Add cache"', "Reverts octo/app#41", [], [41]),
        ('Revert "Add cache"', "This reverts commit 0123abcd4567ef89.", ["0123abcd4567ef89"], []),
        ("revert 9fceb02 and #7", "", ["9fceb02"], [7]),
        ('Revert "Add cache"', "no reference", None, None),
        ("Add revert button", "Reverts octo/app#41", None, None),
        ('Revert "Add cache"', "Reverts other/lib#41", None, None),  # another repository's #41
        ('Revert "Add cache" (OCTO/App#3)', "Reverts other/lib#41", [], [3]),
    ],
)
def test_revert_targets(title: str, body: str, shas: list[str] | None,
                        numbers: list[int] | None) -> None:  # fmt: skip
    found = revert_targets(title, body, "octo/app")
    if shas is None:
        assert found is None
    else:
        assert found is not None and found.shas == shas and found.numbers == numbers


def test_follow_ups_are_other_changes_within_the_window() -> None:
    window = timedelta(days=FOLLOW_UP_DAYS)
    history = History(0, {
        "a": FileHistory(3, 1, AT - window + timedelta(hours=1), "pr:1"),
        "b": FileHistory(3, 1, AT - window - timedelta(hours=1), "pr:2"),  # too long ago
        "c": FileHistory(1, 1, AT - timedelta(days=1), "pr:9"),  # the change itself
        "d": FileHistory(2, 1, AT - timedelta(days=1), "pr:1"),
    })  # fmt: skip
    assert followed_up(history, AT, "pr:9") == ["pr:1"]


def test_a_stream_line_parses_or_names_what_is_wrong() -> None:
    line = ('{"repository": "apache/kafka", "sha": "ab", "committed_at": '
            '"2016-05-03T10:11:12-07:00", "author": "x", "title": "t", "body": "", '
            '"files": [{"path": "a", "status": "modified", "additions": 3, "deletions": 1}], '
            '"additions": 3, "deletions": 1, "label": 1}')  # fmt: skip
    commit = parse(line, 1)
    assert commit.committed_at.utcoffset() == timedelta(hours=-7)
    assert commit.additions == 3 and commit.files[0]["path"] == "a"
    for bad, message in [
        ("{", "line 4: not JSON"),
        ("[]", "line 4: not a JSON object"),
        ('{"repository": "r", "sha": "s"}', "line 4: committed_at must be a non-empty string"),
        ('{"repository": "r", "sha": "s", "committed_at": "yesterday"}', "not an ISO 8601"),
        ('{"repository": "r", "sha": "s", "committed_at": "2016-05-03T10:11:12"}', "no UTC"),
        (
            '{"repository": "r", "sha": "s", "committed_at": "2016-05-03T10:11:12Z", '
            '"files": [{"path": "a", "additions": -1}]}',
            "files[0].additions",
        ),
    ]:
        with pytest.raises(StreamError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse(bad, 4)
