"""The `flowlens` command: dev, migrate, poll, replay, sync, events, checks, retention,
risk-eval, cloud."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from flowlens import logs
from flowlens.settings import MAX_SINCE_DAYS, ConfigError, Settings


def _migrate(args: argparse.Namespace) -> int:
    from flowlens.db import Database

    settings = Settings.from_env()
    logs.setup("migrate", settings.log_format, settings.log_level)

    async def run() -> list[int]:
        db = Database(settings.dsn, min_size=0, max_size=1)
        return await db.migrate()

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


def _poll(args: argparse.Namespace) -> int:
    import json
    import signal

    from flowlens.poller.service import PollerService
    from flowlens.settings import PollerSettings

    settings = PollerSettings.from_env()
    logs.setup("poller", settings.log_format, settings.log_level)

    async def run() -> dict[str, object]:
        service = PollerService(settings)
        try:
            if args.once:
                return (await service.once()).as_dict()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            return (await service.loop(stop)).as_dict()
        finally:
            await service.close()

    print(json.dumps(asyncio.run(run())))
    return 0


def _events(args: argparse.Namespace) -> int:
    from flowlens.db import Database
    from flowlens.workqueue import dead_events, retry_dead_events

    settings = Settings.from_env()
    logs.setup("events", settings.log_format, settings.log_level)

    async def reapply() -> int:
        from flowlens.ingest.store import reapply_unapplied

        if args.all == (args.id is not None):
            print("flowlens: give an event ID (from `events unapplied`) or --all", file=sys.stderr)
            return 2
        async with Database(settings.dsn, min_size=0, max_size=2) as db:
            done = await reapply_unapplied(db, args.id, notify=settings.feed_notify)
        for rid, reason in done.still:
            print(f"{rid}\tstill unapplied\t{reason}")
        print(
            f"applied {len(done.applied)} event(s)" + (f": {done.applied}" if done.applied else "")
        )
        if args.id is not None and not done.applied and not done.still:
            print(f"flowlens: event {args.id} is not an unapplied event", file=sys.stderr)
            return 1
        return 1 if done.still else 0

    async def run() -> int:
        if args.events_command == "reapply":
            return await reapply()
        async with Database(settings.dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
            if args.events_command == "unapplied":
                rows = await tx.all("admin_list_unapplied_events", limit=args.limit)
                if not rows:
                    print("no unapplied events")
                for unapplied in rows:
                    print(
                        f"{unapplied['id']}\t{unapplied['delivery_id']}\t{unapplied['event']}."
                        f"{unapplied['action'] or '-'}\t{unapplied['unapplied_reason']}"
                    )
                return 0
            if args.events_command == "payload":
                from flowlens.db.codec import unpack_payload

                row = await tx.one("admin_raw_payload_by_delivery", delivery_id=args.delivery)
                if row is None:
                    print(f"flowlens: no delivery {args.delivery!r} is stored", file=sys.stderr)
                    return 1
                if row["payload"] is None:
                    print(
                        f"flowlens: the payload of delivery {args.delivery!r} "
                        f"({row['event']}.{row['action'] or '-'}, received "
                        f"{row['received_at']:%Y-%m-%d %H:%M:%S %Z}) was dropped by retention "
                        "(RAW_PAYLOAD_DAYS)", file=sys.stderr,
                    )  # fmt: skip
                    return 1
                print(unpack_payload(row["payload"]))
                return 0
            if args.events_command == "failed":
                rows = await dead_events(tx, args.limit)
                if not rows:
                    print("no failed events")
                for row in rows:
                    where = f"{row['repository'] or '-'}#{row['pr_number'] or '-'}"
                    print(
                        f"{row['id']}\t{row['event']}.{row['action'] or '-'}\t{where}\t"
                        f"attempts={row['attempts']}\t{row['last_error'] or ''}"
                    )
                return 0
            if args.all and args.id is not None:
                print("flowlens: give an event ID or --all, not both", file=sys.stderr)
                return 2
            if args.all:
                ids = await retry_dead_events(tx)
            elif args.id is not None:
                ids = await retry_dead_events(tx, args.id)
                if not ids:
                    print(f"flowlens: event {args.id} is not a failed event", file=sys.stderr)
                    return 1
            else:
                print("flowlens: give an event ID or --all", file=sys.stderr)
                return 2
            print(f"requeued {len(ids)} event(s)" + (f": {ids}" if ids else ""))
            return 0

    return asyncio.run(run())


def _checks(args: argparse.Namespace) -> int:
    from flowlens.db import Database
    from flowlens.workqueue import failed_checks, retry_failed_checks

    settings = Settings.from_env()
    logs.setup("checks", settings.log_format, settings.log_level)

    async def run() -> int:
        async with Database(settings.dsn, min_size=0, max_size=1) as db, db.transaction() as tx:
            if args.checks_command == "failed":
                rows = await failed_checks(tx, args.limit)
                if not rows:
                    print("no failed write-backs")
                for row in rows:
                    print(
                        f"{row['id']}\t{row['repository']}#{row['pr_number']}\t"
                        f"{row['head_sha'][:12]}\t{row['mode']} {row['wanted']}\t"
                        f"attempts={row['attempts']}\t{row['last_error'] or ''}"
                    )
                return 0
            if args.all == (args.id is not None):
                print("flowlens: give a write-back ID (from `checks failed`) or --all",
                      file=sys.stderr)  # fmt: skip
                return 2
            ids = await retry_failed_checks(tx, args.id)
            if args.id is not None and not ids:
                print(f"flowlens: write-back {args.id} has not failed", file=sys.stderr)
                return 1
            print(f"requeued {len(ids)} write-back(s)" + (f": {ids}" if ids else ""))
            return 0

    return asyncio.run(run())


def _retention(args: argparse.Namespace) -> int:
    import json
    import time

    from flowlens.db import Database
    from flowlens.retention import Retention, RetentionBusy, RetentionSummary
    from flowlens.settings import PollerSettings

    settings = PollerSettings.from_env()
    logs.setup("retention", settings.log_format, settings.log_level)
    shown = [time.monotonic()]

    def progress(done: RetentionSummary) -> None:
        if not args.quiet and time.monotonic() - shown[0] >= 2.0:
            shown[0] = time.monotonic()
            counts = ", ".join(f"{name} {getattr(done, name)}" for name in done.WORK)
            print(f"retention: {done.batches} batches so far: {counts}", file=sys.stderr)

    async def run() -> int:
        async with Database(settings.dsn, min_size=0, max_size=2) as db:
            retention = Retention(db, settings)
            if args.status:
                async with db.transaction() as tx:
                    row = await retention.lease.status(tx)
                if row is None:
                    print("retention has not run yet", file=sys.stderr)
                print(json.dumps(row, default=str))
                return 0
            try:
                total = await retention.sweep(progress)
            except RetentionBusy as exc:
                print(f"flowlens: {exc}", file=sys.stderr)
                return 1
        for note in total.errors:
            print(f"retention: {note}", file=sys.stderr)
        print(json.dumps(total.as_dict()))
        return 0

    return asyncio.run(run())


def _dev(args: argparse.Namespace) -> int:
    from flowlens.devserver import main as dev_main

    return dev_main(demo=args.demo)


def _replay(args: argparse.Namespace) -> int:
    import os

    from flowlens.devserver import project_root, state_dir
    from flowlens.replay import NoEventName, replay

    settings = Settings.from_env()
    secret, source = args.secret, "--secret"
    if not secret:
        secret, source = settings.secret("github_webhook_secret"), "GITHUB_WEBHOOK_SECRET"
    if not secret:  # the one `flowlens dev` generated (under FLOWLENS_HOME when set)
        kept = state_dir(project_root()) / "webhook-secret"
        secret, source = (kept.read_text().strip() if kept.exists() else None), str(kept)
    if not secret:
        print("flowlens: no secret: pass --secret or set GITHUB_WEBHOOK_SECRET", file=sys.stderr)
        return 2
    url = (
        args.url
        or os.environ.get("FLOWLENS_INGEST_URL")
        or (f"http://localhost:{settings.ingest_port}/")
    )
    refused = 0
    sent = 0
    noted: set[str] = set()
    try:
        for result in replay(args.files, url, secret, args.event):
            print(result.line(), flush=True)
            sent += 1
            refused += 0 if result.ok else 1
            # The files after these would all fail the same way: stop and say why.
            if result.status == 0:
                print(f"flowlens: nothing answers at {url}: start `flowlens dev`, or pass "
                      "--url (or set INGEST_PORT) for where it runs", file=sys.stderr)  # fmt: skip
                return 1
            if result.status == 401:
                print(f"flowlens: {url} refused the signature: signed with the secret from "
                      f"{source}; pass --secret (or set GITHUB_WEBHOOK_SECRET) to the one it "
                      "uses (`flowlens dev` prints it)", file=sys.stderr)  # fmt: skip
                return 1
            if result.answer == "ignored" and not args.event and result.event not in noted:
                noted.add(result.event)
                print(f"note: {result.event!r} (the folder's name) is not an event FlowLens "
                      "acts on; pass --event to name the event", file=sys.stderr)  # fmt: skip
    except (FileNotFoundError, NoEventName) as exc:
        print(f"flowlens: {exc}", file=sys.stderr)
        return 2
    print(f"{sent} sent, {refused} refused")
    return 1 if refused or not sent else 0


def _sync(args: argparse.Namespace) -> int:
    import json
    import signal

    from flowlens.db import Database
    from flowlens.sync import GitHubError, SyncScheduler, make_client, sync_once

    settings = Settings.from_env()
    logs.setup("sync", settings.log_format, settings.log_level)
    repositories = args.repositories or settings.sync_repository_list
    if not repositories:
        print("flowlens: name owner/repo or set SYNC_REPOSITORIES", file=sys.stderr)
        return 2
    from flowlens.sync.runner import check_repository

    try:
        for repository in repositories:
            check_repository(repository)
    except GitHubError as exc:
        print(f"flowlens: {exc}", file=sys.stderr)
        return 2

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    async def run() -> int:
        from flowlens.installations import token_source

        db = Database(settings.dsn, min_size=0, max_size=4)
        client = make_client(settings, tokens=token_source(settings, db))
        try:
            if args.loop:
                scheduler = SyncScheduler(
                    db, settings, repositories, client=client, progress=progress
                )
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                print(json.dumps((await scheduler.run(None, stop=stop)).as_dict()))
                return 0
            status = 0
            since = args.since if args.since is not None else settings.sync_since_days
            for repository in repositories:
                try:
                    result = await sync_once(
                        db, client, repository, since_days=since, progress=progress,
                        notify=settings.feed_notify,
                    )  # fmt: skip
                except GitHubError as exc:
                    print(f"flowlens: {repository}: {exc}", file=sys.stderr)
                    status = 1
                    continue
                print(result.line(), flush=True)
            return status
        finally:
            await client.aclose()
            await db.close()

    try:
        return asyncio.run(run())
    except GitHubError as exc:
        print(f"flowlens: {exc}", file=sys.stderr)
        return 2


def _risk_eval(args: argparse.Namespace) -> int:
    import time

    from flowlens.risk.replay import StreamError, evaluate, open_text

    started = time.monotonic()

    def progress(n: int) -> None:
        if not args.quiet:
            print(f"risk-eval: {n:,} commits, {time.monotonic() - started:.1f} s", file=sys.stderr)

    try:
        reader = open_text(args.input)
    except OSError as exc:
        print(f"flowlens: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with reader, open(args.output, "w", encoding="utf-8") as out:
            count = asyncio.run(evaluate(reader, out, progress=progress))
    except StreamError as exc:
        print(f"flowlens: {args.input}: {exc}", file=sys.stderr)
        return 1
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        print(f"flowlens: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"risk-eval: {count:,} commits scored in {time.monotonic() - started:.1f} s "
              f"-> {args.output}", file=sys.stderr)  # fmt: skip
    return 0


def _positive_days(value: str) -> float:
    days = float(value)
    if not 0 < days <= MAX_SINCE_DAYS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"DAYS must be above 0 and at most {MAX_SINCE_DAYS}")
    return days


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="flowlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dev", help="run the whole system locally (database, ingest, poller, API)")
    p.add_argument("--demo", action="store_true", help="replay a bundled demo story once up")
    p.set_defaults(func=_dev)

    p = sub.add_parser("replay", help="sign and send webhook payload files as GitHub would")
    p.add_argument("files", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--event", help="event name (default: the file's folder name)")
    p.add_argument("--url", help="ingest URL (default: http://localhost:$INGEST_PORT/)")
    p.add_argument("--secret", help="webhook secret (default: $GITHUB_WEBHOOK_SECRET)")
    p.set_defaults(func=_replay)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("poll", help="run the poller: scan for events and analyse new commits")
    p.add_argument("--once", action="store_true", help="one scan, then exit")
    p.set_defaults(func=_poll)

    p = sub.add_parser(
        "sync", help="pull recent pull requests, reviews and workflow runs from the GitHub API"
    )
    p.add_argument("repositories", nargs="*", metavar="OWNER/REPO",
                   help="default: $SYNC_REPOSITORIES")  # fmt: skip
    p.add_argument("--since", type=_positive_days, metavar="DAYS",
                   help="how far back (default: $SYNC_SINCE_DAYS, 7)")  # fmt: skip
    p.add_argument("--loop", action="store_true",
                   help="keep syncing every $SYNC_INTERVAL_SECONDS (shared schedule)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_sync)

    p = sub.add_parser(
        "events", help="inspect stored deliveries; requeue failed ones, reapply unapplied ones"
    )
    ev = p.add_subparsers(
        dest="events_command", required=True, metavar="{failed,retry,unapplied,reapply,payload}"
    )
    failed = ev.add_parser("failed", help="list events that failed for good, with their errors")
    failed.add_argument("--limit", type=_count, default=100)
    payload = ev.add_parser("payload", help="print a stored delivery's JSON body")
    payload.add_argument("delivery", help="its X-GitHub-Delivery id")
    retry = ev.add_parser("retry", help="put failed events back in the queue")
    retry.add_argument("id", nargs="?", type=int, help="event id (from `events failed`)")
    retry.add_argument("--all", action="store_true", help="every failed event")
    unapplied = ev.add_parser(
        "unapplied", help="list signed deliveries kept whole because a field did not fit"
    )
    unapplied.add_argument("--limit", type=_count, default=100)
    reapply = ev.add_parser("reapply", help="apply unapplied deliveries with this version's code")
    reapply.add_argument("id", nargs="?", type=int, help="event id (from `events unapplied`)")
    reapply.add_argument("--all", action="store_true", help="every unapplied event")
    p.set_defaults(func=_events)

    p = sub.add_parser(
        "checks", help="write-back to GitHub: list checks/statuses that failed for good; retry"
    )
    ck = p.add_subparsers(dest="checks_command", required=True, metavar="{failed,retry}")
    failed_checks = ck.add_parser("failed", help="list write-backs that failed for good")
    failed_checks.add_argument("--limit", type=_count, default=100)
    retry_checks = ck.add_parser("retry", help="put failed write-backs back in the queue")
    retry_checks.add_argument("id", nargs="?", type=int, help="write-back id (from `failed`)")
    retry_checks.add_argument("--all", action="store_true", help="every failed write-back")
    p.set_defaults(func=_checks)

    p = sub.add_parser(
        "retention",
        help="run retention now (old payloads, deliveries, history, feed rows; docs/OPERATIONS.md)",
    )
    p.add_argument("--status", action="store_true", help="show the last run and the next one")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_retention)

    p = sub.add_parser(
        "risk-eval",
        help="score a commit stream (JSON lines) with the built-in risk model and history",
    )
    p.add_argument("--input", required=True, metavar="FILE.jsonl[.gz]")
    p.add_argument("--output", required=True, metavar="OUT.jsonl")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_risk_eval)

    from flowlens.cloud import add_cloud_commands

    add_cloud_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `flowlens` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"flowlens: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        problem = _database_problem(exc, migrating=args.command == "migrate")
        if problem is None:
            raise
        print(f"flowlens: {problem}", file=sys.stderr)
        return 1


def _database_problem(exc: BaseException, *, migrating: bool) -> str | None:
    """One line for a database that cannot be reached, or lacks a migration; None for
    anything else (a bug keeps its traceback)."""
    import psycopg

    from flowlens.db import DatabaseUnavailable, first_line

    missing = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)
    if isinstance(exc, missing) and not migrating:
        return f"{first_line(exc)} (is the database migrated? run `flowlens migrate`)"
    operational = (
        DatabaseUnavailable,
        psycopg.OperationalError,  # unreachable, no such database, bad password
        psycopg.errors.InsufficientPrivilege,  # the role may not do this
        psycopg.errors.ReadOnlySqlTransaction,  # a read replica
    )
    if isinstance(exc, operational):
        return f"database: {first_line(exc)}"
    return None
