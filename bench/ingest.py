"""Ingest benchmark: signed pull_request deliveries against the real ingest function.

    .venv/bin/python -m bench.ingest [--duration 20] [--runs 3] [--concurrency 32] [--workers 2]

Starts a durable PostgreSQL (embedded, PostgreSQL's defaults: fsync, synchronous_commit and
full_page_writes on; or a fresh database on DATABASE_URL's server), migrates it, and serves,
each in its own process group and exactly as Cloud Run functions would run them
(`python -m functions_framework --asgi`, i.e. gunicorn + uvicorn workers, WORKERS of them):

* ingest   -- functions/ingest/main.py, target `ingest`: the real function.
* ceiling  -- this file, target `ceiling`: a bare functions-framework aio function that only
              reads the body and answers 202; the most any function could do here.
* floor    -- this file, target `floor`: the ceiling plus the signature check, a parse of the
              body and one durable raw-event insert (group-committed), nothing else: less
              than any function that keeps the ingest contract (docs/ARCHITECTURE.md) must do here.
* loadgen  -- a raw asyncio responder with no framework: the load generator's own ceiling,
              so you can see it is not what limits the rows above.
* baseline -- with --baseline REV only: the ingest function as of git commit REV.

A separate load-generator process (plain asyncio protocols, keep-alive connections, no HTTP
library) drives each in turn with CONCURRENCY senders for a fixed time. Every delivery is a
distinct, signed pull_request payload derived from tests/fixtures/github/pull_request/ with its
own X-GitHub-Delivery: three in four open a new PR (spread over many numbers and several
repositories), one in four updates one of HOT_PRS pull requests again (synchronize, labeled,
edited, draft, ready, closed, reopened), each newer than the last so state really changes.
After each row that stores (ingest, floor, baseline) its new raw_events rows must equal its
202s; at the end the embedded server is crashed (pg_ctl stop -m immediate) and, after
recovery, the rows must still equal all the 202s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse

from bench import (
    ROOT,
    bench_server,
    cpu_delta,
    git_commit,
    machine,
    machine_busy,
    median,
    stop_group,
    table,
    tree_cpu,
)
from flowlens.serving import spread_connections

FIXTURES = ROOT / "tests" / "fixtures" / "github" / "pull_request"
SECRET = "bench-webhook-secret"
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
# Actions the hot PRs go through, in turn (each from a real fixture or one field changed).
HOT_CYCLE = ("synchronize", "labeled", "edited", "converted_to_draft", "ready_for_review",
             "synchronize", "closed", "reopened")  # fmt: skip
REQUEST_TIMEOUT = 10.0  # GitHub gives up after 10 s
WRITERS = ("ingest", "baseline", "floor")  # the targets that store deliveries


# --------------------------------------------------------------------------- the ceiling

# Served exactly as the ingest function is, with a listening socket per worker.
spread_connections()


@functions_framework.aio.http
async def ceiling(request: Request) -> JSONResponse:
    """A function that only reads the body: the framework's own cost, nothing else."""
    body = await request.body()
    return JSONResponse({"status": "accepted", "bytes": len(body)}, status_code=202)


# --------------------------------------------------------------------------- the floor

# Less than any function that keeps the ingest contract (docs/ARCHITECTURE.md) must do:
# verify the signature before anything else, refuse a body that is not JSON (400), and answer
# 2xx only once the raw event is durable (the contract also wants the state in the same
# transaction). It parses with
# the project's cheapest complete parse (load_payload), inserts the raw event (the body as
# ingest stores it, an LZ4 frame) and answers after the commit, deliveries that arrive meanwhile
# sharing the next one. No state, no history, no feed, no log line: what it costs above the
# ceiling, no implementation can skip.
FLOOR_SQL = """
INSERT INTO raw_events (delivery_id, event, payload)
SELECT * FROM unnest(%(ids)b::text[], %(events)b::text[], %(payloads)b::bytea[])
ON CONFLICT (delivery_id) DO NOTHING
RETURNING delivery_id
"""
FLOOR_BATCH = 64
_Waiting = tuple[str, str, bytes, "asyncio.Future[bool]"]


class _Floor:
    """Group commit of raw events through one autocommit connection per worker."""

    def __init__(self) -> None:
        self.queue: list[_Waiting] = []
        self.conn: Any = None
        self.drain: asyncio.Task[None] | None = None

    async def store(self, delivery: str, event: str, payload: bytes) -> bool:
        """True once the raw event committed (False: the delivery id was stored before)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.append((delivery, event, payload, future))
        if self.drain is None:
            self.drain = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        import psycopg

        from flowlens.serving import settle_gc

        batch: list[_Waiting] = []
        try:
            if self.conn is None:
                settle_gc()  # as the ingest function's module does
                self.conn = await psycopg.AsyncConnection.connect(
                    os.environ["DATABASE_URL"], autocommit=True
                )
            while self.queue:
                batch, self.queue = self.queue[:FLOOR_BATCH], self.queue[FLOOR_BATCH:]
                cur = await self.conn.execute(FLOOR_SQL, {
                    "ids": [b[0] for b in batch], "events": [b[1] for b in batch],
                    "payloads": [b[2] for b in batch],
                })  # fmt: skip
                inserted = {row[0] for row in await cur.fetchall()}
                for delivery, _, _, future in batch:
                    if not future.done():  # the sender may have hung up
                        future.set_result(delivery in inserted)
                    inserted.discard(delivery)  # the same id again in one batch: a duplicate
                batch = []
        except Exception as exc:
            conn, self.conn = self.conn, None  # the next delivery connects again
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            for *_, future in batch + self.queue:
                if not future.done():
                    future.set_exception(exc)
            self.queue = []
        finally:
            self.drain = None


_floor = _Floor()


@functions_framework.aio.http
async def floor(request: Request) -> JSONResponse:
    """Verify, parse, then store the raw event durably: the ceiling plus what the contract
    requires of every delivery before its 2xx."""
    import lz4.frame

    from flowlens.github.parse import load_payload
    from flowlens.github.signature import verify

    body = await request.body()
    if not verify(SECRET, body, request.headers.get("x-hub-signature-256")):
        return JSONResponse({"error": "bad signature"}, status_code=401)
    delivery = request.headers.get("x-github-delivery", "")
    event = request.headers.get("x-github-event", "")
    if not delivery or not event:
        return JSONResponse({"error": "headers missing"}, status_code=400)
    try:
        load_payload(body)
    except ValueError as exc:
        return JSONResponse({"error": f"not a payload: {exc}"}, status_code=400)
    new = await _floor.store(delivery, event, lz4.frame.compress(body, content_checksum=True))
    return JSONResponse(
        {"status": "accepted" if new else "duplicate", "delivery": delivery, "event": event},
        status_code=202 if new else 200,
    )


# --------------------------------------------------------------------------- deliveries

_SENTINEL = re.compile(r'"@@(NUM|RID)@@"|@@(SHA|UPD|REPO|TITLE)@@')
Template = list[tuple[str, str | None]]


def _template(payload: dict[str, Any]) -> Template:
    """A fixture with the fields we vary replaced by sentinels, split once for fast rendering."""
    pr = payload["pull_request"]
    payload["number"] = pr["number"] = "@@NUM@@"
    pr["head"]["sha"] = "@@SHA@@"
    pr["updated_at"] = "@@UPD@@"
    pr["title"] = "@@TITLE@@"
    repo = payload["repository"]
    repo["id"] = "@@RID@@"
    repo["name"] = "@@REPO@@"
    repo["full_name"] = f"{repo['owner']['login']}/@@REPO@@"
    text = json.dumps(payload, separators=(",", ":"))
    out: Template = []
    pos = 0
    for match in _SENTINEL.finditer(text):
        out.append((text[pos : match.start()], match.group(1) or match.group(2)))
        pos = match.end()
    out.append((text[pos:], None))
    return out


def load_templates() -> dict[str, Template]:
    """One template per action the benchmark sends."""

    def fixture(name: str, **changes: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((FIXTURES / f"{name}.payload.json").read_text())
        data.update(changes)
        return data

    return {
        "opened": _template(fixture("opened")),
        "opened_org": _template(fixture("opened.with-organization")),
        # Derived: the opened payload with only the action changed.
        "synchronize": _template(fixture("opened", action="synchronize")),
        "edited": _template(fixture("opened", action="edited")),
        "labeled": _template(fixture("labeled")),
        "closed": _template(fixture("closed")),
        "reopened": _template(fixture("reopened")),
        "converted_to_draft": _template(fixture("converted_to_draft")),
        "ready_for_review": _template(fixture("ready_for_review")),
    }


class Deliveries:
    """An endless, deterministic stream of distinct signed pull_request deliveries."""

    def __init__(self, seq_start: int, repos: int, hot_prs: int, secret: str = SECRET) -> None:
        self.templates = load_templates()
        self.seq = itertools.count(seq_start)
        self.start = seq_start
        self.repos = repos
        self.hot_prs = hot_prs
        self.key = secret.encode()
        self.hot_sha: dict[int, str] = {}
        self.actions: Counter[str] = Counter()

    def next(self) -> tuple[str, bytes]:
        """(delivery id, body) of the next delivery."""
        i = next(self.seq)
        k = i - self.start
        if k % 4 == 3:
            hot = (k // 4) % self.hot_prs
            number = 1 + hot
            action = HOT_CYCLE[(k // 4 // self.hot_prs) % len(HOT_CYCLE)]
            if action == "synchronize" or hot not in self.hot_sha:
                self.hot_sha[hot] = f"{i:040x}"
            sha = self.hot_sha[hot]
            repo = hot % self.repos
        else:
            number = 100_000 + i
            action = "opened_org" if k % 10 == 0 else "opened"
            sha = f"{i:040x}"
            repo = k % self.repos
        self.actions[action] += 1
        values = {
            "NUM": str(number),
            "RID": str(900_000 + repo),
            "SHA": sha,
            "UPD": (BASE_TIME + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "REPO": f"bench-{repo}",
            "TITLE": f"Bench change {i}",
        }
        body = "".join(
            lit + values[key] if key else lit for lit, key in self.templates[action]
        ).encode()
        return f"bench-{i}", body

    def request(self, host: str, path: str) -> tuple[bytes, bytes]:
        """(head, body) of the next delivery as raw HTTP/1.1, signed like GitHub signs it."""
        delivery, body = self.next()
        sig = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
            f"Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n"
            f"X-GitHub-Delivery: {delivery}\r\nX-Hub-Signature-256: sha256={sig}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head, body


# --------------------------------------------------------------------------- load generator


class _Client(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request in flight, response parsed by hand."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(ConnectionError("response without content-length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        del self.buf[:total]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    async def send(self, head: bytes, body: bytes) -> int:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines((head, body))
        return await self.waiter


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host, port = args.host, args.port
    deliveries = Deliveries(args.seq_start, args.repos, args.hot_prs)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    errors: list[str] = []
    clients = []
    for _ in range(args.concurrency):
        _, proto = await loop.create_connection(_Client, host, port)
        clients.append(proto)
    started = time.perf_counter()
    window_start = started + args.warmup
    window_end = window_start + args.duration
    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    in_window = 0

    async def sender(client: _Client) -> None:
        nonlocal in_window
        while time.perf_counter() < window_end:
            head, body = deliveries.request(f"{host}:{port}", "/")
            t0 = time.perf_counter()
            try:
                status = await asyncio.wait_for(client.send(head, body), REQUEST_TIMEOUT)
            except (TimeoutError, OSError, ConnectionError) as exc:
                statuses["error"] += 1
                if len(errors) < 10:
                    errors.append(repr(exc))
                # A broken connection is replaced, as a real sender would.
                if client.transport is not None:
                    client.transport.close()
                _, client = await loop.create_connection(_Client, host, port)
                continue
            t1 = time.perf_counter()
            statuses[str(status)] += 1
            if window_start <= t1 <= window_end:
                in_window += 1
                latencies.append(t1 - t0)
                if status != args.expect:
                    statuses[f"window_{status}"] += 1

    await asyncio.gather(*(sender(c) for c in clients))
    finished = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    window_errors = sum(v for k, v in statuses.items() if k.startswith("window_"))
    final = {k: v for k, v in statuses.items() if not k.startswith("window_")}
    errors_total = sum(v for k, v in final.items() if k != str(args.expect))
    return {
        "rate": in_window / args.duration,
        "in_window": in_window,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "statuses": final,
        "accepted": statuses[str(args.expect)],
        "errors": errors_total,
        "window_errors": window_errors,
        "error_samples": errors,
        "loadgen_cpu_s": (usage.ru_utime - usage_start.ru_utime)
        + (usage.ru_stime - usage_start.ru_stime),
        "elapsed_s": finished - started,
        "actions": dict(deliveries.actions),
    }


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cmd_loadgen(args: argparse.Namespace) -> int:
    """Drive one server for warmup + duration seconds; print a JSON result."""
    _use_uvloop()
    print(json.dumps(asyncio.run(_load(args))))
    return 0


# --------------------------------------------------------------------------- raw responder


class _Responder(asyncio.Protocol):
    """Reads whole requests and answers a canned 202: no framework, no parsing beyond framing."""

    REPLY = (
        b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n"
        b'{"status":"accepted"}'
    )

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop > 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.REPLY)


def cmd_responder(args: argparse.Namespace) -> int:
    """Serve the raw responder until killed."""
    _use_uvloop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Responder, "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    return 0


# --------------------------------------------------------------------------- orchestration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start; see {log}")


class Server:
    """A server process in its own process group, stopped by its id."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, logdir: Path):
        self.name = name
        self.port = port
        self.log = logdir / f"{name}.log"
        self._logfile = self.log.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._logfile, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        _wait_port(port, self.proc, self.log)

    def stop(self) -> None:
        stop_group(self.proc)
        self._logfile.close()


def _function_env(dsn: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "K_"))}
    env.update(
        DATABASE_URL=dsn,
        GITHUB_WEBHOOK_SECRET=SECRET,
        WORKERS=str(args.workers),
        LOG_FORMAT="json",
        LOG_LEVEL=args.log_level,
        PYTHONUNBUFFERED="0",
    )
    if args.pool_max:
        env["DB_POOL_MAX"] = str(args.pool_max)
    return env


def _raw_events(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM raw_events").fetchone()
        assert row is not None
        return int(row[0])


def _checkpoint(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _measure(
    target: str, port: int, args: argparse.Namespace, seq_start: int, trees: dict[str, int | None]
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "bench.ingest", "loadgen", "--port", str(port),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency), "--seq-start", str(seq_start),
        "--repos", str(args.repos), "--hot-prs", str(args.hot_prs),
    ]  # fmt: skip
    before = {name: tree_cpu(pid) for name, pid in trees.items()}
    busy0, total0 = machine_busy()
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=args.warmup + args.duration + 120,
    )  # fmt: skip
    busy1, total1 = machine_busy()
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed for {target}:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    after = {name: tree_cpu(pid) for name, pid in trees.items()}
    wall = result["elapsed_s"]
    result["target"] = target
    result["cpu"] = {name: cpu_delta(before[name], after[name]) / wall for name in trees}
    result["cpu"]["loadgen"] = result["loadgen_cpu_s"] / wall
    result["machine_busy_cores"] = (busy1 - busy0) / wall
    result["machine_cores_seen"] = (total1 - total0) / wall
    return result


def cmd_run(args: argparse.Namespace) -> int:
    """Run every target side by side, RUNS times; print per-run rows and medians."""
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, {info['os']}, "
          f"Python {info['python']}, commit {git_commit()}", flush=True)  # fmt: skip
    logdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    crash: dict[str, Any] = {}
    with bench_server(keep=args.keep) as pg:
        print(f"database: {pg.description}; PostgreSQL {pg.version}; "
              + ", ".join(f"{k}={v}" for k, v in pg.settings.items()), flush=True)  # fmt: skip
        dsn = pg.dsn(pg.create())
        env = _function_env(dsn, args)
        servers: dict[str, Server] = {}
        try:
            ff = [sys.executable, "-m", "functions_framework", "--asgi", "--host", "127.0.0.1"]
            port = _free_port()
            servers["ingest"] = Server(
                "ingest", [*ff, "--port", str(port), "--target", "ingest",
                           "--source", "functions/ingest/main.py"], env, port, logdir,
            )  # fmt: skip
            if args.baseline:
                # The same function from another commit (e.g. before an optimisation), served
                # the same way beside the working tree's, against the same database.
                base = _checkout(args.baseline, logdir)
                port = _free_port()
                servers["baseline"] = Server(
                    "baseline", [*ff, "--port", str(port), "--target", "ingest",
                                 "--source", str(base / "functions/ingest/main.py")],
                    {**env, "PYTHONPATH": str(base / "shared")}, port, logdir,
                )  # fmt: skip
            port = _free_port()
            servers["ceiling"] = Server(
                "ceiling", [*ff, "--port", str(port), "--target", "ceiling",
                            "--source", "bench/ingest.py"], env, port, logdir,
            )  # fmt: skip
            if not args.no_floor:
                port = _free_port()
                servers["floor"] = Server(
                    "floor", [*ff, "--port", str(port), "--target", "floor",
                              "--source", "bench/ingest.py"], env, port, logdir,
                )  # fmt: skip
            if not args.no_loadgen_ceiling:
                port = _free_port()
                servers["loadgen"] = Server(
                    "loadgen",
                    [sys.executable, "-m", "bench.ingest", "responder", "--port", str(port)],
                    env, port, logdir,
                )  # fmt: skip
            print(f"ingest with WORKERS={args.workers}, {args.concurrency} senders, "
                  f"{args.warmup}s warm-up + {args.duration}s measured per row; logs in {logdir}",
                  flush=True)  # fmt: skip
            results = _runs(args, dsn, pg.postmaster_pid, servers)
        finally:
            for server in servers.values():
                server.stop()
        accepted = sum(r["accepted"] for r in results if r["target"] in WRITERS)
        crash = {"accepted": accepted, "rows": None}
        if pg.embedded is not None:
            # The strongest check of "a 2xx means durable": crash the server (no shutdown
            # checkpoint, the last run's rows only in the WAL) and count after recovery.
            pg.crash_restart()
            crash["rows"] = _raw_events(dsn)
    report(args, results, crash)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": results, "crash": crash}, indent=2))
    bad = [r for r in results if r["target"] in WRITERS and not r.get("durable_ok")]
    return 1 if bad or crash["rows"] not in (None, crash["accepted"]) else 0


def _runs(
    args: argparse.Namespace, dsn: str, pg_pid: int | None, servers: dict[str, Server]
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    order = [t for t in ("ceiling", "floor", "baseline", "ingest", "loadgen") if t in servers]
    for run in range(1, args.runs + 1):
        for target in order:
            trees = {"server": servers[target].proc.pid, "postgres": pg_pid}
            rows_before = _raw_events(dsn) if target in WRITERS else 0
            seq_start = (run * 10 + order.index(target)) * 1_000_000
            result = _measure(target, servers[target].port, args, seq_start, trees)
            result["run"] = run
            if target in WRITERS:
                rows = _raw_events(dsn) - rows_before
                result["rows"] = rows
                result["durable_ok"] = rows == result["accepted"]
                if run < args.runs:
                    # Leave no dirty buffers behind to slow down what is measured next (but not
                    # after the last run, whose rows the crash check finds in the WAL alone).
                    _checkpoint(dsn)
            print(_row_text(result), flush=True)
            results.append(result)
    return results


def _cpu_ms(r: dict[str, Any]) -> float:
    """Server and PostgreSQL CPU per response of one row, in milliseconds."""
    cores = r["cpu"]["server"] + (r["cpu"].get("postgres") or 0.0)
    return 1000 * cores / r["rate"] if r["rate"] else float("nan")


def _checkout(rev: str, into: Path) -> Path:
    """shared/ and functions/ of commit `rev`, extracted under `into`."""
    out = into / f"baseline-{rev}"
    out.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "shared", "functions"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _row_text(r: dict[str, Any]) -> str:
    extra = ""
    if r["target"] in WRITERS:
        extra = f", raw_events rows {r['rows']} vs 202s {r['accepted']}"
    return (
        f"run {r['run']} {r['target']:<8} {r['rate']:7.0f}/s  p50 {r['p50_ms']:6.1f} ms  "
        f"p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}{extra}"
    )


def report(args: argparse.Namespace, results: list[dict[str, Any]], crash: dict[str, Any]) -> None:
    """Per-run rows, then medians and ratios."""
    rows = []
    for r in results:
        cpu = r["cpu"]
        rows.append([
            r["run"], r["target"], f"{r['rate']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
            f"{r['max_ms']:.0f}", r["accepted"], r["errors"],
            (f"{r['rows']} {'=' if r['durable_ok'] else '!='} {r['accepted']}"
             if r["target"] in WRITERS else "-"),
            f"{cpu['loadgen']:.2f}", f"{cpu['server']:.2f}", f"{cpu.get('postgres', 0):.2f}",
            f"{r['machine_busy_cores']:.2f}", f"{_cpu_ms(r):.2f}",
        ])  # fmt: skip
    print()
    print(table(
        ["run", "target", "deliveries/s", "p50 ms", "p99 ms", "max ms", "2xx", "errors",
         "raw_events rows", "cpu loadgen", "cpu server", "cpu postgres", "machine busy",
         "cpu ms/delivery"],
        rows,
    ))  # fmt: skip
    print("(cpu columns: cores used on average during the row; machine busy: all processes, ours")
    print(" and anyone else's; cpu ms/delivery: server + postgres CPU per response)")
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["target"], []).append(r)
    ratios: dict[str, list[float]] = {}
    for run in sorted({r["run"] for r in results}):
        pair = {r["target"]: r for r in results if r["run"] == run}
        for num, den in (
            ("ingest", "ceiling"),
            ("floor", "ceiling"),
            ("ingest", "floor"),
            ("baseline", "ceiling"),
            ("ingest", "baseline"),
        ):
            if num in pair and den in pair and pair[den]["rate"]:
                ratios.setdefault(f"{num} / {den}", []).append(
                    pair[num]["rate"] / pair[den]["rate"]
                )
    summary = []
    for target, rs in by.items():
        summary.append([
            target, len(rs), f"{median([r['rate'] for r in rs]):.0f}",
            f"{median([r['p50_ms'] for r in rs]):.1f}", f"{median([r['p99_ms'] for r in rs]):.1f}",
            sum(r["errors"] for r in rs), f"{median([_cpu_ms(r) for r in rs]):.2f}",
        ])  # fmt: skip
    print()
    print(f"medians of {args.runs} runs:")
    print(table(["target", "runs", "deliveries/s", "p50 ms", "p99 ms", "errors (sum)",
                 "cpu ms/delivery"], summary))  # fmt: skip
    print()
    for name, values in ratios.items():
        print(f"{name} (per run, median): {median(values):.2f} "
              f"(runs: {', '.join(f'{x:.2f}' for x in values)})")  # fmt: skip
    writers = [r for r in results if r["target"] in WRITERS]
    if writers:
        ok = all(r["durable_ok"] for r in writers)
        print(f"durable: raw_events rows == 202s in every row that stores: {'yes' if ok else 'NO'}")
    if crash.get("rows") is not None:
        same = "yes" if crash["rows"] == crash["accepted"] else "NO"
        print(
            f"after a crash (pg_ctl stop -m immediate) and recovery: {crash['rows']} raw_events "
            f"rows for {crash['accepted']} 202s in all rows that store: {same}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    parser.set_defaults(func=cmd_run)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--duration", type=float, default=20.0, help="measured seconds per row")
        p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
        p.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
        p.add_argument("--repos", type=int, default=8, help="repositories deliveries spread over")
        p.add_argument("--hot-prs", type=int, default=200, help="PRs that get repeated updates")

    common(parser)
    parser.add_argument("--runs", type=int, default=3, help="rounds of side-by-side rows")
    parser.add_argument("--workers", type=int, default=2, help="WORKERS of each function")
    parser.add_argument("--pool-max", type=int, default=0, help="DB_POOL_MAX (0: default)")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the function")
    parser.add_argument("--no-loadgen-ceiling", action="store_true",
                        help="skip the raw-responder row")  # fmt: skip
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the floor row (verify + durable raw event only)")  # fmt: skip
    parser.add_argument("--baseline", metavar="REV",
                        help="also run ingest as of this git commit, side by side")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", help="also write every row to this JSON file")

    load = sub.add_parser("loadgen", help="(internal) drive one server, print JSON")
    common(load)
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--seq-start", type=int, default=1)
    load.add_argument("--expect", type=int, default=202)
    load.set_defaults(func=cmd_loadgen)

    resp = sub.add_parser("responder", help="(internal) raw asyncio 202 responder")
    resp.add_argument("--port", type=int, required=True)
    resp.set_defaults(func=cmd_responder)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
