"""`flowlens dev`'s embedded PostgreSQL across runs: one left running is taken over."""

from __future__ import annotations

from pathlib import Path

import psycopg

from flowlens.devdb import EmbeddedPostgres, free_port
from flowlens.devserver import start_database


def test_a_database_an_earlier_run_left_running_is_stopped_and_started_again(
    tmp_path: Path,
) -> None:
    """A run killed (or interrupted while starting) leaves its server running on the folder;
    pg_ctl refuses a second server there, so the next run stops the first one."""
    leftover = EmbeddedPostgres(tmp_path / "pgdata", port=free_port(), fast=True)
    leftover.start()
    (tmp_path / "pg-port").write_text(str(leftover.port))  # as the earlier run left it
    server = None
    try:
        admin, server = start_database(tmp_path)
        with psycopg.connect(admin, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert server.running_here()
    finally:
        (server or leftover).destroy()
    assert not leftover.running_here()


def test_a_pid_file_left_by_a_killed_run_does_not_block_the_next(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import pytest

    from flowlens.devserver import FolderInUse, claim_folder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / "dev.pid").write_text(gone.stdout.strip())  # that process has exited
    assert claim_folder(tmp_path).read_text() == str(os.getpid())
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as live:
        try:
            (tmp_path / "dev.pid").write_text(str(live.pid))
            with pytest.raises(FolderInUse, match=f"pid {live.pid}"):
                claim_folder(tmp_path)
        finally:
            live.kill()
