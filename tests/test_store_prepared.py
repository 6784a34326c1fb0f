"""Statements compiled once per shape and run on the driver (the connect-time reads)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from tidings import ids
from tidings.models import Audience, NewNotification, Principal
from tidings.preferences import Preferences
from tidings.store import PendingCreate, SqlStore
from tidings.store.prepared import SqliteReads, Statements
from tidings.store.schema import notifications

ALICE = Principal(user="alice", roles=frozenset({"admin"}))


def test_a_shape_is_compiled_once_and_bound_by_name() -> None:
    statements = Statements(sqlite.dialect())
    built = []

    def build():
        built.append(1)
        return select(notifications.c.id).where(
            notifications.c.type == bindparam("kind"), notifications.c.id > bindparam("after")
        )

    first = statements.get("by-kind", build)
    assert statements.get("by-kind", build) is first and len(built) == 1
    assert first.args({"after": 5, "kind": "x"}) == ("x", 5)
    on_postgres = Statements(postgresql.asyncpg.dialect()).get("by-kind", build)
    assert "$1" in on_postgres.sql and on_postgres.names == ("kind", "after")


def test_expanding_parameters_are_refused_at_compile_time() -> None:
    statements = Statements(sqlite.dialect())
    with pytest.raises(ValueError, match="expanding"):
        statements.get(
            "any", lambda: select(notifications.c.id).where(notifications.c.type.in_(["a", "b"]))
        )


async def test_a_failed_read_never_leaves_its_connection_for_the_next(tmp_path) -> None:
    reads = SqliteReads(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    bad = Statements(sqlite.dialect()).get("bad", lambda: select(bindparam("v")))

    async def fails(run):
        await run(bad, {"v": 1})
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        await reads.read(fails)

    async def works(run):
        return await run(bad, {"v": 2})

    assert await reads.read(works) == [(2,)]  # a fresh connection, not one mid-transaction
    reads.close()


async def test_the_welcome_reads_agree_with_a_page(store: SqlStore) -> None:
    now = ids.time_ms()
    audiences = [Audience(users=["alice"]), Audience(roles=["admin"]), Audience(all=True)]
    for i, audience in enumerate(audiences * 2):
        kind = "build" if i % 2 else "deploy"
        new = NewNotification(audience, kind, "info", str(i))  # type: ignore[arg-type]
        await store.insert([PendingCreate(new)], now_ms=now)
    muted = Preferences(types={"build": False})
    await store.set_preferences("alice", muted, now_ms=now)
    prefs, unread = await store.welcome(ALICE, now_ms=now)
    page = await store.page(ALICE, now_ms=now, limit=50)
    assert prefs == muted
    assert unread == page.unread_count == 3
    await store.mark_all_read(ALICE, now_ms=now)
    assert (await store.welcome(ALICE, now_ms=now))[1] == 0
