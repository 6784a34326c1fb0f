"""PostgreSQL connections: reads outside transactions, and a ping only after idling.

``store/engine.py`` pings a pooled connection at checkout only when it sat idle for a
while (a connection in steady use has just proved itself); these tests show that a
connection the database dropped while it was idle is replaced before anyone uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from tidings import ids
from tidings.errors import Unavailable, ValidationFailed
from tidings.models import Audience, NewNotification
from tidings.store import PendingCreate
from tidings.store import engine as engines
from tidings.store.migrate import upgrade
from tidings.store.pg_driver import left_usable
from tidings.store.sql import SqlStore

pytestmark = pytest.mark.postgres

IDLE = 0.2


@pytest.fixture
async def pg_store(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[SqlStore]:
    """A store whose pooled connections are pinged after ``IDLE`` seconds idle, or after
    the seconds a test's ``idle_ping`` mark gives."""
    mark = request.node.get_closest_marker("idle_ping")
    monkeypatch.setattr(engines, "IDLE_PING_SECONDS", mark.args[0] if mark else IDLE)
    store = SqlStore(postgres_database, max_age_ms=86_400_000, max_items=1000)
    await upgrade(store.writer)
    yield store
    await store.close()


async def drop_every_other_connection(url: str) -> int:
    """What a database restart does to a pool: every server connection but ours ends."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        dropped = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return len(dropped)


async def test_reads_run_outside_a_transaction(pg_store: SqlStore) -> None:
    async with pg_store.reader.connect() as conn:
        first = (await conn.execute(text("SELECT clock_timestamp(), now()"))).one()
        await asyncio.sleep(0.01)
        second = (await conn.execute(text("SELECT now()"))).scalar()
    # Inside a transaction now() stays at its start; here each statement is its own.
    assert second > first[0] >= first[1]


async def test_connections_dropped_while_idle_are_replaced_before_use(
    pg_store: SqlStore, postgres_database: str
) -> None:
    newest = await pg_store.last_id()  # a reader connection now sits in the pool
    await pg_store.ping()
    async with pg_store.writer.begin() as conn:
        await conn.execute(text("SELECT 1"))  # and a writer connection
    assert await drop_every_other_connection(postgres_database) >= 2
    await asyncio.sleep(IDLE * 2)
    assert await pg_store.last_id() == newest
    async with pg_store.writer.begin() as conn:
        assert (await conn.execute(text("SELECT 41 + 1"))).scalar() == 42


@pytest.fixture(autouse=True)
def pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ping the PostgreSQL dialect makes, as the connection it pinged."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    seen: list[object] = []
    original = PGDialect_asyncpg.do_ping

    def counting(self: PGDialect_asyncpg, dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        return original(self, dbapi_connection)

    monkeypatch.setattr(PGDialect_asyncpg, "do_ping", counting)
    return seen


async def test_a_connection_in_steady_use_is_not_pinged(
    pg_store: SqlStore, pings: list[object]
) -> None:
    for _ in range(5):
        await pg_store.last_id()
    assert pings == []


async def test_a_connection_idle_past_the_limit_is_pinged_once(
    pg_store: SqlStore, pings: list[object]
) -> None:
    await pg_store.last_id()
    await asyncio.sleep(IDLE * 2)
    await pg_store.last_id()
    await pg_store.last_id()
    assert len(pings) == 1


@pytest.mark.idle_ping(60.0)  # this connection is never idle long enough for a ping
async def test_a_create_on_a_connection_dropped_in_use_fails_once_and_the_next_one_works(
    pg_store: SqlStore, postgres_database: str
) -> None:
    """Creates run on asyncpg itself; a connection it finds closed leaves the pool."""
    alice = PendingCreate(NewNotification(Audience(users=("alice",)), "test", "info", "one"))
    await pg_store.insert([alice], now_ms=ids.time_ms())
    await drop_every_other_connection(postgres_database)
    with pytest.raises(Unavailable):
        await pg_store.insert([alice], now_ms=ids.time_ms())
    stored = await pg_store.insert([alice], now_ms=ids.time_ms())
    assert [o.notification.title for o in stored.outcomes] == ["one"]


async def test_a_create_the_database_refuses_rolls_back_and_the_connection_goes_on(
    pg_store: SqlStore,
) -> None:
    refused = PendingCreate(NewNotification(Audience(users=("alice",)), "test", "info", "\x00"))
    fine = PendingCreate(NewNotification(Audience(users=("alice",)), "test", "info", "fine"))
    newest = await pg_store.last_id()
    with pytest.raises(ValidationFailed):
        await pg_store.insert([refused], now_ms=ids.time_ms())
    assert await pg_store.last_id() == newest  # nothing of it was kept
    stored = await pg_store.insert([fine], now_ms=ids.time_ms())
    assert [o.notification.title for o in stored.outcomes] == ["fine"]


async def test_a_connection_goes_back_to_the_pool_only_after_a_refused_statement(
    postgres_database: str,
) -> None:
    db = await asyncpg.connect(postgres_database.replace("postgresql+asyncpg", "postgresql"))
    try:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await db.fetch("SELECT 'x'::int")  # SQLSTATE 22P02, invalid text representation
        assert left_usable(refused.value, db)
        with pytest.raises(asyncpg.DataError) as encoded:  # asyncpg's own check, SQLSTATE 22000
            await db.fetch("SELECT $1::int", 2**40)
        assert left_usable(encoded.value, db)
        assert not left_usable(asyncpg.InternalClientError("another operation"), db)
        assert not left_usable(asyncio.CancelledError(), db)
        async with db.transaction():
            with pytest.raises(asyncpg.PostgresError) as in_transaction:
                await db.fetch("SELECT 'x'::int")
            assert not left_usable(in_transaction.value, db)  # still in its transaction
    finally:
        await db.close()
    assert not left_usable(refused.value, db)  # closed
