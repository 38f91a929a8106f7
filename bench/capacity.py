"""The capacity plan of docs/CAPACITY.md, computed from measured per-delivery costs.

    .venv/bin/python -m bench.capacity [--storage bench-storage.json]

Prints, as Markdown, for 10k / 100k / 1M deliveries a day (with 100 / 1,000 / 10,000
repositories): each deployable's Cloud Run instances and concurrency, the database
connection budget, the Cloud SQL tier, storage per day with and without retention, and the
monthly cost at list prices. The measured inputs are the constants below (each with the
command that measured it); `--storage` takes them from a `bench.storage --json` file instead.
The load model (when in the day deliveries come, how many dashboards are open) is an
assumption, stated in the output.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- measured (docs/BENCHMARKS.md) -----------------------------------------------------------
# bench.storage at a470519, 5,100 deliveries of 300 PR lives: bytes per delivery, live data.
PAYLOAD_BYTES = 3976  # raw_events TOAST: the compressed payload
EVENT_ROW_BYTES = 263  # raw_events heap and indexes: the row retention keeps to RAW_EVENT_DAYS
HISTORY_BYTES = 127  # pr_history
BUILD_BYTES = 279  # builds
FEED_BYTES = 840  # change_feed, kept one to two hours
KEPT_BYTES = 331  # insights, pull_requests, reviews, risk history, ...: never removed
# bench.storage: CPU of lone deliveries (one at a time, as at low rates); ms per delivery.
INGEST_CPU_MS = 4.47  # the ingest code in Python (psycopg included)
INGEST_DB_CPU_MS = 3.52  # PostgreSQL for it
POLLER_CPU_MS = 0.91  # the poller (built-in risk model; 12% of deliveries are new heads)
POLLER_DB_CPU_MS = 0.67
# bench.ingest (verdict): under load deliveries share transactions: ~1.35 ms function + database.
LOADED_CPU_MS = 1.35
# bench.poller_idle at 093c058: request-seconds a busy minute bills (woken invocation + ticks).
POLLER_BUSY_S_PER_MIN = (61.5, 92.3)
POLLER_IDLE_S_PER_MIN = 2.0
# bench.api: a WebSocket message costs ~30 µs of one vCPU per client.
WS_MESSAGE_US = 30.0
CHANGES_PER_DELIVERY = 0.47  # pr_history rows per delivery (bench.storage): pr_update messages

# --- list prices (USD, Tier 1 regions, at the time of writing) ------------------------------
RUN_VCPU_S = 0.000024
RUN_GIB_S = 0.0000025
RUN_REQUESTS_M = 0.40
FREE_VCPU_S, FREE_GIB_S, FREE_REQUESTS_M = 180_000, 360_000, 2.0
SQL_VCPU_MONTH = 30.15  # Cloud SQL Enterprise: $0.0413 per vCPU-hour
SQL_GB_MONTH = 5.11  # $0.0070 per GB-hour of memory
SQL_SSD_GB_MONTH = 0.17
SQL_BACKUP_GB_MONTH = 0.08
FIXED_MONTH = 13.0  # VPC connector ~$12, Secret Manager, Scheduler, Artifact Registry
MONTH_S = 30 * 86400

# --- the load model (assumed) ----------------------------------------------------------------
WORK_SHARE = 0.7  # of a day's deliveries arrive in 10 working hours
PEAK_FACTOR = 3.0  # the busiest minute against the working hours' mean
WORK_HOURS_MONTH = 220  # 10 h x 22 days: dashboards open


@dataclass(frozen=True)
class Scale:
    repos: int
    per_day: int
    dashboards: int  # sockets open in working hours


SCALES = (Scale(100, 10_000, 30), Scale(1_000, 100_000, 300), Scale(10_000, 1_000_000, 3_000))
# Cloud SQL custom tiers (vCPU, GB): the smallest that fits the working set is picked.
TIERS = ((1, 3.75), (2, 7.5), (4, 15.0), (8, 30.0), (16, 60.0))


def rates(per_day: int) -> tuple[float, float]:
    """(mean, peak) deliveries per second."""
    work = per_day * WORK_SHARE / (10 * 3600)
    return per_day / 86400, work * PEAK_FACTOR


def run_cost(vcpu_s: float, gib_s: float, requests_m: float) -> float:
    return vcpu_s * RUN_VCPU_S + gib_s * RUN_GIB_S + requests_m * RUN_REQUESTS_M


def storage(per_day: int, days: dict[str, int]) -> dict[str, float]:
    """GB held once retention is steady (after RAW_EVENT_DAYS/HISTORY_DAYS), and the GB a
    day that still grows then; `days` 0 keeps for ever (the 'grows' figure)."""
    held = grows = 0.0
    rules = (
        (PAYLOAD_BYTES, days["payload"]),
        (EVENT_ROW_BYTES, days["event"]),
        (HISTORY_BYTES + BUILD_BYTES, days["history"]),
        (KEPT_BYTES, 0),
    )
    for size, keep in rules:
        if keep:
            held += per_day * size * keep / 1e9
        else:
            grows += per_day * size / 1e9
    held += per_day / 24 * 2 * FEED_BYTES / 1e9
    return {"held_gb": held, "grows_gb_day": grows}


def plan(scale: Scale, days: dict[str, int]) -> dict[str, Any]:
    mean, peak = rates(scale.per_day)
    # Ingest: 1 vCPU instances; lone deliveries cost INGEST_CPU_MS; Cloud Run aims at ~60% CPU.
    ingest_needed = max(1, math.ceil(peak * INGEST_CPU_MS / 1000 / 0.6))
    ingest_max = max(3, 4 * ingest_needed)
    # Billed: a request's instance time rounds up to 100 ms; overlapping requests share it.
    billed_s = min(scale.per_day * 0.1, 86400 * ingest_needed) * 30
    ingest = run_cost(billed_s, billed_s * 0.5, scale.per_day * 30 / 1e6)
    # Poller: 0.5 vCPU, one invocation at a time (+ a tick beside it); busy all day once
    # deliveries arrive more often than every few seconds off hours, else in working hours.
    off_hours_rate = scale.per_day * (1 - WORK_SHARE) / (14 * 3600)
    busy_hours = 24 * 30 if off_hours_rate > 0.3 else WORK_HOURS_MONTH
    idle_hours = 24 * 30 - busy_hours
    poller_cost = []
    for per_min in POLLER_BUSY_S_PER_MIN:
        seconds = (busy_hours * per_min + idle_hours * POLLER_IDLE_S_PER_MIN) * 60
        poller_cost.append(run_cost(seconds * 0.5, seconds * 0.5, seconds / 60 / 1e6))
    poller_cpu = peak * (POLLER_CPU_MS / 1000)
    # API: 250 sockets an instance; each pr_update goes to every socket of its repository
    # (assumed: every dashboard watches all repositories, the worst case).
    api_instances = max(1, math.ceil(scale.dashboards / 250))
    messages = peak * CHANGES_PER_DELIVERY * scale.dashboards
    api_cpu = messages * WS_MESSAGE_US / 1e6 / api_instances
    api_hours = WORK_HOURS_MONTH * api_instances
    api = run_cost(api_hours * 3600, api_hours * 3600 * 0.5, 0.0)
    api_max = max(3, 2 * api_instances)
    # Connections: each instance's pool (ingest 4, poller 3, API 5 + its LISTEN) and migrate.
    connections = ingest_max * 4 + 2 * 3 + api_max * 6 + 1
    # Database: CPU at peak, three times over (API queries, autovacuum, retention) within half
    # the tier's vCPUs; memory for a week of rows (payloads aside: written once, read rarely)
    # within half its RAM. Older rows are read only by what asks for them: the delivery-id
    # index of a year is larger than that, but an insert reads one page of it (an SSD read).
    db_cpu_peak = peak * (INGEST_DB_CPU_MS + POLLER_DB_CPU_MS) / 1000
    kept = storage(scale.per_day, days)
    year = kept["held_gb"] + kept["grows_gb_day"] * 365
    week_gb = scale.per_day * 7 * (EVENT_ROW_BYTES + HISTORY_BYTES + BUILD_BYTES + KEPT_BYTES) / 1e9
    vcpu, memory = next(((c, m) for c, m in TIERS if c * 0.5 >= 3 * db_cpu_peak
                         and m * 0.5 >= week_gb), TIERS[-1])  # fmt: skip
    sql = vcpu * SQL_VCPU_MONTH + memory * SQL_GB_MONTH
    disk = max(10.0, math.ceil(year * 1.3))
    sql_storage = disk * SQL_SSD_GB_MONTH + year * SQL_BACKUP_GB_MONTH
    free = FREE_VCPU_S * RUN_VCPU_S + FREE_GIB_S * RUN_GIB_S + FREE_REQUESTS_M * RUN_REQUESTS_M
    run_total = [max(0.0, ingest + p + api - free) for p in poller_cost]
    totals = [r + sql + sql_storage + FIXED_MONTH for r in run_total]
    return {
        "scale": scale, "mean": mean, "peak": peak,
        "ingest": {"needed": ingest_needed, "max": ingest_max, "cost": ingest},
        "poller": {"cpu": poller_cpu, "cost": poller_cost, "busy_hours": busy_hours},
        "api": {"instances": api_instances, "max": api_max, "cpu": api_cpu, "cost": api,
                "messages": messages},
        "connections": connections, "db_cpu_peak": db_cpu_peak, "tier": (vcpu, memory),
        "sql": sql, "disk": disk, "sql_storage": sql_storage, "storage": kept, "year_gb": year,
        "totals": totals,
    }  # fmt: skip


def money(x: float) -> str:
    return f"${x:,.0f}"


def report(days: dict[str, int], nodays: dict[str, int]) -> str:
    lines = []
    plans = [plan(s, days) for s in SCALES]
    bare = [plan(s, nodays) for s in SCALES]
    head = "| | " + " | ".join(f"{p['scale'].repos:,} repos, {p['scale'].per_day:,}/day"
                                 for p in plans) + " |"  # fmt: skip
    lines += [head, "| --- |" + " --- |" * len(plans)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("deliveries/s: mean, busiest minute", [f"{p['mean']:.2f}, {p['peak']:.1f}" for p in plans])
    row("ingest: instances busy at peak / `ingest_max_instances` (1 vCPU, 512 MiB, concurrency 40)",
        [f"{p['ingest']['needed']} / {p['ingest']['max']}" for p in plans])  # fmt: skip
    row("poller: vCPU used at peak / instances (0.5 vCPU, concurrency 1, `poller_max_instances` 2)",
        [f"{p['poller']['cpu']:.3f} / 1 (+1 tick beside it)" for p in plans])  # fmt: skip
    row("API: dashboards open / instances (1 vCPU, concurrency 250) / `api_max_instances`",
        [f"{p['scale'].dashboards:,} / {p['api']['instances']} / {p['api']['max']}"
         for p in plans])  # fmt: skip
    row(
        "API: pr_update messages/s at peak, vCPU each instance spends on them",
        [f"{p['api']['messages']:,.0f}, {p['api']['cpu']:.2f}" for p in plans],
    )
    row(
        "database connections (pools at full scale + LISTEN + migrate)",
        [str(p["connections"]) for p in plans],
    )
    row("database CPU at peak (vCPU)", [f"{p['db_cpu_peak']:.2f}" for p in plans])
    row("Cloud SQL tier", [f"db-custom-{p['tier'][0]}-{int(p['tier'][1] * 1024)}"
                           for p in plans])  # fmt: skip
    row("storage/day without retention (GB)", [f"{b['storage']['grows_gb_day']:.2f}" for b in bare])
    row(
        "storage with retention: held at steady state (GB) + still growing (GB/day)",
        [f"{p['storage']['held_gb']:.1f} + {p['storage']['grows_gb_day']:.3f}" for p in plans],
    )
    row(
        "database size after a year: with / without retention (GB)",
        [f"{p['year_gb']:.0f} / {b['year_gb']:.0f}" for p, b in zip(plans, bare, strict=True)],
    )
    row("Cloud Run: ingest / poller / API per month",
        [f"{money(p['ingest']['cost'])} / {money(p['poller']['cost'][0])}-"
         f"{money(p['poller']['cost'][1])} / {money(p['api']['cost'])}"
         for p in plans])  # fmt: skip
    row(
        "Cloud SQL: instance / disk and backups (a year's data) per month",
        [f"{money(p['sql'])} / {money(p['sql_storage'])}" for p in plans],
    )
    row(
        "**monthly total** (free tier taken off; without Gemini)",
        [f"**{money(p['totals'][0])}-{money(p['totals'][1])}**" for p in plans],
    )
    row(
        "the same without retention (a year's data on disk)",
        [f"{money(b['totals'][0])}-{money(b['totals'][1])}" for b in bare],
    )
    return "\n".join(lines)


def matrix(days: dict[str, int]) -> str:
    """Every pairing of repositories (which set the dashboards open) and deliveries a day:
    the Cloud SQL tier, the connection budget and the monthly total."""
    dashboards = {s.repos: s.dashboards for s in SCALES}
    per_days = [s.per_day for s in SCALES]
    lines = ["| repositories (dashboards) | " + " | ".join(f"{d:,}/day" for d in per_days) + " |",
             "| --- |" + " --- |" * len(per_days)]  # fmt: skip
    for repos, open_ in dashboards.items():
        cells = []
        for per_day in per_days:
            p = plan(Scale(repos, per_day, open_), days)
            cells.append(f"db-custom-{p['tier'][0]}-{int(p['tier'][1] * 1024)}, "
                         f"{p['connections']} conn., API {p['api']['instances']}, "
                         f"{money(p['totals'][0])}-{money(p['totals'][1])}")  # fmt: skip
        lines.append(f"| {repos:,} ({open_:,}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", type=Path, help="a bench.storage --json file")
    parser.add_argument("--payload-days", type=int, default=30)
    parser.add_argument("--event-days", type=int, default=365)
    parser.add_argument("--history-days", type=int, default=365)
    args = parser.parse_args(argv)
    if args.storage:
        _load(json.loads(args.storage.read_text()))
    days = {"payload": args.payload_days, "event": args.event_days,
            "history": args.history_days}  # fmt: skip
    print(report(days, {"payload": 0, "event": 0, "history": 0}))
    print()
    print(matrix(days))
    return 0


def _load(result: dict[str, Any]) -> None:
    """The byte and CPU constants from a bench.storage result."""
    global PAYLOAD_BYTES, EVENT_ROW_BYTES, HISTORY_BYTES, BUILD_BYTES, FEED_BYTES, KEPT_BYTES
    global INGEST_CPU_MS, INGEST_DB_CPU_MS, POLLER_CPU_MS, POLLER_DB_CPU_MS
    n = result["deliveries"]
    size = {t: v["total"] / n for t, v in result["before"].items()}
    toast = result["before"]["raw_events"]["toast"] / n
    PAYLOAD_BYTES, EVENT_ROW_BYTES = round(toast), round(size["raw_events"] - toast)
    HISTORY_BYTES, BUILD_BYTES = round(size["pr_history"]), round(size["builds"])
    FEED_BYTES = round(size["change_feed"])
    removed = ("raw_events", "pr_history", "builds", "change_feed")
    KEPT_BYTES = round(sum(v for t, v in size.items() if t not in removed))
    INGEST_CPU_MS, INGEST_DB_CPU_MS = result["ingest_cpu_ms"], result["pg_ingest_cpu_ms"]
    POLLER_CPU_MS, POLLER_DB_CPU_MS = result["poller_cpu_ms"], result["pg_poller_cpu_ms"]


if __name__ == "__main__":
    raise SystemExit(main())
