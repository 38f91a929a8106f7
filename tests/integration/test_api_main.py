"""services/api/main.py: the app from the environment, the dashboard mounted at / last."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "services" / "api" / "main.py"


def load_main(monkeypatch: pytest.MonkeyPatch, dsn: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("LOG_FORMAT", "text")
    spec = importlib.util.spec_from_file_location("flowlens_api_main_under_test", MAIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_entry_point_serves_api_docs_and_dashboard(
    monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    app = load_main(monkeypatch, dsn).app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.get("/api/prs")).json() == []
            assert (await client.get("/healthz")).status_code == 200
            assert "swagger" in (await client.get("/docs")).text.lower()
            missing = await client.get("/api/nothing")
            assert missing.status_code == 404 and set(missing.json()) == {"error"}
            index = await client.get("/")  # the dashboard, mounted from services/api/static
            assert index.status_code == 200
            assert index.headers["content-type"].startswith("text/html")
