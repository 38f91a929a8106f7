"""Pay-per-use poller benchmark: idle billing and webhook -> insight latency, side by side.

    .venv/bin/python -m bench.poller_idle [--quick] [--samples 10] [--load-rate 2]
                                          [--load-seconds 60] [--seed 7] [--json FILE]

Two modes, each on a fresh database of one embedded PostgreSQL (durable defaults, as in
bench/__init__.py), both with the real POLL_INTERVAL_SECONDS=2 and POLL_BUDGET_SECONDS=50 and
GITHUB_API_URL="" (the built-in risk model, no GitHub, no Gemini):

* always      -- today's always-looping poller: POLL_IDLE_SCANS=0 and no POLLER_URL, so an
                 invocation scans until its budget is spent and only the scheduler starts one.
* pay-per-use -- POLL_IDLE_SCANS=2 and POLLER_URL pointing at the poller function with
                 WAKE_AUTH=none: an invocation ends after two empty scans, and ingest wakes the
                 poller after committing analysable work when no invocation runs.

Both deployables run as Cloud Run functions run them, each in its own process group on
127.0.0.1: `python -m functions_framework --asgi` (gunicorn, one uvicorn worker,
LOG_EXECUTION_ID=false, JSON logs at INFO) with functions/ingest/main.py (target `ingest`) and
functions/poller/main.py (target `poll`), i.e. the real entry points rather than
`flowlens.devserver.poller_app`, which wraps the same `PollerService.invoke`. This process is
the scheduler emulation, GitHub (signed `pull_request` "opened" deliveries, a new PR number and
head sha each, bench.api.opened_payload + tests.helpers.github_headers) and the observer: it
reads the `insights` table every 20 ms, so a latency is from just before the webhook POST to
the moment the head's insight row is visible to another connection.

Per mode, in this order:

(a) Idle billing. The scheduler emulation POSTs `{}` to the poller TICKS times (3 for
    always, 10 for pay-per-use) with nothing to do, and records each request's wall time: on
    Cloud Run that is the billed request time (request-based billing runs while a request is
    in flight; max_instance_request_concurrency is 1, so every invocation is billed on its
    own). TIME-COMPRESSED: the next tick starts 1 s after the previous one returned instead
    of at the next minute; with no deliveries an idle invocation does the same work whatever
    the gap before it. Billed seconds per idle hour = 60 x the median tick (an hour has 60
    ticks). The wake-ups ingest sent meanwhile are counted from its log (0 expected).
(b1) First insight after idle, SAMPLES deliveries per mode.
    always: the real schedule, not compressed: the scheduler ticks every 60 s (each
    invocation ~48 s, so ~12 s of every minute has none running) and the deliveries go out
    at seeded uniformly random moments over ceil(0.3 x SAMPLES) minutes.
    pay-per-use: the scheduler is paused (a tick would only, 2-4 s in every 60, find the
    delivery itself and make it faster); one delivery at a time, each sent once the
    poller's heartbeat row says no invocation runs and after a further seeded random 3-8 s
    idle gap, so every sample takes the wake-up path. The poller process stays warm, as a
    Cloud Run instance does while the scheduler still invokes it every minute (Cloud Run
    keeps an idle instance for a while); the time the poller process takes to start
    listening is printed as what a cold start would add on this machine.
(b2) Steady load: LOAD_RATE deliveries/s for LOAD_SECONDS (default 2/s for 60 s, so the
    window spans a whole scheduler minute) while the scheduler ticks every 60 s (always: the
    schedule of b1 goes on; pay-per-use: its first tick at a seeded random moment of the
    first minute). p50/p99 webhook -> insight; and the billed invocation-seconds inside the
    load window, per minute of load, from the poller's `invocation done` log lines (end time
    and seconds), after every invocation has ended. In pay-per-use a tick that arrives while
    a woken invocation runs scans beside it (only wake-ups defer to the heartbeat) and goes on
    while its scans find work; whether they do depends on its phase against the woken
    invocation's 2 s scans (within ~0.5 s after them, the next delivery is not in yet), so
    the ticks overlapping the load are printed with their start and duration; --seed moves
    the phase.

Default run: about 10 minutes (always ~7 min: 3 x 48 s ticks, 3 min of b1, 60 s of load
and the in-flight tick's end; pay-per-use ~2.5 min). `--quick` is a smoke run of about
1.5 minutes, with a COMPRESSED schedule (POLL_BUDGET_SECONDS=10, a "minute" of 12 s, 3 samples,
10 s of load): its numbers are not representative. Talks only to 127.0.0.1; the servers and
the embedded PostgreSQL are stopped and deleted afterwards. The exit status is 1 if a delivery
got no insight.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import ROOT, bench_server, git_commit, machine, median, stop_group, table

SECRET = "bench-webhook-secret"
REPO = "bench/idle"
MODES = ("always", "pay-per-use")
# docs/DEPLOY.md's pricing assumptions (Tier 1 list prices, request-based billing).
VCPU, GIB = 0.5, 0.5
VCPU_PRICE, GIB_PRICE = 0.000024, 0.0000025
FREE_VCPU_S, FREE_GIB_S = 180_000, 360_000
MONTH_HOURS = 24 * 30
SKIPPED = "wake-up: another invocation is running"  # the poller's log line


@dataclass
class Plan:
    """How long and how often each part runs."""

    budget: float = 50.0  # POLL_BUDGET_SECONDS
    interval: float = 2.0  # POLL_INTERVAL_SECONDS
    minute: float = 60.0  # the scheduler's period in b1/b2
    ticks: dict[str, int] = field(default_factory=lambda: {"always": 3, "pay-per-use": 10})
    samples: int = 10
    load_rate: float = 2.0
    load_seconds: float = 60.0
    seed: int = 7
    quick: bool = False


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Function:
    """A function served by functions-framework in its own process group."""

    def __init__(self, name: str, target: str, source: str, env: dict[str, str], logdir: Path):
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = logdir / f"{name}.log"
        self._out = self.log.open("wb")
        cmd = [sys.executable, "-m", "functions_framework", "--asgi", "--host", "127.0.0.1",
               "--port", str(self.port), "--target", target, "--source", source]  # fmt: skip
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({self.proc.returncode}); see {self.log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log}")
            time.sleep(0.02)
        self.start_seconds = time.perf_counter() - started

    def stop(self) -> None:
        stop_group(self.proc, timeout=5)
        self._out.close()

    def entries(self, since: float = 0.0, until: float = math.inf) -> list[dict[str, Any]]:
        """Its JSON log lines written between two wall-clock times."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["time"]).timestamp()
            except (ValueError, KeyError):
                continue
            if since <= at < until:
                entry["at"] = at
                out.append(entry)
        return out

    def count(self, message: str, since: float, until: float = math.inf) -> int:
        return sum(1 for e in self.entries(since, until) if e.get("message") == message)


def _env(dsn: str, plan: Plan, **extra: str) -> dict[str, str]:
    drop = ("GEMINI", "GOOGLE", "K_", "POLL", "WAKE_", "GITHUB_", "SYNC_", "ALERT_", "CHECK_",
            "DASHBOARD_", "DATABASE_URL", "WORKERS", "DB_POOL")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    shared = str(ROOT / "shared")
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (shared, os.environ.get("PYTHONPATH")) if p),
        DATABASE_URL=dsn,
        GITHUB_WEBHOOK_SECRET=SECRET,
        GITHUB_API_URL="",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        LOG_EXECUTION_ID="false",
        WORKERS="1",
        POLL_INTERVAL_SECONDS=f"{plan.interval:g}",
        POLL_BUDGET_SECONDS=f"{plan.budget:g}",
        **extra,
    )
    return env


@contextlib.contextmanager
def deployables(
    mode: str, dsn: str, plan: Plan, logdir: Path
) -> Iterator[tuple[Function, Function]]:
    """(ingest, poller) of one mode, stopped afterwards."""
    folder = logdir / mode
    folder.mkdir()
    idle_scans = "0" if mode == "always" else "2"
    started: list[Function] = []
    try:
        poller = Function("poller", "poll", "functions/poller/main.py",
                          _env(dsn, plan, POLL_IDLE_SCANS=idle_scans), folder)  # fmt: skip
        started.append(poller)
        wake = {"POLLER_URL": poller.url, "WAKE_AUTH": "none"} if mode == "pay-per-use" else {}
        ingest = Function("ingest", "ingest", "functions/ingest/main.py",
                          _env(dsn, plan, POLL_IDLE_SCANS=idle_scans, **wake), folder)  # fmt: skip
        started.append(ingest)
        yield ingest, poller
    finally:
        for function in reversed(started):
            function.stop()


# --------------------------------------------------------------------------- observers


@dataclass
class Tick:
    started: float  # wall clock
    seconds: float
    summary: dict[str, Any]


class Scheduler:
    """Cloud Scheduler's stand-in: POSTs `{}` to the poller, records each request's time."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.ticks: list[Tick] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def tick(self) -> Tick:
        wall, started = time.time(), time.perf_counter()
        resp = await self.client.post(self.url, content=b"{}",
                                      headers={"Content-Type": "application/json"})  # fmt: skip
        resp.raise_for_status()
        tick = Tick(wall, time.perf_counter() - started, resp.json())
        self.ticks.append(tick)
        return tick

    def start(self, period: float, first_delay: float = 0.0) -> None:
        """Tick every `period` seconds (the first after `first_delay`) until stop()."""
        self._stop.clear()
        self._runner = asyncio.create_task(self._run(period, first_delay))

    async def _run(self, period: float, first_delay: float) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time() + first_delay
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(at):
                    await self._stop.wait()
            if self._stop.is_set():
                return
            task = asyncio.create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            at += period

    async def _one(self) -> None:
        try:
            await self.tick()
        except httpx.HTTPError as exc:
            print(f"  scheduler tick failed: {exc!r}", flush=True)

    async def stop(self, wait: float) -> None:
        """No more ticks; wait up to `wait` s for those in flight, then give them up."""
        self._stop.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=wait)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Insights:
    """Watches the insights table every 20 ms for the heads sent."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.sent: dict[str, float] = {}  # head sha -> perf_counter just before the POST
        self.seen: dict[str, float] = {}  # head sha -> perf_counter when its insight was seen
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Insights:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            pending = [sha for sha in self.sent if sha not in self.seen]
            if pending:
                cur = await self.conn.execute(
                    "SELECT commit_sha FROM insights WHERE commit_sha = ANY(%s)", (pending,)
                )
                now = time.perf_counter()
                for (sha,) in await cur.fetchall():
                    self.seen.setdefault(sha, now)
            await asyncio.sleep(0.02)

    def latency(self, sha: str) -> float | None:
        return self.seen[sha] - self.sent[sha] if sha in self.seen else None

    async def wait(self, shas: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(s not in self.seen for s in shas):
            await asyncio.sleep(0.02)


class Sender:
    """Signed `pull_request` "opened" deliveries, a new PR and head sha each."""

    def __init__(self, client: httpx.AsyncClient, watch: Insights, first_number: int) -> None:
        self.client = client
        self.watch = watch
        self.number = first_number

    async def send(self) -> str:
        from bench.api import opened_payload
        from tests.helpers import github_headers

        self.number += 1
        payload = opened_payload(REPO, self.number, updated=self.number)
        sha = payload["pull_request"]["head"]["sha"]
        body = json.dumps(payload).encode()
        headers = github_headers("pull_request", body, secret=SECRET)
        self.watch.sent[sha] = time.perf_counter()
        resp = await self.client.post("", content=body, headers=headers)
        if resp.status_code != 202:
            raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text[:300]}")
        return sha


async def _idle_now(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT beat_at IS NULL FROM poller_heartbeat WHERE id = 1")
    row = await cur.fetchone()
    return bool(row and row[0])


async def _wait_idle(conn: psycopg.AsyncConnection[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await _idle_now(conn):
        if time.monotonic() > deadline:
            raise RuntimeError("a poller invocation is still running")
        await asyncio.sleep(0.05)


def _invocations(poller: Function) -> list[tuple[float, float]]:
    """(start, end) wall times of the invocations its log says ended."""
    out = []
    for entry in poller.entries():
        message = str(entry.get("message", ""))
        if message.startswith("invocation done: "):
            with contextlib.suppress(ValueError, SyntaxError):
                seconds = float(ast.literal_eval(message.removeprefix("invocation done: "))
                                ["seconds"])  # fmt: skip
                out.append((entry["at"] - seconds, entry["at"]))
    return out


def _overlap(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


# --------------------------------------------------------------------------- one mode


async def run_mode(mode: str, dsn: str, plan: Plan, logdir: Path) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    out: dict[str, Any] = {"mode": mode}
    with deployables(mode, dsn, plan, logdir) as (ingest, poller):
        out["poller_start_s"] = poller.start_seconds
        print(f"  {mode}: poller listening after {poller.start_seconds:.2f} s, ingest after "
              f"{ingest.start_seconds:.2f} s", flush=True)  # fmt: skip
        timeout = httpx.Timeout(plan.budget + 120, connect=5)
        async with (
            httpx.AsyncClient(timeout=timeout) as poller_client,
            httpx.AsyncClient(base_url=ingest.url, timeout=30) as hook,
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
            Insights(conn) as watch,
        ):
            scheduler = Scheduler(poller_client, poller.url)
            sender = Sender(hook, watch, 1000)

            # (a) idle billing, time-compressed: tick after tick, 1 s apart.
            since = time.time()
            ticks = []
            for _ in range(plan.ticks[mode]):
                ticks.append(await scheduler.tick())
                await asyncio.sleep(1.0)
            out["idle"] = {
                "seconds": [t.seconds for t in ticks],
                "scans": [t.summary.get("scans") for t in ticks],
                "idle_end": [t.summary.get("idle_end") for t in ticks],
                "wakeups": ingest.count("waking the poller", since),
            }
            print(f"  {mode}: idle ticks {[round(t.seconds, 2) for t in ticks]} s, scans "
                  f"{out['idle']['scans']}", flush=True)  # fmt: skip

            # (b1) the first insight after idle.
            since = time.time()
            first: list[float] = []
            drain = 2 * plan.minute + 10
            if mode == "always":
                window = math.ceil(0.3 * plan.samples) * plan.minute
                moments = sorted(rng.uniform(0, window) for _ in range(plan.samples))
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                scheduler.start(plan.minute)
                shas = []
                for moment in moments:
                    await asyncio.sleep(max(0.0, t0 + moment - loop.time()))
                    shas.append(await sender.send())
                await watch.wait(shas, drain)
                first = [x for x in map(watch.latency, shas) if x is not None]
                out["first_phases"] = [round(m % plan.minute, 1) for m in moments]
            else:
                shas = []
                for _ in range(plan.samples):
                    await _wait_idle(conn, plan.budget + 30)
                    await asyncio.sleep(rng.uniform(3.0, 8.0))
                    await _wait_idle(conn, plan.budget + 30)
                    sha = await sender.send()
                    shas.append(sha)
                    await watch.wait([sha], drain)
                    latency = watch.latency(sha)
                    if latency is not None:
                        first.append(latency)
                await _wait_idle(conn, plan.budget + 30)  # the last woken invocation's end
                await asyncio.sleep(0.5)  # and its log line
            out["first"] = {
                "n": plan.samples,
                "latencies": first,
                "wakeups": ingest.count("waking the poller", since),
                "woken_seconds": [
                    b - a for a, b in _invocations(poller) if a >= since
                ] if mode == "pay-per-use" else [],
            }  # fmt: skip
            print(f"  {mode}: first after idle {sorted(round(x, 3) for x in first)} s", flush=True)

            # (b2) steady load while the scheduler ticks.
            if mode == "pay-per-use":
                scheduler.start(plan.minute, first_delay=rng.uniform(0, plan.minute))
            count = round(plan.load_rate * plan.load_seconds)
            loop = asyncio.get_running_loop()
            load_wall, t0 = time.time(), loop.time()
            sends = []
            for i in range(count):
                await asyncio.sleep(max(0.0, t0 + i / plan.load_rate - loop.time()))
                sends.append(asyncio.create_task(sender.send()))
            shas = list(await asyncio.gather(*sends))
            load_end = load_wall + plan.load_seconds
            await watch.wait(shas, drain)
            latencies = [x for x in map(watch.latency, shas) if x is not None]
            await scheduler.stop(wait=plan.budget + 40)
            with contextlib.suppress(RuntimeError):
                await _wait_idle(conn, plan.budget + 30)
            await asyncio.sleep(0.5)  # the last log line
            spans = _invocations(poller)
            during = [t for t in scheduler.ticks if t.started < load_end and
                      t.started + t.seconds > load_wall]  # fmt: skip
            out["load"] = {
                "ticks": [(round(t.started - load_wall, 1), round(t.seconds, 1)) for t in during],
                "n": count,
                "latencies": latencies,
                "billed_per_minute": _overlap(spans, load_wall, load_end) / plan.load_seconds * 60,
                "invocations": sum(1 for a, b in spans if a < load_end and b > load_wall),
                "wakeups": ingest.count("waking the poller", load_wall),
                "wake_skipped": poller.count(SKIPPED, load_wall),
                "wake_failed": sum(
                    1
                    for e in ingest.entries(load_wall)
                    if str(e.get("message", "")).startswith("waking the poller failed")
                ),
            }
            print(f"  {mode}: load p50 {median(latencies):.3f} s, "
                  f"{len(latencies)}/{count} insights", flush=True)  # fmt: skip
    return out


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (seconds in, seconds out)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def month_cost(request_seconds: float) -> float:
    """DEPLOY.md's poller price: 0.5 vCPU / 512 MiB, less the free tier (all of it)."""
    vcpu = max(0.0, VCPU * request_seconds - FREE_VCPU_S) * VCPU_PRICE
    gib = max(0.0, GIB * request_seconds - FREE_GIB_S) * GIB_PRICE
    return vcpu + gib


def report(results: dict[str, dict[str, Any]], plan: Plan) -> tuple[str, bool]:
    lines: list[str] = []
    rows = []
    per_hour: dict[str, float] = {}
    for mode in MODES:
        idle = results[mode]["idle"]
        med = median(idle["seconds"])
        per_hour[mode] = 60 * med
        month = per_hour[mode] * MONTH_HOURS
        rows.append([
            mode, len(idle["seconds"]), f"{med:.2f}",
            f"{min(idle['seconds']):.2f}-{max(idle['seconds']):.2f}",
            "/".join(str(s) for s in idle["scans"]), f"{per_hour[mode]:,.0f}",
            f"{month / 1e6:.3f} M", f"${month_cost(month):.2f}", idle["wakeups"],
        ])  # fmt: skip
    headers = ["mode", "ticks", "s per invocation (median)", "min-max", "scans each",
               "billed s per idle hour", "request-s per month", "$ per month",
               "wake-ups sent"]  # fmt: skip
    lines.append(
        "(a) Idle billing: scheduler ticks with nothing to do, time-compressed (the next tick "
        "1 s after the previous returned, not at the next minute); billed s per idle hour = 60 "
        "x median tick; a month = 720 h at 0.5 vCPU / 512 MiB less the whole free tier\n\n"
        + table(headers, rows)
    )
    ratio = per_hour["pay-per-use"] / per_hour["always"]
    rows = []
    p50: dict[tuple[str, str], float] = {}
    p99: dict[tuple[str, str], float] = {}
    for mode in MODES:
        for key, label in (("first", "first delivery after idle"), ("load", "steady load")):
            part = results[mode][key]
            lat = part["latencies"]
            p50[mode, key], p99[mode, key] = median(lat), pct(lat, 99)
            rows.append([mode, label, f"{len(lat)}/{part['n']}", f"{1000 * median(lat):.0f}",
                         f"{1000 * pct(lat, 90):.0f}", f"{1000 * pct(lat, 99):.0f}",
                         f"{1000 * max(lat, default=float('nan')):.0f}",
                         part["wakeups"]])  # fmt: skip
    load_text = f"{plan.load_rate:g}/s for {plan.load_seconds:g} s"
    headers = ["mode", "path", "insights", "p50 ms", "p90 ms", "p99 ms", "max ms",
               "wake-ups sent"]  # fmt: skip
    lines.append(
        f"(b) Webhook POST -> insight row visible (built-in analyser); first after idle: "
        f"{plan.samples} deliveries per mode (always: real {plan.minute:g} s schedule, random "
        f"moments; pay-per-use: no invocation running, 3-8 s after the last ended); steady "
        f"load: {load_text} while the scheduler ticks every {plan.minute:g} s\n\n"
        + table(headers, rows)
    )
    rows = []
    for mode in MODES:
        load = results[mode]["load"]
        rows.append([mode, load["invocations"], f"{load['billed_per_minute']:.1f}",
                     load["wakeups"], load["wake_skipped"], load["wake_failed"]])  # fmt: skip
    headers = ["mode", "invocations overlapping", "billed s per minute", "wake-ups sent",
               "wake-ups skipped (one running)", "wake-ups failed"]  # fmt: skip
    lines.append(
        f"Under load ({load_text}): billed invocation-seconds inside the load window, per "
        "minute (from the poller's `invocation done` lines; overlapping invocations each "
        "count, as each has its own instance)\n\n" + table(headers, rows)
    )
    woken = results["pay-per-use"]["first"]["woken_seconds"]
    starts = ", ".join(f"{m} {results[m]['poller_start_s']:.2f} s" for m in MODES)
    extra = [
        f"pay-per-use: an invocation woken for one delivery lasted {median(woken):.2f} s "
        f"(median of {len(woken)})" if woken else "",
        f"poller process start to listening (what a cold start adds on this machine): {starts}",
        f"phases of the always-mode deliveries within the minute (s): "
        f"{results['always'].get('first_phases')}",
        *(f"{m}: scheduler ticks overlapping the load (start relative to the load's, s; "
          f"duration, s): {results[m]['load']['ticks']}" for m in MODES),
    ]  # fmt: skip
    lines.append("\n".join(x for x in extra if x))
    ok_idle = ratio <= 0.10
    ok_first = p50["pay-per-use", "first"] <= 2.0
    ok_load = p50["pay-per-use", "load"] <= p50["always", "load"] * 1.10
    quick = ["(--quick: a compressed schedule; these verdicts mean nothing)"] if plan.quick else []
    lines.append("\n".join([
        *quick,
        f"idle billing pay-per-use / always: {per_hour['pay-per-use']:.0f} / "
        f"{per_hour['always']:.0f} s per hour = {100 * ratio:.1f}% (target <= 10%): "
        f"{'met' if ok_idle else 'NOT met'}",
        f"first insight after idle p50: pay-per-use {1000 * p50['pay-per-use', 'first']:.0f} ms"
        f" vs always {1000 * p50['always', 'first']:.0f} ms (target <= 2000 ms): "
        f"{'met' if ok_first else 'NOT met'}",
        f"steady load p50/p99: pay-per-use {1000 * p50['pay-per-use', 'load']:.0f}/"
        f"{1000 * p99['pay-per-use', 'load']:.0f} ms vs always "
        f"{1000 * p50['always', 'load']:.0f}/{1000 * p99['always', 'load']:.0f} ms "
        f"(target: no slower, p50 within 10%): {'met' if ok_load else 'NOT met'}",
    ]))  # fmt: skip
    parts = [results[m][k] for m in MODES for k in ("first", "load")]
    complete = all(len(part["latencies"]) == part["n"] for part in parts)
    return "\n\n".join(lines), complete


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short, compressed smoke run")
    parser.add_argument("--samples", type=int, help="first-after-idle deliveries per mode")
    parser.add_argument("--load-rate", type=float, default=2.0, help="deliveries per second")
    parser.add_argument("--load-seconds", type=float, help="length of the steady load")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args(argv)
    plan = Plan(load_rate=args.load_rate, seed=args.seed, quick=args.quick)
    if args.quick:
        plan.budget, plan.minute, plan.samples, plan.load_seconds = 10.0, 12.0, 3, 10.0
        plan.ticks = {"always": 1, "pay-per-use": 3}
    if args.samples:
        plan.samples = args.samples
    if args.load_seconds:
        plan.load_seconds = args.load_seconds
    command = " ".join(["python -m bench.poller_idle", *(argv if argv is not None
                                                          else sys.argv[1:])])  # fmt: skip
    info = machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    header = [
        f"command: {command}",
        f"commit: {git_commit()}",
        f"machine: {info['nproc']} x {info['cpu']}, {info['memory']}, {info['os']}, "
        f"Python {info['python']}; load average at start {load}",
        f"settings: POLL_INTERVAL_SECONDS={plan.interval:g}, POLL_BUDGET_SECONDS={plan.budget:g}"
        f", GITHUB_API_URL='' (built-in analyser); scheduler period {plan.minute:g} s"
        + (" (QUICK: compressed schedule, not representative)" if plan.quick else ""),
    ]
    print("\n".join(header), flush=True)
    started = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="bench-poller-idle-"))
    results: dict[str, dict[str, Any]] = {}
    with bench_server() as pg:
        database = f"{pg.description}; PostgreSQL {pg.version}"
        print(f"database: {database}; logs in {logdir}", flush=True)
        for mode in MODES:
            dsn = pg.dsn(pg.create())
            results[mode] = asyncio.run(run_mode(mode, dsn, plan, logdir))
    text, complete = report(results, plan)
    print()
    print("\n".join(header))
    print(f"duration: {(time.monotonic() - started) / 60:.1f} min")
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"plan": plan.__dict__, "results": results},
                                              indent=2, default=str))  # fmt: skip
    if not complete:
        print("\nsome deliveries got no insight", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
