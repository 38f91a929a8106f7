"""`flowlens dev`'s guards: the Host check against DNS rebinding, on a real uvicorn server, and
its secret files, 0600 from their creation, in a 0700 folder."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowlens.api.server import serve
from flowlens.devserver import LocalHostsOnly, is_loopback, state_dir, url_host, webhook_secret


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})


async def _status(base: str, head: str, connection: str = "close") -> tuple[int, bytes]:
    """Status and body of a raw request: the test, not a client library, writes the Host."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{head}Connection: {connection}\r\n\r\n".encode("latin-1"))
        headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = [int(line.split(b":")[1]) for line in headers.lower().split(b"\r\n")
                  if line.startswith(b"content-length:")]  # fmt: skip
        body = await asyncio.wait_for(reader.readexactly(length[0]), 10) if length else b""
    finally:
        writer.close()
    return int(headers.split(b" ", 2)[1]), body


def _get(host: str | None) -> str:
    return "GET /api/prs HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")


def _upgrade(host: str) -> str:
    return (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )


ALLOWED = ["localhost", "localhost:8000", "LocalHost:1", "127.0.0.1", "127.0.0.1:8081",
           "[::1]", "[::1]:8000"]  # fmt: skip
FORGED = ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io",
          "evil.example#localhost", "localhost:8000@evil.example", "[::1].evil.example",
          "127.0.0.2", "0.0.0.0", "localhost:8000:1", "localhost:80x", ""]  # fmt: skip


async def test_only_local_host_names_are_answered() -> None:
    """A page on evil.example whose name resolves to 127.0.0.1 sends Host: evil.example; the
    wrapper answers it 400 (HTTP and WebSocket), and local names pass, on any port."""
    async with serve(LocalHostsOnly(_app)) as base:
        for host in ALLOWED:
            assert (await _status(base, _get(host)))[0] == 200, host
        for host in FORGED:
            status, body = await _status(base, _get(host))
            assert status == 400, host
        assert b"DNS rebinding" in body and b"DEV_HOST" in body
        assert (await _status(base, _get(None)))[0] == 400  # no Host at all
        two = _get("localhost") + "Host: evil.example\r\n"
        assert (await _status(base, two))[0] == 400
        assert (await _status(base, _upgrade("localhost"), "Upgrade"))[0] == 101
        status, body = await _status(base, _upgrade("evil.example"), "Upgrade")
        assert status == 400 and b"DNS rebinding" in body


async def test_the_address_it_listens_on_is_a_local_name_too() -> None:
    """DEV_HOST=127.0.0.2: the banner's URLs name 127.0.0.2, so requests for it pass."""
    assert url_host("127.0.0.2") == "127.0.0.2" and url_host("::1") == "[::1]"
    async with serve(LocalHostsOnly(_app, also="127.0.0.2")) as base:
        assert (await _status(base, _get("127.0.0.2:8000")))[0] == 200
        assert (await _status(base, _get("127.0.0.20")))[0] == 400


def test_which_addresses_are_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "127.0.0.2"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "[::1]", "example"]))
    assert url_host("0.0.0.0") == url_host("127.0.0.1") == "localhost"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask: files made without an explicit mode are world-readable under it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_state_folder_is_0700_made_so_and_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLENS_HOME", str(tmp_path / "new"))
    assert _mode(state_dir(tmp_path)) == 0o700
    (tmp_path / "old").mkdir(mode=0o755)  # made by an older FlowLens
    monkeypatch.setenv("FLOWLENS_HOME", str(tmp_path / "old"))
    assert _mode(state_dir(tmp_path)) == 0o700


@pytest.mark.usefixtures("umask_022")
def test_webhook_secret_is_0600_from_its_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created with its mode, not chmod-ed after the write (others could read it meanwhile):
    with chmod doing nothing, the file is 0600 all the same. One written by an older FlowLens
    is tightened, and kept."""
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    with monkeypatch.context() as patched:
        patched.setattr(Path, "chmod", lambda self, mode, **kw: None)
        secret = webhook_secret(tmp_path)
    path = tmp_path / "webhook-secret"
    assert _mode(path) == 0o600 and len(secret) == 40
    assert path.read_text() == secret + "\n" and webhook_secret(tmp_path) == secret
    path.chmod(0o644)
    assert webhook_secret(tmp_path) == secret and _mode(path) == 0o600
    path.write_text("")  # a run stopped between creating and writing it
    assert len(fresh := webhook_secret(tmp_path)) == 40 and fresh != secret
