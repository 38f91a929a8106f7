"""First backfill of workflow runs: a page per transaction, or a run per transaction.

    .venv/bin/python -m bench.sync [--rounds 3] [--runs 2000]

A first sync lists a repository's runs before its pull requests, and in the poller the whole
sync has to fit in one invocation's budget (SYNC.md, "Scheduled sync"). The runner stores a
page of runs (up to 100) in one transaction; before, it stored each run in its own. Both, side
by side in each round, on a fresh database each, through the real sync (`sync_once`, the real
httpx client against the repository's fake GitHub API on loopback) on a durable embedded
PostgreSQL (or DATABASE_URL's server):

* page    -- the code as it is.
* per-run -- the same code with each page's deliveries stored one per transaction (the
             runner's `_record` called once per delivery), as before.

Reported per row: seconds for the backfill, runs stored per second, and the benchmark
process's CPU per run (the Python side; the fake GitHub runs in this process too).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import bench_server, git_commit, machine, median, table
from flowlens.db import Database
from flowlens.sync import GitHubSyncClient, sync_once
from flowlens.sync.runner import RepositorySync
from tests.fakes.fake_github_sync import FakeGitHubSync, GitHubWorld


def _world(runs: int) -> FakeGitHubSync:
    fake = FakeGitHubSync()
    world = GitHubWorld(fake, start=datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    for n in range(runs):
        world.run(10_000 + n, sha=f"{n:040x}", status="completed", conclusion="success")
    return fake


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _backfill(dsn: str, url: str, per_run: bool) -> tuple[float, float, int]:
    original = RepositorySync._record

    async def one_by_one(
        self: RepositorySync, *deliveries: tuple[str, str, dict[str, Any]]
    ) -> None:
        for delivery in deliveries:
            await original(self, delivery)

    if per_run:
        RepositorySync._record = one_by_one  # type: ignore[method-assign]
    try:
        async with Database(dsn, min_size=1, max_size=2) as db:
            client = GitHubSyncClient(url)
            try:
                cpu, started = _cpu(), time.perf_counter()
                result = await sync_once(db, client, "Codertocat/Hello-World", since_days=4)
                return time.perf_counter() - started, _cpu() - cpu, result.runs
            finally:
                await client.aclose()
    finally:
        RepositorySync._record = original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2000, help="workflow runs in the window")
    args = parser.parse_args(argv)
    print(f"commit {git_commit()}; {machine()}", file=sys.stderr)
    fake = _world(args.runs)
    rows: list[list[Any]] = []
    times: dict[str, list[float]] = {"page": [], "per-run": []}
    ratios: list[float] = []
    with bench_server() as server, fake.running() as url:
        print(f"database: {server.description}, PostgreSQL {server.version}", file=sys.stderr)
        template = server.create()
        for rnd in range(1, args.rounds + 1):
            for name in ("page", "per-run"):
                dsn = server.dsn(server.create(template=template))
                seconds, cpu, runs = asyncio.run(_backfill(dsn, url, name == "per-run"))
                if runs != args.runs:
                    raise SystemExit(f"{name}: synced {runs} runs, expected {args.runs}")
                times[name].append(seconds)
                rows.append([rnd, name, runs, f"{seconds:.2f}", f"{runs / seconds:,.0f}",
                             f"{cpu * 1000 / runs:.2f}"])  # fmt: skip
                print(f"round {rnd} {name}: {seconds:.2f} s", file=sys.stderr)
            ratios.append(times["per-run"][-1] / times["page"][-1])
    print(table(["round", "row", "runs", "seconds", "runs/s", "python cpu ms/run"], rows))
    print(f"\nmedians: page {median(times['page']):.2f} s, per-run "
          f"{median(times['per-run']):.2f} s; per-run / page per round: "
          + ", ".join(f"{r:.2f}" for r in ratios))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
