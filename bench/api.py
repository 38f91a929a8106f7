"""API benchmark: REST list latency, WebSocket fan-out, webhook-to-socket latency.

    .venv/bin/python -m bench.api [--sizes 1000,10000] [--clients 1000] [--updates 100]
                                  [--deliveries 40] [--only prs,fanout,e2e]

Starts a durable PostgreSQL (embedded, or a fresh database on DATABASE_URL's server) and runs
the API as it is deployed, in its own process: `uvicorn flowlens.api:create_app --factory`
(one worker, uvloop, websockets-sansio). This process is the client side (and, for the
end-to-end rows, also hosts the ingest function and a heuristic poller, as `flowlens dev`
does). Three measurements:

* prs     -- GET /api/prs with N pull requests stored (created through ingest's own code
             path): the default page (100), a full page (limit=1000) and one repository's page.
* fanout  -- CLIENTS sockets connected to one API instance; UPDATES PR changes committed one
             every 50 ms; latency = socket receipt - commit returned, over every (client,
             update) pair.
* e2e     -- signed `pull_request` webhooks POSTed to the ingest function; latency from the
             POST to the pr_update on a socket (ingest's change), and to the pr_update that
             carries the heuristic insight (the poller's), with FEED_NOTIFY on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import ROOT, git_commit, machine, stop_group, table
from flowlens.devdb import free_port

FIXTURE = ROOT / "tests" / "fixtures" / "github" / "pull_request" / "opened.payload.json"
SECRET = "bench-webhook-secret"
REPOS = ("bench/alpha", "bench/beta", "bench/gamma", "bench/delta", "bench/epsilon")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
TITLE = re.compile(r'"title": "([^"]*)"')


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def bench_database() -> Iterator[tuple[str, str]]:
    """(dsn, description) of a fresh migrated database: DATABASE_URL's server or embedded.

    The embedded server keeps PostgreSQL's durable defaults (fsync, synchronous_commit on).
    """
    from psycopg.conninfo import make_conninfo

    from flowlens.db import Database
    from flowlens.db.database import create_database, drop_database
    from flowlens.devdb import EmbeddedPostgres

    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    external = os.environ.get("DATABASE_URL")
    server = None
    folder = None
    if external:
        admin, where = external, "DATABASE_URL's server"
    else:
        (ROOT / ".flowlens").mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="bench-api-pg-", dir=ROOT / ".flowlens"))
        server = EmbeddedPostgres(folder / "pgdata", fast=False, max_connections=300)
        server.start()
        admin, where = server.dsn(), "embedded PostgreSQL (durable defaults)"
    try:
        asyncio.run(create_database(admin, name))
        dsn = make_conninfo(admin, dbname=name)
        asyncio.run(Database(dsn, min_size=0, max_size=1).migrate())
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('fsync'), "
                "current_setting('synchronous_commit')"
            ).fetchone()
        assert row is not None
        yield dsn, f"{where}, PostgreSQL {row[0]} (fsync={row[1]}, synchronous_commit={row[2]})"
        asyncio.run(drop_database(admin, name))
    finally:
        if server is not None:
            server.destroy()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def machine_line() -> str:
    """bench.machine() on one line, with the load when the run started."""
    info = machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{info['nproc']} x {info['cpu']}, {info['memory']}, {info['os']}, "
            f"Python {info['python']}; load average at start {load}")  # fmt: skip


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index] * 1000


def ms(value: float) -> str:
    return f"{value:.1f}"


def raise_nofile() -> None:
    """Thousands of sockets: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def api_process(dsn: str, **env: str) -> Iterator[str]:
    """The API in its own process (as in the container); yields its base URL."""
    port = free_port()
    full = {**os.environ, "DATABASE_URL": dsn, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text",
            "DB_POOL_MAX": "10", **env}  # fmt: skip
    full.pop("API_TOKENS", None)
    log = tempfile.NamedTemporaryFile(prefix="bench-api-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [sys.executable, "-m", "uvicorn", "flowlens.api:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets-sansio",
           "--loop", "uvloop", "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"API exited: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API did not start")
            time.sleep(0.1)
        time.sleep(0.5)  # the tailer's first read
        yield url
    finally:
        stop_group(proc)
        log.close()


def opened_payload(
    repo: str, number: int, title: str | None = None, updated: int = 0
) -> dict[str, Any]:
    """The opened fixture as PR `number` of `repo` (a new head sha each time).

    `updated` is the PR's updated_at, in seconds after 2024-01-01 (real PRs differ).
    """
    payload: dict[str, Any] = json.loads(FIXTURE.read_text())
    owner, name = repo.split("/")
    payload["number"] = number
    pr = payload["pull_request"]
    pr["number"] = number
    pr["id"] = 10_000_000 + REPOS.index(repo) * 1_000_000 + number if repo in REPOS else number
    pr["title"] = title or f"{repo} #{number}"
    pr["head"]["sha"] = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    pr["updated_at"] = (BASE_TIME + timedelta(seconds=updated)).isoformat()
    repository = payload["repository"]
    repository.update(full_name=repo, name=name, id=zlib.crc32(repo.encode()))
    repository["owner"]["login"] = owner
    return payload


async def seed_prs(dsn: str, start: int, stop: int) -> None:
    """PRs start..stop-1 spread over REPOS, through ingest's record_delivery."""
    from flowlens.db import Database
    from flowlens.ingest.store import record_delivery

    async with Database(dsn, min_size=8, max_size=8, connect_timeout=30) as db:
        slots = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            payload = opened_payload(REPOS[i % len(REPOS)], i // len(REPOS) + 1, updated=i * 60)
            async with slots:
                await record_delivery(db, f"seed-{i}", "pull_request", payload,
                                      json.dumps(payload), notify=False)  # fmt: skip

        await asyncio.gather(*(one(i) for i in range(start, stop)))


async def time_gets(url: str, path: str, params: dict[str, Any], n: int, *, warmup: int = 20,
                    timeout: float = 30) -> list[float]:  # fmt: skip
    """Seconds per request of `n` sequential GETs, after `warmup` unmeasured ones."""
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        for _ in range(warmup):
            (await client.get(path, params=params)).raise_for_status()
        out = []
        for _ in range(n):
            started = time.perf_counter()
            resp = await client.get(path, params=params)
            out.append(time.perf_counter() - started)
            resp.raise_for_status()
        return out


def runs_text(values: list[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def bench_prs(dsn: str, sizes: list[int], samples: int, runs: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    have = 0
    for size in sizes:
        started = time.monotonic()
        asyncio.run(seed_prs(dsn, have, size))
        print(f"  seeded {size - have} PRs in {time.monotonic() - started:.1f}s", flush=True)
        have = size
        with api_process(dsn) as url:
            for label, params in [
                ("default page (100)", {}),
                ("limit=1000", {"limit": 1000}),
                (f"repo={REPOS[0]} (100)", {"repo": REPOS[0]}),
            ]:
                p50s, p99s = [], []
                for _ in range(runs):
                    times = asyncio.run(time_gets(url, "/api/prs", params, samples))
                    p50s.append(pct(times, 50))
                    p99s.append(pct(times, 99))
                body = httpx.get(f"{url}/api/prs", params=params).content
                rows.append([f"{size:,}", label, f"{len(body) / 1024:.0f} KiB",
                             ms(statistics.median(p50s)), ms(statistics.median(p99s)),
                             runs_text(p50s), runs_text(p99s)])  # fmt: skip
                print("  ", rows[-1], flush=True)
    return rows


RAW_TITLE = re.compile(rb'"title": "([^"]*)"')


class RawWebSocket(asyncio.Protocol):
    """A minimal client for uncompressed server frames: timestamps each title as it arrives.

    websockets' client costs far more CPU per message than the server's send; with a thousand
    of them in one process the load generator would be what is measured.
    """

    def __init__(self, got: dict[str, float], opened: asyncio.Future[None]) -> None:
        self.got = got
        self.opened = opened
        self.buffer = b""
        self.upgraded = False

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.upgraded:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(self.buffer[:200].decode()))
                return
            self.upgraded = True
            data, self.buffer = self.buffer[end + 4 :], b""
            self.opened.set_result(None)
        chunk = self.buffer + data
        for match in RAW_TITLE.finditer(chunk):
            self.got.setdefault(match.group(1).decode(), now)
        # A title may straddle two reads: keep the tail (a full match found twice is harmless).
        self.buffer = chunk[-96:]


async def raw_socket(base: str, path: str, got: dict[str, float]) -> asyncio.BaseTransport:
    """Open a WebSocket (no extensions offered, so frames arrive uncompressed)."""
    import base64

    host, port = base.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: RawWebSocket(got, opened), host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write(  # type: ignore[attr-defined]
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await asyncio.wait_for(opened, 60)
    return transport


async def _fanout(
    dsn: str, url: str, clients: int, updates: int, compression: str | None
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from flowlens.db import Database
    from flowlens.ingest.store import save_pr_now

    ws_url = url.replace("http://", "ws://") + "/ws"
    received: list[dict[str, float]] = [{} for _ in range(clients)]

    async def client(k: int, ready: asyncio.Event, stop: asyncio.Event) -> None:
        if compression is None:
            # The cheap client, so that the load generator is not what is measured.
            transport = await raw_socket(url, f"/ws?repo={REPOS[0]}", received[k])
            ready.set()
            try:
                await asyncio.Event().wait()
            finally:
                transport.close()
        async with connect(f"{ws_url}?repo={REPOS[0]}", open_timeout=60, ping_interval=None,
                           max_queue=None, compression=compression) as ws:  # fmt: skip
            ready.set()
            got = received[k]
            async for message in ws:
                now = time.perf_counter()
                match = TITLE.search(message if isinstance(message, str) else message.decode())
                if match:
                    got[match.group(1)] = now
                if stop.is_set() and len(got) >= updates:
                    return

    stop = asyncio.Event()
    tasks = []
    for k in range(clients):
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(client(k, ready, stop)))
        await ready.wait()
    await asyncio.sleep(1.0)
    committed: dict[str, float] = {}
    async with Database(dsn, min_size=1, max_size=2) as db:
        async with db.transaction() as tx:
            pr = await tx.one("pull_request_by_number", repository=REPOS[0], number=1)
        assert pr is not None
        for i in range(updates):
            title = f"fanout-{i}"
            async with db.transaction() as tx:
                row = await tx.one(
                    "ingest_lock_pull_requests", repository_ids=[pr["repository_id"]], numbers=[1]
                )
                assert row is not None
                await save_pr_now(tx, row, {**row, "title": title}, REPOS[0], source="bench",
                              delivery_id=None, notify=True)  # fmt: skip
            committed[title] = time.perf_counter()
            await asyncio.sleep(0.05)
    stop.set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(g) < updates for g in received):
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [got[t] - c for got in received for t, c in committed.items() if t in got]
    return {
        "expected": clients * updates,
        "delivered": len(latencies),
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies) * 1000 if latencies else float("nan"),
    }


def bench_fanout(dsn: str, clients: int, updates: int, runs: int) -> list[list[Any]]:
    if clients + 100 > resource.getrlimit(resource.RLIMIT_NOFILE)[0]:
        raise SystemExit(f"open-files limit too low for {clients} clients")
    rows = []
    # Browsers and dart:io offer permessage-deflate and uvicorn accepts it by default: the
    # server then compresses every message once per client.
    for label, compression in [("none", None), ("permessage-deflate", "deflate")]:
        results = []
        for _ in range(runs):
            with api_process(dsn, WS_QUEUE_SIZE="256") as url:
                results.append(_run(_fanout(dsn, url, clients, updates, compression)))
            print("    run:", {k: v for k, v in results[-1].items()}, flush=True)
        p50s = [r["p50"] for r in results]
        p99s = [r["p99"] for r in results]
        delivered = sum(r["delivered"] for r in results)
        expected = sum(r["expected"] for r in results)
        rows.append([f"{clients:,}", updates, label, f"{delivered:,} / {expected:,}",
                     ms(statistics.median(p50s)), ms(statistics.median(p99s)),
                     runs_text(p50s), runs_text(p99s)])  # fmt: skip
        print("  ", rows[-1], flush=True)
    return rows


@contextlib.asynccontextmanager
async def ingest_and_poller(dsn: str, notify: bool) -> AsyncIterator[str]:
    """The ingest function (its functions-framework app) and a heuristic poller loop."""
    from functions_framework.aio import create_asgi_app

    from flowlens.api.server import serve
    from flowlens.db import Database
    from flowlens.ingest.app import close_all
    from flowlens.insights.builtin import RiskModelAnalyser
    from flowlens.poller.worker import Poller
    from flowlens.settings import PollerSettings

    os.environ.update(DATABASE_URL=dsn, GITHUB_WEBHOOK_SECRET=SECRET,
                      FEED_NOTIFY="true" if notify else "false", LOG_LEVEL="WARNING")  # fmt: skip
    app = create_asgi_app(target="ingest", source=str(ROOT / "functions" / "ingest" / "main.py"))
    settings = PollerSettings(database_url=dsn, feed_notify=notify)
    stop = asyncio.Event()
    async with Database(dsn, min_size=1, max_size=4) as db, serve(app, lifespan="off") as url:
        poller = asyncio.create_task(Poller(db, settings, RiskModelAnalyser()).run(3600, stop=stop))
        try:
            yield url
        finally:
            stop.set()
            await poller
            await close_all()


async def _e2e(dsn: str, api_url: str, notify: bool, deliveries: int) -> dict[str, Any]:
    import hashlib
    import hmac

    from websockets.asyncio.client import connect

    repo = REPOS[1]
    first: dict[int, float] = {}
    insight: dict[int, float] = {}
    async with (
        ingest_and_poller(dsn, notify) as ingest_url,
        httpx.AsyncClient(base_url=ingest_url, timeout=10) as hook,
        connect(api_url.replace("http://", "ws://") + f"/ws?repo={repo}") as ws,
    ):

        async def listen() -> None:
            async for message in ws:
                data = json.loads(message)["data"]
                number = data["pr_number"]
                now = time.perf_counter()
                first.setdefault(number, now)
                if data["ai_insight"] is not None:
                    insight.setdefault(number, now)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        posted: dict[int, float] = {}
        rng = random.Random(7)
        for i in range(deliveries):
            number = 50_000 + i + (0 if notify else 10_000)
            body = json.dumps(opened_payload(repo, number)).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
            }
            posted[number] = time.perf_counter()
            resp = await hook.post("/", content=body, headers=headers)
            assert resp.status_code == 202, resp.text
            # Off the poll's beat, so polling-only latencies sample its whole interval.
            await asyncio.sleep(0.3 + rng.random() * 0.3)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(insight) < deliveries:
            await asyncio.sleep(0.1)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    missing = sorted(set(posted) - set(insight))
    if missing:
        print(f"  no insight message for PRs {missing}", flush=True)
        if os.environ.get("BENCH_DEBUG"):
            from flowlens.db import Database

            async with Database(dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
                for n in missing:
                    print(await tx.all("change_feed_for", repository=repo, number=n))
    to_first = [first[n] - t for n, t in posted.items() if n in first]
    to_insight = [insight[n] - t for n, t in posted.items() if n in insight]
    return {"n": deliveries, "first": to_first, "insight": to_insight}


@contextlib.contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """Another migrated database on the same server (no backlog from the other sections)."""
    from psycopg.conninfo import make_conninfo

    from flowlens.db import Database
    from flowlens.db.database import create_database, drop_database

    name = f"bench_e2e_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(dsn, name))
    try:
        fresh = make_conninfo(dsn, dbname=name)
        asyncio.run(Database(fresh, min_size=0, max_size=1).migrate())
        yield fresh
    finally:
        asyncio.run(drop_database(dsn, name))


def bench_e2e(server_dsn: str, deliveries: int, runs: int) -> list[list[Any]]:
    rows = []
    for notify in (True, False):
        first: list[dict[str, Any]] = []
        for _ in range(runs):
            with (
                fresh_database(server_dsn) as dsn,
                api_process(dsn, FEED_NOTIFY="true" if notify else "false") as url,
            ):
                first.append(_run(_e2e(dsn, url, notify, deliveries)))
        mode = "LISTEN/NOTIFY + poll 0.25 s" if notify else "poll 0.25 s only (FEED_NOTIFY=false)"
        paths = [
            ("first", "webhook → pr_update (ingest)"),
            ("insight", "webhook → pr_update with insight (poller, 2 s scans)"),
        ]
        for key, path in paths:
            got = sum(len(r[key]) for r in first)
            p50s = [pct(r[key], 50) for r in first]
            p99s = [pct(r[key], 99) for r in first]
            p50, p99 = statistics.median(p50s), statistics.median(p99s)
            received = f"{got}/{deliveries * runs}"
            rows.append([mode, path, received, ms(p50), ms(p99), runs_text(p50s), runs_text(p99s)])
            print("  ", rows[-1], flush=True)
    return rows


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--deliveries", type=int, default=40)
    parser.add_argument("--only", default="prs,fanout,e2e")
    parser.add_argument("--runs", type=int, default=3, help="repeat each measurement; medians")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    raise_nofile()
    facts = machine_line()
    print(f"machine: {facts}", flush=True)
    sections: list[str] = []
    with bench_database() as (dsn, description):
        print(f"database: {description}", flush=True)
        if "prs" in only:
            print("GET /api/prs", flush=True)
            sizes = [int(s) for s in args.sizes.split(",")]
            rows = bench_prs(dsn, sizes, args.samples, args.runs)
            headers = ["PRs stored", "request", "body", "p50 ms", "p99 ms", "p50 per run",
                       "p99 per run"]  # fmt: skip
            sections.append(
                f"GET /api/prs ({args.samples} sequential keep-alive requests per run; medians "
                f"of {args.runs} runs)\n\n" + table(headers, rows)
            )
        if "fanout" in only:
            print("fan-out", flush=True)
            if "prs" not in only:
                asyncio.run(seed_prs(dsn, 0, 10))
            rows = bench_fanout(dsn, args.clients, args.updates, args.runs)
            headers = ["clients", "updates", "compression", "delivered", "p50 ms", "p99 ms",
                       "p50 per run", "p99 per run"]  # fmt: skip
            sections.append(
                "WebSocket fan-out (commit → receipt over every client x update, one update "
                f"every 50 ms; medians of {args.runs} runs)\n\n" + table(headers, rows)
            )
        if "e2e" in only:
            print("end to end", flush=True)
            rows = bench_e2e(dsn, args.deliveries, args.runs)
            headers = ["feed wake-up", "path", "received", "p50 ms", "p99 ms", "p50 per run",
                       "p99 per run"]  # fmt: skip
            sections.append(
                f"Webhook POST → socket ({args.deliveries} deliveries per run; medians of "
                f"{args.runs} runs)\n\n" + table(headers, rows)
            )
    print()
    command = " ".join(["python -m bench.api", *(argv if argv is not None else sys.argv[1:])])
    print(f"`{command}` at {git_commit()}; {facts}; {description}")
    print()
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
