"""The dashboard with API_TOKENS in a real browser: its socket sends the token as a subprotocol,
never in the URL, and goes live."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from flowlens.replay import send
from tests.conftest import load_fixture
from tests.e2e.test_dashboard_browser import _require_browser, dev_stack
from tests.helpers import SECRET, variant

pytestmark = pytest.mark.browser

TOKEN = "dash-token-51c0a9"


async def test_the_dashboards_socket_carries_the_token_outside_the_url(dsn: str) -> None:
    chromium = _require_browser()
    from playwright.async_api import async_playwright

    async with dev_stack(dsn, API_TOKENS=TOKEN) as (ingest, base):
        opened = load_fixture("pull_request/opened.payload.json")
        with httpx.Client() as client:
            assert send(client, ingest, SECRET, "pull_request", opened)[1].status_code == 202
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )  # fmt: skip
            page = await browser.new_page()
            # The token as the dashboard keeps it once someone entered it.
            await page.add_init_script(f"sessionStorage.setItem('flowlens.apiToken', {TOKEN!r});")
            # What the page hands the browser for each socket it opens.
            await page.add_init_script(
                "window.__sockets = []; const Native = window.WebSocket;"
                "window.WebSocket = function (url, protocols) {"
                "  window.__sockets.push([String(url), protocols || []]);"
                "  return new Native(url, protocols); };"
                "window.WebSocket.prototype = Native.prototype;"
                "Object.assign(window.WebSocket, Native);"
            )
            await page.goto(base + "/")
            row = page.locator('[data-testid="pr-row"][data-pr-number="2"]')
            await row.wait_for(timeout=15000)
            await (
                page.locator('[data-testid="conn-state"]')
                .filter(has_text="onnected")
                .first.wait_for(timeout=15000)
            )
            # Live: a failed build reaches the open page over the token-guarded socket.
            run = variant(
                load_fixture("workflow_run/completed.with-pull-requests.payload.json"),
                **{"workflow_run.conclusion": "failure",
                   "workflow_run.head_sha": opened["pull_request"]["head"]["sha"],
                   "workflow_run.pull_requests.0.head.sha": opened["pull_request"]["head"]["sha"],
                   "repository": opened["repository"]},
            )  # fmt: skip
            with httpx.Client() as client:
                assert send(client, ingest, SECRET, "workflow_run", run)[1].status_code == 202
            build = row.locator('[data-testid="stage-build"]')
            for _ in range(100):
                if await build.get_attribute("data-state") == "buildFailed":
                    break
                await asyncio.sleep(0.1)
            assert await build.get_attribute("data-state") == "buildFailed"
            sockets = await page.evaluate("window.__sockets")
            await browser.close()
        assert sockets, "the page opened no socket"
        for url, protocols in sockets:
            assert "token" not in url and TOKEN not in url
            assert protocols[0] == "flowlens" and protocols[1].startswith("bearer.")
