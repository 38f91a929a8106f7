"""/docs: Swagger UI from the app's own files, no CDN, open without a token."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.integration.test_api_support import asgi_api

TOKENS = "first-token, second-token"


class Refs(HTMLParser):
    """Every URL the page loads (script src, link href, img src) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag in ("script", "img") else a.get("href") if tag == "link" else None
        if url:
            self.loads.append((tag if tag != "link" else a.get("rel") or "link", url))
        self._in_script = tag == "script" and not a.get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


EXPECTED_TYPE = {
    "script": "javascript",
    "stylesheet": "text/css",
    "shortcut icon": "image/",
}


async def check_docs(client: httpx.AsyncClient) -> None:
    """The page, every file it loads and the schema all come from the app, without a token."""
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    # No absolute or protocol-relative URL at all: nothing points at another host.
    absolute = re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html)
    assert [u for u in absolute if urlsplit(u).hostname not in (None, "api")] == [], absolute

    refs = Refs()
    refs.feed(html)
    kinds = {kind for kind, _ in refs.loads}
    assert {"script", "stylesheet", "shortcut icon"} <= kinds, refs.loads
    for kind, url in refs.loads:
        assert urlsplit(url).netloc == "", f"{url} is not on the API's own origin"
        asset = await client.get(urljoin(str(page.url), url))
        assert asset.status_code == 200, url
        assert EXPECTED_TYPE[kind] in asset.headers["content-type"], (url, asset.headers)
        assert asset.content, url
        if kind == "script":
            assert b"SwaggerUIBundle" in asset.content

    # The schema the page's script loads.
    assert "url: '/openapi.json'" in html
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200 and schema.json()["paths"]

    # Its inline script runs under its CSP by hash; no other script source is allowed.
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert len(refs.inline) == 1 and "SwaggerUIBundle(" in refs.inline[0]
    digest = base64.b64encode(hashlib.sha256(refs.inline[0].encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in page.headers["content-security-policy"]


async def test_docs_are_served_from_the_apps_own_files(dsn: str) -> None:
    async with asgi_api(dsn) as (_, client):
        await check_docs(client)


async def test_docs_and_their_files_stay_open_with_tokens(dsn: str) -> None:
    async with asgi_api(dsn, api_tokens=TOKENS) as (_, client):
        assert (await client.get("/api/prs")).status_code == 401
        await check_docs(client)


@pytest.mark.parametrize("path", ["/redoc", "/docs/static/"])
async def test_no_cdn_page_and_no_listing(dsn: str, path: str) -> None:
    """ReDoc (a CDN page) is off, and the assets folder is not listed."""
    async with asgi_api(dsn) as (_, client):
        resp = await client.get(path)
        assert resp.status_code == 404 and set(resp.json()) == {"error"}
