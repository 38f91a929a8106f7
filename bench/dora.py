"""GET /api/metrics/dora with 10,000 deployments stored.

    .venv/bin/python -m bench.dora [--deployments 10000] [--repos 20] [--prs 20000]
                                   [--samples 200] [--runs 3]

A fresh migrated database (DATABASE_URL's server, else an embedded PostgreSQL with durable
defaults) gets, with bulk SQL rather than HTTP, `--repos` repositories, `--deployments`
deployments spread over the last 365 days across them (production and staging, one in ten
failed), `--prs` merged PRs with their first pushed commits, and the API in its own process
(as in the container) is asked, after 20 warm-up requests, `--samples` times per row:
all repositories and one repository, 30 and 365 days. Reported per row: p50 and p99 in ms per
run, and the median of the runs' p50. Target: p50 under 50 ms with 10,000 deployments.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

import psycopg

from bench import git_commit, table
from bench.api import api_process, bench_database, machine_line, ms, pct, time_gets

SEED_SQL = """
INSERT INTO repositories (github_id, full_name, name, owner, default_branch)
SELECT 700000 + i, 'bench/repo' || i, 'repo' || i, 'bench', 'main'
FROM generate_series(1, %(repos)s) AS i;

INSERT INTO deployments (repository_id, kind, github_id, environment, sha, created_at, outcome,
                         outcome_at, status_id)
SELECT r.id, 'deployment', i, CASE WHEN i %% 4 = 0 THEN 'staging' ELSE 'production' END,
       md5(i::text), t, CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'success' END, t, i
FROM generate_series(1, %(deployments)s) AS i
CROSS JOIN LATERAL (SELECT now() - (i::float8 / %(deployments)s) * interval '365 days' AS t) w
JOIN repositories r ON r.github_id = 700000 + 1 + (i %% %(repos)s);

INSERT INTO pull_requests (repository_id, number, github_id, title, head_sha, head_ref, state,
                           status_pr, status_merge, gh_created_at, merged_at)
SELECT r.id, i, 800000 + i, 'PR ' || i, md5('pr' || i), 'branch-' || i, 'closed',
       'closed', 'merged',
       now() - (i::float8 / %(prs)s) * interval '365 days' - interval '2 days',
       now() - (i::float8 / %(prs)s) * interval '365 days'
FROM generate_series(1, %(prs)s) AS i
JOIN repositories r ON r.github_id = 700000 + 1 + (i %% %(repos)s);

INSERT INTO branch_first_commits (repository_id, branch, first_commit_at)
SELECT p.repository_id, p.head_ref, p.gh_created_at - interval '1 day'
FROM pull_requests p WHERE p.number %% 2 = 0;

ANALYZE;
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--prs", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"# bench.dora  commit {git_commit()}  {machine_line()}")
    print(f"# {' '.join(['python -m bench.dora', *(argv or sys.argv[1:])])}")
    with bench_database() as (dsn, where):
        print(f"# database: {where}")
        params = {"repos": args.repos, "deployments": args.deployments, "prs": args.prs}
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in SEED_SQL.split(";\n\n"):
                conn.execute(statement, params)
            counted = conn.execute("SELECT count(*) FROM deployments").fetchone()
        print(f"# stored: {counted[0] if counted else 0} deployments, {args.prs} merged PRs, "
              f"{args.repos} repositories\n")  # fmt: skip
        rows_spec = [
            ("all repositories, 30 days", {}),
            ("all repositories, 365 days", {"days": 365}),
            ("one repository, 30 days", {"repo": "bench/repo1"}),
            ("one repository, 365 days", {"repo": "bench/repo1", "days": 365}),
            ("all repositories, staging, 365 days", {"environment": "staging", "days": 365}),
        ]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in rows_spec}
        with api_process(dsn) as url:
            for _ in range(args.runs):
                for name, params in rows_spec:
                    values = asyncio.run(time_gets(url, "/api/metrics/dora", params,
                                                   args.samples))  # fmt: skip
                    results[name].append((pct(values, 50), pct(values, 99)))
    rows = []
    for name, runs in results.items():
        p50s = [p50 for p50, _ in runs]
        rows.append([name, " / ".join(ms(p) for p in p50s),
                     " / ".join(ms(p99) for _, p99 in runs),
                     ms(statistics.median(p50s))])  # fmt: skip
    print(table(["request", "p50 ms per run", "p99 ms per run", "median p50 ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
