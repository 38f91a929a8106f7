"""Sign and send payload files to an ingest URL the way GitHub does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flowlens.github.signature import sign


@dataclass(frozen=True)
class Sent:
    """One delivery and its answer."""

    path: str
    event: str
    delivery: str
    status: int
    answer: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def line(self) -> str:
        return f"{self.status} {self.answer:<9} {self.event:<20} {self.delivery}  {self.path}"


def payload_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Each JSON file named, and every *.json under each folder named (sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not found:
                raise FileNotFoundError(f"no .json files in {path}")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


class NoEventName(ValueError):
    """A file outside an <event>/ folder, sent without --event."""


def event_for(path: Path, explicit: str | None = None) -> str:
    """--event when given, else the file's folder name (fixtures live in <event>/x.json)."""
    event = explicit or path.parent.name
    if not event:
        raise NoEventName(f"{path}: no folder to name its event; pass --event")
    return event


def send(
    client: httpx.Client, url: str, secret: str, event: str, payload: bytes | dict[str, Any]
) -> tuple[str, httpx.Response]:
    """POST one signed delivery with a fresh delivery id."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/flowlens-replay",
    }
    return delivery, client.post(url, content=body, headers=headers)


def replay(
    paths: Iterable[str | Path], url: str, secret: str, event: str | None = None
) -> Iterator[Sent]:
    """Send each payload file in order; yields one result per delivery."""
    with httpx.Client(timeout=30.0) as client:
        for path in payload_files(paths):
            name = event_for(path, event)
            try:
                delivery, resp = send(client, url, secret, name, path.read_bytes())
            except httpx.HTTPError as exc:
                yield Sent(str(path), name, "-", 0, f"unreachable ({exc})")
                continue
            try:
                answer = str(resp.json().get("status") or resp.json().get("error") or "")
            except ValueError:
                answer = resp.text[:60]
            yield Sent(str(path), name, delivery, resp.status_code, answer)
