"""schemathesis against the API's own /openapi.json: no 5xx, and every answer matches the
schema. A small budget in `make test`; `make fuzz` sets FLOWLENS_FUZZ_EXAMPLES higher."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from flowlens.db import Database
from tests.integration.test_api_support import (
    analyse,
    deliver,
    opened,
    served_api,
    workflow_run,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FLOWLENS_FUZZ_EXAMPLES", "15"))


def fuzz_operations(base: str, spec: dict[str, object]) -> list[str]:
    """Run every operation's cases against the served API; the failures, described."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    with requests.Session() as session:  # closed here: no socket left for the GC to warn about
        for result in schema.get_all_operations():
            _fuzz(result.ok(), base, session, failures)
    return failures


def _fuzz(
    operation: schemathesis.APIOperation,
    base: str,
    session: requests.Session,
    failures: list[str],
) -> None:
    """One operation's cases; a failure (with hypothesis's smallest case) joins `failures`."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base, session=session, timeout=10)

    try:
        check()
    except Exception as exc:
        failures.append(f"{operation.label}: {exc}"[:2000])


async def test_every_operation_answers_within_its_schema(dsn: str, db: Database) -> None:
    await deliver(db, "pull_request", opened(2))
    await deliver(db, "workflow_run", workflow_run("completed", "failure", "2019-05-15T15:22:00Z"))
    assert await analyse(db) == 1
    async with served_api(dsn) as (_, base), httpx.AsyncClient(base_url=base) as client:
        spec = (await client.get("/openapi.json")).json()
        failures = await asyncio.to_thread(fuzz_operations, base, spec)
    assert not failures, "\n\n".join(failures)
