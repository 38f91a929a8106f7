"""FlowLens at scale: ingest, the poller's claim and the API on a big database, beside a fresh one.

    .venv/bin/python -m bench.scale [--repos 10000] [--prs 200000] [--deliveries 1000000]
                                    [--fresh-days 31] [--rounds 3] [--samples 100]
                                    [--duration 10] [--explain] [--keep] [--json FILE]

Starts a durable PostgreSQL (embedded, PostgreSQL's defaults: fsync, synchronous_commit and
full_page_writes on; or DATABASE_URL's server) and makes two migrated databases there:

* 1M    -- built with bulk SQL (INSERT ... SELECT generate_series, no HTTP): --repos
           repositories, --prs pull requests (updated over the past 400 days, four history
           rows, two builds each, an insight for three in five, a review for the merged ones,
           first commits for half), ten deployments per repository, a change feed for the last
           hour and --deliveries raw_events received over the past 400 days, each holding the
           same real compressed payload (tests/fixtures/github/pull_request/opened.payload.json
           packed once by flowlens.db.codec.pack_payload); 0.1% of them pending, a few failed
           and a few unapplied.
* fresh -- a newly migrated database holding only the last --fresh-days days of the same
           generated data (0: nothing), and the same pending backlog, so both answer the same
           requests from the same recent rows and what differs is the 400 days of history.

Both get VACUUM (ANALYZE) after the build, as autovacuum would have done in production. Then,
in --rounds rounds, each measurement runs on both databases in turn (the order alternating
each round, so the machine's noise hits both):

* ingest        -- signed pull_request deliveries to the real ingest function for --duration
                   seconds (bench.ingest's load generator and deliveries; a function served
                   per database, WORKERS=2), whose deliveries are then marked processed as
                   a poller keeping up would;
* claim         -- flowlens.workqueue.EventQueue.claim (work_events_claim, POLL_BATCH_SIZE
                   events) over the pending backlog, rolled back so every sample claims the same;
* GET /api/prs for one repository and for all, /api/metrics/summary, /api/metrics/risk and
  /api/metrics/dora, from the API in its own process per database.

Reported: per figure the median over rounds of each round's p50 and p95, and 1M as a fraction
of fresh (fresh latency / 1M latency; 1M rate / fresh rate). Target: 0.90 or more. --explain
prints EXPLAIN (ANALYZE, BUFFERS) of the SQL behind every figure that misses, on the 1M
database. Then the databases' sizes, one retention pass (flowlens.retention, when present) on
the 1M database, and its sizes after the pass and after a plain VACUUM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench import (
    ROOT,
    BenchServer,
    _pg_facts,
    _postmaster_pid,
    bench_server,
    git_commit,
    table,
)
from bench.api import api_process, machine_line, pct, time_gets
from bench.ingest import SECRET, Server, _free_port
from flowlens.db import Database

DAYS = 400  # how far back the generated history reaches
REPO_GITHUB_ID = 5_000_000  # clear of bench.ingest's repositories (900,000 + n)
PR_GITHUB_ID = 6_000_000
FEED_ROWS = 1000  # change_feed rows: the last hour's
CHUNK = 100_000  # raw_events rows per INSERT
FIXTURE = ROOT / "tests" / "fixtures" / "github" / "pull_request" / "opened.payload.json"
TARGET = 0.90
BIG, FRESH = "1M", "fresh"

# --------------------------------------------------------------------------- the build

# Every generated row is a function of its index i; its age falls evenly over DAYS days, and a
# row is kept when younger than the database's `keep` fraction of DAYS (1.0: all of them).
REPOSITORIES_SQL = """
INSERT INTO repositories (github_id, full_name, name, owner, owner_avatar, description,
                          default_branch, language, html_url, last_activity, created_at)
SELECT %(rid)s + i, 'scale/repo' || i, 'repo' || i, 'scale', 'https://avatars.example/scale',
       'Repository ' || i, 'main', 'Python', 'https://github.com/scale/repo' || i,
       now() - (i %% 1000) * interval '1 hour', now() - %(days)s * interval '1 day'
FROM generate_series(1, %(repos)s::int) AS i
"""

PULL_REQUESTS_SQL = """
INSERT INTO pull_requests (repository_id, number, github_id, title, body, author, author_avatar,
    head_sha, head_ref, base_ref, is_draft, state, html_url, files_changed, changed_files,
    additions, deletions, status_pr, status_build, status_approval, status_merge, status,
    version, source_updated_at, risk_level, latest_insight, gh_created_at, gh_updated_at,
    merged_at, closed_at, created_at, updated_at)
SELECT r.id, 1 + i / %(repos)s, %(pid)s + i, 'Change ' || i || ': tidy the module',
       repeat('What this change does and why. ', 20), 'dev' || (i %% 500),
       'https://avatars.example/u/' || (i %% 500), s.sha, 'feature-' || i, 'main',
       s.state = 'open' AND s.h %% 10 = 0, s.state, r.html_url || '/pull/' || (1 + i / %(repos)s),
       jsonb_build_array('src/mod' || (i %% 50) || '.py', 'tests/test_mod' || (i %% 50) || '.py',
                         'README.md'),
       3, 10 + s.h, s.h %% 40,
       CASE WHEN s.state = 'open' THEN 'updated' ELSE 'closed' END,
       CASE WHEN s.h %% 10 = 9 THEN 'buildFailed' ELSE 'buildPassed' END,
       CASE WHEN s.state = 'merged' THEN 'approved' ELSE 'pending' END,
       CASE s.state WHEN 'merged' THEN 'merged' WHEN 'closed' THEN 'closed' ELSE 'pending' END,
       CASE s.state WHEN 'merged' THEN 'merged' WHEN 'closed' THEN 'closed'
                    ELSE CASE WHEN s.h %% 10 = 9 THEN 'buildFailed' ELSE 'buildPassed' END END,
       4, s.upd, CASE WHEN s.insight THEN s.risk END,
       CASE WHEN s.insight THEN jsonb_build_object(
           'risk_level', s.risk, 'summary', 'Touches one module and its tests.',
           'recommendation', 'Review the tests.', 'key_changes', jsonb_build_array('src change'),
           'confidence_score', 0.8, 'commit_sha', s.sha, 'model', 'heuristic') END,
       s.upd - (1 + i %% 10) * interval '1 day', s.upd,
       CASE WHEN s.state = 'merged' THEN s.upd END,
       CASE WHEN s.state <> 'open' THEN s.upd END,
       s.upd - (1 + i %% 10) * interval '1 day', s.upd
FROM generate_series(1, %(prs)s::int) AS i
CROSS JOIN LATERAL (
    SELECT md5('h' || i) || substr(md5('s' || i), 1, 8) AS sha, h,
           CASE WHEN h < 12 THEN 'open' WHEN h < 85 THEN 'merged' ELSE 'closed' END AS state,
           h %% 5 < 3 AS insight,
           CASE WHEN h %% 10 < 5 THEN 'low' WHEN h %% 10 < 8 THEN 'medium' ELSE 'high' END AS risk,
           now() - ((%(prs)s - i)::float8 / %(prs)s) * %(days)s * interval '1 day' AS upd
    FROM (SELECT (i * 2654435761) %% 100 AS h) x
) s
JOIN repositories r ON r.github_id = %(rid)s + 1 + (i %% %(repos)s)
WHERE i > %(prs)s * (1 - %(keep)s)
"""

HISTORY_SQL = """
INSERT INTO pr_history (pull_request_id, version, status_pr, status_build, status_approval,
                        status_merge, status, source_event, delivery_id, at)
SELECT p.id, v, CASE WHEN v = 1 THEN 'opened' WHEN v < 4 THEN 'updated' ELSE p.status_pr END,
       CASE WHEN v = 1 THEN 'pending' WHEN v = 2 THEN 'building' ELSE p.status_build END,
       CASE WHEN v < 4 THEN 'pending' ELSE p.status_approval END,
       CASE WHEN v < 4 THEN 'pending' ELSE p.status_merge END,
       CASE WHEN v = 1 THEN 'pending' WHEN v = 2 THEN 'building' WHEN v = 3 THEN p.status_build
            ELSE p.status END,
       (ARRAY['pull_request', 'check_run', 'workflow_run', 'pull_request'])[v],
       md5('hist' || p.id || '-' || v)::uuid::text,
       p.gh_created_at + (p.gh_updated_at - p.gh_created_at) * v / 4
FROM pull_requests p CROSS JOIN generate_series(1, 4) AS v
WHERE p.github_id > %(pid)s
"""

BUILDS_SQL = """
INSERT INTO builds (repository_id, provider, external_id, workflow_name, status, conclusion,
                    branch, commit_sha, pr_number, triggered_by, url, started_at, finished_at,
                    duration_seconds, source_updated_at, created_at, updated_at)
SELECT p.repository_id, 'github_actions', (p.github_id * 2 + k)::text,
       CASE k WHEN 0 THEN 'ci' ELSE 'lint' END, b.status,
       CASE b.status WHEN 'failed' THEN 'failure' ELSE 'success' END, p.head_ref, p.head_sha,
       p.number, 'pull_request', p.html_url || '/checks', p.gh_updated_at - interval '20 minutes',
       p.gh_updated_at - interval '12 minutes', 480 + p.id %% 120,
       p.gh_updated_at - interval '12 minutes', p.gh_updated_at - interval '20 minutes',
       p.gh_updated_at - interval '12 minutes'
FROM pull_requests p CROSS JOIN generate_series(0, 1) AS k
CROSS JOIN LATERAL (
    SELECT CASE WHEN (p.id + k) %% 10 = 0 THEN 'failed' ELSE 'success' END AS status
) b
WHERE p.github_id > %(pid)s
"""

INSIGHTS_SQL = """
INSERT INTO insights (repository_id, pull_request_id, pr_number, commit_sha, risk_level, summary,
                      recommendation, key_changes, confidence_score, model, created_at,
                      risk_score, risk_drivers)
SELECT p.repository_id, p.id, p.number, p.head_sha, p.risk_level,
       'Touches one module and its tests. ' || repeat('Detail. ', 20), 'Review the tests.',
       '["src change"]', 0.8, 'heuristic', p.gh_updated_at - interval '5 minutes',
       CASE p.risk_level WHEN 'low' THEN 0.1 WHEN 'medium' THEN 0.5 ELSE 0.9 END,
       '[{"name": "lines", "weight": 0.4}]'
FROM pull_requests p
WHERE p.latest_insight IS NOT NULL AND p.github_id > %(pid)s
"""

OUTCOMES_SQL = """
INSERT INTO insight_outcomes (insight_id, outcome, observed_at, detail)
SELECT id, CASE WHEN id %% 20 = 0 THEN 'reverted' ELSE 'follow_up' END,
       created_at + interval '2 days', 'bench'
FROM insights WHERE id %% 10 = 0
"""

REVIEWS_SQL = """
INSERT INTO reviews (pull_request_id, review_id, reviewer, state, commit_sha, submitted_at)
SELECT p.id, p.github_id, 'reviewer' || (p.id %% 50), 'approved', p.head_sha,
       p.gh_updated_at - interval '1 hour'
FROM pull_requests p WHERE p.state = 'merged' AND p.github_id > %(pid)s
"""

FIRST_COMMITS_SQL = """
INSERT INTO branch_first_commits (repository_id, branch, first_commit_at)
SELECT p.repository_id, p.head_ref, p.gh_created_at - interval '1 day'
FROM pull_requests p WHERE p.github_id %% 2 = 0 AND p.github_id > %(pid)s
"""

DEPLOYMENTS_SQL = """
INSERT INTO deployments (repository_id, kind, github_id, environment, sha, ref, created_at,
                         outcome, outcome_at, status_id, updated_at)
SELECT r.id, 'deployment', j, CASE WHEN j %% 4 = 0 THEN 'staging' ELSE 'production' END,
       md5('dep' || j), 'main', t - interval '5 minutes',
       CASE WHEN j %% 10 = 0 THEN 'failed' ELSE 'success' END, t, j, t
FROM generate_series(1, %(deployments)s::int) AS j
CROSS JOIN LATERAL (
    SELECT now() - ((%(deployments)s - j)::float8 / %(deployments)s) * %(days)s
                   * interval '1 day' AS t
) w
JOIN repositories r ON r.github_id = %(rid)s + 1 + (j %% %(repos)s)
WHERE j > %(deployments)s * (1 - %(keep)s)
"""

FEED_SQL = """
INSERT INTO change_feed (repository, pull_request_id, pr_number, version, kind, payload,
                         created_at)
SELECT r.full_name, p.id, p.number, p.version, 'pr_update',
       json_build_object('event', 'pr_update', 'data', json_build_object(
           'pr_number', p.number, 'repository', r.full_name, 'title', p.title,
           'version', p.version)),
       now() - ((x.newest - p.github_id)::float8 / %(feed)s) * interval '1 hour'
FROM (SELECT max(github_id) AS newest FROM pull_requests WHERE github_id > %(pid)s) x
JOIN pull_requests p ON p.github_id > x.newest - %(feed)s
JOIN repositories r ON r.id = p.repository_id
"""

# The newest `pending` deliveries wait for the poller; a few older ones failed for good, a few
# were kept unapplied. Every one holds the same real payload, compressed as ingest stores it.
RAW_EVENTS_SQL = """
INSERT INTO raw_events (delivery_id, event, action, repository, pr_number, head_sha, payload,
                        needs_analysis, processed, failed, attempts, next_attempt_at,
                        last_error, received_at, processed_at, repository_github_id,
                        unapplied_reason)
SELECT md5('d' || i)::uuid::text, e.event, e.action, 'scale/repo' || (1 + i %% %(repos)s),
       1 + (i / %(repos)s) %% %(per_repo)s, md5('h' || i) || substr(md5('s' || i), 1, 8),
       %(payload)s, e.event = 'pull_request' AND e.action IN ('opened', 'synchronize'),
       NOT (s.pending OR s.failed), s.failed,
       CASE WHEN s.pending THEN 0 WHEN s.failed THEN 5 ELSE 1 END, s.t,
       CASE WHEN s.failed THEN 'bench: gave up' END, s.t,
       CASE WHEN NOT (s.pending OR s.failed) THEN s.t + interval '2 seconds' END,
       %(rid)s + 1 + i %% %(repos)s,
       CASE WHEN s.unapplied THEN 'no such repository' END
FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
CROSS JOIN LATERAL (
    SELECT i > %(deliveries)s - %(pending)s AS pending,
           i <= %(deliveries)s - %(pending)s AND i %% 50000 = 7 AS failed,
           i %% 100000 = 13 AS unapplied,
           now() - ((%(deliveries)s - i)::float8 / %(deliveries)s) * %(days)s
                   * interval '1 day' AS t
) s
CROSS JOIN LATERAL (
    SELECT (ARRAY['pull_request', 'pull_request', 'pull_request', 'pull_request',
                  'pull_request', 'check_run', 'workflow_run', 'pull_request_review', 'push',
                  'check_suite'])[1 + i %% 10] AS event,
           (ARRAY['opened', 'synchronize', 'synchronize', 'labeled', 'closed', 'completed',
                  'completed', 'submitted', NULL, 'completed'])[1 + i %% 10] AS action
) e
WHERE i > %(deliveries)s * (1 - %(keep)s) OR s.pending
"""

STEPS = (
    ("repositories", REPOSITORIES_SQL),
    ("pull_requests", PULL_REQUESTS_SQL),
    ("pr_history", HISTORY_SQL),
    ("builds", BUILDS_SQL),
    ("insights", INSIGHTS_SQL),
    ("insight_outcomes", OUTCOMES_SQL),
    ("reviews", REVIEWS_SQL),
    ("branch_first_commits", FIRST_COMMITS_SQL),
    ("deployments", DEPLOYMENTS_SQL),
    ("change_feed", FEED_SQL),
)


def payload_bytes() -> bytes:
    """The fixture's delivery as ingest stores it (an LZ4 frame), packed once."""
    from flowlens.db.codec import pack_payload

    return pack_payload(FIXTURE.read_text())


@contextlib.contextmanager
def roomy_wal(admin_dsn: str) -> Iterator[None]:
    """A larger max_wal_size while building (fewer forced checkpoints), reset before anything
    is measured; skipped where the role may not ALTER SYSTEM."""
    changed = False
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        try:
            conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
            conn.execute("SELECT pg_reload_conf()")
            changed = True
        except psycopg.Error as exc:
            print(f"  (max_wal_size left as is: {str(exc).splitlines()[0]})", flush=True)
    try:
        yield
    finally:
        if changed:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM RESET max_wal_size")
                conn.execute("SELECT pg_reload_conf()")
                conn.execute("CHECKPOINT")


def build(dsn: str, label: str, args: argparse.Namespace, keep: float) -> dict[str, float]:
    """Fill one migrated database (`keep`: the fraction of the 400 days kept); returns the
    seconds each step took."""
    params: dict[str, Any] = {
        "repos": args.repos, "prs": args.prs, "deliveries": args.deliveries,
        "per_repo": max(1, args.prs // args.repos), "deployments": args.repos * 10,
        "pending": max(1, args.deliveries // 1000), "keep": keep, "payload": payload_bytes(),
        "rid": REPO_GITHUB_ID, "pid": PR_GITHUB_ID, "days": DAYS, "feed": FEED_ROWS,
    }  # fmt: skip
    took: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        if keep <= 0:
            steps: tuple[tuple[str, str], ...] = ()
        else:
            steps = STEPS
        for name, sql in steps:
            started = time.monotonic()
            rows = conn.execute(sql, params).rowcount
            took[name] = time.monotonic() - started
            print(f"  {label}: {name} {rows:,} rows in {took[name]:.1f}s", flush=True)
        started = time.monotonic()
        stored = 0
        for lo in range(1, args.deliveries + 1, CHUNK):
            hi = min(args.deliveries, lo + CHUNK - 1)
            stored += conn.execute(RAW_EVENTS_SQL, {**params, "lo": lo, "hi": hi}).rowcount
            print(f"  {label}: raw_events {stored:,} rows ({hi:,}/{args.deliveries:,}) "
                  f"{time.monotonic() - started:.0f}s", flush=True)  # fmt: skip
        took["raw_events"] = time.monotonic() - started
        started = time.monotonic()
        conn.execute("VACUUM (ANALYZE)")
        took["vacuum_analyze"] = time.monotonic() - started
        print(f"  {label}: VACUUM (ANALYZE) in {took['vacuum_analyze']:.1f}s", flush=True)
    return took


# --------------------------------------------------------------------------- measurements

# name -> (label, path, query parameters); None for the two that are not HTTP requests.
MEASURES: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "ingest": ("ingest: signed pull_request deliveries", None, {}),
    "claim": ("poller claim (work_events_claim)", None, {}),
    "prs_repo": ("GET /api/prs?repo=scale/repo1", "/api/prs", {"repo": "scale/repo1"}),
    "prs_all": ("GET /api/prs (all repositories)", "/api/prs", {}),
    "summary": ("GET /api/metrics/summary", "/api/metrics/summary", {}),
    "risk": ("GET /api/metrics/risk", "/api/metrics/risk", {}),
    "dora": ("GET /api/metrics/dora", "/api/metrics/dora", {}),
}


async def time_claims(dsn: str, n: int) -> tuple[list[float], int]:
    """Seconds per EventQueue.claim of POLL_BATCH_SIZE events (each rolled back, so every
    sample sees the same backlog), and how many events a claim took."""
    from flowlens.settings import PollerSettings
    from flowlens.workqueue import EventQueue

    batch = PollerSettings.model_fields["poll_batch_size"].default
    queue = EventQueue(owner="bench-scale", lease_seconds=30.0)
    out: list[float] = []
    claimed = 0
    db = Database(dsn, min_size=0, max_size=1)
    async with db.connect(autocommit=False) as tx:
        for k in range(n + 5):
            started = time.perf_counter()
            rows = await queue.claim(tx, batch)
            took = time.perf_counter() - started
            await tx.conn.rollback()
            if k >= 5:
                out.append(took)
                claimed = len(rows)
    return out, claimed


def run_ingest(port: int, args: argparse.Namespace, seq_start: int) -> dict[str, Any]:
    """bench.ingest's load generator against one ingest function; its JSON result."""
    cmd = [
        sys.executable, "-m", "bench.ingest", "loadgen", "--port", str(port),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--concurrency", str(args.concurrency), "--seq-start", str(seq_start),
        "--repos", "8", "--hot-prs", "200",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=args.warmup + args.duration + 120)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def first_seq(dsn: str) -> int:
    """Where this run's load-generator sequence starts: past every delivery a run before stored
    (`--reuse`), so that none is a duplicate (answered 200, not 202, and cheaper)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT max(substr(delivery_id, 7)::bigint) FROM raw_events "
            "WHERE delivery_id ~ '^bench-[0-9]+$'"
        ).fetchone()
    last = int(row[0]) if row and row[0] is not None else 0
    return (last // 1_000_000 + 1) * 1_000_000


def settle_ingested(dsn: str) -> int:
    """Mark the load generator's deliveries processed, as a poller keeping up would, so the
    claim's backlog stays the built one."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "UPDATE raw_events SET processed = TRUE, processed_at = now() "
            "WHERE NOT processed AND delivery_id LIKE 'bench-%%'"
        ).rowcount


def ingest_env(dsn: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "K_"))}
    env.update(DATABASE_URL=dsn, GITHUB_WEBHOOK_SECRET=SECRET, WORKERS=str(args.workers),
               LOG_FORMAT="json", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="0")  # fmt: skip
    return env


def measure_all(
    dsns: dict[str, str], args: argparse.Namespace, wanted: list[str]
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Every wanted measurement on both databases, round after round; per measure and database,
    one {p50, p95[, rate]} per round (milliseconds)."""
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        m: {db: [] for db in dsns} for m in wanted
    }
    logdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        urls = {db: stack.enter_context(api_process(dsn)) for db, dsn in dsns.items()}
        if "ingest" in wanted:
            args.seq = {db: first_seq(dsn) for db, dsn in dsns.items()}
            ff = [sys.executable, "-m", "functions_framework", "--asgi", "--host", "127.0.0.1"]
            for db, dsn in dsns.items():
                port = _free_port()
                servers[db] = Server(
                    f"ingest-{db}", [*ff, "--port", str(port), "--target", "ingest",
                                     "--source", "functions/ingest/main.py"],
                    ingest_env(dsn, args), port, logdir,
                )  # fmt: skip
                stack.callback(servers[db].stop)
        for rnd in range(1, args.rounds + 1):
            order = list(dsns) if rnd % 2 else list(reversed(dsns))
            for m in wanted:
                for db in order:
                    row = measure_one(m, db, dsns[db], urls[db], servers.get(db), args, rnd)
                    results[m][db].append(row)
                    extra = f"  {row['rate']:.0f}/s" if "rate" in row else ""
                    print(f"round {rnd} {m:<9} {db:<5} p50 {row['p50']:8.2f} ms  "
                          f"p95 {row['p95']:8.2f} ms{extra}", flush=True)  # fmt: skip
    return results


def measure_one(
    m: str, db: str, dsn: str, url: str, server: Server | None, args: argparse.Namespace, rnd: int
) -> dict[str, float]:
    """One round of one measurement on one database."""
    if m == "ingest":
        assert server is not None
        seq = args.seq[db] + (rnd - 1) * 1_000_000  # a round sends far fewer
        r = run_ingest(server.port, args, seq)
        settled = settle_ingested(dsn)
        if r["errors"] or settled != r["accepted"]:
            print(f"  ingest {db}: {r['errors']} errors, {settled} stored for "
                  f"{r['accepted']} 202s", flush=True)  # fmt: skip
        return {"p50": r["p50_ms"], "p95": r["p95_ms"], "rate": r["rate"],
                "errors": r["errors"]}  # fmt: skip
    if m == "claim":
        # Every claim leaves 200 dead row versions (rolled back) and every ingest row's delivery
        # one (marked processed) in raw_events_pending_idx: cleared as autovacuum would.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM raw_events")
        times, claimed = asyncio.run(time_claims(dsn, args.samples))
        return {"p50": pct(times, 50), "p95": pct(times, 95), "claimed": claimed}
    _, path, params = MEASURES[m]
    assert path is not None
    times = asyncio.run(time_gets(url, path, params, args.samples, warmup=5, timeout=60))
    return {"p50": pct(times, 50), "p95": pct(times, 95)}


def median_of(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def summarize(results: dict[str, dict[str, list[dict[str, float]]]]) -> list[dict[str, Any]]:
    """Per measurement: medians over rounds and 1M as a fraction of fresh."""
    out = []
    for m, by_db in results.items():
        f, b = by_db[FRESH], by_db[BIG]
        row: dict[str, Any] = {
            "measure": m, "label": MEASURES[m][0],
            "fresh_p50": median_of(f, "p50"), "big_p50": median_of(b, "p50"),
            "fresh_p95": median_of(f, "p95"), "big_p95": median_of(b, "p95"),
        }  # fmt: skip
        if m == "ingest":
            row["fresh_rate"], row["big_rate"] = median_of(f, "rate"), median_of(b, "rate")
            row["ratio"] = row["big_rate"] / row["fresh_rate"] if row["fresh_rate"] else 0.0
        else:
            row["ratio"] = row["fresh_p50"] / row["big_p50"] if row["big_p50"] else 0.0
        row["ratio_p95"] = row["fresh_p95"] / row["big_p95"] if row["big_p95"] else 0.0
        row["ok"] = row["ratio"] >= TARGET
        out.append(row)
    return out


def print_summary(rows: list[dict[str, Any]], rounds: int) -> None:
    lines = []
    for r in rows:
        rate = f"{r['fresh_rate']:.0f} / {r['big_rate']:.0f}" if "fresh_rate" in r else "-"
        lines.append([
            r["label"], rate, f"{r['fresh_p50']:.2f}", f"{r['big_p50']:.2f}",
            f"{r['fresh_p95']:.2f}", f"{r['big_p95']:.2f}", f"{r['ratio']:.2f}",
            f"{r['ratio_p95']:.2f}", "yes" if r["ok"] else "NO",
        ])  # fmt: skip
    print()
    print(f"medians of {rounds} rounds (ms; rate: deliveries/s):")
    print(table(["measurement", "rate fresh / 1M", "p50 fresh", "p50 1M", "p95 fresh",
                 "p95 1M", "1M vs fresh (p50)", "(p95)", f">= {TARGET:.2f}"], lines))  # fmt: skip
    print("(1M vs fresh: fresh latency / 1M latency, for ingest 1M rate / fresh rate; "
          "1.00 = as fast)")  # fmt: skip


# --------------------------------------------------------------------------- EXPLAIN


def explain_queries(dsn: str, m: str) -> list[tuple[str, dict[str, Any]]]:
    """The named queries (and parameters) behind a measurement, as the API or poller runs
    them; the ingest transaction's dozen statements are left out."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM repositories WHERE full_name = 'scale/repo1'").fetchone()
        rid = row[0] if row else None
        now_row = conn.execute("SELECT now()").fetchone()
        assert now_row is not None
        now = now_row[0]
    start = now - timedelta(days=30)
    page = {"state": None, "limit": 100, "offset": 0}
    if m == "prs_repo":
        return [("api_repository_id", {"full_name": "scale/repo1"}),
                ("api_list_repository_prs", {"repository_id": rid, **page})]  # fmt: skip
    if m == "prs_all":
        return [("api_list_prs", page)]
    if m == "summary":
        return [("api_build_metrics", {"repository_id": None, "days": 7}),
                ("api_last_build", {"repository_id": None})]  # fmt: skip
    if m == "risk":
        return [("api_risk_outcomes", {"repository_id": None, "days": 30})]
    if m == "dora":
        dep = {"repository_id": None, "environment": "production", "start": start, "now": now}
        from flowlens.db.sql import QUERIES

        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(QUERIES["dora_deployments"], dep).fetchall()
            kinds = {r[1]: r[4] for r in rows if r[2] == "success"}
            shipping = sorted(kinds)
            last = {"repository_ids": shipping, "kinds": [kinds[r] for r in shipping],
                    "environment": "production", "start": start}  # fmt: skip
            before = {r[1]: r[3] for r in conn.execute(QUERIES["dora_last_successes"], last)}
        merged = {"repository_ids": shipping, "sinces": [before.get(s) for s in shipping],
                  "now": now}  # fmt: skip
        return [
            ("dora_deployments", dep),
            ("dora_last_successes", last),
            ("dora_merged_prs", merged),
        ]
    if m == "claim":
        return [("work_events_claim", {"owner": "bench-scale", "lease_seconds": 30.0,
                                       "limit": 200})]  # fmt: skip
    return []


def explain(dsn: str, m: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a measurement's queries (writes rolled back)."""
    from flowlens.db.sql import QUERIES

    parts = []
    with psycopg.connect(dsn) as conn:
        for name, params in explain_queries(dsn, m):
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + QUERIES[name], params).fetchall()
            conn.rollback()
            parts.append(f"-- {name}\n" + "\n".join(r[0] for r in rows))
    return "\n".join(parts) if parts else "(no single query: see the ingest function's log)"


# --------------------------------------------------------------------------- sizes, retention

SIZES_SQL = """
SELECT c.relname, pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS heap,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
       pg_indexes_size(c.oid) AS indexes, c.reltuples::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public'
ORDER BY pg_total_relation_size(c.oid) DESC
LIMIT %(top)s
"""


def mib(n: float) -> str:
    value = n / 1024 / 1024
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def sizes(dsn: str, top: int = 8) -> dict[str, Any]:
    """pg_database_size and the largest tables (pg_total_relation_size and its parts)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None
        tables = conn.execute(SIZES_SQL, {"top": top}).fetchall()
    return {"database": int(row[0]),
            "tables": [dict(zip(("table", "total", "heap", "toast", "indexes", "rows"), t,
                                strict=True)) for t in tables]}  # fmt: skip


def print_sizes(title: str, got: dict[str, Any]) -> None:
    print()
    print(f"{title}: pg_database_size {mib(got['database'])} MiB")
    print(table(["table", "total MiB", "heap MiB", "TOAST MiB", "indexes MiB", "rows (est.)"],
                [[t["table"], mib(t["total"]), mib(t["heap"]), mib(t["toast"]),
                  mib(t["indexes"]), f"{t['rows']:,}"] for t in got["tables"]]))  # fmt: skip


def reusable_space(dsn: str) -> int | None:
    """Free space recorded in raw_events' and its TOAST table's free space maps (what new rows
    may reuse), if the pg_freespacemap extension is available."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_freespacemap")
            row = conn.execute(
                "SELECT sum(f.avail) FROM pg_class c, pg_freespace(c.oid) f "
                "WHERE c.oid = 'raw_events'::regclass OR c.oid = (SELECT reltoastrelid "
                "FROM pg_class WHERE oid = 'raw_events'::regclass)"
            ).fetchone()
        except psycopg.Error:
            return None
    return int(row[0] or 0) if row else None


def retention_step(dsn: str) -> dict[str, Any]:
    """One flowlens.retention sweep on the database, then a plain VACUUM; sizes after each."""
    try:
        from flowlens.retention import Retention
    except ImportError as exc:
        print(f"\nretention: skipped (flowlens.retention is not here yet: {exc})")
        return {"skipped": str(exc)}
    from flowlens.settings import PollerSettings

    settings = PollerSettings.from_env(database_url=dsn)

    async def sweep() -> dict[str, Any]:
        async with Database(dsn, min_size=0, max_size=4, connect_timeout=30) as db:
            summary = await Retention(db, settings).sweep()
        result: dict[str, Any] = summary.as_dict()
        return result

    started = time.monotonic()
    counts = asyncio.run(sweep())
    took = time.monotonic() - started
    after = sizes(dsn)
    print(f"\nretention sweep: {took:.1f}s, {json.dumps(counts, default=str)}")
    print_sizes("1M after the retention sweep", after)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM")
    vacuum_s = time.monotonic() - started
    vacuumed = sizes(dsn)
    free = reusable_space(dsn)
    print_sizes(f"1M after VACUUM ({vacuum_s:.1f}s; not VACUUM FULL)", vacuumed)
    if free is not None:
        print(f"free space VACUUM recorded for reuse in raw_events and its TOAST table: "
              f"{mib(free)} MiB (pg_freespacemap)")  # fmt: skip
    print("note: a plain VACUUM makes the dropped payloads' space reusable by new rows but "
          "gives files back to the OS only from their empty tail, so pg_database_size barely "
          "moves; only VACUUM FULL (an exclusive rewrite) shrinks it.")  # fmt: skip
    return {"seconds": took, "counts": counts, "after_sweep": after, "vacuum_seconds": vacuum_s,
            "after_vacuum": vacuumed, "reusable_bytes": free}  # fmt: skip


# --------------------------------------------------------------------------- main

KEPT = "scale.json"  # beside a kept server's pgdata: the two databases' names


@contextlib.contextmanager
def reused_server(folder: Path) -> Iterator[BenchServer]:
    """The embedded server a `--keep` run left in `folder`, started again (and stopped after,
    its files kept): to measure a change (a migration, a query) on the same build."""
    from flowlens.devdb import EmbeddedPostgres

    embedded = EmbeddedPostgres(folder / "pgdata", fast=False, max_connections=200)
    admin = embedded.start()
    try:
        version, settings = _pg_facts(admin)
        yield BenchServer(admin, f"embedded PostgreSQL (durable defaults) in {folder}", embedded,
                          _postmaster_pid(embedded.pgdata), version, settings)  # fmt: skip
    finally:
        embedded.stop()
        print(f"kept the database server's files in {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--prs", type=int, default=200_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument(
        "--fresh-days",
        type=float,
        default=31.0,
        help="days of the generated data the fresh database holds (0: none)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100, help="requests (claims) per row")
    parser.add_argument("--duration", type=float, default=10.0, help="ingest seconds per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="ingest warm-up seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="ingest senders")
    parser.add_argument("--workers", type=int, default=2, help="WORKERS of the ingest function")
    parser.add_argument(
        "--only",
        default=",".join(MEASURES),
        help=f"measurements, comma-separated ({','.join(MEASURES)})",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) the SQL of figures under the target",
    )
    parser.add_argument("--no-retention", action="store_true", help="skip the retention step")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="DIR",
                        help="measure again on the build a --keep run left in DIR (its "
                             "new migrations applied first), instead of building")  # fmt: skip
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    wanted = [m for m in args.only.split(",") if m]
    unknown = sorted(set(wanted) - set(MEASURES))
    if unknown:
        parser.error(f"unknown measurements: {', '.join(unknown)}")
    print(f"# bench.scale  commit {git_commit()}  {machine_line()}")
    print(f"# python -m bench.scale {' '.join(argv if argv is not None else sys.argv[1:])}",
          flush=True)  # fmt: skip
    report: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "json"}}
    server = reused_server(Path(args.reuse)) if args.reuse else bench_server(keep=args.keep)
    with server as pg:
        print(f"# database: {pg.description.split(' in ')[0]}; PostgreSQL {pg.version}; "
              + ", ".join(f"{k}={v}" for k, v in pg.settings.items()), flush=True)  # fmt: skip
        if args.reuse:
            names = json.loads((Path(args.reuse) / KEPT).read_text())["databases"]
            dsns = {db: pg.dsn(name) for db, name in names.items()}
            for db, dsn in dsns.items():  # what was added to the tree since the build
                applied = asyncio.run(Database(dsn, min_size=0, max_size=1).migrate())
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("VACUUM (ANALYZE)")  # as after a build
                print(f"# {db}: migrations applied now: {applied or 'none'}; VACUUM (ANALYZE)")
        else:
            names = {FRESH: pg.create(), BIG: pg.create()}
            dsns = {db: pg.dsn(name) for db, name in names.items()}
            if args.keep and pg.embedded is not None:
                kept = {"databases": names, "args": report["args"]}
                (pg.embedded.pgdata.parent / KEPT).write_text(json.dumps(kept))
            started = time.monotonic()
            with roomy_wal(pg.admin_dsn):
                report["build_seconds"] = {
                    BIG: build(dsns[BIG], BIG, args, 1.0),
                    FRESH: build(dsns[FRESH], FRESH, args, min(1.0, args.fresh_days / DAYS)),
                }
            print(f"built in {time.monotonic() - started:.0f}s", flush=True)
        print(f"# databases: {', '.join(f'{db} {name}' for db, name in names.items())}")
        before = {db: sizes(dsn) for db, dsn in dsns.items()}
        results = measure_all(dsns, args, wanted)
        summary = summarize(results)
        print_summary(summary, args.rounds)
        report.update(rounds=results, summary=summary)
        if args.explain:
            plans = {}
            for row in summary:
                if not row["ok"]:
                    plans[row["measure"]] = explain(dsns[BIG], row["measure"])
                    print(f"\nEXPLAIN (ANALYZE, BUFFERS) on 1M for {row['label']} "
                          f"(1M vs fresh {row['ratio']:.2f}):")  # fmt: skip
                    print(plans[row["measure"]])
            report["explain"] = plans
        for db in (FRESH, BIG):
            print_sizes(f"{db} (before measuring)", before[db])
        report["sizes"] = before
        report["sizes_after"] = {db: sizes(dsn) for db, dsn in dsns.items()}
        print_sizes("1M after measuring", report["sizes_after"][BIG])
        if not args.no_retention:
            report["retention"] = retention_step(dsns[BIG])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(r["ok"] for r in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
