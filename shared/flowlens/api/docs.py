"""Swagger UI at /docs from files the API serves itself: no third party's script runs on the
API's origin, and the page works offline."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/static"
# fastapi-offline ships swagger-ui-dist's bundle, stylesheet and a favicon.
ASSETS = Path(fastapi_offline.__file__).parent / "static"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def csp(html: str) -> str:
    """A Content-Security-Policy for the page: its own files, plus the one inline script
    get_swagger_ui_html writes (allowed by its hash)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and its files under /docs/static (open, like /openapi.json).

    Create the app with docs_url=None and redoc_url=None first.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        html = bytes(page.body).decode()
        page.headers["Content-Security-Policy"] = csp(html)
        page.headers["X-Frame-Options"] = "DENY"
        page.headers["Referrer-Policy"] = "no-referrer"
        return page
