"""The `flowlens` command: dev, migrate, poll, replay, events."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from flowlens import logs
from flowlens.settings import ConfigError, Settings


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


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="flowlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(func=_migrate)
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
