"""The work queue of deliveries (flowlens.workqueue): leases, completion, backoff, dead letters."""

from __future__ import annotations

import asyncio

from flowlens.db import Database
from flowlens.workqueue import EventQueue, WorkState, dead_events, retry_dead_events, state_of
from tests.integration.test_poller import deliver, pr_delivery


async def states(db: Database) -> dict[str, WorkState]:
    async with db.transaction() as tx:
        cur = await tx.conn.execute(
            "SELECT delivery_id, processed, failed, leased_until, now() AS now FROM raw_events"
        )
        rows = await cur.fetchall()
    return {r["delivery_id"]: state_of(r, r["now"]) for r in rows}


async def test_a_lease_is_one_owners_until_it_ends(db: Database) -> None:
    for n in range(3):
        await deliver(db, "pull_request", pr_delivery(n + 1, f"{n:040d}", "opened", 0), f"q{n}")
    first, second = EventQueue("a", 0.5), EventQueue("b", 0.5)
    async with db.transaction() as tx:
        mine = await first.claim(tx, 2)
        theirs = await second.claim(tx, 10)
    assert len(mine) == 2 and len(theirs) == 1  # SKIP LOCKED and the lease keep them apart
    assert set((await states(db)).values()) == {WorkState.LEASED}
    async with db.transaction() as tx:
        await first.renew(tx, [e["id"] for e in mine])
        await second.complete(tx, [e["id"] for e in mine])  # not its lease: nothing happens
        assert await second.claim(tx, 10) == []
        await first.complete(tx, [mine[0]["id"]])
    await asyncio.sleep(1.2)  # second's lease and first's remaining one run out
    async with db.transaction() as tx:
        again = await second.claim(tx, 10)
    assert sorted(e["delivery_id"] for e in again) == sorted(
        e["delivery_id"] for e in [mine[1], *theirs]
    )
    assert all(e["attempts"] == 2 for e in again)


async def test_retry_later_backs_off_and_dead_letters_are_retried_by_hand(db: Database) -> None:
    await deliver(db, "pull_request", pr_delivery(1, "1" * 40, "opened", 0), "d1")
    queue = EventQueue("a", 30)
    async with db.transaction() as tx:
        (event,) = await queue.claim(tx, 1)
        delay = await queue.retry_later(tx, [event["id"]], attempts=3, error="boom", hint=None)
        assert 4.0 <= delay <= 12.0  # 2 s doubled twice, times 0.5 to 1.5
        assert await queue.claim(tx, 1) == []  # not due yet
    assert (await states(db))["d1"] is WorkState.PENDING
    async with db.transaction() as tx:
        await tx.conn.execute("UPDATE raw_events SET next_attempt_at = now()")
        (event,) = await queue.claim(tx, 1)
        await queue.dead_letter(tx, [event["id"]], "for good")
        (dead,) = await dead_events(tx, 10)
        assert dead["last_error"] == "for good"
    assert (await states(db))["d1"] is WorkState.DEAD
    async with db.transaction() as tx:
        assert await retry_dead_events(tx, 999) == []
        assert await retry_dead_events(tx, dead["id"]) == [dead["id"]]
        (event,) = await queue.claim(tx, 1)
        assert event["attempts"] == 1  # attempts start again
        await queue.complete(tx, [event["id"]])
    assert (await states(db))["d1"] is WorkState.DONE
