"""Test PostgreSQL: one embedded server per session, a fresh database per test from a template."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from flowlens.db import Database
from flowlens.db.database import create_database, drop_database
from flowlens.devdb import EmbeddedPostgres

TEMPLATE = "flowlens_template"
CLONE = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY")
DROP = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
_REFILL, _STOP = "", "-"


@dataclass
class PgServer:
    """A server tests may create databases on."""

    admin_dsn: str
    embedded: EmbeddedPostgres | None = None
    template_ready: bool = field(default=False)
    _spares: queue.Queue[str | BaseException] = field(default_factory=lambda: queue.Queue(1))
    _tasks: queue.Queue[str] = field(default_factory=queue.Queue)
    _worker: threading.Thread | None = None
    _failed_drops: list[Exception] = field(default_factory=list)

    def dsn_for(self, name: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=name)

    async def ensure_template(self) -> None:
        if self.template_ready:
            return
        await drop_database(self.admin_dsn, TEMPLATE)
        await create_database(self.admin_dsn, TEMPLATE)
        db = Database(self.dsn_for(TEMPLATE), min_size=0, max_size=1)
        await db.migrate()
        self.template_ready = True

    async def fresh_database(self, *, migrated: bool = True) -> tuple[str, str]:
        """(name, dsn) of a new database: cloned from the migrated template, or empty."""
        if migrated and self._worker is not None:
            name = await asyncio.to_thread(self._take_spare)
            return name, self.dsn_for(name)
        name = f"t_{uuid.uuid4().hex[:16]}"
        if migrated:
            await self.ensure_template()
            await create_database(self.admin_dsn, name, template=TEMPLATE)
        else:
            await create_database(self.admin_dsn, name)
        return name, self.dsn_for(name)

    async def drop(self, name: str) -> None:
        await drop_database(self.admin_dsn, name)

    async def discard(self, name: str) -> None:
        """Drop `name`, in the background where there is a worker."""
        if self._worker is None:
            await self.drop(name)
        else:
            self._tasks.put(name)

    def start_worker(self) -> None:
        """Keep a migrated database ready and drop finished ones off the tests' path (the
        embedded server only: FILE_COPY, PostgreSQL 15+, clones the template three times
        faster than the default WAL_LOG with fsync off)."""
        assert self.embedded is not None and self.template_ready
        self._worker = threading.Thread(target=self._work, name="pg-spares", daemon=True)
        self._tasks.put(_REFILL)
        self._worker.start()

    def stop_worker(self) -> None:
        if self._worker is None:
            return
        self._tasks.put(_STOP)
        self._worker.join(60)
        self._worker = None
        if self._failed_drops:
            raise self._failed_drops[0]

    def _take_spare(self) -> str:
        spare = self._spares.get(timeout=120)
        self._tasks.put(_REFILL)
        if isinstance(spare, BaseException):
            raise spare
        return spare

    def _work(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while (task := self._tasks.get()) != _STOP:
            try:
                conn = conn or psycopg.connect(self.admin_dsn, autocommit=True)
                if task == _REFILL:
                    name = f"t_{uuid.uuid4().hex[:16]}"
                    conn.execute(CLONE.format(sql.Identifier(name), sql.Identifier(TEMPLATE)))
                    self._spares.put(name)
                else:
                    conn.execute(DROP.format(sql.Identifier(task)))
            except Exception as exc:  # the next test to take a database fails with it
                if conn is not None:
                    conn.close()
                conn = None
                if task == _REFILL:
                    self._spares.put(exc)
                else:
                    self._failed_drops.append(exc)
        with conn or psycopg.connect(self.admin_dsn, autocommit=True) as last:
            while not self._spares.empty():
                if isinstance(spare := self._spares.get(), str):
                    last.execute(DROP.format(sql.Identifier(spare)))


def start_server(tmp: Path) -> PgServer:
    """DATABASE_URL when set (a real PostgreSQL or YugabyteDB), else an embedded server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return PgServer(admin_dsn=external)
    embedded = EmbeddedPostgres(tmp / "pgdata", fast=True, max_connections=300)
    embedded.start()
    server = PgServer(admin_dsn=embedded.dsn(), embedded=embedded)
    asyncio.run(server.ensure_template())
    server.start_worker()
    return server
