"""Migrations: idempotent, concurrent-safe, and producing exactly the schema the code expects."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from flowlens.db import QUERIES, Database
from flowlens.db.database import validate_queries
from flowlens.db.schema import EXPECTED_INDEXES, EXPECTED_TABLES
from tests.pg import PgServer


@pytest.fixture
async def empty_dsn(pg_server: PgServer):
    name, url = await pg_server.fresh_database(migrated=False)
    yield url
    await pg_server.drop(name)


async def _schema(dsn: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    async with Database(dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
        tables: dict[str, dict[str, str]] = {}
        for row in await tx.all("schema_columns"):
            tables.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
        indexes = {(r["table_name"], r["index_name"]) for r in await tx.all("schema_indexes")}
    return tables, indexes


async def test_migrate_twice_is_a_no_op(empty_dsn: str) -> None:
    db = Database(empty_dsn, min_size=0, max_size=1)
    first = await db.migrate()
    assert first and first == sorted(first)
    before = await _schema(empty_dsn)
    assert await db.migrate() == []
    assert await _schema(empty_dsn) == before


async def test_two_processes_migrating_at_once(empty_dsn: str) -> None:
    """Two migrators racing (separate connections) apply each migration exactly once."""
    proc = [
        asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flowlens",
            "migrate",
            env={
                "DATABASE_URL": empty_dsn,
                "PATH": "/usr/bin:/bin",
                "LOG_FORMAT": "text",
                **_pyenv(),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    procs = await asyncio.gather(*proc)
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    applied = [int(m) for out, _ in outputs for m in re.findall(rb"applied (\d+)", out)]
    total_migrations = len(__import__("flowlens.db.sql", fromlist=["x"]).load_migrations())
    assert sum(applied) == total_migrations
    tables, _ = await _schema(empty_dsn)
    assert set(EXPECTED_TABLES) <= set(tables)


async def test_migrations_give_exactly_the_expected_schema(empty_dsn: str) -> None:
    await Database(empty_dsn, min_size=0, max_size=1).migrate()
    tables, indexes = await _schema(empty_dsn)
    assert {t: set(cols) for t, cols in tables.items()} == {
        t: set(cols) for t, cols in EXPECTED_TABLES.items()
    }
    for table, cols in EXPECTED_TABLES.items():
        for col, dtype in cols.items():
            assert tables[table][col] == dtype, f"{table}.{col}"
    assert indexes >= EXPECTED_INDEXES


def test_every_named_query_is_valid_against_the_schema(pg_server: PgServer) -> None:
    """Each query in the .sql files prepares (parses, names resolve) on the migrated schema."""
    problems = validate_queries(pg_server.dsn_for("flowlens_template"))
    assert problems == {}
    assert len(QUERIES) > 5


def _pyenv() -> dict[str, str]:
    import os
    import sys

    return {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}


async def test_payloads_stored_before_migration_3_still_read_back(
    empty_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 003 turns stored JSONB payloads into bytes that unpack_payload reads as JSON."""
    import json

    import psycopg

    from flowlens.db import database
    from flowlens.db.codec import pack_payload, unpack_payload

    every = database.load_migrations()
    monkeypatch.setattr(database, "load_migrations", lambda: [m for m in every if m[0] < 3])
    await Database(empty_dsn, min_size=0, max_size=1).migrate()
    old = {"action": "opened", "number": 7, "text": "é"}
    async with await psycopg.AsyncConnection.connect(empty_dsn, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO raw_events (delivery_id, event, payload) VALUES ('old', 'x', %s::jsonb)",
            (json.dumps(old),),
        )
    monkeypatch.setattr(database, "load_migrations", lambda: every)
    assert await Database(empty_dsn, min_size=0, max_size=1).migrate() == [
        m[0] for m in every if m[0] >= 3
    ]
    async with Database(empty_dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
        row = await tx.one("admin_raw_payload_by_delivery", delivery_id="old")
    assert row is not None and json.loads(unpack_payload(row["payload"])) == old
    assert unpack_payload(pack_payload('{"a": "é"}')) == '{"a": "é"}'


async def test_a_database_from_before_001_changed_is_brought_up_to_date(
    empty_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 004 gives a database migrated with the earlier 001 (a DESC index with nulls
    first, a build_updated_at column) the index and columns a new one has."""
    import psycopg

    from flowlens.db import database

    every = database.load_migrations()
    monkeypatch.setattr(database, "load_migrations", lambda: [m for m in every if m[0] < 4])
    await Database(empty_dsn, min_size=0, max_size=1).migrate()
    async with await psycopg.AsyncConnection.connect(empty_dsn, autocommit=True) as conn:
        await conn.execute("DROP INDEX pull_requests_repo_updated_idx")
        await conn.execute(
            "CREATE INDEX pull_requests_repo_updated_idx"
            " ON pull_requests (repository_id, gh_updated_at DESC)"
        )
        await conn.execute("ALTER TABLE pull_requests ADD COLUMN build_updated_at timestamptz")
    monkeypatch.setattr(database, "load_migrations", lambda: every)
    assert await Database(empty_dsn, min_size=0, max_size=1).migrate() == [
        m[0] for m in every if m[0] >= 4
    ]
    async with await psycopg.AsyncConnection.connect(empty_dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'pull_requests_repo_updated_idx'"
        )
        row = await cur.fetchone()
        assert row is not None and "DESC NULLS LAST" in row[0], row
    tables, _ = await _schema(empty_dsn)
    assert set(tables["pull_requests"]) == set(EXPECTED_TABLES["pull_requests"])
