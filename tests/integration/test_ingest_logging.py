"""Ingest logs: JSON lines with delivery, repository and trace; never secrets or payloads."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from flowlens import logs
from tests.conftest import load_fixture
from tests.helpers import SECRET, encode, github_headers


async def test_ingest_log_lines(
    ingest_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    formatter = logs.JsonFormatter()
    payload = load_fixture("pull_request/opened.payload.json")
    body, ctype = encode(payload)
    headers = github_headers("pull_request", body, delivery="log-1", content_type=ctype)
    headers["X-Cloud-Trace-Context"] = "105445aa7843bc8bf206b12000100000/1;o=1"
    assert (await ingest_client.post("/", content=body, headers=headers)).status_code == 202
    bad = github_headers("pull_request", body, delivery="log-2", secret="nope")
    assert (await ingest_client.post("/", content=body, headers=bad)).status_code == 401
    lines = [
        json.loads(formatter.format(r)) for r in caplog.records if r.name.startswith("flowlens")
    ]
    accepted = [line for line in lines if line.get("delivery") == "log-1"]
    assert accepted and accepted[0]["component"] == "ingest"
    assert accepted[0]["repository"] == "Codertocat/Hello-World"
    assert accepted[0]["logging.googleapis.com/trace"].endswith("105445aa7843bc8bf206b12000100000")
    everything = "\n".join(json.dumps(line) for line in lines)
    assert SECRET not in everything
    assert payload["pull_request"]["body"] not in everything


async def test_trace_names_the_project_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cloud Logging groups a request's lines only under projects/P/traces/T; Terraform sets
    GOOGLE_CLOUD_PROJECT, which the functions runtime does not."""
    from flowlens.ingest.app import close_all
    from tests.integration.conftest import ingest_app

    caplog.set_level(logging.INFO)
    formatter = logs.JsonFormatter()
    body, ctype = encode(load_fixture("pull_request/opened.payload.json"))
    seen = {}
    for project, delivery in ((None, "trace-1"), ("flowlens-prod", "trace-2")):
        if project:
            monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
        else:
            monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        app = ingest_app(monkeypatch, dsn)
        headers = github_headers("pull_request", body, delivery=delivery, content_type=ctype)
        headers["X-Cloud-Trace-Context"] = "105445aa7843bc8bf206b12000100000/1;o=1"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            assert (await client.post("/", content=body, headers=headers)).status_code < 300
        await close_all()
        lines = [json.loads(formatter.format(r)) for r in caplog.records]
        seen[delivery] = {
            line["logging.googleapis.com/trace"]
            for line in lines
            if line.get("delivery") == delivery
        }
    assert seen["trace-1"] == {"105445aa7843bc8bf206b12000100000"}
    assert seen["trace-2"] == {"projects/flowlens-prod/traces/105445aa7843bc8bf206b12000100000"}
