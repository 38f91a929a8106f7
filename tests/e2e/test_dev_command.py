"""`flowlens dev`: the whole system from one command, stopped cleanly, data kept."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from flowlens.devdb import free_port
from flowlens.replay import send
from tests.conftest import load_fixture
from tests.helpers import github_headers, interrupt, wait_for_insight

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, ingest: int, api: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",
                                                          "GITHUB_WEBHOOK_SECRET",
                                                          "CI_WRITE_KEY")}  # fmt: skip
    env.update(FLOWLENS_HOME=str(home), INGEST_PORT=str(ingest), API_PORT=str(api),
               POLLER_PORT=str(free_port()),
               GITHUB_API_URL="", LOG_FORMAT="text", POLL_INTERVAL_SECONDS="0.2")  # fmt: skip
    return env


_started: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
async def _stop_leftovers() -> AsyncIterator[None]:
    """A failed assertion must not leave `flowlens dev` (and its database) running."""
    yield
    while _started:
        await interrupt(_started.pop())


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "dev", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    _started.append(proc)
    return proc


async def _read_until(proc: asyncio.subprocess.Process, marker: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen: list[str] = []

    async def read() -> str:
        while True:
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise AssertionError("flowlens dev exited early:\n" + "".join(seen))
            seen.append(line.decode())
            if marker in seen[-1]:
                return "".join(seen)

    return await asyncio.wait_for(read(), timeout)


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    rest = await asyncio.wait_for(proc.stdout.read(), 60)
    await asyncio.wait_for(proc.wait(), 30)
    return rest.decode()


async def test_dev_runs_everything_and_keeps_data(tmp_path: Path) -> None:
    ingest, api = free_port(), free_port()
    env = _env(tmp_path / "home", ingest, api)
    proc = await _start(env)
    banner = await _read_until(proc, "stop           Ctrl-C")
    assert f"http://localhost:{ingest}/" in banner and f"http://localhost:{api}/" in banner
    assert "webhook secret" in banner and "analyser       risk-model" in banner
    assert "github-actions (off: set CI_WRITE_KEY to use it)" in banner  # it would answer 403
    assert f"Flutter app    http://localhost:{api}/flutter" in banner
    secret = (tmp_path / "home" / "webhook-secret").read_text().strip()
    assert secret in banner
    with httpx.Client() as client:
        _, resp = send(client, f"http://127.0.0.1:{ingest}/", secret, "pull_request",
                       load_fixture("pull_request/opened.payload.json"))  # fmt: skip
        assert resp.status_code == 202
    prs = await wait_for_insight(f"http://127.0.0.1:{api}")
    assert prs[0]["number"] == 2 and prs[0]["riskLevel"]
    with httpx.Client(base_url=f"http://127.0.0.1:{api}/flutter") as app:
        assert app.get("/").json()["status"] == "online"
        assert [p["pr_number"] for p in app.get("/api/pull-requests").json()] == [2]
    pg_port = int((tmp_path / "home" / "pg-port").read_text())

    # The banner's DATABASE_URL is what other commands need, pasted as it is.
    [dsn] = re.findall(r"DATABASE_URL=(\S+)", banner)
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "events", "failed", env={**env, "DATABASE_URL": dsn},
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    listed, _ = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0 and "no failed events" in listed.decode(), listed
    # A second run on the same folder (other ports) is refused and leaves the first alone.
    second = await _start(_env(tmp_path / "home", free_port(), free_port()))
    out2, _ = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 1 and "another flowlens dev" in out2.decode(), out2
    with httpx.Client() as client:
        assert client.get(f"http://127.0.0.1:{api}/api/prs").status_code == 200
    out = await _stop(proc)
    assert proc.returncode == 0, out
    assert "embedded PostgreSQL stopped" in out
    for port in (ingest, api, pg_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"

    # A second run reuses the data and the secret.
    proc = await _start({**env, "CI_WRITE_KEY": "ci-key"})
    banner = await _read_until(proc, "stop           Ctrl-C")
    assert "github-actions (Bearer CI_WRITE_KEY)" in banner
    with httpx.Client() as client:
        prs = client.get(f"http://127.0.0.1:{api}/api/prs").json()
    assert [p["number"] for p in prs] == [2]
    await _stop(proc)
    assert proc.returncode == 0
    assert (tmp_path / "home" / "webhook-secret").read_text().strip() == secret


async def test_demo_replays_its_story_without_asking_github(tmp_path: Path) -> None:
    """README's quick start: `make dev ARGS=--demo` plays the bundled story to a merged,
    analysed PR, and never asks GitHub for the made-up repository's files."""
    ingest, api = free_port(), free_port()
    env = _env(tmp_path / "home", ingest, api)
    del env["GITHUB_API_URL"]  # as on a fresh machine
    # The story's pace (2.5 s between events for a person to watch) shortened; still time
    # for the opened head's analysis before the fix is pushed three events later.
    env["FLOWLENS_DEMO_DELAY"] = "0.75"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "dev", "--demo", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    _started.append(proc)
    out = await _read_until(proc, "demo: It is merged", timeout=180)
    demo = [line for line in out.splitlines() if line.startswith("demo: ") and "->" in line]
    assert len(demo) == 8 and all("-> 202 accepted" in line for line in demo), demo
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}") as client:
        [pr] = (await client.get("/api/prs", params={"state": "all"})).json()
        insights = (await client.get(f"/api/insights/{pr['number']}")).json()
    assert pr["status"] == "merged" and pr["riskLevel"], pr
    assert {i["model"] for i in insights} == {"risk-model"} and len(insights) == 2
    out += await _stop(proc)
    assert proc.returncode == 0, out
    assert "changed files unavailable" not in out, out


async def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await _start(_env(tmp_path / "home", port, free_port()))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines[-1] == f"flowlens: port {port} is already in use; set INGEST_PORT to a free port"


async def test_ctrl_c_while_the_database_starts_stops_it_too(tmp_path: Path) -> None:
    """Ctrl-C during the embedded server's start: no traceback, and the server is stopped
    (before, it kept running until the next `make dev` found it)."""
    from flowlens.devdb import EmbeddedPostgres

    env = _env(tmp_path / "home", free_port(), free_port())
    proc = await _start(env)
    await _read_until(proc, "starting embedded PostgreSQL")
    out = await _stop(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "embedded PostgreSQL stopped" in out, out
    assert not EmbeddedPostgres(tmp_path / "home" / "pgdata").running_here()


def _other_addresses() -> list[str]:
    """Addresses of this machine other than 127.0.0.1: 127.0.0.2 (all of 127/8 is loopback on
    Linux) and the one an outgoing packet would leave from (no packet is sent)."""
    found = ["127.0.0.2"] if sys.platform.startswith("linux") else []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            found += [probe.getsockname()[0]]
        except OSError:
            pass
    return [address for address in found if address != "127.0.0.1"]


def _reachable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((address, port)) == 0


def _private(path: Path, mode: int) -> None:
    """`path` has `mode`; a folder holding the database as root lets that server's user
    (and no one else) through it (devdb)."""
    info = path.stat()
    if mode == 0o700 and os.geteuid() == 0:
        import pwd

        assert info.st_gid == pwd.getpwnam("embedded_postgres").pw_gid, path
        mode = 0o710
    assert stat.S_IMODE(info.st_mode) == mode, (path, oct(info.st_mode))


async def test_dev_is_for_this_machine_only_unless_dev_host_opens_it(tmp_path: Path) -> None:
    """Security review: it listened on 0.0.0.0, answered any Host (DNS rebinding: a page on
    evil.example resolving to 127.0.0.1 used the API and ingest), its database let any local
    user in as superuser, and its secrets were world-readable for a moment."""
    ingest, api = free_port(), free_port()
    home = tmp_path / "home"
    env = _env(home, ingest, api)
    old_umask = os.umask(0o022)
    try:
        proc = await _start(env)
        banner = await _read_until(proc, "stop           Ctrl-C")
    finally:
        os.umask(old_umask)
    assert "listening on" not in banner
    _private(home, 0o700)
    _private(home / "webhook-secret", 0o600)
    _private(home / "pgdata.password", 0o600)
    for address in _other_addresses():
        assert not _reachable(address, api) and not _reachable(address, ingest), address

    secret = (home / "webhook-secret").read_text().strip()
    body = json.dumps(load_fixture("pull_request/opened.payload.json")).encode()
    async with httpx.AsyncClient() as client:
        for name in ("evil.example", f"evil.example:{api}", f"localhost.evil.example:{api}"):
            forged = await client.get(f"http://127.0.0.1:{api}/api/prs", headers={"Host": name})
            assert forged.status_code == 400 and "DNS rebinding" in forged.text, name
        for name in (f"localhost:{api}", f"127.0.0.1:{api}", "[::1]"):
            local = await client.get(f"http://127.0.0.1:{api}/api/prs", headers={"Host": name})
            assert local.status_code == 200, name
        signed = github_headers("pull_request", body, secret=secret)
        forged = await client.post(f"http://127.0.0.1:{ingest}/", content=body,
                                   headers={**signed, "Host": "evil.example"})  # fmt: skip
        assert forged.status_code == 400
        reader, writer = await asyncio.open_connection("127.0.0.1", api)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")  # fmt: skip
        assert (await asyncio.wait_for(reader.readline(), 10)).split()[1] == b"400"
        writer.close()

    # The banner's DATABASE_URL carries the password; without it, the database says no.
    [dsn] = re.findall(r"DATABASE_URL=(\S+)", banner)
    password = (home / "pgdata.password").read_text().strip()
    assert f"postgres:{password}@" in dsn
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(dsn.replace(f":{password}@", "@"), passfile=os.devnull,
                        connect_timeout=5).close()  # fmt: skip
    await _stop(proc)
    assert proc.returncode == 0

    # DEV_HOST opens it: other addresses reach it, any Host is answered, the banner says so.
    proc = await _start({**env, "DEV_HOST": "0.0.0.0"})
    banner = await _read_until(proc, "stop           Ctrl-C")
    assert "listening on   0.0.0.0 (DEV_HOST)" in banner
    assert f"http://localhost:{api}/" in banner
    async with httpx.AsyncClient() as client:
        for address in [*_other_addresses(), "127.0.0.1"]:
            resp = await client.get(f"http://{address}:{api}/api/prs",
                                    headers={"Host": "flowlens.lan"})  # fmt: skip
            assert resp.status_code == 200, address
    await _stop(proc)
    assert proc.returncode == 0


async def test_a_bad_dev_host_is_one_clear_line(tmp_path: Path) -> None:
    proc = await _start({**_env(tmp_path / "home", free_port(), free_port()),
                         "DEV_HOST": "no-such-host.invalid"})  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, out
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines[-1].startswith("flowlens: DEV_HOST 'no-such-host.invalid' is not an address")
