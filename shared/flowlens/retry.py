"""Retrying: the one backoff formula, and transactions run again when the database asks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import psycopg

# Serialisation failures and deadlocks: the database asks for the transaction again.
RETRYABLE: tuple[type[Exception], ...] = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)
# Two first deliveries of one repository at once: both miss it and both insert it; the loser
# can trip over the winner's github_id, which is not ingest_insert_repository's ON CONFLICT
# target.
# The whole transaction runs again and then finds the winner's row.
DELIVERY_RETRYABLE: tuple[type[Exception], ...] = (*RETRYABLE, psycopg.errors.UniqueViolation)


def jitter() -> float:
    """A backoff's random factor: around 1, so retries spread out but keep their pace."""
    return random.uniform(0.5, 1.5)


def backoff(
    attempt: int, *, base: float, cap: float, spread: Callable[[], float] = jitter
) -> float:
    """Seconds to wait before try `attempt + 1` after `attempt` failures (1, 2, …): `base`
    doubled per failure, times `spread()`, at most `cap`. Every retry in FlowLens waits this."""
    return min(cap, base * 2.0 ** max(0, attempt - 1) * spread())


async def retrying(
    func: Any, *args: Any, attempts: int = 5, retry_on: tuple[type[Exception], ...] = RETRYABLE
) -> Any:
    """Run a transaction function again when the database asks us to (serialisation, deadlock)."""
    for attempt in range(1, attempts + 1):
        try:
            return await func(*args)
        except retry_on:
            if attempt == attempts:
                raise
            await asyncio.sleep(backoff(attempt, base=0.01, cap=1.0))
    raise AssertionError("unreachable")
