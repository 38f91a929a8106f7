"""The one access class: every SQL statement FlowLens runs goes through Database."""

from __future__ import annotations

import asyncio
import logging
import select
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowlens.db.sql import QUERIES, load_migrations, planned_per_call

log = logging.getLogger("flowlens.db")

Row = dict[str, Any]

# A pooled connection last used this recently (seconds) is taken without a round trip, unless
# its socket has something to read. HikariCP's aliveBypassWindowMs, with the same default.
RECHECK_AFTER = 0.5
# libpq TCP settings for connections whose DSN does not set them: a server that vanished
# without closing the connection (a network partition, a host gone) is noticed in about 25 s
# instead of the operating system's defaults (2 h for keepalives, ~15 min of retransmissions).
# A busy server, or a backend waiting for a lock, still has its kernel answer probes and
# acknowledge data, so waiting is not taken for a dead server.
TCP_DEFAULTS = {
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "25000",
}


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or dropped the connection."""


class QueryTimedOut(DatabaseUnavailable):
    """The server cancelled a statement that ran past statement_timeout."""


class ConnectionLost(DatabaseUnavailable):
    """The connection broke during the transaction (a restart, a failover, a server that ended
    the session): the server rolled back whatever had not committed, and the outcome of a COMMIT
    already sent is unknown."""


class TransactionRolledBack(RuntimeError):
    """A pipelined transaction ended in ROLLBACK: an error in it was caught and not re-raised."""


class Tx:
    """One transaction (or autocommit connection): run named queries with parameters."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[Row],
        queries: Mapping[str, str],
        pipeline: psycopg.AsyncPipeline | None = None,
        per_call: frozenset[str] = frozenset(),
    ) -> None:
        self.conn = conn
        self._queries = queries
        self._pipeline = pipeline
        self._per_call = per_call  # queries never prepared (queries.planned_per_call)

    def _sql(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise KeyError(f"no query named {name!r}") from None

    async def start(self, name: str, /, **params: Any) -> psycopg.AsyncCursor[Row]:
        """Run a named query and return its cursor, to read the rows later.

        In a pipelined transaction the rows arrive with a later read's, so a statement whose
        answer is not needed at once costs no round trip of its own.
        """
        prepare = name not in self._per_call
        return await self.conn.execute(self._sql(name), params or None, prepare=prepare)

    async def one(self, name: str, /, **params: Any) -> Row | None:
        """First row of a named query, or None."""
        return await (await self.start(name, **params)).fetchone()

    async def all(self, name: str, /, **params: Any) -> list[Row]:
        """All rows of a named query."""
        return await (await self.start(name, **params)).fetchall()

    async def value(self, name: str, /, **params: Any) -> Any:
        """First column of the first row, or None."""
        row = await self.one(name, **params)
        return next(iter(row.values())) if row else None

    async def execute(self, name: str, /, **params: Any) -> int:
        """Run a named statement; returns the affected row count."""
        cur = await self.start(name, **params)
        if self._pipeline is not None:
            await self._pipeline.sync()  # the count is only known once the result is back
        return cur.rowcount

    async def send(self, name: str, /, **params: Any) -> None:
        """Run a named statement whose result is not needed.

        In a pipelined transaction this does not wait for the server: an error surfaces at the
        next read or at commit, and still rolls the whole transaction back.
        """
        await self.start(name, **params)

    async def script(self, sql: str) -> None:
        """Run a migration file (several statements, no parameters)."""
        await self.conn.execute(sql)


class Database:
    """A pool of connections and the named queries they run."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        queries: Mapping[str, str] = QUERIES,
        recheck_after: float = RECHECK_AFTER,
        statement_timeout_ms: int = 0,
    ) -> None:
        self.dsn = dsn
        self.queries = queries
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._per_call = planned_per_call(queries)
        self._connect_timeout = connect_timeout
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=connect_timeout,
            # Autocommit, so that transactions are explicit: transaction() uses psycopg's
            # transaction blocks (BEGIN ... COMMIT either way); _pipelined sends BEGIN and COMMIT
            # in line, which psycopg's implicit transactions cannot do in pipeline mode.
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": max(1, int(connect_timeout)),
                "autocommit": True,
                **_tcp_defaults(dsn),
            },
            configure=self._configure if statement_timeout_ms > 0 else None,
            check=self._check,
            name="flowlens",
        )
        self._recheck_after = recheck_after
        # When each pooled connection was last given back (by transaction()).
        self._released: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Each new pooled connection's statement_timeout: a session SET, which poolers that
        refuse libpq's `options` (PgBouncer) still pass on."""
        await conn.execute(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(self._statement_timeout_ms))
        )

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The pool's check at every checkout: psycopg's (an empty query, one round trip) unless
        the connection was used within the last `recheck_after` seconds and its socket has
        nothing to read.

        A connection the server closed (a restart, pg_terminate_backend) has the server's error
        or the end of the stream waiting on its socket, so the poll finds it at once; a live idle
        connection has nothing, as the pool's connections never LISTEN. A connection lost
        without a word from the server (its state dropped by a NAT, a failover) shows nothing
        until written to: the window keeps that case to connections idle for under
        `recheck_after`.
        """
        released = self._released.get(conn)
        if (
            released is not None
            and time.monotonic() - released < self._recheck_after
            and conn.pgconn.status == psycopg.pq.ConnStatus.OK
            and not _readable(conn.pgconn.socket)
        ):
            return
        await AsyncConnectionPool.check_connection(conn)

    async def open(self) -> None:
        """Open the pool without waiting for the database (requests fail fast if it is down)."""
        async with self._open_lock:
            if not self._opened:
                await self._pool.open(wait=False)
                self._opened = True

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(
        self, *, pipeline: bool = False, checkout: float | None = None
    ) -> AsyncIterator[Tx]:
        """A transaction on a pooled connection; commits on success, rolls back on error.

        With pipeline=True the connection runs in libpq pipeline mode: statements run with
        Tx.send do not wait for the server (their results are read with the next query's, or
        at commit), so a transaction costs fewer round trips. Same statements, same order, same
        outcome. `checkout`: seconds to wait for a connection (default: the pool's timeout).

        Raises DatabaseUnavailable when no connection comes, ConnectionLost when the one it had
        broke.
        """
        if not self._opened:
            await self.open()
        conn: psycopg.AsyncConnection[Row] | None = None
        try:
            async with self._pool.connection(timeout=checkout) as pooled:
                conn = cast("psycopg.AsyncConnection[Row]", pooled)
                try:
                    if pipeline:
                        async with _pipelined(conn, self.queries, self._per_call) as tx:
                            yield tx
                    else:
                        async with conn.transaction():
                            yield Tx(conn, self.queries, per_call=self._per_call)
                finally:
                    self._released[conn] = time.monotonic()
        except (
            psycopg.errors.TransactionRollback,
            psycopg.errors.SerializationFailure,
            psycopg.errors.DeadlockDetected,
        ):
            # Serialisation failures and deadlocks are OperationalErrors too, but the server is
            # fine: the caller retries the transaction (see ingest.store.retrying).
            raise
        except psycopg.errors.QueryCanceled as exc:
            raise QueryTimedOut(first_line(exc)) from exc
        except (psycopg.Error, PoolTimeout) as exc:
            # A broken connection whatever the error class: the server ends a session with an
            # InternalError too (idle_in_transaction_session_timeout, transaction_timeout).
            if conn is not None and conn.broken:
                raise ConnectionLost(first_line(exc)) from exc
            # An operational error of the statement, not of the server (a value too big for
            # an index entry): the caller's to answer, the database is fine.
            if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
                raise
            if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
                raise DatabaseUnavailable(first_line(exc)) from exc
            raise

    @asynccontextmanager
    async def connect(self, *, autocommit: bool = True) -> AsyncIterator[Tx]:
        """A dedicated connection outside the pool (LISTEN, migrations)."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                make_conninfo(self.dsn, **_tcp_defaults(self.dsn)),
                autocommit=autocommit,
                row_factory=dict_row,
                connect_timeout=max(1, int(self._connect_timeout)),
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(first_line(exc)) from exc
        try:
            yield Tx(conn, self.queries, per_call=self._per_call)
        finally:
            await conn.close()

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.transaction() as tx:
                return bool(await tx.value("admin_ping"))
        except DatabaseUnavailable:
            return False

    async def migrate(self) -> list[int]:
        """Apply pending numbered migrations; safe twice and from two processes at once."""
        applied: list[int] = []
        async with self.connect(autocommit=True) as tx:
            for attempt in range(5):
                try:
                    await tx.execute("versions_create_table")
                    break
                except (
                    psycopg.errors.UniqueViolation,
                    psycopg.errors.DuplicateTable,
                    psycopg.errors.DuplicateObject,
                    psycopg.errors.SerializationFailure,
                ):
                    # Two processes creating the table at once: the loser retries and sees it.
                    await asyncio.sleep(0.05 * (attempt + 1))
            done = {row["version"] for row in await tx.all("versions_applied")}
            for version, name, sql in load_migrations():
                if version in done:
                    continue
                for attempt in range(5):
                    try:
                        async with tx.conn.transaction():
                            claimed = await tx.one("versions_claim", version=version, name=name)
                            if claimed is None:
                                break
                            await tx.script(sql)
                            applied.append(version)
                            log.info("applied migration %03d_%s", version, name)
                        break
                    except (
                        psycopg.errors.SerializationFailure,
                        psycopg.errors.DeadlockDetected,
                    ):
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.1 * (attempt + 1))
        return applied


def _tcp_defaults(dsn: str) -> dict[str, str]:
    given = conninfo_to_dict(dsn)
    return {key: value for key, value in TCP_DEFAULTS.items() if key not in given}


def first_line(exc: BaseException) -> str:
    """An error's first line (psycopg's messages go on with details and hints)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _readable(fd: int) -> bool:
    if not hasattr(select, "poll"):  # Windows; elsewhere select() refuses descriptors >= 1024
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


@asynccontextmanager
async def _pipelined(
    conn: psycopg.AsyncConnection[Row], queries: Mapping[str, str], per_call: frozenset[str]
) -> AsyncIterator[Tx]:
    """One transaction in pipeline mode: BEGIN goes out with the first statements, COMMIT with
    the last ones, and the pipeline's closing sync reads every result left (raising the first
    error). psycopg's implicit BEGIN would wait for its own round trip, and its commit() for
    one more before the closing sync: two round trips a transaction this saves."""
    committed = False
    try:
        # An error raised at a read and caught by the code in the block must not pass for a
        # commit: with no sync since the error psycopg reports the COMMIT aborted; after one the
        # server answers the COMMIT with ROLLBACK, and no error.
        try:
            async with conn.pipeline() as pipeline:
                await conn.execute("BEGIN", prepare=False)
                yield Tx(conn, queries, pipeline, per_call)
                commit = await conn.execute("COMMIT", prepare=False)
        except psycopg.errors.PipelineAborted:
            raise TransactionRolledBack("an error in the transaction was caught") from None
        if commit.statusmessage != "COMMIT":
            raise TransactionRolledBack(f"COMMIT answered {commit.statusmessage}")
        committed = True
    finally:
        if not committed and not conn.closed and conn.info.transaction_status in _OPEN:
            try:
                await conn.rollback()
            except psycopg.Error as exc:  # a broken connection; the pool discards it
                log.debug("rollback failed: %s", exc)


_OPEN = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


async def create_database(admin_dsn: str, name: str, template: str | None = None) -> None:
    """CREATE DATABASE name [TEMPLATE template] (identifiers quoted, never formatted in)."""
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(stmt)


async def drop_database(admin_dsn: str, name: str) -> None:
    """DROP DATABASE IF EXISTS name, disconnecting its sessions first."""
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def validate_queries(dsn: str, queries: Mapping[str, str] = QUERIES) -> dict[str, str]:
    """Prepare every named query on the server; returns {name: error} for those that fail."""

    problems: dict[str, str] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, text in queries.items():
            if text.lstrip().upper().startswith(("LISTEN", "CREATE")):
                continue
            positional = _positional(text)
            res = conn.pgconn.prepare(name.encode(), positional.encode())
            if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
                problems[name] = (res.error_message or b"").decode().strip()
    return problems


def _positional(text: str) -> str:
    """Named %(x)s placeholders as the server's $n, for PREPARE."""
    import re

    # %(x)s, or %(x)b / %(x)t where a parameter is sent in binary / text format.
    order = list(dict.fromkeys(re.findall(r"%\((\w+)\)[sbt]", text)))
    return re.sub(r"%\((\w+)\)[sbt]", lambda m: f"${order.index(m.group(1)) + 1}", text)
