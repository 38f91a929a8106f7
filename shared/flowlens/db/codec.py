"""How a delivery's JSON is stored in raw_events.payload."""

from __future__ import annotations

import zlib
from typing import cast

import lz4.frame

_LZ4_FRAME = b"\x04\x22\x4d\x18"


def pack_payload(raw_json: str) -> bytes:
    """A delivery's JSON as stored in raw_events.payload: an LZ4 frame with a checksum of its
    content, ~7x smaller and ~10x cheaper to make than zlib's fastest level (BENCHMARKS.md)."""
    return cast("bytes", lz4.frame.compress(raw_json.encode(), content_checksum=True))


def unpack_payload(stored: bytes | memoryview) -> str:
    """The JSON text of a stored payload: an LZ4 frame, zlib (rows written before LZ4 was used)
    or uncompressed (rows from before migration 003)."""
    data = bytes(stored)
    if data[:4] == _LZ4_FRAME:
        data = lz4.frame.decompress(data)
    elif data[:1] == b"\x78":
        data = zlib.decompress(data)
    return data.decode()
