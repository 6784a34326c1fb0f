"""The feed: each process fans out the store's commit log exactly once, in id order.

Runs on SQLite and PostgreSQL. "Another process" is simulated by inserting through the
store without telling the feed, which is exactly what a feed sees of a peer's commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from tidings import frames, ids
from tidings.feed import Feed
from tidings.models import Audience, NewNotification, Notification
from tidings.store import PendingCreate, SqlStore, StoredBatch


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, list[str]]] = []

    def __call__(
        self, notification_id: str, keys: Sequence[str], frame: None, item: Notification
    ) -> None:
        # The hub encodes the frame, and only when it has recipients for it.
        assert frame is None and notification_id.encode() in frames.notification(item)
        self.delivered.append((notification_id, list(keys)))

    @property
    def ids(self) -> list[str]:
        return [notification_id for notification_id, _ in self.delivered]


def pending(*, to: str = "alice", expires_at: datetime | None = None) -> PendingCreate:
    audience = Audience(all=True) if to == "*" else Audience(users=(to,))
    return PendingCreate(
        NewNotification(audience=audience, type="t", level="info", title="t", expires_at=expires_at)
    )


async def commit(store: SqlStore, count: int = 1, **kwargs) -> StoredBatch:
    return await store.insert([pending(**kwargs) for _ in range(count)], now_ms=ids.time_ms())


def ids_of(batch: StoredBatch) -> list[str]:
    return [outcome.notification.id for outcome in batch.outcomes]


@pytest.fixture
async def follow(store: SqlStore):
    feeds: list[Feed] = []

    async def make(*, poll_interval: float = 60.0) -> tuple[Feed, Recorder]:
        recorder = Recorder()
        feed = Feed(store=store, deliver=recorder, poll_interval=poll_interval)
        await feed.start()
        feeds.append(feed)
        return feed, recorder

    yield make
    for feed in feeds:
        await feed.stop()


async def test_it_starts_after_what_was_committed_before(store: SqlStore, follow) -> None:
    await commit(store, 3)
    feed, recorder = await follow()
    await feed.catch_up()
    assert recorder.ids == []


async def test_own_batches_that_follow_the_cursor_go_out_without_reading(
    store: SqlStore, follow
) -> None:
    feed, recorder = await follow()
    first, second = await commit(store, 2), await commit(store, 3)
    feed.committed(first)
    feed.committed(second)
    assert recorder.ids == ids_of(first) + ids_of(second)
    assert feed.reads == 0


async def test_a_peer_commit_before_our_batch_is_read_first_to_keep_id_order(
    store: SqlStore, follow
) -> None:
    feed, recorder = await follow()
    peer = await commit(store, 2, to="bob")  # committed by another process, no wake-up
    ours = await commit(store)
    feed.committed(ours)
    assert recorder.ids == []  # held: the peer's rows come first
    await feed.catch_up(poll=False)
    assert recorder.ids == ids_of(peer) + ids_of(ours)
    assert recorder.delivered[0][1] == ["u:bob"]


async def test_a_partitioned_peer_cannot_make_resume_skip(store: SqlStore, follow) -> None:
    """Issue 8, defect 5: Y through a process cut off from the broker, then W through us.

    Our clients must get Y before W, so a client resuming after W has missed nothing.
    """
    feed, recorder = await follow()
    y = await commit(store)  # through the cut-off process: no wake-up reaches us
    w = await commit(store)
    feed.committed(w)
    await feed.catch_up(poll=False)
    assert recorder.ids == ids_of(y) + ids_of(w)


async def test_a_wake_up_reads_the_peer_rows_once(store: SqlStore, follow) -> None:
    feed, recorder = await follow()
    peer = await commit(store, 3)
    feed.wake(ids_of(peer)[-1].encode())
    await asyncio.sleep(0.2)
    feed.wake(ids_of(peer)[-1].encode())  # a repeated wake-up changes nothing
    await asyncio.sleep(0.1)
    assert recorder.ids == ids_of(peer)


async def test_without_any_wake_up_the_poll_finds_peer_rows(store: SqlStore, follow) -> None:
    _feed, recorder = await follow(poll_interval=0.05)
    peer = await commit(store, 2)
    for _ in range(100):
        if recorder.ids:
            break
        await asyncio.sleep(0.02)
    assert recorder.ids == ids_of(peer)


async def test_more_than_one_read_batch_arrives_whole_and_in_order(
    store: SqlStore, follow, monkeypatch
) -> None:
    monkeypatch.setattr("tidings.feed.READ_BATCH", 4)
    feed, recorder = await follow()
    peer = [await commit(store, 3) for _ in range(3)]
    feed.wake()
    await feed.catch_up(poll=False)
    assert recorder.ids == [i for batch in peer for i in ids_of(batch)]


async def test_expired_items_are_skipped(store: SqlStore, follow) -> None:
    feed, recorder = await follow()
    gone = datetime.now(UTC) - timedelta(seconds=1)
    expired, kept = await commit(store, expires_at=gone), await commit(store)
    feed.committed(expired)
    feed.committed(kept)
    assert recorder.ids == ids_of(kept)


async def test_a_failing_delivery_does_not_stop_the_log(store: SqlStore) -> None:
    delivered: list[str] = []

    def deliver(notification_id: str, keys: Sequence[str], frame: None, item: Notification) -> None:
        if not delivered:
            delivered.append("boom")
            raise RuntimeError("a bug in fan-out")
        delivered.append(notification_id)

    feed = Feed(store=store, deliver=deliver, poll_interval=60)
    await feed.start()
    try:
        first, second = await commit(store), await commit(store)
        feed.committed(first)
        feed.committed(second)
        assert delivered == ["boom", *ids_of(second)]
    finally:
        await feed.stop()


async def test_a_wake_up_without_a_position_reads_past_our_own_queued_batches(
    store: SqlStore, follow
) -> None:
    feed, recorder = await follow()
    other = await commit(store)  # another process's, its wake-up lost
    own = await commit(store)
    feed.committed(own)  # ours, behind `other`: queued until `other` is read
    later = await commit(store)  # another process's again
    feed.wake()  # no position: the broker came back, say
    await feed.catch_up(poll=False)
    assert recorder.ids == ids_of(other) + ids_of(own) + ids_of(later)


async def test_two_processes_interleaving_commits_see_one_order(store: SqlStore, follow) -> None:
    a, seen_by_a = await follow()
    b, seen_by_b = await follow()
    committed: list[str] = []
    for n in range(12):
        batch = await commit(store, 1 + n % 3)
        committed += ids_of(batch)
        (a if n % 2 else b).committed(batch)  # the committer fans out its own
    for feed in (a, b):
        feed.wake()
        await feed.catch_up(poll=False)
    assert seen_by_a.ids == seen_by_b.ids == committed == sorted(committed)


async def test_announces_the_newest_id_and_coalesces_while_busy(store: SqlStore) -> None:
    published: list[bytes] = []
    gate = asyncio.Event()

    async def announce(newest: bytes) -> None:
        published.append(newest)
        await gate.wait()  # a hung broker

    feed = Feed(store=store, deliver=Recorder(), announce=announce, poll_interval=60)
    await feed.start()
    try:
        batches = [await commit(store) for _ in range(3)]
        feed.committed(batches[0])
        await asyncio.sleep(0.05)
        feed.committed(batches[1])  # committing never waits for the broker
        feed.committed(batches[2])
        gate.set()
        await asyncio.sleep(0.05)
        assert published == [ids_of(batches[0])[0].encode(), ids_of(batches[2])[0].encode()]
    finally:
        await feed.stop()
