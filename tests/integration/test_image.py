"""The API image builds from the repository root and starts as a non-root user on $PORT."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from flowlens.devdb import free_port

ROOT = Path(__file__).resolve().parents[2]


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


def test_api_image_builds_and_serves_healthz() -> None:
    if not _docker_engine():  # asked here, not at collection: `docker info` may take seconds
        pytest.skip("no Docker engine here (the client alone is not enough)")
    subprocess.run(
        ["docker", "build", "-f", "services/api/Dockerfile", "-t", "flowlens-api:test", "."],
        cwd=ROOT, check=True, timeout=900,
    )  # fmt: skip
    user = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", "flowlens-api:test", "-u"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert user != "0"
    port = free_port()
    name = f"flowlens-api-test-{port}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "-e", "PORT=8080", "-p",
         f"127.0.0.1:{port}:8080", "-e", "DATABASE_URL=postgresql://nobody@127.0.0.1:1/none",
         "flowlens-api:test"],
        check=True, timeout=60,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code  # 503: up, but no database behind it
            except OSError:
                time.sleep(0.2)
        assert status in (200, 503)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
