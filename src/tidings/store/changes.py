"""Changes after sending, written under the write lock: each takes a new log position.

A change never rewrites history: the notification keeps its id, and its ``revision``
moves to a position minted like an id (above everything committed before), so the feed
and a resume replay read it in log order, once, and a client that was away sees only
the final state. A retraction leaves a tombstone row (``retracted_at``) for the feed and
for replays, and removes the targets, so no list or count sees it again.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.store.rows import CreateOutcome, PendingCreate, content_values, from_new, from_row, ms
from tidings.store.schema import notifications, receipts, targets

MUTABLE = frozenset({"title", "body", "data", "level", "url", "actions"})
"""What ``PATCH /api/v1/notifications/{id}`` may change."""
_JSON = frozenset({"data", "actions"})


async def replace_keyed(
    conn: AsyncConnection, pending: PendingCreate, position: int, now_ms: int
) -> CreateOutcome | None:
    """Change the live notification with this create's key and audience in place; None if
    there is none (the caller inserts a new one)."""
    item = pending.new
    keys = item.audience.keys()
    candidates = await conn.execute(
        select(notifications.c.id, notifications.c.audience)
        .where(notifications.c.key == item.key, notifications.c.retracted_at.is_(None))
        .order_by(notifications.c.id.desc())
    )
    wanted = sorted(keys)
    found = next(
        (row[0] for row in candidates if sorted(orjson.loads(row[1])["keys"]) == wanted), None
    )
    if found is None:
        return None
    values = content_values(item) | {"revision": position, "updated_at": now_ms}
    if pending.idempotency_key:
        values |= {
            "api_key": pending.api_key,
            "idempotency_key": pending.idempotency_key,
            "request_hash": pending.request_hash,
        }
    await conn.execute(update(notifications).where(notifications.c.id == found).values(**values))
    await conn.execute(
        update(targets)
        .where(targets.c.notification_id == found)
        .values(expires_at=ms(item.expires_at))
    )
    notification = from_new(found, item, updated_ms=now_ms)
    return CreateOutcome(notification, keys, created=True, position=position, change="updated")


async def change(
    conn: AsyncConnection, id_value: int, fields: dict[str, Any], position: int, now_ms: int
) -> CreateOutcome | None:
    """Apply a PATCH (only :data:`MUTABLE` fields); None if there is no such notification.

    Texts of other languages were rendered from the old data: changing the title, body or
    url drops them, so every reader sees the new texts.
    """
    row = await _live(conn, id_value)
    if row is None:
        return None
    values = {
        name: orjson.dumps(value).decode() if name in _JSON and value is not None else value
        for name, value in fields.items()
        if name in MUTABLE
    }
    if {"title", "body", "url"} & fields.keys():
        values["locales"] = None
    values |= {"revision": position, "updated_at": now_ms}
    await conn.execute(update(notifications).where(notifications.c.id == id_value).values(**values))
    changed = dict(row) | values
    keys = orjson.loads(row["audience"])["keys"]
    return CreateOutcome(from_row(changed), keys, False, position=position, change="updated")


async def retract(
    conn: AsyncConnection, id_value: int, position: int, now_ms: int
) -> CreateOutcome | None:
    """Take a notification back for everyone; None if there is no such notification."""
    row = await _live(conn, id_value)
    if row is None:
        return None
    values = {"revision": position, "retracted_at": now_ms, "updated_at": now_ms}
    await conn.execute(update(notifications).where(notifications.c.id == id_value).values(**values))
    await conn.execute(delete(targets).where(targets.c.notification_id == id_value))
    await conn.execute(delete(receipts).where(receipts.c.notification_id == id_value))
    keys = orjson.loads(row["audience"])["keys"]
    gone = from_row(dict(row) | values)
    return CreateOutcome(gone, keys, False, position=position, change="retracted")


async def _live(conn: AsyncConnection, id_value: int) -> Any:
    query = select(notifications).where(
        notifications.c.id == id_value, notifications.c.retracted_at.is_(None)
    )
    return (await conn.execute(query)).mappings().first()
