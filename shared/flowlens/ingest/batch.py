"""Group commit: deliveries that arrive while a transaction runs share the next one."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from flowlens.db import Database, DatabaseUnavailable
from flowlens.ingest.store import Item, Outcome, record_deliveries

log = logging.getLogger("flowlens.ingest")

# One transaction per process at a time: everything that arrives meanwhile goes into the next.
# Two per process measured slower (smaller batches, lock waits between them; BENCHMARKS.md).
CONCURRENT = 1
MAX_ITEMS = 64
MAX_BYTES = 8 * 1024 * 1024


class Batcher:
    """Stores deliveries in as few transactions as the load allows, without waiting for company.

    A delivery that finds a free transaction slot starts one at once, alone; deliveries that
    arrive while every slot is busy queue and all go into the next transaction. Each delivery's
    answer comes after the commit that holds it, so a 2xx still means durable.
    """

    def __init__(
        self,
        db: Database,
        *,
        notify: bool,
        concurrent: int = CONCURRENT,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.db = db
        self.notify = notify
        self.concurrent = concurrent
        self.transactions = 0  # transactions run, and deliveries stored through them
        self.deliveries = 0
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._queue: deque[tuple[Item, asyncio.Future[Outcome]]] = deque()
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Outcome:
        """Store one delivery (with whatever else is waiting); its outcome once committed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start()
        return await future

    async def close(self) -> None:
        """Wait for the transactions under way."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start(self) -> None:
        while self._queue and len(self._running) < self.concurrent:
            batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
            size = 0
            while self._queue and len(batch) < self.max_items:
                item, future = self._queue[0]
                if batch and size + len(item.raw_json) > self.max_bytes:
                    break
                self._queue.popleft()
                if future.cancelled():  # the sender hung up before we began: nothing promised
                    continue
                batch.append((item, future))
                size += len(item.raw_json)
            if batch:
                task = asyncio.create_task(self._run(batch))
                self._running.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        items = [item for item, _ in batch]
        self.transactions += 1
        self.deliveries += len(items)
        try:
            outcomes = await record_deliveries(self.db, items, notify=self.notify)
        except DatabaseUnavailable as exc:
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
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _resolve(future, outcome)


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _fail(future: asyncio.Future[Outcome], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
