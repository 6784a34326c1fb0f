"""Creates run on the writer's idle connection, and wait while it is held.

With other processes on the file, they never wait on the event loop: when another
process holds the write lock, they wait on aiosqlite's thread instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event

from tidings import ids
from tidings.models import Audience, NewNotification, Principal
from tidings.store.migrate import upgrade
from tidings.store.rows import PendingCreate
from tidings.store.sql import SqlStore

NOW = 1_700_000_000_000


def _pending(i: int) -> PendingCreate:
    return PendingCreate(NewNotification(Audience(users=("ada",)), "t", "info", f"n{i}"))


@asynccontextmanager
async def _migrated_store(path: Path, *, sole_writer: bool) -> AsyncIterator[SqlStore]:
    store = SqlStore(
        f"sqlite+aiosqlite:///{path}", max_age_ms=10**12, max_items=10_000, sole_writer=sole_writer
    )
    await upgrade(store.writer)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=[True, False], ids=["sole-writer", "shared-file"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SqlStore]:
    async with _migrated_store(tmp_path / "x.db", sole_writer=request.param) as store:
        yield store


def _count_checkouts(store: SqlStore) -> list[int]:
    checkouts: list[int] = []
    event.listen(store.writer.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    return checkouts


async def test_creates_on_an_idle_writer_take_no_checkout(store: SqlStore) -> None:
    checkouts = _count_checkouts(store)
    for i in range(5):
        await store.insert([_pending(i)], now_ms=NOW + i)
    assert checkouts == []
    assert len(await store.log_after(0, limit=10)) == 5


async def test_a_create_waits_while_the_writer_is_held(store: SqlStore) -> None:
    await store.insert([_pending(0)], now_ms=NOW)  # the writer's connection exists
    async with store.writer.connect() as held:
        await held.get_raw_connection()
        create = asyncio.create_task(store.insert([_pending(1)], now_ms=NOW + 1))
        await asyncio.sleep(0.05)
        assert not create.done()  # as a checkpoint that keeps writes out needs
    stored = await create
    assert [o.notification.title for o in stored.outcomes] == ["n1"]
    assert len(await store.log_after(0, limit=10)) == 2


async def test_other_writes_hand_the_connection_back_to_creates(store: SqlStore) -> None:
    stored = await store.insert([_pending(0)], now_ms=NOW)
    ada = Principal(user="ada")
    changed = await store.mark_read(
        ada, [ids.decode(stored.outcomes[0].notification.id)], now_ms=NOW + 1
    )
    assert len(changed) == 1
    checkouts = _count_checkouts(store)
    await store.insert([_pending(1)], now_ms=NOW + 2)
    assert checkouts == []
    assert await store.unread_count(ada, now_ms=NOW + 3) == 1


async def test_a_create_that_fails_midway_leaves_nothing_and_the_writer_usable(
    store: SqlStore,
) -> None:
    await store.insert([_pending(0)], now_ms=NOW)

    def failing_webhooks(_outcomes: object) -> list[dict[str, object]]:
        raise RuntimeError("after the rows, before the commit")

    with pytest.raises(RuntimeError):
        await store.insert([_pending(1)], now_ms=NOW + 1, webhook_rows=failing_webhooks)
    await store.insert([_pending(2)], now_ms=NOW + 2)
    titles = [e.notification.title for e in await store.log_after(0, limit=10)]
    assert titles == ["n0", "n2"]


@contextmanager
def _another_process_writing(store: SqlStore) -> Iterator[sqlite3.Connection]:
    """Hold the file's write lock from a connection of our own, as another worker does."""
    other = sqlite3.connect(store.writer.url.database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with _migrated_store(tmp_path / "x.db", sole_writer=False) as store:
        await store.insert([_pending(0)], now_ms=NOW)  # the writer's connection exists
        yield store


async def test_on_a_shared_file_a_create_waits_for_another_process_off_the_loop(
    shared: SqlStore,
) -> None:
    with _another_process_writing(shared):
        create = asyncio.create_task(shared.insert([_pending(1)], now_ms=NOW + 1))
        ticks = 0
        started = time.perf_counter()
        while time.perf_counter() - started < 0.2:
            await asyncio.sleep(0.005)
            ticks += 1
        assert not create.done()
        assert ticks >= 20  # the loop went on while the create waited for the lock
    stored = await create
    assert [o.notification.title for o in stored.outcomes] == ["n1"]
    assert shared._idle_writer is not None and shared._idle_writer.busy == 1
    titles = [e.notification.title for e in await shared.log_after(0, limit=10)]
    assert titles == ["n0", "n1"]


async def test_on_a_shared_file_the_writer_keeps_waiting_for_locks_off_the_loop(
    shared: SqlStore,
) -> None:
    with _another_process_writing(shared):
        create = asyncio.create_task(shared.insert([_pending(1)], now_ms=NOW + 1))
        await asyncio.sleep(0.05)
    await create
    assert shared._idle_writer is not None
    db = shared._idle_writer.connection
    assert db is not None
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    checkouts = _count_checkouts(shared)
    await shared.insert([_pending(2)], now_ms=NOW + 2)  # the lock is free: no wait, no hop
    assert checkouts == []
