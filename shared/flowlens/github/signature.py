"""X-Hub-Signature-256 verification and signing."""

from __future__ import annotations

import hashlib
import hmac
import re

# What GitHub sends: sha256= and 64 lower-case hex digits.
SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


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


def well_formed(header: str | None) -> bool:
    """Whether a header can be a signature at all (checked before any body is read)."""
    return header is not None and SIGNATURE.fullmatch(header.strip()) is not None


class StreamVerifier:
    """Verifies X-Hub-Signature-256 over a body fed in chunks, so it is hashed while read."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Hash the next chunk."""
        self._mac.update(chunk)

    def matches(self, header: str | None) -> bool:
        """Constant-time check of the header against everything fed so far."""
        if not header or not self._secret:
            return False
        given = header.strip().encode("utf-8", "replace")
        return hmac.compare_digest(("sha256=" + self._mac.hexdigest()).encode(), given)
