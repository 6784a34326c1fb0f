"""Preferences in the store: one row per user who set any, and the SQL that applies them.

Preferences act when read: :func:`hidden_by` is the condition that hides a user's
muted types and categories from their lists and counts, broadcasts included, without
per-user copies of anything. Critical notifications are never hidden.
"""

from __future__ import annotations

import orjson
from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.preferences import NONE, Preferences
from tidings.store.schema import notifications, preferences, targets


async def read(conn: AsyncConnection, user: str) -> Preferences:
    query = select(
        preferences.c.types, preferences.c.categories, preferences.c.do_not_disturb_until
    ).where(preferences.c.user_id == user)
    row = (await conn.execute(query)).first()
    if row is None:
        return NONE
    return Preferences(orjson.loads(row[0]), orjson.loads(row[1]), row[2])


def row(user: str, value: Preferences, now_ms: int) -> dict[str, object]:
    return {
        "user_id": user,
        "types": orjson.dumps(value.types).decode(),
        "categories": orjson.dumps(value.categories).decode(),
        "do_not_disturb_until": value.do_not_disturb_until,
        "updated_at": now_ms,
    }


def hidden_by(value: Preferences) -> ColumnElement[bool] | None:
    """True for the targets whose notification the user muted; None if nothing is muted."""
    muted = []
    if value.muted_types:
        muted.append(notifications.c.type.in_(value.muted_types))
    if value.muted_categories:
        muted.append(notifications.c.category.in_(value.muted_categories))
    if not muted:
        return None
    return exists().where(
        notifications.c.id == targets.c.notification_id,
        notifications.c.critical == false(),
        or_(*muted),
    )
