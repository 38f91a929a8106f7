"""The API as its image runs it (the Dockerfile's own uvicorn command): no token in any log
line, and only the proxy's X-Forwarded-For entry names the client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import sys
from pathlib import Path

import httpx
import pytest

from flowlens.db import Database
from flowlens.devdb import free_port
from tests.integration.test_api_support import deliver, next_update, opened, socket

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "api" / "Dockerfile"
TOKEN = "tok-7f3c9e1d5b"


def image_command(port: int) -> list[str]:
    """The Dockerfile's CMD (sh -c "exec uvicorn …"), on a loopback port."""
    line = next(x for x in DOCKERFILE.read_text().splitlines() if x.startswith("CMD "))
    shell = json.loads(line.removeprefix("CMD "))[2]
    words = shlex.split(shell.replace('"${PORT}"', str(port)).removeprefix("exec "))
    words[words.index("--host") + 1] = "127.0.0.1"
    return [sys.executable, "-m", *words]


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV lines (the image's defaults)."""
    env: dict[str, str] = {}
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


async def test_no_token_reaches_the_log_and_the_client_is_the_proxys_word(
    dsn: str, db: Database, tmp_path: Path
) -> None:
    assert image_env().get("PROXY_HOPS") == "1"
    port = free_port()
    log_path = tmp_path / "api.log"
    env = {**os.environ, **image_env(), "DATABASE_URL": dsn, "API_TOKENS": TOKEN,
           "LOG_FORMAT": "json", "PORT": str(port)}  # fmt: skip
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *image_command(port), cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
        base = f"http://127.0.0.1:{port}"
        ws_base = base.replace("http://", "ws://")
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                for _ in range(300):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(log_path.read_text())
                auth = {"Authorization": f"Bearer {TOKEN}"}
                forged = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}
                assert (await client.get("/api/prs", headers={**auth, **forged})).status_code == 200
                assert (await client.get(f"/api/prs?token={TOKEN}")).status_code == 401
                encoded = base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")
                async with (
                    socket(f"{ws_base}/ws?token={TOKEN}") as by_query,
                    socket(f"{ws_base}/flutter/ws?token={TOKEN}") as flutter_ws,
                    socket(
                        f"{ws_base}/ws", subprotocols=["flowlens", f"bearer.{encoded}"]
                    ) as by_protocol,  # type: ignore[list-item]
                ):
                    await deliver(db, "pull_request", opened(2))
                    for ws in (by_query, flutter_ws, by_protocol):
                        assert await next_update(ws)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
    logged = log_path.read_text()
    assert "WebSocket /ws?token=[redacted]" in logged  # the line is there, without the token
    assert TOKEN not in logged and encoded not in logged
    assert "203.0.113.9" in logged and "6.6.6.6" not in logged
