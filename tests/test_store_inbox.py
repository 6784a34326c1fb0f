"""The store contract for inbox actions and changes after sending, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_store import ALICE, BOB, CAROL, count_rows, create, note, titles

from tidings import ids
from tidings.models import Audience, InboxFilter, NewNotification
from tidings.store import PendingCreate, SqlStore
from tidings.store.schema import notifications, targets

ARCHIVE = InboxFilter(archived=True)


def keyed(title: str, key: str, **audience: object) -> PendingCreate:
    new = NewNotification(Audience(**audience), "upload", "info", title, key=key)  # type: ignore[arg-type]
    return PendingCreate(new)


async def unread(store: SqlStore, who=ALICE) -> int:  # type: ignore[no-untyped-def]
    return await store.unread_count(who, now_ms=ids.time_ms())


async def test_marking_unread_beats_read_all_until_read_again(store: SqlStore) -> None:
    first, second = await create(store, note("a", all=True), note("b", all=True))
    await store.mark_all_read(ALICE, now_ms=ids.time_ms())
    assert await unread(store) == 0
    again = {"read_at": None, "unread_at": 1}
    assert await store.set_receipt(ALICE, first, again, now_ms=ids.time_ms())
    assert await unread(store) == 1
    page = await store.page(ALICE, now_ms=ids.time_ms(), limit=10, unread_only=True)
    assert [item.title for item in page.items] == ["a"]
    assert page.items[0].read_at is None
    assert await store.mark_read(ALICE, [first], now_ms=ids.time_ms()) == [first]
    assert await unread(store) == 0
    await store.set_receipt(ALICE, second, {"read_at": None, "unread_at": 1}, now_ms=ids.time_ms())
    await store.mark_all_read(ALICE, now_ms=ids.time_ms())
    assert await unread(store) == 0
    assert await unread(store, BOB) == 2


async def test_archive_is_per_user_and_keeps_a_broadcast_stored_once(store: SqlStore) -> None:
    [everyone] = await create(store, note("everyone", all=True))
    now = ids.time_ms()
    assert await store.set_receipt(ALICE, everyone, {"archived_at": now}, now_ms=now)
    assert await titles(store, ALICE) == []
    assert await unread(store) == 0
    assert await titles(store, ALICE, only=ARCHIVE) == ["everyone"]
    archived = (await store.page(ALICE, now_ms=now, limit=5, only=ARCHIVE)).items[0]
    assert archived.archived_at is not None
    assert await titles(store, BOB) == ["everyone"]
    assert await titles(store, BOB, only=ARCHIVE) == []
    assert await count_rows(store, notifications) == 1
    assert await count_rows(store, targets) == 1
    assert await store.set_receipt(ALICE, everyone, {"archived_at": None}, now_ms=now)
    assert await titles(store, ALICE) == ["everyone"]


async def test_archive_read_takes_only_read_items(store: SqlStore) -> None:
    old, _ = await create(store, note("old", all=True), note("new", all=True))
    await store.mark_read(ALICE, [old], now_ms=ids.time_ms())
    assert await store.archive_read(ALICE, now_ms=ids.time_ms()) == [old]
    assert await titles(store, ALICE) == ["new"]
    assert await titles(store, ALICE, only=ARCHIVE) == ["old"]


async def test_snoozed_items_hide_then_come_back_unread(store: SqlStore) -> None:
    [item] = await create(store, note("later", roles=("admin",)))
    await store.mark_read(ALICE, [item], now_ms=ids.time_ms())
    now = ids.time_ms()
    until = now + 60_000
    values = {"snoozed_until": until, "read_at": None, "unread_at": now}
    assert await store.set_receipt(ALICE, item, values, now_ms=now)
    assert await titles(store, ALICE) == []
    assert await unread(store) == 0
    assert (await store.get(ALICE, item, now_ms=now)).snoozed_until is not None  # type: ignore[union-attr]
    assert await store.woken(now, until - 1) == []
    assert await store.woken(now, until) == [("alice", item, until)]
    back = await store.page(ALICE, now_ms=until, limit=5)
    assert [(i.title, i.read_at, i.snoozed_until) for i in back.items] == [("later", None, None)]
    assert back.unread_count == 1


async def test_others_ids_are_not_theirs_to_change(store: SqlStore) -> None:
    [mine] = await create(store, note("private", users=("alice",)))
    now = ids.time_ms()
    assert not await store.set_receipt(BOB, mine, {"archived_at": now}, now_ms=now)
    assert not await store.set_receipt(BOB, 12345, {"archived_at": now}, now_ms=now)
    assert await titles(store, ALICE) == ["private"]


async def test_lists_filter_by_type_category_and_level(store: SqlStore) -> None:
    def made(title: str, **fields: object) -> PendingCreate:
        base = NewNotification(Audience(all=True), "chat", "info", title)
        return PendingCreate(replace(base, **fields))  # type: ignore[arg-type]

    await create(
        store,
        made("chat"),
        made("post", type="post", category="news"),
        made("alarm", type="post", level="error"),
    )
    assert await titles(store, ALICE, only=InboxFilter(types=("post",))) == ["alarm", "post"]
    assert await titles(store, ALICE, only=InboxFilter(categories=("news",))) == ["post"]
    levels = InboxFilter(levels=("error", "warning"), types=("post", "chat"))
    assert await titles(store, ALICE, only=levels) == ["alarm"]


async def test_a_change_takes_a_new_position_in_the_log(store: SqlStore) -> None:
    first, second = await create(store, note("v1", all=True), note("other", all=True))
    stored = await store.change(first, {"title": "v2", "data": {"p": 50}}, now_ms=ids.time_ms())
    assert stored is not None and stored.previous == second
    [outcome] = stored.outcomes
    assert outcome.log_position > second and outcome.change == "updated"
    assert outcome.notification.id == ids.encode(first)
    assert outcome.notification.title == "v2" and outcome.notification.updated_at is not None
    log = await store.log_after(0, limit=10)
    assert [(e.notification.title, e.change) for e in log] == [("other", None), ("v2", "updated")]
    assert [e.position for e in log] == [second, outcome.log_position]
    assert await store.last_id() == outcome.log_position
    assert await store.change(424242, {"title": "x"}, now_ms=ids.time_ms()) is None


async def test_resume_gets_each_item_once_in_its_final_state(store: SqlStore) -> None:
    old, seen = await create(store, note("old v1", all=True), note("seen", all=True))
    [new] = await create(store, note("new v1", all=True))
    for title in ("old v2", "old v3"):
        await store.change(old, {"title": title}, now_ms=ids.time_ms())
    await store.change(new, {"title": "new v2"}, now_ms=ids.time_ms())
    missed = await store.after(CAROL, seen, now_ms=ids.time_ms(), limit=10)
    assert missed is not None
    assert [(m.notification.title, m.change) for m in missed] == [
        ("old v3", "updated"),
        ("new v2", None),
    ]
    positions = [m.position for m in missed]
    assert positions == sorted(positions) and positions[0] > new
    assert await store.after(CAROL, positions[-1], now_ms=ids.time_ms(), limit=10) == []


async def test_a_retraction_leaves_every_list_and_reaches_resumers(store: SqlStore) -> None:
    gone, kept = await create(store, note("gone", all=True), note("kept", roles=("admin",)))
    [late] = await create(store, note("late", all=True))
    await store.retract(late, now_ms=ids.time_ms())
    stored = await store.retract(gone, now_ms=ids.time_ms())
    assert stored is not None and stored.outcomes[0].change == "retracted"
    assert await store.retract(gone, now_ms=ids.time_ms()) is None
    assert await titles(store, ALICE) == ["kept"]
    assert await titles(store, BOB) == []
    assert await unread(store, BOB) == 0
    missed = await store.after(BOB, kept, now_ms=ids.time_ms(), limit=10)
    assert [(m.notification.id, m.change) for m in missed or []] == [
        (ids.encode(gone), "retracted")
    ]
    # Never saw "late" (created and retracted after its position): nothing to say.
    assert await store.after(BOB, late - 1, now_ms=ids.time_ms(), limit=10) == [
        m for m in missed or [] if m.notification.id != ids.encode(late)
    ]


async def test_a_create_with_a_key_replaces_the_same_key_and_audience(store: SqlStore) -> None:
    [first] = await create(store, keyed("10%", "upload-1", users=("alice",)))
    [again] = await create(store, keyed("60%", "upload-1", users=("alice",)))
    [other] = await create(store, keyed("to bob", "upload-1", users=("bob",)))
    assert again == first and other != first
    assert await titles(store, ALICE) == ["60%"]
    assert await count_rows(store, notifications) == 2
    stored = await store.insert([keyed("100%", "upload-1", users=("alice",))], now_ms=ids.time_ms())
    [outcome] = stored.outcomes
    assert outcome.change == "updated" and outcome.log_position > other
    await store.retract(first, now_ms=ids.time_ms())
    [fresh] = await create(store, keyed("new", "upload-1", users=("alice",)))
    assert fresh != first and await titles(store, ALICE) == ["new"]


@pytest.mark.parametrize("batch", [2, 3])
async def test_keys_in_one_batch_replace_in_order(store: SqlStore, batch: int) -> None:
    items = [keyed(f"{n}", "k", users=("carol",)) for n in range(batch)]
    made = await create(store, *items)
    assert len(set(made)) == 1
    assert await titles(store, CAROL) == [str(batch - 1)]
