"""X-Hub-Signature-256 verification and signing."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for this body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of X-Hub-Signature-256 against the raw body."""
    if not header or not header.startswith("sha256=") or not secret:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a forged header's).
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)
