"""Group commit: deliveries that arrive while a transaction runs share the next one."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from flowlens.db import Database, DatabaseUnavailable
from flowlens.ingest.store import Item, Outcome, record_deliveries

log = logging.getLogger("flowlens.ingest")

# One transaction per process at a time: everything that arrives meanwhile goes into the next.
# Two per process measured slower (smaller batches, lock waits between them; BENCHMARKS.md).
CONCURRENT = 1
MAX_ITEMS = 64
MAX_BYTES = 8 * 1024 * 1024
# After a transaction that held several deliveries, the next one waits up to this long for as
# many to queue again (the senders just answered are already sending their next ones); what a
# transaction costs is mostly per transaction, so fewer, fuller ones use less CPU. A delivery
# that arrives alone, after one that was alone or more than RECENT after the last transaction
# ended, never waits (PostgreSQL's commit_delay and commit_siblings make the same trade for WAL
# flushes).
LINGER = 0.002
RECENT = 0.1
# Seconds after its arrival a delivery may still wait for a database connection once a
# transaction has found the database unavailable (and none has succeeded since). Deliveries
# queued behind a batch that waited for a database that is down then do not each wait the
# whole pool timeout again (GitHub gives up after 10 s). While the database answers, a batch
# waits the pool's whole timeout, however long it queued: a new connection may take a while
# to open. Only the wait for a connection is bounded: once a transaction has begun, cutting it
# short could answer 503 for a COMMIT that lands.
CHECKOUT_BUDGET = 5.0
# A batch whose budget is spent still takes a connection that is ready (the pool refuses any
# request at once when given no time at all).
MIN_CHECKOUT = 0.01


class Batcher:
    """Stores deliveries in as few transactions as the load allows.

    Deliveries that arrive while every transaction slot is busy queue and all go into the next
    transaction. One that finds a free slot starts a transaction at once, unless the last one
    held several and ended RECENT ago or less: then it lingers for company (LINGER). Each
    delivery's answer comes after the commit that holds it, so a 2xx still means durable.
    After a transaction found the database unavailable, the next waits for a connection only
    as long as its oldest delivery's CHECKOUT_BUDGET has left.
    """

    def __init__(
        self,
        db: Database,
        *,
        notify: bool,
        concurrent: int = CONCURRENT,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
        linger: float = LINGER,
        recent: float = RECENT,
        checkout_budget: float = CHECKOUT_BUDGET,
    ) -> None:
        self.db = db
        self.notify = notify
        self.concurrent = concurrent
        self.transactions = 0  # transactions run, and deliveries stored through them
        self.deliveries = 0
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.linger = linger
        self.recent = recent
        self.checkout_budget = checkout_budget
        self.lingered = 0  # transactions that waited for company
        self._down = False  # the last transaction found the database unavailable
        self._last_size = 0  # deliveries in the transaction started last
        self._last_end = float("-inf")  # when a transaction ended last (event loop time)
        self._gathered: asyncio.Event | None = None  # set when a lingering batch is full
        # (delivery, its answer, when it arrived in event loop time)
        self._queue: deque[tuple[Item, asyncio.Future[Outcome], float]] = deque()
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Outcome:
        """Store one delivery (with whatever else is waiting); its outcome once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.append((item, future, loop.time()))
        if self._gathered is not None and len(self._queue) >= self._last_size:
            self._gathered.set()
        self._start()
        return await future

    async def close(self) -> None:
        """Wait for the transactions under way."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start(self) -> None:
        if self._gathered is not None:  # a lingering slot takes the queue when its wait ends
            return
        if (
            self.linger > 0
            and self._last_size > 1
            and len(self._running) < self.concurrent
            and 0 < len(self._queue) < min(self._last_size, self.max_items)
            and asyncio.get_running_loop().time() - self._last_end <= self.recent
        ):
            self._gathered = asyncio.Event()
            self._spawn(self._linger(self._gathered))
            return
        while self._queue and len(self._running) < self.concurrent:
            batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
            size = 0
            oldest = 0.0  # when the batch's first (longest queued) delivery arrived
            while self._queue and len(batch) < self.max_items:
                item, future, arrived = self._queue[0]
                if batch and size + len(item.raw_json) > self.max_bytes:
                    break
                self._queue.popleft()
                if future.cancelled():  # the sender hung up before we began: nothing promised
                    continue
                if not batch:
                    oldest = arrived
                batch.append((item, future))
                size += len(item.raw_json)
            if batch:
                self._last_size = len(batch)
                checkout = None  # the pool's timeout
                if self._down:
                    waited = asyncio.get_running_loop().time() - oldest
                    checkout = max(MIN_CHECKOUT, self.checkout_budget - waited)
                self._spawn(self._run(batch, checkout))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._finished)

    async def _linger(self, gathered: asyncio.Event) -> None:
        """Hold the slot until as many deliveries queue as the last transaction held, or for
        `linger` at most; the batch is taken when this task is done (_finished)."""
        self.lingered += 1
        try:
            await asyncio.wait_for(gathered.wait(), self.linger)
        except TimeoutError:
            pass
        finally:
            self._gathered = None
            self._last_size = 0

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._last_end = asyncio.get_running_loop().time()
        self._start()

    async def _run(
        self, batch: list[tuple[Item, asyncio.Future[Outcome]]], checkout: float | None
    ) -> None:
        items = [item for item, _ in batch]
        self.transactions += 1
        self.deliveries += len(items)
        try:
            outcomes = await record_deliveries(
                self.db, items, notify=self.notify, checkout=checkout
            )
        except DatabaseUnavailable as exc:
            self._down = True
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            # One delivery the database refuses must not cost the others: each alone, so only
            # its own sender sees the error.
            log.warning("a transaction of %d deliveries failed (%s); storing each alone",
                        len(batch), exc)  # fmt: skip
            for item, future in batch:
                try:
                    _resolve(
                        future, (await record_deliveries(self.db, [item], notify=self.notify))[0]
                    )
                except Exception as alone:
                    _fail(future, alone)
            return
        self._down = False
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _resolve(future, outcome)


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _fail(future: asyncio.Future[Outcome], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
