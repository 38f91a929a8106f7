"""A stalled WebSocket client is dropped (close 1013) and never delays the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket as socketlib
import time

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from flowlens.api.hub import CLOSE_SLOW
from flowlens.db import Database
from tests.integration.test_api_feed import change, make_prs
from tests.integration.test_api_support import served_api, services, socket, ws_url

# Each pr_update carries the PR's file list whole (the description is cut): ~200 kB a message.
BIG_FILES = [f"src/{'x' * 190}/{i:05d}.py" for i in range(1000)]
CHANGES = 30


class StalledClient:
    """A real WebSocket handshake on a socket with a tiny receive buffer that is never read."""

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        self.sock = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM)
        self.sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.url = url

    async def handshake(self) -> None:
        loop = asyncio.get_running_loop()
        uri = parse_uri(self.url)
        await loop.sock_connect(self.sock, (uri.host, uri.port))
        self.protocol.send_request(self.protocol.connect())
        for chunk in self.protocol.data_to_send():
            await loop.sock_sendall(self.sock, chunk)
        while not any(isinstance(e, Response) for e in self.protocol.events_received()):
            data = await loop.sock_recv(self.sock, 1)  # byte by byte: leave frames unread
            self.protocol.receive_data(data)

    async def read_until_closed(self, timeout: float) -> tuple[int, int | None]:
        """(messages received, close code) once the server closes (or the time is up)."""
        loop = asyncio.get_running_loop()
        messages, code = 0, None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), 1.0)
            except TimeoutError:
                continue
            if not data:
                self.protocol.receive_eof()
            else:
                self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    messages += 1
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    code = int.from_bytes(event.data[:2], "big")
            if code is not None or not data:
                break
        return messages, code

    def close(self) -> None:
        self.sock.close()


async def test_stalled_client_is_dropped_and_others_stay_on_time(dsn: str, db: Database) -> None:
    (pr,) = await make_prs(db, ("acme/one",), 1)
    async with db.transaction() as tx:
        row = await tx.one(
            "ingest_lock_pull_requests", repository_ids=[pr["repository_id"]], numbers=[1]
        )
        assert row is not None
        from flowlens.ingest.store import save_pr_now

        await save_pr_now(tx, row, {**row, "files_changed": BIG_FILES}, "acme/one", source="test",
                      delivery_id=None, notify=True)  # fmt: skip

    async with served_api(dsn, ws_queue_size=4) as (app, base):
        hub = services(app).hub
        stalled = StalledClient(ws_url(base, "acme/one"))
        await stalled.handshake()
        received: dict[int, dict[str, float]] = {}
        async with contextlib.AsyncExitStack() as stack:
            healthy = [
                await stack.enter_async_context(socket(ws_url(base, *repos), max_size=None))
                for repos in [(), ("acme/one",), ("acme/one", "acme/two")]
            ]

            async def read(k: int, ws: object) -> None:
                received[k] = {}
                async for message in ws:  # type: ignore[attr-defined]
                    title = json.loads(message)["data"]["title"]
                    received[k][title] = time.monotonic()

            readers = [asyncio.create_task(read(k, ws)) for k, ws in enumerate(healthy)]
            await asyncio.sleep(0.2)
            assert hub.client_count == 4

            committed: dict[str, float] = {}
            for i in range(CHANGES):
                await change(db, pr, f"t{i}", notify=True)
                committed[f"t{i}"] = time.monotonic()
                await asyncio.sleep(0.02)

            async def all_in() -> None:
                while any(len(got) < CHANGES for got in received.values()):
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(all_in(), 10)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

        # The stalled client was dropped; the others got everything, each within a second.
        assert hub.dropped == 1
        for got in received.values():
            assert set(got) == set(committed)
            worst = max(got[t] - committed[t] for t in committed)
            assert worst < 1.0, worst
        # Once it reads again, it finds what fitted in its buffers, then the 1013 close.
        messages, code = await stalled.read_until_closed(timeout=8)
        stalled.close()
        assert code == CLOSE_SLOW
        assert 0 < messages < CHANGES
        await asyncio.sleep(0.1)
        assert hub.client_count == 0
