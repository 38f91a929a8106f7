"""Bearer tokens (API_TOKENS): REST needs the Authorization header; a socket takes it in that
header, in its subprotocols (`flowlens, bearer.<base64url token>`: what a browser can send), or
as ?token= (what the shipped Flutter app can send; redacted from every log line)."""

from __future__ import annotations

import base64
import binascii
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


# The subprotocol a socket client offers beside its token, and that the server selects (a
# browser fails the handshake unless the server selects one of the protocols it offered).
SUBPROTOCOL = "flowlens"
_BEARER_PROTOCOL = "bearer."


def subprotocols(conn: HTTPConnection) -> list[str]:
    """The protocols a socket client offered (Sec-WebSocket-Protocol), in order."""
    header = conn.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def protocol_token(conn: HTTPConnection) -> str | None:
    """The token a socket client offered as the subprotocol `bearer.<base64url token>`."""
    for protocol in subprotocols(conn):
        if protocol.startswith(_BEARER_PROTOCOL):
            encoded = protocol[len(_BEARER_PROTOCOL) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode("utf-8")
            except (binascii.Error, ValueError):
                return None
    return None


def allowed(conn: HTTPConnection, tokens: Sequence[str], *, socket: bool = False) -> bool:
    """No tokens configured, or the request carries one (a socket's subprotocol and query
    string count too)."""
    if not tokens:
        return True
    if token_ok(bearer(conn), tokens):
        return True
    if not socket:
        return False
    return token_ok(protocol_token(conn), tokens) or token_ok(
        conn.query_params.get("token"), tokens
    )


def origin_ok(conn: HTTPConnection, origins: Sequence[str]) -> bool:
    """Whether a browser's Origin may open the socket: its own host's, or one CORS_ORIGINS
    lists (`*`: any).

    Browsers apply no CORS to WebSockets, so without this any page could read the feed. No
    Origin header (not a browser: the Flutter app on a phone, a script) is always allowed.
    """
    origin = conn.headers.get("origin")
    if not origin or "*" in origins:
        return True
    if origin in origins:
        return True
    return urlsplit(origin).netloc.lower() == conn.headers.get("host", "").lower()
