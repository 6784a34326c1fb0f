"""The service: acknowledged on commit, a writer nothing can stop, a broker never awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from tidings.broker.memory import MemoryBroker
from tidings.broker.outbound import Outbound
from tidings.errors import Unavailable, ValidationFailed
from tidings.models import Audience, NewNotification, Principal
from tidings.service import NotificationService
from tidings.store import PendingCreate, SqlStore, StoredBatch

ALICE = Principal("alice")


class HungBroker(MemoryBroker):
    """A broker that accepts the call and never answers (Redis under SIGSTOP)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        self.calls += 1
        await asyncio.Event().wait()


def new(title: str = "hello") -> NewNotification:
    return NewNotification(audience=Audience(users=("alice",)), type="t", level="info", title=title)


@pytest.fixture
async def committed() -> list[StoredBatch]:
    return []


@pytest.fixture
async def service(store: SqlStore, committed: list[StoredBatch]) -> AsyncIterator:
    broker = HungBroker()
    outbound = Outbound(broker)
    await outbound.start()
    service = NotificationService(store=store, outbound=outbound, on_committed=committed.append)
    await service.start()
    yield service
    await service.stop()
    await outbound.stop()


async def test_a_create_is_acknowledged_on_commit_and_handed_to_the_feed(
    service: NotificationService, committed: list[StoredBatch]
) -> None:
    outcome = await asyncio.wait_for(service.create(new()), 2)
    assert [o.notification.id for b in committed for o in b.outcomes] == [outcome.notification.id]


async def test_read_state_changes_do_not_wait_for_a_hung_broker(
    service: NotificationService,
) -> None:
    outcome = await service.create(new())
    changed = await asyncio.wait_for(service.mark_read(ALICE, [outcome.notification.id]), 2)
    assert changed == [outcome.notification.id]
    await asyncio.wait_for(service.mark_all_read(ALICE), 2)
    await asyncio.wait_for(service.publish_topic("logs", {"line": 1}), 2)
    assert service.outbound.broker.calls == 1  # stuck on the first batch, nobody waits


async def test_the_writer_survives_a_failure_after_commit(
    store: SqlStore, committed: list[StoredBatch]
) -> None:
    def explode(batch: StoredBatch) -> None:
        committed.append(batch)
        raise OverflowError("fan-out bug")

    outbound = Outbound(HungBroker())
    service = NotificationService(store=store, outbound=outbound, on_committed=explode)
    await service.start()
    try:
        first = await asyncio.wait_for(service.create(new("one")), 2)
        second = await asyncio.wait_for(service.create(new("two")), 2)
        assert first.created and second.created and len(committed) == 2
    finally:
        await service.stop()


async def test_the_writer_survives_a_failing_batch_and_keeps_writing(
    service: NotificationService, monkeypatch
) -> None:
    real_insert = service.store.insert
    calls = 0

    async def flaky(batch: Sequence[PendingCreate], *, now_ms: int) -> StoredBatch:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("unexpected")
        return await real_insert(batch, now_ms=now_ms)

    monkeypatch.setattr(service.store, "insert", flaky)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(service.create(new()), 2)
    assert (await asyncio.wait_for(service.create(new()), 2)).created


async def test_one_bad_item_does_not_sink_its_batch_neighbours(
    service: NotificationService, monkeypatch
) -> None:
    real_insert = service.store.insert

    async def picky(batch: Sequence[PendingCreate], *, now_ms: int) -> StoredBatch:
        if any(p.new.title == "bad" for p in batch):
            raise ValidationFailed("the store cannot keep this")
        return await real_insert(batch, now_ms=now_ms)

    monkeypatch.setattr(service.store, "insert", picky)
    results = await asyncio.gather(
        *(service.create(new(title)) for title in ("a", "bad", "b", "c")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValidationFailed)
    assert all(r.created for i, r in enumerate(results) if i != 1)
    page = await service.list_inbox(ALICE)
    assert sorted(item.title for item in page.items) == ["a", "b", "c"]


class RefusingBroker(MemoryBroker):
    """A broker whose topic appends fail, or whose publishes do."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    async def append(self, posts: Sequence[tuple[str, bytes]]) -> None:
        if self.failing == "append":
            raise Unavailable("redis is down")
        await super().append(posts)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self.failing == "publish" and any(not c.startswith("t:") for c, _ in messages):
            raise Unavailable("redis is down")  # (appends publish through here too)
        await super().publish_many(messages)


@pytest.mark.parametrize(("failing", "dropped"), [("append", 3), ("publish", 2)])
async def test_frames_a_failed_publish_takes_along_are_counted_as_dropped(
    failing: str, dropped: int
) -> None:
    broker = RefusingBroker(failing)
    await broker.start(on_message=lambda channel, payload: None, on_reconnect=_nothing)
    outbound = Outbound(broker)
    outbound.put(("u:alice", b"read"), ("t:logs", b"line"), ("u:bob", b"unread"))
    await outbound.flush()
    assert outbound.dropped == dropped


async def _nothing() -> None:
    return None
