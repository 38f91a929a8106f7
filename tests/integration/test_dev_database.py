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
    """The folder is held by a lock the operating system drops when its process ends, however
    it ends: a pid file left behind, even naming a live process (a reused pid), blocks
    nothing, and a live holder is named."""
    import os
    import subprocess
    import sys

    import pytest

    from flowlens.devserver import FolderInUse, claim_folder

    (tmp_path / "dev.pid").write_text("1")  # left by a killed run; pid 1 is alive
    mine = claim_folder(tmp_path)
    assert (tmp_path / "dev.pid").read_text() == str(os.getpid())
    mine.close()

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         " from flowlens.devserver import claim_folder;"
         " held = claim_folder(Path(sys.argv[1])); print('held', flush=True); time.sleep(30)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=f"pid {holder.pid}"):
            claim_folder(tmp_path)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    claim_folder(tmp_path).close()  # the killed holder's lock went with it
