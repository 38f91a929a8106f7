"""The client's address behind trusted proxies (PROXY_HOPS), from X-Forwarded-For."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


def _entries(scope: Scope, name: bytes) -> list[str]:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return [e.strip() for v in values for e in v.split(",") if e.strip()]


class ForwardedFor:
    """Sets the client (and scheme) from the entries the `hops` trusted proxies appended.

    Each proxy appends the address it saw to X-Forwarded-For, so only the last `hops` entries
    are the proxies' own words; anything left of them is what the client sent, which a client
    can forge (uvicorn's `--forwarded-allow-ips '*'` took the leftmost). Without enough entries
    the request did not come through the proxies, and the peer address stays.
    """

    def __init__(self, app: ASGIApp, hops: int) -> None:
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hops and scope["type"] in ("http", "websocket"):
            forwarded = _entries(scope, b"x-forwarded-for")
            if len(forwarded) >= self.hops:
                scope["client"] = (forwarded[-self.hops], 0)
                proto = _entries(scope, b"x-forwarded-proto")
                if proto and proto[-1] in ("http", "https"):
                    secure = proto[-1] == "https"
                    if scope["type"] == "websocket":
                        scope["scheme"] = "wss" if secure else "ws"
                    else:
                        scope["scheme"] = proto[-1]
        await self.app(scope, receive, send)
