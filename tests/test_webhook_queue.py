"""The webhook queue's contract, on SQLite and PostgreSQL: put, lease, settle, release."""

from __future__ import annotations

import asyncio

from tidings.store import SqlStore
from tidings.store.schema import webhook_deliveries
from tidings.store.webhooks import GiveUp, Retry, WebhookQueue

LEASE = 10_000


def rows(*events: str, at: int = 1_000, url: str = "http://r/hook") -> list[dict]:
    return [
        {"event_id": e, "url": url, "type": "t", "body": f'{{"id":"{e}"}}',
         "created_at": at, "due_at": at}
        for e in events
    ]  # fmt: skip


async def test_due_deliveries_are_claimed_once_until_their_lease_ends(store: SqlStore) -> None:
    queue = WebhookQueue(store)
    await queue.put(rows("a", "b", "c"))
    first = await queue.claim(now_ms=1_000, limit=2, lease_ms=LEASE)
    assert [c.event_id for c in first] == ["a", "b"]
    assert [c.attempts for c in first] == [1, 1]
    assert first[0].body == b'{"id":"a"}'
    again = await queue.claim(now_ms=1_001, limit=10, lease_ms=LEASE)
    assert [c.event_id for c in again] == ["c"]  # a and b are leased
    assert await queue.claim(now_ms=1_002, limit=10, lease_ms=LEASE) == []
    # The holder died: when the lease runs out, they are due again, the attempt counted.
    expired = await queue.claim(now_ms=1_001 + LEASE, limit=10, lease_ms=LEASE)
    assert sorted((c.event_id, c.attempts) for c in expired) == [("a", 2), ("b", 2), ("c", 2)]


async def test_nothing_is_claimed_before_it_is_due(store: SqlStore) -> None:
    queue = WebhookQueue(store)
    await queue.put(rows("later", at=5_000))
    assert await queue.claim(now_ms=4_999, limit=10, lease_ms=LEASE) == []
    assert len(await queue.claim(now_ms=5_000, limit=10, lease_ms=LEASE)) == 1


async def test_settle_deletes_delivered_reschedules_retries_keeps_failures(
    store: SqlStore,
) -> None:
    queue = WebhookQueue(store)
    await queue.put(rows("sent", "retry", "bad"))
    held = {c.event_id: c.id for c in await queue.claim(now_ms=1_000, limit=9, lease_ms=LEASE)}
    await queue.settle(
        delivered=[held["sent"]],
        retries=[Retry(held["retry"], 1, 3_000, "HTTP 503")],
        given_up=[GiveUp(held["bad"], 1, "HTTP 400")],
    )
    assert await queue.counts() == {"pending": 1, "failed": 1}
    assert await queue.claim(now_ms=2_999, limit=9, lease_ms=LEASE) == []
    retried = await queue.claim(now_ms=3_000, limit=9, lease_ms=LEASE)
    assert [(c.event_id, c.attempts) for c in retried] == [("retry", 2)]
    [failed] = await queue.failed()
    assert failed["event_id"] == "bad" and failed["last_error"] == "HTTP 400"
    assert await queue.forget_failed(before_ms=1_001) == 1
    assert await queue.counts() == {"pending": 1, "failed": 0}


async def test_the_outcome_of_an_expired_claim_does_not_touch_the_new_one(
    store: SqlStore,
) -> None:
    queue = WebhookQueue(store)
    await queue.put(rows("a"))
    [old] = await queue.claim(now_ms=1_000, limit=1, lease_ms=LEASE)
    [new] = await queue.claim(now_ms=1_000 + LEASE, limit=1, lease_ms=LEASE)  # expired
    await queue.settle(delivered=[], retries=[], given_up=[GiveUp(old.id, old.attempts, "x")])
    assert await queue.counts() == {"pending": 1, "failed": 0}  # still the new claim's
    await queue.settle(delivered=[], retries=[Retry(new.id, new.attempts, 1, "y")], given_up=[])
    assert len(await queue.claim(now_ms=2 + 2 * LEASE, limit=1, lease_ms=LEASE)) == 1


async def test_released_leases_are_due_at_once_without_counting_the_attempt(
    store: SqlStore,
) -> None:
    queue = WebhookQueue(store)
    await queue.put(rows("a"))
    [held] = await queue.claim(now_ms=1_000, limit=1, lease_ms=LEASE)
    await queue.release([held.id], now_ms=1_500)
    [again] = await queue.claim(now_ms=1_500, limit=1, lease_ms=LEASE)
    assert again.attempts == 1


async def test_concurrent_claimers_never_take_the_same_delivery(database_url: str) -> None:
    """Separate stores (as separate processes) claiming at once (SKIP LOCKED on PostgreSQL)."""
    stores = [SqlStore(database_url, max_age_ms=86_400_000, max_items=1000) for _ in range(4)]
    from tidings.store.migrate import upgrade

    await upgrade(stores[0].writer)
    try:
        async with stores[0].writer.begin() as conn:
            await conn.execute(webhook_deliveries.delete())
        queue = WebhookQueue(stores[0])
        await queue.put(rows(*(f"e{i}" for i in range(300))))
        queues = [WebhookQueue(s) for s in stores]

        async def drain(q: WebhookQueue) -> list[str]:
            taken: list[str] = []
            while batch := await q.claim(now_ms=1_000, limit=7, lease_ms=LEASE):
                taken += [c.event_id for c in batch]
            return taken

        taken = await asyncio.gather(*(drain(q) for q in queues))
        everything = [e for part in taken for e in part]
        assert sorted(everything) == sorted(f"e{i}" for i in range(300))  # once each
    finally:
        for s in stores:
            await s.close()
