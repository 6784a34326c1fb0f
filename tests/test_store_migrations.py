"""Migrations carry stored data forward; 0005 keeps every row and writes fewer pages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tidings import ids
from tidings.errors import Conflict
from tidings.models import Audience, NewNotification, Principal
from tidings.store import PendingCreate, SqlStore
from tidings.store.migrate import upgrade

NOW = 1_750_000_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/old.db"
    return request.getfixturevalue("fresh_postgres_database")


async def test_0005_keeps_every_row_and_the_rules_its_indexes_enforce(empty_database: str) -> None:
    engine = create_async_engine(empty_database)
    await upgrade(engine, "0004")
    async with engine.begin() as conn:
        for i, (key, expires, idem) in enumerate(
            [(None, None, None), ("deploy", None, "k1"), (None, NOW + 10**9, "k2")]
        ):
            nid = ids.next_ids(0, 1, now_ms=NOW + i)[0]
            await conn.execute(
                text(
                    "INSERT INTO notifications (id, type, level, title, body, data, audience, "
                    'expires_at, api_key, idempotency_key, revision, "key") VALUES '
                    "(:id, 't', 'info', :title, '', '{}', :aud, :exp, 'api', :idem, :id, :key)"
                ),
                {
                    "id": nid,
                    "title": f"n{i}",
                    "aud": '{"keys": ["u:ada"]}',
                    "exp": expires,
                    "idem": idem,
                    "key": key,
                },
            )
            await conn.execute(
                text("INSERT INTO targets (audience, notification_id) VALUES ('u:ada', :id)"),
                {"id": nid},
            )
    await engine.dispose()

    store = SqlStore(empty_database, max_age_ms=10**12, max_items=10_000)
    await upgrade(store.writer)
    try:
        page = await store.page(Principal("ada"), now_ms=NOW + 100, limit=10)
        assert [n.title for n in page.items] == ["n2", "n1", "n0"]
        again = PendingCreate(
            NewNotification(Audience(users=("ada",)), "t", "info", "dup"),
            api_key="api",
            idempotency_key="k1",
            request_hash="other",
        )
        with pytest.raises(Conflict):
            await store.find_idempotent("api", "k1", "other")
        with pytest.raises(Conflict):  # the unique index still holds
            await store.insert([again], now_ms=NOW + 200)
        fresh = PendingCreate(NewNotification(Audience(users=("ada",)), "t", "info", "n3"))
        await store.insert([fresh, fresh], now_ms=NOW + 300)  # no idempotency key: no clash
        assert len((await store.page(Principal("ada"), now_ms=NOW + 400, limit=10)).items) == 5
    finally:
        await store.close()


async def test_a_create_writes_at_most_six_pages_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "lean.db"
    store = SqlStore(
        f"sqlite+aiosqlite:///{path}", max_age_ms=10**12, max_items=10_000, sole_writer=True
    )
    await upgrade(store.writer)
    try:
        for i in range(300):  # past the first pages of every tree
            new = NewNotification(Audience(users=(f"u{i}",)), "t", "info", f"n{i}")
            await store.insert([PendingCreate(new, api_key="api")], now_ms=NOW + i)
        db = sqlite3.connect(path, isolation_level=None)
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        creates = 200
        for i in range(creates):
            new = NewNotification(Audience(users=(f"v{i}",)), "t", "info", f"m{i}")
            await store.insert([PendingCreate(new, api_key="api")], now_ms=NOW + 1000 + i)
        _, log_pages, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        db.close()
        assert log_pages / creates <= 6  # 9.7 before 0005
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            "SELECT id FROM notifications WHERE api_key = ? AND idempotency_key = ?",
            "uq_notifications_idempotency",
        ),
        ('SELECT id FROM notifications WHERE "key" = ?', "ix_notifications_key"),
        (
            "SELECT id FROM notifications WHERE id < ? OR expires_at <= ?",
            "ix_notifications_expires_at",
        ),
    ],
)
async def test_lookups_by_a_set_column_still_use_the_partial_indexes(
    tmp_path: Path, query: str, index: str
) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path}/plan.db", max_age_ms=1, max_items=1)
    await upgrade(store.writer)
    await store.close()
    db = sqlite3.connect(tmp_path / "plan.db")
    try:
        plan = " ".join(
            row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", (1, 2)[: query.count("?")])
        )
    finally:
        db.close()
    assert f"INDEX {index}" in plan, plan
