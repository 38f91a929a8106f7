"""Poller benchmark: a backlog of pull_request events analysed by the real poller and Gemini SDK.

    .venv/bin/python -m bench.poller [--runs 3] [--configs 8,16,32,32@0.5] [--delay 0.5]

EVENTS deliveries over PRS pull requests (by default 1,000 over 200: per PR opened, synchronize,
edited, synchronize, labeled, i.e. three head shas each) go through the real ingest code path
(flowlens.ingest.store.record_delivery) into a template database, in a seeded random
interleaving that keeps each PR's own events in order. Every measured row starts from a copy
of that template, so all rows see the same backlog.

The poller is the deployable's own wiring (flowlens.poller.service.PollerService and its real
Poller.run loop: POLL_INTERVAL_SECONDS, POLL_BATCH_SIZE, leases, coalescing), with
GEMINI_API_KEY=fake so the real google-genai SDK is used, pointed by GOOGLE_GEMINI_BASE_URL at
the repository's FakeGemini (tests/fakes) answering every call after DELAY seconds, and
GITHUB_API_URL at its FakeGitHub serving two changed files per PR. Both fakes run in a
separate process on loopback.

Each run measures every configuration of --configs (AI_CONCURRENCY, optionally @
POLL_INTERVAL_SECONDS; everything else at its default) and, beside them, AI_CONCURRENCY=1:
events/s is events / (last processed_at - start). It also reports AI calls (the poller's own
count and what the fake received), distinct head shas analysed and insights written: with
coalescing and exactly-once analysis, AI calls == distinct head shas analysed == insights.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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

REPO = "Codertocat/Hello-World"  # the fixtures' repository
FIXTURE = ROOT / "tests" / "fixtures" / "github" / "pull_request" / "opened.payload.json"
# Each PR's life: (action, index of its head sha). Actions other than opened are derived from
# the opened fixture by changing the action (and the head sha, title and updated_at).
STEPS = (("opened", 0), ("synchronize", 1), ("edited", 1), ("synchronize", 2), ("labeled", 2))


# --------------------------------------------------------------------------- the fakes


def cmd_fakes(args: argparse.Namespace) -> int:
    """Serve FakeGemini and FakeGitHub (tests/fakes) until killed; print their URLs."""
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from tests.fakes import FakeGemini, FakeGitHub, github_file, serve

    gemini = FakeGemini(delay=args.delay)
    github = FakeGitHub()
    for number in range(1, args.prs + 1):
        github.add_pull(REPO, number, [
            github_file(f"src/service/module_{number}.py", additions=12, deletions=3),
            github_file(f"tests/test_module_{number}.py", status="added", additions=20),
        ])  # fmt: skip

    async def stats(request: Request) -> JSONResponse:
        body = {"calls": len(gemini.calls), "max_in_flight": gemini.max_in_flight,
                "github_requests": len(github.requests)}  # fmt: skip
        if request.method == "POST":
            gemini.reset(delay=args.delay)
            github.requests.clear()
        return JSONResponse(body)

    app = Starlette(routes=[
        Route("/_stats", stats, methods=["GET", "POST"]), Mount("/", app=gemini.app),
    ])  # fmt: skip
    with serve(app) as gemini_url, serve(github.app) as github_url:
        print(json.dumps({"gemini": gemini_url, "github": github_url}), flush=True)
        threading.Event().wait()
    return 0


class Fakes:
    """The fakes' process, stopped by its id."""

    def __init__(self, prs: int, delay: float) -> None:
        cmd = [sys.executable, "-m", "bench.poller", "fakes", "--prs", str(prs),
               "--delay", str(delay)]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fakes did not start")
        urls = json.loads(line)
        self.gemini: str = urls["gemini"]
        self.github: str = urls["github"]

    def stats(self, reset: bool = False) -> dict[str, Any]:
        import httpx

        resp = httpx.request("POST" if reset else "GET", f"{self.gemini}/_stats", timeout=10)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def stop(self) -> None:
        stop_group(self.proc)


# --------------------------------------------------------------------------- the backlog


def plan(prs: int, steps: int, seed: int) -> list[tuple[int, int]]:
    """(pr, step) in a random interleaving that keeps each PR's own steps in order."""
    rng = random.Random(seed)
    left = {pr: 0 for pr in range(1, prs + 1)}
    out: list[tuple[int, int]] = []
    while left:
        pr = rng.choice(list(left))
        out.append((pr, left[pr]))
        left[pr] += 1
        if left[pr] == steps:
            del left[pr]
    return out


def sha(pr: int, index: int) -> str:
    """The head sha of one PR's index-th commit."""
    return f"{pr:08x}{index:032x}"


def delivery(template: dict[str, Any], pr: int, step: int) -> dict[str, Any]:
    """The opened fixture turned into one PR's step."""
    import copy

    action, index = STEPS[step]
    payload = copy.deepcopy(template)
    payload["action"] = action
    payload["number"] = pr
    body = payload["pull_request"]
    body["number"] = pr
    body["head"]["sha"] = sha(pr, index)
    body["title"] = f"Bench PR {pr}: step {step}"
    body["updated_at"] = f"2024-01-01T{step:02d}:{pr // 60 % 60:02d}:{pr % 60:02d}Z"
    return payload


async def seed(dsn: str, prs: int, events: int, seed_value: int) -> dict[str, int]:
    """Deliver the backlog through flowlens.ingest.store.record_delivery."""
    from flowlens.db import Database
    from flowlens.ingest.store import record_delivery

    template = json.loads(FIXTURE.read_text())
    order = plan(prs, len(STEPS), seed_value)[:events]
    db = Database(dsn, min_size=1, max_size=4)
    outcomes: dict[str, int] = {}
    try:
        for i, (pr, step) in enumerate(order):
            payload = delivery(template, pr, step)
            outcome = await record_delivery(
                db, f"bench-{i}", "pull_request", payload, json.dumps(payload)
            )
            outcomes[outcome.value] = outcomes.get(outcome.value, 0) + 1
    finally:
        await db.close()
    heads = {(pr, STEPS[step][1]) for pr, step in order}
    outcomes["head_shas"] = len(heads)
    outcomes["prs"] = len({pr for pr, _ in order})
    return outcomes


# --------------------------------------------------------------------------- one measurement


async def _measure(
    dsn: str, fakes: Fakes, config: Config, events: int, args: argparse.Namespace,
    pg_pid: int | None,
) -> dict[str, Any]:  # fmt: skip
    from flowlens.poller.service import PollerService
    from flowlens.settings import PollerSettings

    # Read by the google-genai SDK when the client is built (inside PollerService).
    os.environ["GOOGLE_GEMINI_BASE_URL"] = fakes.gemini
    # Everything else is the deployable's default (POLL_BATCH_SIZE 200, leases, retries...).
    settings = PollerSettings(
        database_url=dsn,
        gemini_api_key="fake",
        github_api_url=fakes.github,
        ai_concurrency=config.ai,
        poll_interval_seconds=config.interval,
    )
    service = PollerService(settings)
    db = service.db
    fakes.stats(reset=True)
    stop = asyncio.Event()
    budget = args.timeout
    start = await _bench_query(dsn, "SELECT clock_timestamp() AS t", {})
    cpu0 = time.process_time()
    pg0 = tree_cpu(pg_pid)
    busy0, _ = machine_busy()
    wall0 = time.monotonic()
    task = asyncio.create_task(service.poller.run(budget, stop=stop))
    pending = events
    while not task.done() and time.monotonic() - wall0 < budget:
        await asyncio.sleep(0.1)
        async with db.transaction() as tx:
            pending = int(await tx.value("pending_event_count"))
        if pending == 0:
            break
    stop.set()
    summary = await task
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    # Before the pool closes: a backend that has exited no longer shows its CPU time.
    pg_cpu = cpu_delta(pg0, tree_cpu(pg_pid))
    busy1, _ = machine_busy()
    row = await _bench_query(dsn, OUTCOME, {"start": start["t"]})
    await service.close()
    fake = fakes.stats()
    elapsed = float(row["elapsed"] or wall)
    return {
        "config": config.label,
        "ai_concurrency": config.ai,
        "poll_interval": config.interval,
        "events": int(row["processed"]),
        "pending": pending,
        "failed": int(row["failed"]),
        "elapsed_s": elapsed,
        "rate": int(row["processed"]) / elapsed if elapsed else float("nan"),
        "ai_calls": summary.ai_calls,
        "gemini_calls": fake["calls"],
        "gemini_max_in_flight": fake["max_in_flight"],
        "github_requests": fake["github_requests"],
        "heads_analysed": int(row["heads"]),
        "insights": int(row["insights"]),
        "scans": summary.scans,
        "errors": summary.errors[:5],
        "poller_cpu_s": cpu,
        "postgres_cpu_s": pg_cpu,
        "machine_busy_cores": (busy1 - busy0) / wall,
    }


# What a row achieved, read by the benchmark itself (not one of the application's queries).
OUTCOME = """
SELECT count(*) FILTER (WHERE processed) AS processed,
       count(*) FILTER (WHERE failed) AS failed,
       extract(epoch FROM max(processed_at) - %(start)s) AS elapsed,
       (SELECT count(DISTINCT (repository_id, pr_number, commit_sha)) FROM insights) AS heads,
       (SELECT count(*) FROM insights) AS insights
FROM raw_events
"""


async def _bench_query(dsn: str, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    import psycopg
    from psycopg.rows import dict_row

    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
    assert row is not None
    return row


class Config:
    """AI_CONCURRENCY and POLL_INTERVAL_SECONDS of one row ("16" or "16@0.5")."""

    def __init__(self, text: str) -> None:
        ai, _, interval = text.partition("@")
        self.ai = int(ai)
        self.interval = float(interval) if interval else 2.0
        self.label = f"AI_CONCURRENCY={self.ai}" + (
            f", POLL_INTERVAL_SECONDS={self.interval:g}" if interval else ""
        )


def measure(
    pg: Any, template: str, fakes: Fakes, config: Config, events: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One row, on a fresh copy of the backlog."""
    dsn = pg.dsn(pg.create(template=template))
    return asyncio.run(_measure(dsn, fakes, config, events, args, pg.postmaster_pid))


# --------------------------------------------------------------------------- orchestration


def cmd_run(args: argparse.Namespace) -> int:
    """Seed once, then RUNS times: AI_CONCURRENCY=N beside AI_CONCURRENCY=1."""
    from flowlens import logs

    logs.setup("bench", "text", "WARNING")
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, {info['os']}, "
          f"Python {info['python']}, commit {git_commit()}", flush=True)  # fmt: skip
    results: list[dict[str, Any]] = []
    with bench_server(keep=args.keep) as pg:
        print(f"database: {pg.description}; PostgreSQL {pg.version}", flush=True)
        template = pg.create()
        started = time.monotonic()
        seeded = asyncio.run(seed(pg.dsn(template), args.prs, args.events, args.seed))
        print(f"backlog: {args.events} events over {seeded['prs']} PRs, {seeded['head_shas']} "
              f"distinct head shas, delivered through record_delivery in "
              f"{time.monotonic() - started:.1f}s: {seeded}", flush=True)  # fmt: skip
        fakes = Fakes(args.prs, args.delay)
        try:
            print(f"fakes: gemini {fakes.gemini} ({args.delay}s per call), github {fakes.github}",
                  flush=True)  # fmt: skip
            configs = [Config(c) for c in args.configs.split(",")] + [Config("1")]
            for run in range(1, args.runs + 1):
                for config in configs:
                    result = measure(pg, template, fakes, config, args.events, args)
                    result["run"] = run
                    results.append(result)
                    print(_row_text(result), flush=True)
        finally:
            fakes.stop()
    report(args, seeded, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"backlog": seeded, "rows": results}, indent=2))
    ok = all(_exactly_once(r) and r["events"] == args.events for r in results)
    return 0 if ok else 1


def _exactly_once(r: dict[str, Any]) -> bool:
    return bool(r["ai_calls"] == r["gemini_calls"] == r["heads_analysed"] == r["insights"])


def _row_text(r: dict[str, Any]) -> str:
    return (
        f"run {r['run']} {r['config']}: {r['events']} events in "
        f"{r['elapsed_s']:6.1f}s = {r['rate']:6.1f}/s, AI calls {r['ai_calls']} (fake saw "
        f"{r['gemini_calls']}, max {r['gemini_max_in_flight']} at once), heads analysed "
        f"{r['heads_analysed']}, insights {r['insights']}, failed {r['failed']}"
    )


def report(args: argparse.Namespace, seeded: dict[str, int], results: list[dict[str, Any]]) -> None:
    """Per-run rows, medians and each configuration's rate over the sequential one's."""
    rows = [
        [
            r["run"], r["ai_concurrency"], f"{r['poll_interval']:g}", r["events"],
            f"{r['elapsed_s']:.1f}", f"{r['rate']:.1f}", r["ai_calls"], r["gemini_calls"],
            r["gemini_max_in_flight"], r["heads_analysed"], r["insights"], r["failed"],
            r["scans"], f"{r['poller_cpu_s']:.1f}", f"{r['postgres_cpu_s']:.1f}",
            f"{r['machine_busy_cores']:.2f}",
        ]
        for r in results
    ]  # fmt: skip
    print()
    print(table(
        ["run", "AI_CONCURRENCY", "POLL_INTERVAL_SECONDS", "events", "seconds", "events/s",
         "AI calls", "fake calls", "max in flight", "heads analysed", "insights", "failed",
         "scans", "poller cpu s", "postgres cpu s", "machine busy"],
        rows,
    ))  # fmt: skip
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["config"], []).append(r)
    sequential = {r["run"]: r for r in results if r["config"] == Config("1").label}
    summary = []
    for label, rs in by.items():
        ratios = [r["rate"] / sequential[r["run"]]["rate"] for r in rs if r["run"] in sequential]
        summary.append([
            label, len(rs), f"{median([r['rate'] for r in rs]):.1f}",
            f"{median([r['elapsed_s'] for r in rs]):.1f}",
            f"{median([r['ai_calls'] for r in rs]):.0f}",
            f"{median([r['heads_analysed'] for r in rs]):.0f}",
            f"{median(ratios):.1f}x ({', '.join(f'{x:.1f}' for x in ratios)})",
        ])  # fmt: skip
    print()
    print(f"medians of {args.runs} runs ({args.events} events, {seeded['prs']} PRs, "
          f"{seeded['head_shas']} distinct head shas delivered):")  # fmt: skip
    print(table(["configuration", "runs", "events/s", "seconds", "AI calls", "heads analysed",
                 "vs AI_CONCURRENCY=1 (per run)"], summary))  # fmt: skip
    ok = all(_exactly_once(r) for r in results)
    print(f"\nAI calls == calls the fake saw == distinct heads analysed == insights, every row: "
          f"{'yes' if ok else 'NO'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.poller",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    parser.set_defaults(func=cmd_run)
    parser.add_argument("--events", type=int, default=1000, help="events in the backlog")
    parser.add_argument("--prs", type=int, default=200, help="pull requests they concern")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per Gemini call")
    parser.add_argument("--configs", default="8,16,32,32@0.5",
                        help="rows beside AI_CONCURRENCY=1: AI_CONCURRENCY[@POLL_INTERVAL_SECONDS]"
                        ", comma-separated")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="rounds of side-by-side rows")
    parser.add_argument("--seed", type=int, default=7, help="seed of the interleaving")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per row at most")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--json", help="also write every row to this JSON file")
    fakes = sub.add_parser("fakes", help="(internal) serve FakeGemini and FakeGitHub")
    fakes.add_argument("--prs", type=int, default=200)
    fakes.add_argument("--delay", type=float, default=0.5)
    fakes.set_defaults(func=cmd_fakes)
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
