"""Long PR columns: written again by every delivery, or kept as stored unless they change.

    .venv/bin/python -m bench.long_columns [--runs 4] [--deliveries 500] [--prs 20]

A pull request's body (a PR template), its changed files and its latest insight can be long.
Ingest's update_pull_requests leaves them as stored unless a delivery changes them
(flowlens.ingest.store._KEPT_UNLESS_CHANGED); before, every delivery wrote them back. This
benchmark runs both, side by side in the same run, through the real ingest code
(flowlens.ingest.store.record_deliveries, one delivery per transaction, as most production
transactions are) on a durable embedded PostgreSQL (or DATABASE_URL's server):

* kept    -- the code as it is.
* written -- the same code with nothing kept (_KEPT_UNLESS_CHANGED = ()): the SQL then
             writes every column from the row sent, as before.

PRS pull requests are opened first, each with a BODY_KB body and, as the poller stores after
an analysis, FILES paths and an insight. Each measured delivery is a `labeled` pull_request
delivery for one of them (the same body, a newer updated_at: a visible change, so a history
and a change-feed row with the complete state are written too, as in production). The
"fixture" rows do the same for PRs as the fixture has them (a short body, no files, no
insight), to show what the change costs where there is nothing long.

Reported per row: median latency per delivery, the benchmark process's CPU per delivery
(the Python side), PostgreSQL's CPU per delivery (all its processes; embedded server only),
and WAL bytes per delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench import ROOT, bench_server, cpu_delta, git_commit, machine, median, table, tree_cpu

FIXTURE = ROOT / "tests" / "fixtures" / "github" / "pull_request" / "opened.payload.json"
TEMPLATE_LINE = "- [ ] I have read the contributing guide and added tests for change {n}\n"


def body_text(kb: int, number: int) -> str:
    """A PR template's checklist (compresses as such text does) plus a line of its own."""
    lines = [f"## Summary of PR {number}\n"]
    while sum(map(len, lines)) < kb * 1024:
        lines.append(TEMPLATE_LINE.format(n=len(lines)))
    return "".join(lines)


def delivery(number: int, action: str, seq: int, body: str | None) -> dict[str, Any]:
    payload = json.loads(FIXTURE.read_text())
    payload["action"] = action
    payload["number"] = number
    pr = payload["pull_request"]
    pr["number"] = number
    pr["updated_at"] = f"2030-01-01T{seq // 3600 % 24:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}Z"
    if body is not None:
        pr["body"] = body
    return payload


async def _measure(dsn: str, args: argparse.Namespace, long: bool, keep: bool) -> dict[str, Any]:
    from flowlens.db import Database
    from flowlens.github.parse import parse
    from flowlens.ingest import store

    bodies = {n: body_text(args.body_kb, n) if long else None for n in range(1, args.prs + 1)}

    def item(n: int, action: str, seq: int) -> store.Item:
        payload = delivery(n, action, seq, bodies[n])
        return store.Item(f"{action}-{n}-{seq}", "pull_request", parse("pull_request", payload),
                          json.dumps(payload))  # fmt: skip

    saved = store._KEPT_UNLESS_CHANGED
    store._KEPT_UNLESS_CHANGED = saved if keep else ()
    try:
        async with Database(dsn, min_size=1, max_size=1) as db:
            for n in bodies:
                await store.record_deliveries(db, [item(n, "opened", 0)], notify=False)
            if long:
                files = [f"src/package_{i % 17}/module_{i:04d}/implementation.py"
                         for i in range(args.files)]  # fmt: skip
                insight = {
                    "risk_level": "medium",
                    "summary": "A summary sentence. " * 20,
                    "recommendation": "Review the migration. " * 15,
                    "key_changes": ["a key change of the commit"] * 6,
                    "confidence_score": 0.8,
                    "commit_sha": "a" * 40,
                    "model": "bench",
                }
                async with db.transaction() as tx:
                    await tx.conn.execute(
                        "UPDATE pull_requests SET files_changed = %s::jsonb,"
                        " latest_insight = %s::jsonb",
                        (json.dumps(files), json.dumps(insight)),
                    )
            items = [item(1 + i % args.prs, "labeled", 1 + i) for i in range(args.deliveries)]
            async with db.transaction() as tx:
                wal_before = await tx.conn.execute("SELECT pg_current_wal_insert_lsn() AS lsn")
                lsn0 = (await wal_before.fetchone())["lsn"]  # type: ignore[index]
            pg0 = tree_cpu(args.postmaster_pid)
            cpu0 = time.process_time()
            took = []
            for one in items:
                started = time.perf_counter()
                await store.record_deliveries(db, [one], notify=False)
                took.append(time.perf_counter() - started)
            cpu1 = time.process_time()
            pg1 = tree_cpu(args.postmaster_pid)
            async with db.transaction() as tx:
                cur = await tx.conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s) AS bytes", (lsn0,)
                )
                wal = float((await cur.fetchone())["bytes"])  # type: ignore[index]
    finally:
        store._KEPT_UNLESS_CHANGED = saved
    n = len(items)
    return {
        "prs": "long" if long else "fixture",
        "variant": "kept" if keep else "written",
        "median_ms": median(took) * 1000,
        "python_cpu_ms": (cpu1 - cpu0) * 1000 / n,
        "pg_cpu_ms": cpu_delta(pg0, pg1) * 1000 / n if args.postmaster_pid else float("nan"),
        "wal_bytes": wal / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="rounds of side-by-side rows")
    parser.add_argument("--deliveries", type=int, default=500, help="measured per row")
    parser.add_argument("--prs", type=int, default=20, help="pull requests they go to")
    parser.add_argument("--body-kb", type=int, default=4, help="body size of the long PRs")
    parser.add_argument("--files", type=int, default=300, help="changed files of the long PRs")
    args = parser.parse_args(argv)
    facts = machine()
    print(f"machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']}, {facts['os']},"
          f" Python {facts['python']}, commit {git_commit()}")  # fmt: skip
    results = []
    with bench_server() as server:
        print(f"database: {server.description}; PostgreSQL {server.version}")
        args.postmaster_pid = server.postmaster_pid
        for run in range(1, args.runs + 1):
            for long in (True, False):
                # Alternate which goes first, so neither always gets the warmer cache.
                for keep in (True, False) if run % 2 else (False, True):
                    row = asyncio.run(_measure(server.dsn(server.create()), args, long, keep))
                    row["run"] = run
                    results.append(row)
                    print(f"run {run} {row['prs']:7} {row['variant']:7}"
                          f" {row['median_ms']:6.2f} ms  python {row['python_cpu_ms']:.2f} ms"
                          f"  postgres {row['pg_cpu_ms']:.2f} ms  WAL {row['wal_bytes']:.0f} B",
                          flush=True)  # fmt: skip
    headers = ("prs", "variant", "runs", "median ms", "python cpu ms", "postgres cpu ms",
               "WAL bytes")  # fmt: skip
    rows = []
    for prs in ("long", "fixture"):
        for variant in ("written", "kept"):
            mine = [r for r in results if r["prs"] == prs and r["variant"] == variant]
            rows.append((prs, variant, len(mine),
                         *(f"{median([r[k] for r in mine]):.2f}"
                           for k in ("median_ms", "python_cpu_ms", "pg_cpu_ms")),
                         f"{median([r['wal_bytes'] for r in mine]):.0f}"))  # fmt: skip
    print(f"\nmedians of {args.runs} runs, {args.deliveries} deliveries per row "
          f"(long PRs: {args.body_kb} KB body, {args.files} files, an insight):")  # fmt: skip
    print(table(headers, rows))
    for prs in ("long", "fixture"):
        ratios = []
        for run in range(1, args.runs + 1):
            pair = {r["variant"]: r for r in results if r["prs"] == prs and r["run"] == run}
            ratios.append(pair["kept"]["median_ms"] / pair["written"]["median_ms"])
        print(
            f"{prs}: kept / written latency per run: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (median {median(ratios):.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
