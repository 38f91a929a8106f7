"""What the long-running loops (poller, alerts, scheduled sync) share."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Self

MAX_ERRORS = 20


@dataclass
class DutyCounts:
    """What a duty's passes did (part of the poller's JSON summary): its int counters, added
    up pass by pass, and the first MAX_ERRORS errors."""

    errors: list[str] = field(default_factory=list)
    # The counters that mean a pass had work in hand (an invocation does not end idle then).
    WORK: ClassVar[tuple[str, ...]] = ()

    def did_work(self) -> bool:
        return any(getattr(self, name) for name in self.WORK)

    def add(self, other: Self) -> None:
        for f in fields(self):
            if f.name != "errors":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for error in other.errors:
            self.note(error)

    def note(self, error: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error[:300])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def pause(seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep `seconds`, or less when `stop` is set meanwhile; True when it was."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
