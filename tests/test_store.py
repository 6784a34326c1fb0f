"""The store contract, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings import ids
from tidings.errors import Conflict
from tidings.models import Audience, NewNotification, Principal
from tidings.store import PendingCreate, SqlStore
from tidings.store.schema import notifications, receipts, targets

ALICE = Principal("alice", frozenset({"admin"}))
BOB = Principal("bob", frozenset({"staff"}))
CAROL = Principal("carol")


def note(title: str, **audience: object) -> PendingCreate:
    return PendingCreate(NewNotification(Audience(**audience), "test", "info", title))  # type: ignore[arg-type]


async def create(store: SqlStore, *items: PendingCreate, now_ms: int | None = None) -> list[int]:
    outcomes = (await store.insert(list(items), now_ms=now_ms or ids.time_ms())).outcomes
    return [ids.decode(o.notification.id) for o in outcomes]


async def titles(store: SqlStore, who: Principal, **kwargs: object) -> list[str]:
    page = await store.page(who, now_ms=ids.time_ms(), limit=50, **kwargs)  # type: ignore[arg-type]
    return [item.title for item in page.items]


async def count_rows(store: SqlStore, table) -> int:
    from sqlalchemy import func, select

    async with store.reader.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)


async def test_users_roles_and_everyone_see_what_is_addressed_to_them(store: SqlStore) -> None:
    await create(
        store,
        note("to alice and carol", users=("alice", "carol")),
        note("to admins", roles=("admin",)),
        note("to everyone", all=True),
    )
    assert await titles(store, ALICE) == ["to everyone", "to admins", "to alice and carol"]
    assert await titles(store, BOB) == ["to everyone"]
    assert await titles(store, CAROL) == ["to everyone", "to alice and carol"]


async def test_a_broadcast_is_stored_once_whatever_the_audience(store: SqlStore) -> None:
    await create(store, note("everyone", all=True), note("admins", roles=("admin",)))
    assert await count_rows(store, notifications) == 2
    assert await count_rows(store, targets) == 2


async def test_ids_are_strings_in_creation_order(store: SqlStore) -> None:
    first = await create(store, *(note(str(i), users=("alice",)) for i in range(5)))
    second = await create(store, note("later", users=("alice",)))
    texts = [ids.encode(v) for v in first + second]
    assert texts == sorted(texts)
    assert len(set(texts)) == 6


async def test_read_state_is_per_user_even_for_a_broadcast(store: SqlStore) -> None:
    [everyone] = await create(store, note("everyone", all=True))
    assert await store.mark_read(ALICE, [everyone], now_ms=ids.time_ms()) == [everyone]
    assert await store.unread_count(ALICE, now_ms=ids.time_ms()) == 0
    assert await store.unread_count(BOB, now_ms=ids.time_ms()) == 1
    page = await store.page(ALICE, now_ms=ids.time_ms(), limit=10)
    assert page.items[0].read_at is not None


async def test_marking_read_twice_changes_nothing_the_second_time(store: SqlStore) -> None:
    [one] = await create(store, note("x", users=("alice",)))
    assert await store.mark_read(ALICE, [one], now_ms=ids.time_ms()) == [one]
    assert await store.mark_read(ALICE, [one], now_ms=ids.time_ms()) == []


async def test_a_user_cannot_mark_or_hide_what_they_cannot_see(store: SqlStore) -> None:
    [secret] = await create(store, note("for admins", roles=("admin",)))
    assert await store.mark_read(BOB, [secret], now_ms=ids.time_ms()) == []
    assert await store.hide(BOB, secret, now_ms=ids.time_ms()) is False
    assert await store.unread_count(ALICE, now_ms=ids.time_ms()) == 1


async def test_mark_all_read_is_one_write_and_spares_later_items(store: SqlStore) -> None:
    await create(store, *(note(f"b{i}", all=True) for i in range(300)))
    await store.mark_all_read(BOB, now_ms=ids.time_ms())
    assert await count_rows(store, receipts) == 0
    assert await store.unread_count(BOB, now_ms=ids.time_ms()) == 0
    assert await store.unread_count(ALICE, now_ms=ids.time_ms()) == 300
    await create(store, note("after", all=True))
    assert await store.unread_count(BOB, now_ms=ids.time_ms()) == 1
    assert await titles(store, BOB, unread_only=True) == ["after"]


async def test_hiding_is_per_user(store: SqlStore) -> None:
    [everyone] = await create(store, note("everyone", all=True))
    assert await store.hide(ALICE, everyone, now_ms=ids.time_ms()) is True
    assert await titles(store, ALICE) == []
    assert await store.unread_count(ALICE, now_ms=ids.time_ms()) == 0
    assert await titles(store, BOB) == ["everyone"]


async def test_pages_walk_newest_first_without_overlap(store: SqlStore) -> None:
    await create(store, *(note(f"n{i}", users=("alice",)) for i in range(7)))
    seen, before = [], None
    while True:
        page = await store.page(ALICE, now_ms=ids.time_ms(), limit=3, before=before)
        seen += [item.title for item in page.items]
        assert page.unread_count == 7
        if page.next_before is None:
            break
        before = ids.decode(page.next_before)
    assert seen == [f"n{i}" for i in reversed(range(7))]


async def test_a_user_addressed_twice_sees_it_once(store: SqlStore) -> None:
    await create(store, note("both", users=("alice",), roles=("admin",)))
    assert await titles(store, ALICE) == ["both"]
    assert await store.unread_count(ALICE, now_ms=ids.time_ms()) == 1


async def test_expired_items_are_never_returned_or_counted_and_are_swept(store: SqlStore) -> None:
    now = ids.time_ms()
    soon = datetime.now(UTC) + timedelta(seconds=5)
    expiring = PendingCreate(NewNotification(Audience(all=True), "t", "info", "x", expires_at=soon))
    await create(store, expiring, note("stays", all=True), now_ms=now)
    later = now + 10_000
    page = await store.page(BOB, now_ms=later, limit=10)
    assert [i.title for i in page.items] == ["stays"]
    assert page.unread_count == 1
    assert await store.sweep(now_ms=later) == 1
    assert await count_rows(store, notifications) == 1


async def test_items_older_than_the_retention_age_disappear(store: SqlStore) -> None:
    old = ids.time_ms() - 31 * 86_400_000
    await create(store, note("ancient", users=("alice",)), now_ms=old)
    await create(store, note("fresh", users=("alice",)))
    assert await titles(store, ALICE) == ["fresh"]
    assert await store.sweep(now_ms=ids.time_ms()) == 1


async def test_the_sweep_caps_each_inbox(store: SqlStore) -> None:
    store = SqlStore(store.url, max_age_ms=86_400_000, max_items=3)
    try:
        await create(store, *(note(f"n{i}", users=("alice",)) for i in range(5)))
        assert await store.sweep(now_ms=ids.time_ms()) == 2
        assert await titles(store, ALICE) == ["n4", "n3", "n2"]
    finally:
        await store.close()


async def test_resume_returns_what_came_after_oldest_first(store: SqlStore) -> None:
    made = await create(store, *(note(f"n{i}", all=True) for i in range(4)))
    missed = await store.after(CAROL, made[1], now_ms=ids.time_ms(), limit=10)
    assert missed is not None
    assert [m.notification.title for m in missed] == ["n2", "n3"]
    assert await store.after(CAROL, made[0], now_ms=ids.time_ms(), limit=2) is None


async def test_idempotency_keys_return_the_original_or_conflict(store: SqlStore) -> None:
    first = PendingCreate(note("x", users=("alice",)).new, "key1", "idem", "hash-a")
    [created] = (await store.insert([first], now_ms=ids.time_ms())).outcomes
    again = await store.find_idempotent("key1", "idem", "hash-a")
    assert again is not None and again.notification.id == created.notification.id
    assert again.created is False
    with pytest.raises(Conflict):
        await store.find_idempotent("key1", "idem", "hash-b")
    assert await store.find_idempotent("other-api-key", "idem", "hash-a") is None


async def test_two_writers_on_one_sqlite_file_never_collide(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    first = SqlStore(url, max_age_ms=86_400_000, max_items=1000, sole_writer=True)
    second = SqlStore(url, max_age_ms=86_400_000, max_items=1000, sole_writer=True)
    from tidings.store.migrate import upgrade

    await upgrade(first.writer)
    try:
        made = []
        for store in (first, second, first, second):
            made += await create(store, note("x", users=("alice",)), note("y", all=True))
        assert made == sorted(made)
        assert len(set(made)) == 8
    finally:
        await first.close()
        await second.close()
