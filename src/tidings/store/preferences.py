"""Preferences in the store: one row per user who set any, and the SQL that applies them.

Preferences act when read: :func:`hidden_by` is the condition that hides a user's
muted types and categories from their lists and counts, broadcasts included, without
per-user copies of anything. Critical notifications are never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, bindparam, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.preferences import NONE, Preferences
from tidings.store.schema import notifications, preferences, targets

READ = select(
    preferences.c.types, preferences.c.categories, preferences.c.do_not_disturb_until
).where(preferences.c.user_id == bindparam("user"))
"""A user's preferences row (bound: ``user``)."""


async def read(conn: AsyncConnection, user: str) -> Preferences:
    return from_row((await conn.execute(READ, {"user": user})).first())


def from_row(row: Sequence[Any] | None) -> Preferences:
    """Preferences from a :data:`READ` row (None: the user never set any)."""
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


def hidden_by(
    muted_types: Sequence[Any], muted_categories: Sequence[Any]
) -> ColumnElement[bool] | None:
    """True for the targets whose notification the user muted; None if nothing is muted.

    The muted names come as values or bind parameters (the store compiles its reads once
    per shape).
    """
    muted = []
    if muted_types:
        muted.append(notifications.c.type.in_(muted_types))
    if muted_categories:
        muted.append(notifications.c.category.in_(muted_categories))
    if not muted:
        return None
    return exists().where(
        notifications.c.id == targets.c.notification_id,
        notifications.c.critical == false(),
        or_(*muted),
    )
