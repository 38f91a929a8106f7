"""How raw payloads are stored: compressed, and every stored form reads back."""

from __future__ import annotations

import json
import zlib

from flowlens.db.codec import pack_payload, unpack_payload
from tests.conftest import load_fixture


def test_a_payload_is_stored_compressed_and_reads_back_exactly() -> None:
    text = json.dumps(load_fixture("pull_request/opened.payload.json"), ensure_ascii=False)
    stored = pack_payload(text)
    assert len(stored) < len(text.encode()) / 4
    assert unpack_payload(stored) == text
    assert unpack_payload(pack_payload('{"a": "é\\u0000"}')) == '{"a": "é\\u0000"}'


def test_payloads_stored_by_earlier_versions_read_back() -> None:
    text = '{"action": "opened", "title": "é"}'
    assert unpack_payload(zlib.compress(text.encode(), 1)) == text  # zlib, before LZ4
    assert unpack_payload(text.encode()) == text  # uncompressed, before migration 003
    assert unpack_payload(memoryview(text.encode())) == text  # bytea as psycopg may hand it
