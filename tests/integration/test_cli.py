"""The `flowlens` command as a user runs it: one-line errors and the documented exit codes
(0 ok, 1 failure, 2 usage or settings), never a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from flowlens.settings import ApiSettings, ConfigError
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]


async def flowlens(
    *args: str, cwd: Path = ROOT, **env: str
) -> tuple[int, str, str]:  # (exit code, stdout, stderr)
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "GITHUB_WEBHOOK_SECRET")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", *args, cwd=cwd, env={**base, "LOG_FORMAT": "text", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(stderr: str, *expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith("flowlens: ") and all(e in lines[0] for e in expected), lines


@pytest.mark.parametrize(
    ("env", "args", "code", "expected"),
    [
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, ["migrate"], 1,
         ["database:", "Connection refused"]),
        ({"DATABASE_URL": "notaurl"}, ["events", "failed"], 2, ["DATABASE_URL is neither"]),
        ({"DATABASE_URL": "postgresql://u:pw-9f2@h:abc/x"}, ["events", "failed"], 2,
         ["DATABASE_URL's port 'abc' is not a port"]),
        ({"DATABASE_URL": "postgresql://h:5432,h2:99999/x"}, ["migrate"], 2,
         ["port '5432,99999' is not a port"]),
        ({"DATABASE_URL": "postgresql://h/x?sslmode=bogus"}, ["migrate"], 2,
         ["sslmode 'bogus' is not one of disable"]),
        ({"DATABASE_URL": "postgresql://h/x", "LOG_LEVEL": "LOUD"}, ["migrate"], 2,
         ["LOG_LEVEL"]),
        ({"DATABASE_URL": "postgresql://h/x", "DB_POOL_MIN": "20", "DB_POOL_MAX": "5"},
         ["migrate"], 2, ["DB_POOL_MIN (20) is above DB_POOL_MAX (5)"]),
        ({}, ["sync", "--since", "nan", "octo/app"], 2, ["DAYS must be above 0"]),
        ({}, ["sync", "--since", "1000000", "octo/app"], 2, ["at most 3650"]),
        ({"DATABASE_URL": "postgresql://h/x"}, ["sync", "notarepo"], 2, ["notarepo"]),
        ({}, ["events", "failed", "--limit", "-1"], 2, ["must be 1 or more"]),
        ({}, ["events"], 2, ["required: {failed,retry,unapplied,reapply,payload}"]),
        ({"DATABASE_URL": "postgresql://h/x", "RAW_EVENT_DAYS": "3"}, ["retention"], 2,
         ["RAW_EVENT_DAYS (3) is below 7"]),
        ({"INGEST_PORT": "18791", "API_PORT": "18791"}, ["dev"], 1,
         ["INGEST_PORT, API_PORT and POLLER_PORT must differ", "API_PORT=18791"]),
    ],
)  # fmt: skip
async def test_bad_input_is_one_line_and_the_documented_exit_code(
    env: dict[str, str], args: list[str], code: int, expected: list[str]
) -> None:
    rc, _, err = await flowlens(*args, **env)
    assert rc == code, err
    if code == 2 and err.startswith("usage:"):  # argparse: usage, then the one line
        err = (
            err.splitlines()[-1]
            .replace("flowlens sync: error:", "flowlens:")
            .replace("flowlens events failed: error:", "flowlens:")
            .replace("flowlens events: error:", "flowlens:")
        )
    one_line(err, *expected)


async def test_an_unmigrated_database_says_to_migrate(pg_server: PgServer) -> None:
    name, url = await pg_server.fresh_database(migrated=False)
    try:
        rc, _, err = await flowlens("events", "failed", DATABASE_URL=url)
    finally:
        await pg_server.drop(name)
    assert rc == 1
    one_line(err, "raw_events", "run `flowlens migrate`")


async def test_a_role_without_rights_is_one_line(pg_server: PgServer) -> None:
    """Migrating as a role that may not create tables: the database's reason, no traceback."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name, url = await pg_server.fresh_database(migrated=False)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP ROLE IF EXISTS flowlens_reader")
        # A password: the embedded server asks every role for one (scram-sha-256).
        await conn.execute("CREATE ROLE flowlens_reader LOGIN PASSWORD 'reader-pw'")
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        reader = make_conninfo(url, user="flowlens_reader", password="reader-pw")
        assert conninfo_to_dict(reader)["user"] == "flowlens_reader"
        rc, _, err = await flowlens("migrate", DATABASE_URL=reader)
    finally:
        await pg_server.drop(name)
        async with await psycopg.AsyncConnection.connect(pg_server.admin_dsn, autocommit=True) as c:
            await c.execute("DROP ROLE IF EXISTS flowlens_reader")
    assert rc == 1
    one_line(err, "database:", "permission denied")


async def test_retry_takes_an_id_or_all_not_both(dsn: str) -> None:
    rc, _, err = await flowlens("events", "retry", "5", "--all", DATABASE_URL=dsn)
    assert rc == 2
    one_line(err, "not both")


async def test_poll_once_reports_its_time(dsn: str) -> None:
    rc, out, err = await flowlens("poll", "--once", DATABASE_URL=dsn, GITHUB_API_URL="")
    assert rc == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["scans"] == 1 and summary["seconds"] > 0


async def test_replay_reads_the_secret_dev_kept_and_needs_an_event_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "webhook-secret").write_text("kept-by-dev\n")
    (tmp_path / "x.json").write_text("{}")
    # No folder to name the event: a usage error before anything is sent.
    rc, out, err = await flowlens("replay", "x.json", "--url", "http://127.0.0.1:1/",
                                  cwd=tmp_path, FLOWLENS_HOME=str(home))  # fmt: skip
    assert rc == 2 and "sent" not in out
    one_line(err, "pass --event")
    # With a name, the secret `flowlens dev` kept under FLOWLENS_HOME is found (the target is
    # down, so nothing answers: exit 1, not 2 for a missing secret).
    rc, out, err = await flowlens("replay", "x.json", "--event", "ping", "--url",
                                  "http://127.0.0.1:1/", cwd=tmp_path,
                                  FLOWLENS_HOME=str(home))  # fmt: skip
    assert rc == 1 and out.startswith("0 unreachable"), (out, err)
    one_line(err, "nothing answers at http://127.0.0.1:1/")


# Blank too: a blank API_TOKENS secret left the API open while Terraform counted it as set.
@pytest.mark.parametrize("tokens", [",", " , ", ",,\t", "", "  \n"])
def test_api_tokens_that_name_no_token_are_refused(
    tokens: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKENS", tokens)
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    with pytest.raises(ConfigError, match="API_TOKENS names no token"):
        ApiSettings.from_env()


@pytest.mark.parametrize(("tokens", "listed"), [(" a , b ", ["a", "b"]), ("a,,b", ["a", "b"])])
def test_api_tokens_blanks_between_tokens_are_dropped(
    tokens: str, listed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKENS", tokens)
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    assert ApiSettings.from_env().api_token_list == listed


@pytest.mark.parametrize("secret", ["", "  \n"])
def test_a_blank_webhook_secret_is_missing(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every delivery would get 401 with nothing pointing at the setting: refused at start."""
    from flowlens.settings import IngestSettings

    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="missing required setting: GITHUB_WEBHOOK_SECRET"):
        IngestSettings.from_env()


def test_a_blank_api_tokens_does_not_stop_what_serves_no_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowlens.settings import IngestSettings, PollerSettings

    monkeypatch.setenv("API_TOKENS", "")
    monkeypatch.setenv("DATABASE_URL", "postgresql://h/x")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    assert IngestSettings.from_env().api_token_list == []
    assert PollerSettings.from_env().api_token_list == []
