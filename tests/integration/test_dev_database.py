"""`flowlens dev`'s embedded PostgreSQL: one left running is taken over, and none is open
without its password."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

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
    import subprocess
    import sys

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


def _refused(server: EmbeddedPostgres, password: str | None) -> str:
    """The error of a connection as the superuser with that password (None: without one)."""
    params = {"password": password} if password is not None else {}
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                        passfile=os.devnull, connect_timeout=5, **params).close()  # fmt: skip
    return str(refused.value)


def _no_trust(server: EmbeddedPostgres) -> bool:
    rules = [line.split() for line in (server.pgdata / "pg_hba.conf").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
    return bool(rules) and all(rule[-1] == "scram-sha-256" for rule in rules)


def test_the_embedded_server_requires_its_password(tmp_path: Path) -> None:
    """Trust auth let any local user in as the superuser (and `COPY ... TO PROGRAM` ran a
    shell): now a connection needs the password, kept in a 0600 file made with that mode."""
    old_umask = os.umask(0o022)
    server = EmbeddedPostgres(tmp_path / "pgdata", fast=True)
    try:
        server.start()
    finally:
        os.umask(old_umask)
    try:
        assert server.password_file == tmp_path / "pgdata.password"
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert len(server.password) == 48 and server.password in server.dsn()
        with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert "no password supplied" in _refused(server, None)
        assert "password authentication failed" in _refused(server, "guessed")
        assert _no_trust(server)
    finally:
        server.destroy()
    assert not server.password_file.exists()


def test_a_cluster_made_with_trust_auth_is_made_to_require_a_password(tmp_path: Path) -> None:
    """A data folder an older FlowLens made (trust in pg_hba.conf, no password, no password
    file) keeps its data and gets a password at its next start, set before the server
    listens; so does one whose password file was deleted."""
    server = EmbeddedPostgres(tmp_path / "pgdata", port=free_port(), fast=True)
    server.start()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    server.stop()
    # What an older FlowLens left: trust for everyone, a superuser without a password.
    hba = server.pgdata / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    server._run("postgres", ["--single", "-D", str(server.pgdata), "postgres"],
                stdin="ALTER ROLE postgres PASSWORD NULL;\n")  # fmt: skip
    server.password_file.unlink()
    try:
        server.start()
        assert _no_trust(server) and stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert "no password supplied" in _refused(server, None)
        with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        server.stop()

        lost = server.password
        server.password_file.unlink()
        server.start()
        assert server.password != lost
        assert "password authentication failed" in _refused(server, lost)
        with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    finally:
        server.destroy()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as its own user only under root")
def test_a_cluster_below_a_folder_of_the_server_users_group_starts(tmp_path: Path) -> None:
    """`flowlens dev` gives its state folder the server user's group; a benchmark's cluster
    one level below it failed initdb: that folder is crossed by its group bits, not the
    others' that were the only ones set (0701)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)  # FlowLens's state folder
    first = EmbeddedPostgres(state / "pgdata", fast=True)
    first.init()  # state becomes the server user's group (0710), as under `flowlens dev`
    state.chmod(0o701)
    assert os.stat(state).st_gid != 0
    server = EmbeddedPostgres(state / "bench" / "pgdata", fast=True)
    (state / "bench").mkdir(mode=0o700)
    try:
        server.init()
        assert server.initialized
    finally:
        server.destroy()
        first.destroy()
