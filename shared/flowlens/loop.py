"""What the long-running loops (poller, alerts, scheduled sync) share."""

from __future__ import annotations

import asyncio


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
