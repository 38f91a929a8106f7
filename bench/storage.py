"""What a delivery costs the database: bytes stored per delivery, table by table, with and
without retention, and the CPU the ingest and poller code spend on it.

    .venv/bin/python -m bench.storage [--prs 300] [--repos 10]

A fresh migrated database (DATABASE_URL's server, else an embedded PostgreSQL with durable
defaults) receives, through ingest's own code path (`record_delivery`, in this process, compact
JSON as GitHub sends it), a pull request's life `--prs` times across `--repos` repositories:
opened, a second head pushed, for each head a workflow run requested and completed, a check
suite, two check runs and a commit status; a review, the merge and the push to the default
branch (17 deliveries). The poller (built-in risk model, no GitHub) then processes them all.
Reported: each table's size (heap, TOAST and indexes) per delivery, the CPU of this process
per delivery for ingest and for the poller, and PostgreSQL's CPU (when it is ours). Then every
row is dated 400 days back, one retention sweep runs with the defaults, and, after a VACUUM,
what stays per delivery. docs/CAPACITY.md is built from these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench import cpu_delta, git_commit, table, tree_cpu
from bench.api import bench_database, machine_line

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "github"
TABLES = ("raw_events", "pr_history", "pull_requests", "builds", "change_feed", "insights",
          "reviews", "risk_changes", "risk_change_files", "risk_files", "risk_file_authors",
          "risk_authors", "insight_outcomes", "repositories", "branch_first_commits",
          "deployments", "check_writes", "alert_history")  # fmt: skip
SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS total,
       pg_relation_size(c.oid) AS heap,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
       pg_indexes_size(c.oid) AS indexes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(%s)
"""
AGE = """
UPDATE raw_events SET received_at = received_at - interval '400 days';
UPDATE pr_history SET at = at - interval '400 days';
UPDATE builds SET created_at = created_at - interval '400 days',
                  updated_at = updated_at - interval '400 days';
UPDATE change_feed SET created_at = created_at - interval '400 days';
"""


def fixture(name: str) -> dict[str, Any]:
    """tests/fixtures/github/<name>.payload.json, or <name>.json (`push/payload`)."""
    path = FIXTURES / f"{name}.payload.json"
    data: dict[str, Any] = json.loads((path if path.exists() else FIXTURES / f"{name}.json")
                                      .read_text())  # fmt: skip
    return data


def lifecycle(n: int, repos: int) -> list[tuple[str, dict[str, Any]]]:
    """The deliveries of PR `n`'s life, in order (event, payload)."""
    repo_id = 900_000 + n % repos
    repo = dict(fixture("pull_request/opened")["repository"])
    repo.update(id=repo_id, name=f"r{repo_id}", full_name=f"bench/r{repo_id}")
    number = 1 + n // repos
    heads = [f"{n:020x}{h:020x}" for h in (1, 2)]

    def pr(action: str, sha: str, **more: Any) -> dict[str, Any]:
        body = fixture("pull_request/opened" if action != "closed" else "pull_request/closed")
        body.update(action=action, number=number, repository=repo)
        head = dict(body["pull_request"]["head"], sha=sha)
        body["pull_request"] = dict(body["pull_request"], number=number, title=f"Change {n}",
                                    head=head, **more)  # fmt: skip
        return body

    out: list[tuple[str, dict[str, Any]]] = [("pull_request", pr("opened", heads[0]))]
    for i, sha in enumerate(heads):
        if i:
            out.append(("pull_request", pr("synchronize", sha)))
        for kind in ("requested", "completed.with-pull-requests"):
            body = fixture(f"workflow_run/{kind}")
            run = dict(body["workflow_run"], id=n * 10 + i, head_sha=sha,
                       pull_requests=[{"number": number, "head": {"sha": sha}}])  # fmt: skip
            out.append(("workflow_run", dict(body, repository=repo, workflow_run=run)))
        suite = fixture("check_suite/completed")
        suite["check_suite"] = dict(suite["check_suite"], id=n * 10 + i, head_sha=sha)
        out.append(("check_suite", dict(suite, repository=repo)))
        for c in (1, 2):
            body = fixture("check_run/completed")
            check = dict(body["check_run"], id=n * 100 + i * 10 + c, head_sha=sha,
                         name=f"job {c}")  # fmt: skip
            out.append(("check_run", dict(body, repository=repo, check_run=check)))
        status = fixture("status/payload")
        out.append(("status", dict(status, repository=repo, sha=sha, id=n * 10 + i)))
    review = fixture("pull_request_review/submitted")
    review["review"] = dict(review["review"], id=n, commit_id=heads[1])
    review["pull_request"] = pr("opened", heads[1])["pull_request"]
    out.append(("pull_request_review", dict(review, repository=repo)))
    out.append(("pull_request", pr("closed", heads[1], merged=True, state="closed")))
    push = fixture("push/payload")
    push.update(ref="refs/heads/master", after=heads[1], repository=repo,
                commits=[{"id": heads[1], "message": f"Change {n}", "added": [],
                          "removed": [], "modified": ["README.md"]}])  # fmt: skip
    out.append(("push", push))
    return out


async def measure(dsn: str, prs: int, repos: int) -> dict[str, Any]:
    from flowlens.db import Database
    from flowlens.ingest.store import record_delivery
    from flowlens.insights.builtin import RiskModelAnalyser
    from flowlens.poller.worker import Poller
    from flowlens.retention import Retention
    from flowlens.settings import PollerSettings

    lives = [lifecycle(n, repos) for n in range(prs)]
    # Three phases, the poller after each, as it runs beside ingest: each head is analysed
    # while its PR is open; then the review, the merge and the push.
    cuts = ((0, 7), (7, 14), (14, 17))
    phases = [[d for life in lives for d in life[a:b]] for a, b in cuts]
    deliveries = [d for phase in phases for d in phase]
    kinds = Counter(event for event, _ in deliveries)
    settings = PollerSettings(database_url=dsn, github_api_url="", poll_batch_size=500)
    ingest_cpu = poller_cpu = 0.0
    pg_ingest: float | None = 0.0
    pg_poller: float | None = 0.0
    outcomes: Counter[str] = Counter()
    processed, insights, errors = 0, 0, []
    seq = 0
    async with Database(dsn, min_size=1, max_size=4) as db:
        poller = Poller(db, settings, RiskModelAnalyser())
        for phase in phases:
            pg0, cpu = _pg_cpu(dsn), time.process_time()
            for event, payload in phase:
                raw = json.dumps(payload, separators=(",", ":"))
                outcomes[str(await record_delivery(db, f"d-{seq}", event, payload, raw))] += 1
                seq += 1
            ingest_cpu += time.process_time() - cpu
            pg1, cpu = _pg_cpu(dsn), time.process_time()
            while True:
                done = await poller.scan_once()
                processed += done.events
                insights += done.insights
                errors += done.errors
                if not done.events:
                    break
            poller_cpu += time.process_time() - cpu
            pg2 = _pg_cpu(dsn)
            pg_ingest = _add(pg_ingest, pg0, pg1)
            pg_poller = _add(pg_poller, pg1, pg2)
        before = _sizes(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(AGE)
        sweep = await Retention(db, settings).sweep()
        after = _sizes(dsn)
    count = len(deliveries)

    def per(cpu_s: float | None) -> float | None:
        return None if cpu_s is None else cpu_s * 1000 / count

    return {
        "deliveries": count, "kinds": dict(kinds), "outcomes": dict(outcomes),
        "processed": processed, "insights": insights, "errors": errors[:5],
        "ingest_cpu_ms": per(ingest_cpu),
        "poller_cpu_ms": per(poller_cpu),
        "pg_ingest_cpu_ms": per(pg_ingest),
        "pg_poller_cpu_ms": per(pg_poller),
        "before": before, "after": after, "retention": sweep.as_dict(),
    }  # fmt: skip


def _add(total: float | None, before: dict[int, float] | None,
         after: dict[int, float] | None) -> float | None:  # fmt: skip
    """`total` with the server's CPU between two snapshots added (None: not measurable)."""
    if total is None or before is None or after is None:
        return None
    return total + cpu_delta(before, after)


def _pg_cpu(dsn: str) -> dict[int, float] | None:
    """CPU seconds of the PostgreSQL server's processes so far (its postmaster's tree, per pid),
    when it runs on this machine."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        ).fetchone()
    pid_file = Path(str(row[0])) / "postmaster.pid" if row else None
    if pid_file is None or not pid_file.exists():
        return None
    return tree_cpu(int(pid_file.read_text().split()[0]))


def _sizes(dsn: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Live data only: what a steady state with autovacuum reusing freed space holds.
        conn.execute("VACUUM FULL ANALYZE")
        conn.execute("CHECKPOINT")
        return {
            r[0]: {"total": r[1], "heap": r[2], "toast": r[3], "indexes": r[4]}
            for r in conn.execute(SIZES, (list(TABLES),)).fetchall()
        }


def report(result: dict[str, Any]) -> None:
    count = result["deliveries"]
    before, after = result["before"], result["after"]
    rows = []
    for name in sorted(before, key=lambda t: -before[t]["total"]):
        b, a = before[name], after.get(name, {"total": 0})
        if b["total"] == 0:
            continue
        rows.append([name, f"{b['heap'] / count:,.0f}", f"{b['toast'] / count:,.0f}",
                     f"{b['indexes'] / count:,.0f}", f"{b['total'] / count:,.0f}",
                     f"{a['total'] / count:,.0f}"])  # fmt: skip
    total_b = sum(v["total"] for v in before.values()) / count
    total_a = sum(v["total"] for v in after.values()) / count
    rows.append(["all", "", "", "", f"{total_b:,.0f}", f"{total_a:,.0f}"])
    print(table(["table", "heap B/delivery", "toast", "indexes", "total", "after retention"],
                rows))  # fmt: skip
    print()
    print(f"deliveries {count} ({result['kinds']}), outcomes {result['outcomes']}, "
          f"processed by the poller {result['processed']}, insights {result['insights']}, "
          f"errors {result['errors']}")  # fmt: skip
    for key in ("ingest_cpu_ms", "poller_cpu_ms", "pg_ingest_cpu_ms", "pg_poller_cpu_ms"):
        value = result[key]
        print(f"{key}: {'-' if value is None else f'{value:.2f}'} per delivery")
    print(f"retention sweep: {result['retention']}")
    print("Sizes after VACUUM FULL ANALYZE (live data: what a steady state holds once "
          "autovacuum reuses the space freed); 'after retention' is every row dated 400 days "
          "back and one sweep with the default settings.")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prs", type=int, default=300)
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    print(f"bench.storage at {git_commit()}; {machine_line()}")
    with bench_database() as (dsn, where):
        print(f"database: {where}")
        result = asyncio.run(measure(dsn, args.prs, args.repos))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
