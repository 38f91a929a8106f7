"""The dashboard in a real browser against the real stack (`flowlens dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from flowlens.db import Database
from flowlens.devdb import free_port
from flowlens.replay import send
from flowlens.serving import DASHBOARD_CSP
from tests.conftest import load_fixture
from tests.helpers import SECRET, interrupt, variant, wait_for_insight

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.async_api import Browser, BrowserContext, Page, Route, WebSocketRoute

# One event loop for the module: its tests share one Chromium (a start costs about a second).
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

# Records every CSP violation the page reports, from before its first script runs.
WATCH_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`));"""


async def _watch(page: Page) -> tuple[list[str], list[str]]:
    """(every URL the page asks for, console messages about the CSP), as they come."""
    asked: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.on(
        "console",
        lambda m: console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    await page.add_init_script(WATCH_CSP)
    return asked, console


def _elsewhere(urls: list[str]) -> list[str]:
    return [u for u in urls if urlsplit(u).hostname != "127.0.0.1"]


def _require_browser() -> str:
    if CHROMIUM:
        return CHROMIUM
    message = (
        "the dashboard test needs Debian's chromium: `sudo apt-get install chromium` "
        "(.ci/run installs it in CI)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


async def _wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 90) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout * 10)):
            if proc.returncode is not None:
                raise AssertionError(f"flowlens dev exited with {proc.returncode}")
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never came up")


@contextlib.asynccontextmanager
async def dev_stack(dsn: str, **extra: str) -> AsyncIterator[tuple[str, str]]:
    """`flowlens dev` on free ports, up and healthy: (ingest URL, API base URL)."""
    ingest_port, api_port = free_port(), free_port()
    env = {
        **os.environ, "DATABASE_URL": dsn, "GITHUB_WEBHOOK_SECRET": SECRET,
        "INGEST_PORT": str(ingest_port), "API_PORT": str(api_port),
        "POLLER_PORT": str(free_port()), "GITHUB_API_URL": "",
        "POLL_INTERVAL_SECONDS": "0.2", "LOG_FORMAT": "text", **extra,
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlens", "dev", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    ingest = f"http://127.0.0.1:{ingest_port}/"
    base = f"http://127.0.0.1:{api_port}"
    try:
        await _wait_http(f"{base}/healthz", proc)
        await _wait_http(ingest + "healthz", proc)
        yield ingest, base
    finally:
        await interrupt(proc, 20)


async def test_dashboard_shows_pipeline_and_updates_live(dsn: str) -> None:
    chromium = _require_browser()
    from playwright.async_api import async_playwright

    async with dev_stack(dsn) as (ingest, base):
        opened = load_fixture("pull_request/opened.payload.json")
        with httpx.Client() as client:
            _, resp = send(client, ingest, SECRET, "pull_request", opened)
            assert resp.status_code == 202
        # The poller writes the built-in insight; wait for it through REST.
        prs = await wait_for_insight(base)
        assert prs and prs[0]["riskLevel"] in ("low", "medium", "high")
        risk = prs[0]["riskLevel"]

        ARTIFACTS.mkdir(exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )  # fmt: skip
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            asked, console = await _watch(page)
            response = await page.goto(base + "/")
            assert response is not None
            headers = await response.all_headers()
            assert headers["content-security-policy"] == DASHBOARD_CSP
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer"
            row = page.locator('[data-testid="pr-row"][data-pr-number="2"]')
            await row.wait_for(timeout=15000)
            await (
                page.locator('[data-testid="conn-state"]')
                .filter(has_text="onnected")
                .first.wait_for(timeout=15000)
            )
            assert await row.locator('[data-testid="stage-pr"]').get_attribute("data-state") == (
                "opened"
            )
            assert (
                await row.locator('[data-testid="stage-build"]').get_attribute("data-state")
                == "pending"
            )
            badge = row.locator('[data-testid="risk-badge"]')
            assert risk in (await badge.inner_text()).lower()
            await page.evaluate("window.__noReload = true")

            # Derived variant: the fixture's run, for this PR's head, concluding in failure.
            run = variant(
                load_fixture("workflow_run/completed.with-pull-requests.payload.json"),
                **{"workflow_run.conclusion": "failure",
                   "workflow_run.head_sha": opened["pull_request"]["head"]["sha"],
                   "repository": opened["repository"]},
            )  # fmt: skip
            with httpx.Client() as client:
                _, resp = send(client, ingest, SECRET, "workflow_run", run)
                assert resp.status_code == 202
            stage = row.locator('[data-testid="stage-build"][data-state="buildFailed"]')
            await stage.wait_for(timeout=15000)
            status = await row.locator('[data-testid="pr-status"]').inner_text()
            assert "fail" in status.lower()
            # The risk read against outcomes: the analysed head's level now shows its failed
            # build (the card refetches with the builds).
            chart = page.locator('[data-testid="risk-chart"]')
            failed_bar = chart.locator(
                f'[data-level="{risk}"] [data-outcome="buildFailed"][data-rate="1"]'
            )
            await failed_bar.wait_for(timeout=15000)
            words = await chart.locator(f'[data-level="{risk}"]').text_content()
            assert "1 analysed" in (words or "")
            # DORA: no deployments yet; a successful production deployment arrives and the
            # cards follow live (metrics_update, then a refetch), the chart shows its day.
            frequency = page.locator('[data-testid="dora-deployment-frequency"]')
            assert (await frequency.inner_text()).strip() == "—"
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            deployed = variant(
                load_fixture("deployment_status/payload.json"),
                **{"deployment_status.created_at": now, "repository": opened["repository"]},
            )  # fmt: skip
            with httpx.Client() as client:
                _, resp = send(client, ingest, SECRET, "deployment_status", deployed)
                assert resp.status_code == 202
            card = page.locator(
                '[data-testid="dora-card-deployment-frequency"][data-band="medium"]'
            )
            await card.wait_for(timeout=15000)
            assert (await frequency.inner_text()).strip() == "0.2 / week"
            assert await page.locator('[data-testid="dora-chart"] .seg-success').count() == 1
            assert await page.evaluate("window.__noReload === true"), "the page reloaded"
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # Accessible markup: landmarks and a labelled repository filter.
            assert await page.locator("main").count() == 1
            assert await page.locator("header").count() >= 1
            assert await page.get_by_label("Repository").count() >= 1

            # The page did all that under its CSP without one violation or outside request...
            assert await page.evaluate("window.__csp") == [] and console == []
            assert _elsewhere(asked) == [], asked
            # ...and the CSP is in force: an injected inline script does not run.
            await page.evaluate("""() => {
                const s = document.createElement("script");
                s.textContent = "window.__injected = true";
                document.head.append(s);
            }""")  # fmt: skip
            await page.wait_for_function("() => window.__csp.length > 0")
            assert await page.evaluate("window.__csp") == ["script-src-elem blocked inline"]
            assert await page.evaluate("window.__injected") is None
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    executable = _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def db(dsn: str) -> AsyncIterator[Database]:
    """The suite's `db`, its pool opened in the loop this module's tests run in."""
    database = Database(dsn, min_size=0, max_size=20)
    await database.open()
    yield database
    await database.close()


@contextlib.asynccontextmanager
async def _fresh(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A context of its own (storage, routes, pages) in the shared browser."""
    context = await browser.new_context()
    try:
        yield context
    finally:
        await context.close()


def _dashboard_app(dsn: str) -> FastAPI:
    """The API app with the dashboard mounted, as services/api/main.py serves it."""
    from flowlens.api import create_app
    from flowlens.serving import NOSNIFF, SecurityHeaders, dashboard
    from tests.integration.test_api_support import api_settings

    app = create_app(api_settings(dsn))
    app.add_middleware(SecurityHeaders, headers=NOSNIFF)
    app.mount("/", dashboard(ROOT / "services/api/static"))
    return app


async def test_api_docs_render_with_no_request_leaving_the_machine(
    dsn: str, chromium: Browser
) -> None:
    """/docs shows every operation and runs one, from the API's own files: no CDN, no other
    host asked, no CSP violation."""
    from flowlens.api.server import serve

    left: list[str] = []

    async def local_only(route: Route) -> None:
        if _elsewhere([route.request.url]):
            left.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            paths = (await client.get("/openapi.json")).json()["paths"]
        operations = sum(len(methods) for methods in paths.values())
        page = await browser.new_page()
        asked, console = await _watch(page)
        await page.route("**/*", local_only)
        response = await page.goto(f"{base}/docs")
        assert response is not None and response.ok
        assert "content-security-policy" in await response.all_headers()

        listed = page.locator(".opblock")
        await listed.first.wait_for(timeout=15000)
        assert await listed.count() == operations
        texts = await page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/api/prs", "/api/builds", "/healthz"} <= {t.strip() for t in texts}, texts

        # Try it out: the page calls the API it documents.
        prs = listed.filter(has=page.locator('.opblock-summary-path[data-path="/api/prs"]'))
        await prs.locator(".opblock-summary").click()
        await prs.get_by_role("button", name="Try it out").click()
        await prs.get_by_role("button", name="Execute").click()
        status = prs.locator(".live-responses-table tbody .response-col_status")
        await status.filter(has_text="200").wait_for(timeout=15000)

        assert left == [] and _elsewhere(asked) == [], (left, asked)
        assert any(u.endswith("/docs/static/swagger-ui-bundle.js") for u in asked), asked
        assert await page.evaluate("window.__csp") == [] and console == []


async def test_a_change_while_the_socket_is_slow_to_open_is_shown(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """Connect first, then load: a change committed after the page loaded but before its socket
    opened (an API instance whose feed reader is slow at start-up) reaches the page, because
    the snapshot is taken when the socket opens."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import deliver, opened, services, slow_first_feed_pass

    await deliver(db, "pull_request", opened(2, title="before"))
    app = _dashboard_app(dsn)
    tailer = services(app).tailer
    slow_first_feed_pass(app)
    async with _fresh(chromium) as browser:
        page = await browser.new_page()
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        async with serve(app) as base:  # the reader's first pass starts now, for 1 s
            await page.goto(f"{base}/")
            await asyncio.sleep(0.3)  # the page has loaded; its socket waits for the reader
            assert not tailer.ready.is_set()
            changed = "changed while the socket opened"
            await deliver(db, "pull_request", opened(2, title=changed, at="2019-05-15T16:00:00Z"))
            await page.get_by_text(changed).first.wait_for(timeout=10000)
    # The whole list in one page (the API's default of 100 left quiet open PRs out).
    assert any("/api/prs?" in url and "limit=1000" in url for url in asked), asked


async def test_a_reconnect_shows_an_insight_written_while_the_socket_was_down(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """A new head analysed at the same risk level while the socket was down: after the
    reconnect the card shows that commit's insight, not the earlier one marked stale."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import SHA1, analyse, deliver, opened

    sha2 = "b" * 40
    await deliver(db, "pull_request", opened(2))
    assert await analyse(db) == 1
    forwarding = True
    sockets: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        # The real server's messages reach the page only while `forwarding`.
        server = ws.connect_to_server()
        server.on_message(lambda message: ws.send(message) if forwarding else None)
        sockets.append(ws)

    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.route_web_socket(re.compile(r"/ws(\?|$)"), through)
        await page.goto(f"{base}/")
        card = page.locator('[data-testid="pr-row"][data-pr-number="2"]')
        commit = card.locator(".insight-meta code")
        await commit.filter(has_text=SHA1[:7]).wait_for(timeout=15000)

        forwarding = False  # what happens now is lost, as on a dropped connection
        synchronize = opened(2, at="2019-05-15T16:00:00Z", sha=sha2)
        await deliver(db, "pull_request", {**synchronize, "action": "synchronize"})
        assert await analyse(db) == 1
        async with httpx.AsyncClient(base_url=base) as client:
            insights = (await client.get("/api/insights/2")).json()
        assert [i["commitSha"] for i in insights] == [sha2, SHA1]
        assert insights[0]["riskLevel"] == insights[1]["riskLevel"]  # what hid the new one

        forwarding = True
        await sockets[-1].close(code=1013, reason="test: reconnect")
        await commit.filter(has_text=sha2[:7]).wait_for(timeout=15000)
        assert await card.locator(".stale").count() == 0


async def test_a_push_back_to_an_analysed_commit_shows_that_commits_insight(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """Head A, then B, then A again: the poller makes A's insight the latest again, and the
    card shows it, though B's is the newest in /api/insights."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import SHA1, analyse, deliver, opened

    heads = [(SHA1, "2019-05-15T15:20:33Z"), ("b" * 40, "2019-05-15T16:00:00Z"),
             (SHA1, "2019-05-15T16:10:00Z")]  # fmt: skip
    for n, (sha, at) in enumerate(heads):
        payload = opened(2, at=at, sha=sha)
        await deliver(
            db, "pull_request", payload if n == 0 else {**payload, "action": "synchronize"}
        )
        await analyse(db)
    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            newest_first = [i["commitSha"] for i in (await client.get("/api/insights/2")).json()]
        assert newest_first == ["b" * 40, SHA1]  # no second analysis of A
        page = await browser.new_page()
        await page.goto(f"{base}/")
        card = page.locator('[data-testid="pr-row"][data-pr-number="2"]')
        await card.locator(".insight-meta code").wait_for(timeout=15000)
        assert await card.locator(".insight-meta code").inner_text() == SHA1[:7]
        assert await card.locator(".stale").count() == 0


async def test_a_repository_filter_in_another_letter_case_shows_its_prs(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """?repo= in lower case (GitHub's names ignore case, and so does the API): the page shows
    the repository's PRs under its stored name, and live updates reach them."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import REPO, deliver, opened

    await deliver(db, "pull_request", opened(2, title="before"))
    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?repo={REPO.lower()}")
        card = page.locator('[data-testid="pr-row"][data-pr-number="2"]')
        await card.wait_for(timeout=15000)
        await page.locator('[data-testid="conn-state"][data-state="connected"]').wait_for(
            timeout=15000
        )
        await deliver(db, "pull_request", opened(2, title="after", at="2019-05-15T16:00:00Z"))
        await card.get_by_text("after").wait_for(timeout=15000)
        assert await page.evaluate("new URL(location.href).searchParams.get('repo')") == REPO
        options = await page.locator("#repo-select option").all_inner_texts()
        assert [o for o in options if o.lower() == REPO.lower()] == [REPO]


async def test_a_refused_filter_is_not_taken_for_a_token_problem(
    dsn: str, chromium: Browser
) -> None:
    """A 1008 close for a malformed repo filter (one that even contains "token") shows the
    API's reason, not the token state, keeps it in view, and retries with backoff."""
    from flowlens.api.server import serve

    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        sockets: list[float] = []
        page.on("websocket", lambda ws: sockets.append(asyncio.get_running_loop().time()))
        # Every connection state and banner text the page shows, from its first script on.
        await page.add_init_script(
            """window.__seen = [];
            new MutationObserver(() => {
              const banner = document.getElementById("banner");
              window.__seen.push(document.documentElement.dataset.conn ?? "",
                                 banner && !banner.hidden ? banner.textContent : "");
            }).observe(document, {subtree: true, childList: true, attributes: true});"""
        )
        await page.goto(f"{base}/?repo=tokens")
        banner = page.locator("#banner").filter(
            has_text="refused live updates: repo must be owner/"
        )
        await banner.wait_for(timeout=15000)
        first = asyncio.get_running_loop().time()
        await asyncio.sleep(4)
        assert "auth" not in await page.evaluate("window.__seen")  # "Waiting for an access token"
        assert await banner.is_visible()  # the snapshot that followed did not replace it
        # Backoff (about 1 s, then 2 s, ...), not a reconnect per REST answer: before, 58
        # sockets opened in 8 s.
        assert len([t for t in sockets if t >= first]) <= 4, sockets


async def test_repositories_differing_in_punctuation_get_their_own_cards(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """Card ids (the builds table links to them) stay unique for names like a/b.c and a/b-c."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import deliver, opened

    for repo in ("acme/hello.world", "acme/hello-world", "acme/hello_world"):
        await deliver(db, "pull_request", opened(2, repo=repo))
    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/")
        rows = page.locator('[data-testid="pr-row"]')
        await rows.nth(2).wait_for(timeout=15000)
        ids = await rows.evaluate_all("(cards) => cards.map((c) => c.id)")
        assert len(ids) == 3 and len(set(ids)) == 3, ids
        for card_id in ids:  # each id finds its own card, and its title its own element
            assert await page.locator(f"#{card_id}").count() == 1
            assert await page.locator(f"#{card_id}-title").count() == 1
        # Each repository group is labelled by its own heading.
        labels = await page.locator('[data-testid="repo-group"]').evaluate_all(
            """(groups) => groups.map((g) => [g.dataset.repo,
                document.getElementById(g.getAttribute("aria-labelledby"))?.textContent])"""
        )
        assert len(labels) == 3 and all(repo == heading for repo, heading in labels), labels


async def test_a_renamed_repository_replaces_its_rows_without_a_reload(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """A rename announces every PR under the new name: the page shows them there, and the old
    name's group goes, without the user reloading."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import REPO, deliver, opened

    for number in (2, 3):
        await deliver(db, "pull_request", opened(number, title=f"PR {number}"))
    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/")
        await page.locator(f'[data-testid="repo-group"][data-repo="{REPO}"]').wait_for(
            timeout=15000
        )
        await page.locator('[data-testid="conn-state"][data-state="connected"]').wait_for(
            timeout=15000
        )
        await page.evaluate("window.__sameDocument = true")
        # Derived: the repository/edited fixture as a rename of the PRs' repository.
        repository = variant(opened()["repository"], name="Hello-Universe",
                             full_name="Codertocat/Hello-Universe",
                             updated_at="2030-01-01T00:00:00Z")  # fmt: skip
        renamed = variant(load_fixture("repository/edited.payload.json"), action="renamed",
                          changes={"repository": {"name": {"from": "Hello-World"}}},
                          repository=repository)  # fmt: skip
        await deliver(db, "repository", renamed)
        group = page.locator('[data-testid="repo-group"][data-repo="Codertocat/Hello-Universe"]')
        await group.locator('[data-testid="pr-row"]').nth(1).wait_for(timeout=15000)
        old = page.locator(f'[data-testid="repo-group"][data-repo="{REPO}"]')
        await old.wait_for(state="detached", timeout=15000)
        assert await page.locator('[data-testid="pr-row"]').count() == 2
        assert await page.evaluate("window.__sameDocument") is True
        options = await page.locator("#repo-select option").all_inner_texts()
        assert REPO not in options and "Codertocat/Hello-Universe" in options


async def test_a_case_only_rename_reaches_a_filtered_page(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """?repo= names the repository; GitHub renames it in another letter case: the page follows
    the new spelling instead of dropping every message for it."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import REPO, deliver, opened

    await deliver(db, "pull_request", opened(2, title="before"))
    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.goto(f"{base}/?repo={REPO}")
        await page.locator('[data-testid="pr-row"]').first.wait_for(timeout=15000)
        await page.locator('[data-testid="conn-state"][data-state="connected"]').wait_for(
            timeout=15000
        )
        spelled = REPO.lower()  # derived: the fixture's repository, renamed in lower case
        repository = variant(opened()["repository"], name=spelled.split("/")[1],
                             full_name=spelled, updated_at="2030-01-01T00:00:00Z")  # fmt: skip
        rename = variant(load_fixture("repository/edited.payload.json"), action="renamed",
                         changes={"repository": {"name": {"from": REPO.split("/")[1]}}},
                         repository=repository)  # fmt: skip
        await deliver(db, "repository", rename)
        group = page.locator(f'[data-testid="repo-group"][data-repo="{spelled}"]')
        await group.locator('[data-testid="pr-row"]').first.wait_for(timeout=15000)
        old = page.locator(f'[data-testid="repo-group"][data-repo="{REPO}"]')
        await old.wait_for(state="detached", timeout=15000)
        assert await page.locator('[data-testid="pr-row"]').count() == 1
        assert await page.evaluate("new URL(location.href).searchParams.get('repo')") == spelled


async def test_a_name_missing_from_the_repository_list_reloads_once(
    dsn: str, db: Database, chromium: Browser
) -> None:
    """A pr_update for a name the list does not have reloads the page's data once, not once
    per message (the list is capped, so a name can stay missing)."""
    from flowlens.api.server import serve
    from tests.integration.test_api_support import deliver, opened

    async with _fresh(chromium) as browser, serve(_dashboard_app(dsn)) as base:
        page = await browser.new_page()
        await page.route(
            re.compile(r"/api/repositories(\?|$)"),
            lambda route: route.fulfill(status=200, json=[]),
        )
        loads: list[str] = []
        page.on("request", lambda r: loads.append(r.url) if "/api/prs" in r.url else None)
        await page.goto(f"{base}/")
        await page.locator('[data-testid="conn-state"][data-state="connected"]').wait_for(
            timeout=15000
        )
        # A function, not an expression: Playwright evals an expression, which the CSP blocks.
        await page.wait_for_function("() => document.documentElement.dataset.loaded === 'true'")
        before = len(loads)
        for n, at in enumerate(
            ("2019-05-15T16:00:00Z", "2019-05-15T16:01:00Z", "2019-05-15T16:02:00Z")
        ):
            await deliver(db, "pull_request", opened(2, title=f"t{n}", at=at))
            await page.get_by_text(f"t{n}").first.wait_for(timeout=15000)
            await asyncio.sleep(0.8)  # past the reload's debounce
        assert len(loads) - before == 1, loads[before:]
