"""Benchmarks (run from the repository root: `python -m bench.ingest`, `python -m bench.poller`).

Helpers shared by both: a durable PostgreSQL to measure against, the machine's description,
CPU accounting from /proc, and plain-text result tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _register_support_queries() -> None:
    """The queries only tests and benchmarks run (tests/sql/), beside the package's."""
    from flowlens.db.sql import QUERIES, load_queries

    QUERIES.update(load_queries(ROOT / "tests" / "sql"))  # type: ignore[arg-type]


_register_support_queries()


@dataclass
class BenchServer:
    """The PostgreSQL a benchmark writes to, and the databases it made there."""

    admin_dsn: str
    description: str
    embedded: Any = None  # flowlens.devdb.EmbeddedPostgres when we started the server
    postmaster_pid: int | None = None
    version: str = "?"
    settings: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    def dsn(self, name: str) -> str:
        """DSN of one database on this server."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=name)

    def create(self, *, template: str | None = None, migrate: bool = True) -> str:
        """A new database (a copy of `template` if given, else migrated); returns its name."""
        from flowlens.db import Database
        from flowlens.db.database import create_database

        name = f"flowlens_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(create_database(self.admin_dsn, name, template=template))
        self.created.append(name)
        dsn = self.dsn(name)
        if migrate and template is None:
            asyncio.run(Database(dsn, min_size=0, max_size=1).migrate())
        return name

    def crash_restart(self) -> None:
        """Kill the embedded server as a crash would (no checkpoint), then start it again."""
        if self.embedded is None:
            raise RuntimeError("only an embedded server can be crashed")
        self.embedded.stop("immediate")
        self.embedded.start()
        self.postmaster_pid = _postmaster_pid(self.embedded.pgdata)


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _pg_facts(dsn: str) -> tuple[str, dict[str, str]]:
    import psycopg

    names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
             "shared_buffers", "max_connections")  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]) if row else "?"
        settings = {}
        for name in names:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
            settings[name] = str(row[0]) if row else "?"
    return version, settings


@contextlib.contextmanager
def bench_server(keep: bool = False) -> Iterator[BenchServer]:
    """DATABASE_URL's server when set (databases made there are dropped afterwards), else an
    embedded PostgreSQL started for the benchmark and deleted afterwards.

    The embedded server runs with PostgreSQL's durable defaults (fsync=on,
    synchronous_commit=on, full_page_writes=on), unlike the test suite's fsync=off, and keeps
    its data on the repository's disk (.flowlens/, not a tmpfs), so a 2xx means a flushed WAL.
    """
    from flowlens.db.database import drop_database
    from flowlens.devdb import EmbeddedPostgres

    external = os.environ.get("DATABASE_URL")
    if external:
        version, settings = _pg_facts(external)
        server = BenchServer(external, "the DATABASE_URL server", None, None, version, settings)
        try:
            yield server
        finally:
            if not keep:
                for name in server.created:
                    asyncio.run(drop_database(external, name))
        return
    (ROOT / ".flowlens").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=ROOT / ".flowlens"))
    embedded = EmbeddedPostgres(folder / "pgdata", fast=False, max_connections=200)
    try:
        admin = embedded.start()
        version, settings = _pg_facts(admin)
        yield BenchServer(
            admin, f"embedded PostgreSQL (durable defaults) in {folder}", embedded,
            _postmaster_pid(embedded.pgdata), version, settings,
        )  # fmt: skip
    finally:
        if keep:
            embedded.stop()
            print(f"kept the database server's files in {folder}")
        else:
            embedded.destroy()
            shutil.rmtree(folder, ignore_errors=True)


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, OS and Python version."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def stop_group(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Stop a process started with start_new_session=True, and everything it started:
    SIGTERM to its group, SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_cpu(root: int | None) -> dict[int, float]:
    """CPU seconds of a process and all its descendants, per pid."""
    if root is None:
        return {}
    tree = _children()
    out: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        cpu = proc_cpu(pid)
        if cpu is not None:
            out[pid] = cpu
        todo.extend(tree.get(pid, []))
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two tree_cpu snapshots (processes born in between count in full)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def median(values: Sequence[float]) -> float:
    """Median (NaN for none)."""
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def git_commit() -> str:
    """The checked-out commit (and whether the tree differs from it)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "?"
    return sha


def python() -> str:
    """The interpreter benchmarks start their child processes with."""
    return sys.executable
