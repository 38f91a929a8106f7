"""A hypothesis battery of signed, mutated real payloads through the ingest function: never a
5xx, and afterwards raw_events holds exactly the delivery ids answered 2xx."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlens.db import Database
from flowlens.ingest.app import close_all
from tests.conftest import FIXTURES
from tests.helpers import github_headers
from tests.integration.conftest import ingest_app

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FLOWLENS_FUZZ_EXAMPLES", "15")) * 10

# Every stored real payload, with its event (the folder's name).
PAYLOADS = [
    (path.parent.name, json.loads(path.read_text("utf-8")))
    for path in sorted((FIXTURES / "github").glob("*/*.json"))
]

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    # Infinity too: Python writes it, and the payload parser reads it.
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    # Identifiers past what an index entry holds.
    | st.text(alphabet="ab/é", min_size=3000, max_size=13000),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a member of a JSON document."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found.append((*prefix, i))
            found.extend(paths(child, (*prefix, i)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A real payload with one to three members replaced (a value of any JSON type) or removed."""
    event, payload = draw(st.sampled_from(PAYLOADS))
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(payload)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent: Any = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return event, payload


async def test_signed_mutations_never_get_a_5xx_and_every_2xx_is_stored(
    monkeypatch: pytest.MonkeyPatch, dsn: str, db: Database
) -> None:
    app = ingest_app(monkeypatch, dsn)
    loop = asyncio.get_running_loop()
    answered: dict[str, int] = {}
    problems: list[str] = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest"
        ) as client:

            async def post(event: str, payload: dict[str, Any]) -> None:
                delivery = str(uuid.uuid4())
                body = json.dumps(payload).encode()
                headers = github_headers(event, body, delivery=delivery)
                response = await client.post("/", content=body, headers=headers)
                answered[delivery] = response.status_code
                if response.status_code >= 500:
                    problems.append(f"{response.status_code} {response.text[:300]} for {event} "
                                    f"{body[:300]!r}")  # fmt: skip

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=mutated())
            def battery(case: tuple[str, dict[str, Any]]) -> None:
                asyncio.run_coroutine_threadsafe(post(*case), loop).result(timeout=30)

            await asyncio.to_thread(battery)
    finally:
        await close_all()
    assert not problems, "\n".join(problems[:10])
    async with db.transaction() as tx:
        cur = await tx.conn.execute("SELECT delivery_id FROM raw_events")
        stored = {row["delivery_id"] for row in await cur.fetchall()}
    assert stored == {d for d, status in answered.items() if 200 <= status < 300}
    assert len(answered) >= EXAMPLES // 2  # the battery ran


def test_the_battery_uses_every_fixture_folder() -> None:
    folders = {p.name for p in (FIXTURES / "github").iterdir() if p.is_dir()}
    assert {event for event, _ in PAYLOADS} == folders
    assert Path(FIXTURES).is_dir()
