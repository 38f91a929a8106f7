"""The SQL package: named queries (`-- name: foo`) of the .sql files beside this loader,
loaded once, and the numbered migrations of db/migrations/."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split a .sql file into {name: sql} on `-- name:` markers."""
    found: dict[str, str] = {}
    marks = list(_NAME.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip()
        name = mark.group("name")
        if name in found:
            raise ValueError(f"query {name!r} defined twice in {source}")
        if not body:
            raise ValueError(f"query {name!r} in {source} is empty")
        found[name] = body
    return found


_PER_CALL = re.compile(r"^--\s*plan:\s*per call\s*$", re.MULTILINE)


def planned_per_call(queries: Mapping[str, str]) -> frozenset[str]:
    """Names of the queries marked `-- plan: per call`: never prepared, so every call is
    planned for its own parameters. For statements joining a table to arrays whose length
    changes from call to call: a generic plan cannot see how many keys it gets and, on a table
    autovacuum has not analysed yet (a new deployment's first minutes), may choose to scan the
    whole table, and then keeps doing so batch after batch while the table grows."""
    return frozenset(name for name, sql in queries.items() if _PER_CALL.search(sql))


def load_queries(folder: Traversable | None = None) -> dict[str, str]:
    """Every named query of a folder's .sql files (default: this package's); a name may appear
    only once."""
    queries: dict[str, str] = {}
    folder = folder or resources.files("flowlens.db.sql")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse_queries(entry.read_text("utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"query {name!r} defined in more than one file")
            queries[name] = sql
    return queries


def load_migrations() -> list[tuple[int, str, str]]:
    """Numbered migrations as (version, name, sql), in order."""
    folder = resources.files("flowlens.db").joinpath("migrations")
    out: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d+)_([a-z0-9_]+)\.sql", entry.name)
        if match:
            out.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a number")
    return out


QUERIES = load_queries()
