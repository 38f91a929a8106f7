"""Shared fixtures: a real PostgreSQL, a fresh database per test."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowlens.db import Database
from flowlens.db.sql import QUERIES, load_queries
from tests.pg import PgServer, start_server

FIXTURES = Path(__file__).parent / "fixtures"
# Queries only tests and benchmarks run: kept out of the shipped package, added here.
QUERIES.update(load_queries(Path(__file__).parent / "sql"))  # type: ignore[arg-type]

# The suite must never reach a real Gemini or GitHub.
for _var in ("GEMINI_API_KEY", "GITHUB_TOKEN", "API_TOKENS", "GOOGLE_API_KEY"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_server(tmp_path_factory.mktemp("pg"))
    try:
        yield server
        server.stop_worker()
    finally:
        if server.embedded is not None:
            server.embedded.destroy()


@pytest.fixture
async def dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database that only this test sees."""
    name, url = await pg_server.fresh_database()
    yield url
    await pg_server.discard(name)


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, min_size=0, max_size=20)
    await database.open()
    yield database
    await database.close()


def load_fixture(relative: str) -> dict[str, Any]:
    """A GitHub payload from tests/fixtures/github/."""
    data: dict[str, Any] = json.loads((FIXTURES / "github" / relative).read_text("utf-8"))
    return data
