"""`flowlens replay` signs and sends payload files to a running ingest function."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from flowlens.db import Database
from flowlens.demo import story
from flowlens.ingest.app import close_all
from tests.conftest import FIXTURES
from tests.helpers import SECRET, serve_here
from tests.integration.conftest import ingest_app


async def _replay(*args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "replay", *args,
        env={**os.environ, "LOG_FORMAT": "text", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_replay_folder_and_refusals(
    monkeypatch: pytest.MonkeyPatch, dsn: str, db: Database
) -> None:
    app = ingest_app(monkeypatch, dsn)
    try:
        async with serve_here(app) as url:
            code, out = await _replay(str(FIXTURES / "github" / "pull_request"), "--url", url,
                                      "--secret", SECRET)  # fmt: skip
            lines = [line for line in out.splitlines() if line.startswith("202")]
            assert code == 0, out
            assert len(lines) == len(list((FIXTURES / "github" / "pull_request").glob("*.json")))
            assert all("pull_request" in line for line in lines)
            assert "0 refused" in out

            single = str(FIXTURES / "github" / "ping" / "payload.json")
            code, out = await _replay(single, "--url", url, "--secret", SECRET)
            assert code == 0 and out.startswith("200 pong")

            code, out = await _replay(single, "--url", url, "--secret", "wrong")
            assert code == 1 and out.startswith("401") and "secret from --secret" in out

            code, out = await _replay("/no/such/file.json", "--url", url, "--secret", SECRET)
            assert code == 2 and "no such file" in out
    finally:
        await close_all()
    async with db.transaction() as tx:
        assert await tx.value("count_rows_raw_events") >= 10


async def test_replay_stops_and_says_why_when_nothing_can_succeed(
    monkeypatch: pytest.MonkeyPatch, dsn: str, tmp_path: Path
) -> None:
    """A wrong secret or a dead URL fails every file alike: one line, the reason (with where
    the secret came from), exit 1. An empty folder and a folder that names no event FlowLens
    acts on are said too."""
    folder = str(FIXTURES / "github" / "pull_request")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    code, out = await _replay(folder, "--url", dead, "--secret", SECRET)
    assert code == 1 and "nothing answers at " + dead in out, out
    assert len([line for line in out.splitlines() if line.startswith("0 ")]) == 1, out

    (tmp_path / "empty").mkdir()
    code, out = await _replay(str(tmp_path / "empty"), "--url", dead, "--secret", SECRET)
    assert code == 2 and "no .json files in" in out, out

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "edit.json").write_bytes(
        (FIXTURES / "github" / "ping" / "payload.json").read_bytes()
    )
    app = ingest_app(monkeypatch, dsn)
    try:
        async with serve_here(app) as url:
            code, out = await _replay(folder, "--url", url, GITHUB_WEBHOOK_SECRET="stale")
            assert code == 1 and "secret from GITHUB_WEBHOOK_SECRET" in out, out
            assert len([line for line in out.splitlines() if line.startswith("401")]) == 1, out
            code, out = await _replay(str(downloads), "--url", url, "--secret", SECRET)
            assert code == 0 and out.startswith("202 ignored"), out
            assert "note: 'downloads' (the folder's name) is not an event" in out, out
    finally:
        await close_all()


def test_demo_story_is_a_full_pipeline() -> None:
    steps = story()
    events = [event for event, _, _ in steps]
    assert events[0] == "pull_request" and events[-1] == "pull_request"
    assert "workflow_run" in events and "pull_request_review" in events
    stamps = [
        p.get("pull_request", p.get("workflow_run", {})).get("updated_at") for _, _, p in steps
    ]
    assert stamps == sorted(stamps)
    assert steps[-1][2]["pull_request"]["merged"] is True
    # One PR: created when the story starts, in every step (the API's createdAt).
    created = {p["pull_request"]["created_at"] for _, _, p in steps if "pull_request" in p}
    assert created == {stamps[0]}
