"""Replaying a commit stream (the format of the JIT calibration data) through the risk read.

Each commit is one change: its history is looked up and then recorded (`observe`, the same
step the poller takes for a pull request's head), in input order, so every commit is scored on
the history of the commits before it. Labels are never read here.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from flowlens.risk.history import History, HistoryStore


class StreamError(ValueError):
    """A line of the input that is not a commit in the expected format."""


@dataclass(frozen=True)
class Commit:
    """One line of the stream."""

    repository: str
    sha: str
    committed_at: datetime
    author: str
    title: str
    body: str
    files: list[dict[str, Any]]
    additions: int
    deletions: int
    raw: dict[str, Any]


def open_text(path: str | Path) -> TextIO:
    """A text reader for FILE.jsonl or FILE.jsonl.gz (by content, not name)."""
    raw = open(path, "rb")  # noqa: SIM115 - handed to the wrapper, closed with it
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StreamError(f"{where} must be a non-negative integer")
    return value


def parse(line: str, number: int) -> Commit:
    """One JSON line -> a Commit, or StreamError naming the line and the field."""
    where = f"line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StreamError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise StreamError(f"{where}: not a JSON object")
    for key in ("repository", "sha", "committed_at"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise StreamError(f"{where}: {key} must be a non-empty string")
    try:
        at = datetime.fromisoformat(data["committed_at"])
    except ValueError:
        raise StreamError(f"{where}: committed_at is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise StreamError(f"{where}: committed_at has no UTC offset")
    files = data.get("files", [])
    if not isinstance(files, list):
        raise StreamError(f"{where}: files must be a list")
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise StreamError(f"{where}: files[{i}].path must be a string")
        _int(f.get("additions", 0), f"{where}: files[{i}].additions")
        _int(f.get("deletions", 0), f"{where}: files[{i}].deletions")
    author, title, body = data.get("author") or "", data.get("title") or "", data.get("body") or ""
    if not all(isinstance(v, str) for v in (author, title, body)):
        raise StreamError(f"{where}: author, title and body must be strings")
    return Commit(
        repository=data["repository"], sha=data["sha"], committed_at=at, author=author,
        title=title, body=body, files=files,
        additions=_int(data.get("additions", sum(f.get("additions", 0) for f in files)),
                       f"{where}: additions"),
        deletions=_int(data.get("deletions", sum(f.get("deletions", 0) for f in files)),
                       f"{where}: deletions"),
        raw=data,
    )  # fmt: skip


def commits(reader: TextIO) -> Iterator[Commit]:
    """The commits of a stream, in order; blank lines are skipped."""
    for number, line in enumerate(reader, 1):
        if line.strip():
            yield parse(line, number)


async def observe(
    store: HistoryStore, repository: int, change: str, author: str, paths: list[str],
    at: datetime,
) -> History:  # fmt: skip
    """The history a change is scored on, and the change recorded into it: one step."""
    history = await store.lookup(repository, change, author, paths)
    await store.record(repository, change, author, paths, at)
    return history


class RepositoryIds:
    """Stable small ids for repository names (the stores key history by repository id)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        return self._ids.setdefault(name.lower(), len(self._ids) + 1)


async def evaluate(
    reader: TextIO,
    out: TextIO,
    store: HistoryStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score every commit of a stream as the product would, one JSON line each; the count.

    The analyser is the product's built-in one, fed the history `observe` keeps: exactly the
    steps the poller takes for a pull request's head.
    """
    from flowlens.insights.builtin import RiskModelAnalyser
    from flowlens.insights.models import ChangeContext, FileChange
    from flowlens.risk.history import MemoryHistory

    store = store or MemoryHistory()
    analyser = RiskModelAnalyser()
    ids = RepositoryIds()
    count = 0
    for c in commits(reader):
        files = [FileChange(path=f["path"], status=str(f.get("status") or "modified"),
                            additions=f.get("additions", 0), deletions=f.get("deletions", 0),
                            previous_path=f.get("previous_path"))
                 for f in c.files]  # fmt: skip
        history = await observe(store, ids(c.repository), c.sha, c.author,
                                [f.path for f in files], c.committed_at)  # fmt: skip
        ctx = ChangeContext(
            repository=c.repository, pr_number=0, title=c.title, body=c.body, branch="",
            base_branch="", author=c.author, head_sha=c.sha, ci_state="pending", files=files,
            additions=c.additions, deletions=c.deletions, history=history, at=c.committed_at,
        )  # fmt: skip
        insight = analyser.assess(ctx)
        out.write(json.dumps({"sha": c.sha, "risk_level": insight.risk_level,
                              "score": insight.risk_score,
                              "confidence": insight.confidence_score}) + "\n")  # fmt: skip
        count += 1
        if progress is not None and count % 5000 == 0:
            progress(count)
    return count
