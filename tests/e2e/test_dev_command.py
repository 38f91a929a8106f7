"""`flowlens dev`: the whole system from one command, stopped cleanly, data kept."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from flowlens.devdb import free_port
from flowlens.replay import send
from tests.conftest import load_fixture
from tests.helpers import interrupt, wait_for_insight

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path, ingest: int, api: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",
                                                          "GITHUB_WEBHOOK_SECRET",
                                                          "CI_WRITE_KEY")}  # fmt: skip
    env.update(FLOWLENS_HOME=str(home), INGEST_PORT=str(ingest), API_PORT=str(api),
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
    assert "webhook secret" in banner and "analyser       heuristic" in banner
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
    assert {i["model"] for i in insights} == {"heuristic"} and len(insights) == 2
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
