"""What the long-running loops (poller, alerts, scheduled sync) share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, Self, TypeVar

log = logging.getLogger("flowlens.loop")

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


class Duty(Protocol):
    """A duty beside the poller's scans: when its last pass that found nothing to do began
    (None: it had work, or none ran). The poller ends an invocation early only when every
    duty is idle."""

    idle_since: float | None


C = TypeVar("C", bound=DutyCounts)


async def run_passes(
    duty: Duty,
    pass_once: Callable[[], Awaitable[C]],
    total: C,
    *,
    what: str,
    interval: float,
    budget_seconds: float | None = None,
    stop: asyncio.Event | None = None,
    again: Callable[[], bool] | None = None,
) -> C:
    """A pass every `interval` seconds (at once when `again()` says work is left) until the
    budget is spent or stop is set; each pass's counts added to `total`. A pass that fails
    is noted and the next one tries again (the database may be down for a moment)."""
    started = time.monotonic()
    duty.idle_since = None
    while True:
        wait = interval
        try:
            began = time.monotonic()
            done = await pass_once()
            duty.idle_since = None if done.did_work() else began
            total.add(done)
            if again is not None and again():
                wait = 0.0
        except Exception as exc:
            log.exception("%s pass failed", what)
            total.note(f"{what} pass failed: {exc}")
        if stop is not None and stop.is_set():
            break
        if budget_seconds is not None and time.monotonic() - started + wait > budget_seconds:
            break
        if await pause(wait, stop):
            break
    return total
