"""Bearer tokens (API_TOKENS): REST needs the Authorization header, /ws the header or ?token=."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection


def bearer(conn: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_ok(token: str | None, tokens: Sequence[str]) -> bool:
    """Whether `token` is one of `tokens`, compared in constant time (every one is checked)."""
    if token is None:
        return False
    found = False
    for candidate in tokens:
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def allowed(conn: HTTPConnection, tokens: Sequence[str], *, query: bool = False) -> bool:
    """No tokens configured, or the request carries one (the query string only if `query`)."""
    if not tokens:
        return True
    if token_ok(bearer(conn), tokens):
        return True
    return query and token_ok(conn.query_params.get("token"), tokens)


def origin_ok(conn: HTTPConnection, origins: Sequence[str]) -> bool:
    """Whether a browser's Origin may open the socket: CORS_ORIGINS applies to /ws too.

    Browsers apply no CORS to WebSockets, so without this any page could read the feed.
    No CORS_ORIGINS (or `*`), no Origin header (not a browser), or the API's own host
    (the dashboard served at /) are always allowed.
    """
    origin = conn.headers.get("origin")
    if not origins or "*" in origins or not origin:
        return True
    if origin in origins:
        return True
    return urlsplit(origin).netloc.lower() == conn.headers.get("host", "").lower()
