"""Test PostgreSQL: one embedded server per session, a fresh database per test from a template."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from flowlens.db import Database
from flowlens.db.database import create_database, drop_database
from flowlens.devdb import EmbeddedPostgres

TEMPLATE = "flowlens_template"


@dataclass
class PgServer:
    """A server tests may create databases on."""

    admin_dsn: str
    embedded: EmbeddedPostgres | None = None
    template_ready: bool = field(default=False)

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
        name = f"t_{uuid.uuid4().hex[:16]}"
        if migrated:
            await self.ensure_template()
            await create_database(self.admin_dsn, name, template=TEMPLATE)
        else:
            await create_database(self.admin_dsn, name)
        return name, self.dsn_for(name)

    async def drop(self, name: str) -> None:
        await drop_database(self.admin_dsn, name)


def start_server(tmp: Path) -> PgServer:
    """DATABASE_URL when set (a real PostgreSQL or YugabyteDB), else an embedded server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return PgServer(admin_dsn=external)
    embedded = EmbeddedPostgres(tmp / "pgdata", fast=True, max_connections=300)
    embedded.start()
    server = PgServer(admin_dsn=embedded.dsn(), embedded=embedded)
    asyncio.run(server.ensure_template())
    return server
