"""The history the risk model reads: earlier changes per author and per file of a repository.

Kept incrementally, one step per change (`record`), and read for the files of one change
(`lookup`), never by scanning all history. A change is recorded once per file however often
it is recorded (a PR's later heads add only the files they newly touch), and a lookup for a
change leaves out that change's own contribution, so a PR's later heads are scored on the
history before it, as its first was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flowlens.db import Tx


@dataclass(frozen=True)
class FileHistory:
    """One file's earlier changes (other than the change being scored)."""

    changes: int
    authors: int
    last_at: datetime | None
    last_change: str | None = None  # the key of the change that last touched the file


@dataclass(frozen=True)
class History:
    """What the kept history says about one change's author and files."""

    author_changes: int = 0
    files: dict[str, FileHistory] = field(default_factory=dict)


class HistoryStore(Protocol):
    """Where history lives: `PgHistory` in the product, `MemoryHistory` for replays."""

    async def lookup(
        self, repository: int, change: str, author: str, paths: Sequence[str]
    ) -> History: ...

    async def record(
        self, repository: int, change: str, author: str, paths: Sequence[str], at: datetime
    ) -> None: ...


@dataclass
class _File:
    changes: int = 0
    last_at: datetime | None = None
    last_change: str | None = None
    prev_at: datetime | None = None  # last_at before last_change touched the file
    prev_change: str | None = None
    authors: dict[str, int] = field(default_factory=dict)  # author -> changes of this file


class MemoryHistory:
    """The history store in memory: the same rules as `PgHistory`, for `flowlens risk-eval`."""

    def __init__(self) -> None:
        self._files: dict[tuple[int, str], _File] = {}
        self._authors: dict[tuple[int, str], int] = {}
        self._changes: dict[tuple[int, str], str] = {}  # (repository, change) -> author
        self._touched: set[tuple[int, str, str]] = set()  # (repository, change, path)

    async def lookup(
        self, repository: int, change: str, author: str, paths: Sequence[str]
    ) -> History:
        own = self._changes.get((repository, change)) == author
        files: dict[str, FileHistory] = {}
        for path in paths:
            f = self._files.get((repository, path))
            if f is None:
                continue
            mine = (repository, change, path) in self._touched
            files[path] = _exclude(
                f.changes, len(f.authors), f.last_at, f.prev_at, f.last_change, f.prev_change,
                f.authors.get(author, 0), mine, change,
            )  # fmt: skip
        earlier = self._authors.get((repository, author), 0) - int(own)
        return History(author_changes=earlier, files=files)

    async def record(
        self, repository: int, change: str, author: str, paths: Sequence[str], at: datetime
    ) -> None:
        if (repository, change) not in self._changes:
            self._changes[(repository, change)] = author
            self._authors[(repository, author)] = self._authors.get((repository, author), 0) + 1
        for path in dict.fromkeys(paths):
            key = (repository, change, path)
            if key in self._touched:
                continue
            self._touched.add(key)
            f = self._files.setdefault((repository, path), _File())
            f.changes += 1
            if f.last_at is None or at >= f.last_at:
                f.prev_at, f.prev_change = f.last_at, f.last_change
                f.last_at, f.last_change = at, change
            f.authors[author] = f.authors.get(author, 0) + 1


def _exclude(
    changes: int,
    authors: int,
    last_at: datetime | None,
    prev_at: datetime | None,
    last_change: str | None,
    prev_change: str | None,
    author_changes_of_file: int,
    mine: bool,
    change: str,
) -> FileHistory:
    """A file's history without the scored change's own contribution (when it made one)."""
    if not mine:
        return FileHistory(changes, authors, last_at, last_change)
    alone = author_changes_of_file <= 1  # the change's author touched it only in this change
    if last_change == change:
        last_at, last_change = prev_at, prev_change
    return FileHistory(changes - 1, authors - int(alone), last_at, last_change)


class PgHistory:
    """The history store in PostgreSQL (tables `risk_*`, queries `risk_*` in risk.sql)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    async def lookup(
        self, repository: int, change: str, author: str, paths: Sequence[str]
    ) -> History:
        rows = await self.tx.all(
            "risk_history_lookup",
            repository_id=repository, change_key=change, author=author, paths=list(paths),
        )  # fmt: skip
        files: dict[str, FileHistory] = {}
        author_changes = 0
        for r in rows:
            if r["path"] is None:  # the author's row
                author_changes = r["changes"] - int(r["mine"])
                continue
            files[r["path"]] = _exclude(
                r["changes"], r["authors"], r["last_at"], r["prev_at"], r["last_change"],
                r["prev_change"], r["author_changes"], r["mine"], change,
            )  # fmt: skip
        return History(author_changes=max(author_changes, 0), files=files)

    async def record(
        self, repository: int, change: str, author: str, paths: Sequence[str], at: datetime
    ) -> None:
        await self.tx.execute(
            "risk_history_record",
            repository_id=repository, change_key=change, author=author,
            paths=list(dict.fromkeys(paths)), at=at,
        )  # fmt: skip
