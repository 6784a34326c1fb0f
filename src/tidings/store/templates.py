"""Persistence of event templates and of the event log's view of notifications.

A template is one row per event type: its definition as JSON and a version that every
write raises by one (an upsert with ``RETURNING``, so concurrent writers cannot hand out
the same version). What was sent from events is the ``notifications`` rows with a
``template_version``: no second table to keep in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, select

from tidings import ids
from tidings.store.schema import notifications, templates
from tidings.store.sql import SqlStore, _translated


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    type: str
    version: int
    definition: dict[str, Any]
    updated_at: int
    """Unix milliseconds."""


@dataclass(frozen=True, slots=True)
class SentEvent:
    id: str
    type: str
    category: str | None
    audience: dict[str, Any]
    actor: str | None
    template_version: int
    created_at_ms: int


class TemplateStore:
    """Templates and sent events on the store's engines (SQLite or PostgreSQL)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def put(self, type_: str, definition: dict[str, Any], *, now_ms: int) -> StoredTemplate:
        """Create or replace; the version is 1, then one more than before on every put."""
        encoded = orjson.dumps(definition).decode()
        insert = self.store._insert(templates).values(
            type=type_, version=1, definition=encoded, updated_at=now_ms
        )
        upsert = insert.on_conflict_do_update(
            index_elements=["type"],
            set_={
                "version": templates.c.version + 1,
                "definition": encoded,
                "updated_at": now_ms,
            },
        ).returning(templates.c.version)
        async with _translated(), self.store.writer.begin() as conn:
            version = int((await conn.execute(upsert)).scalar_one())
        return StoredTemplate(type_, version, definition, now_ms)

    async def version(self, type_: str) -> tuple[int, str] | None:
        """The current version and the encoded definition; None if there is no template."""
        query = select(templates.c.version, templates.c.definition).where(templates.c.type == type_)
        async with _translated(), self.store.reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return (int(row[0]), row[1]) if row else None

    async def get(self, type_: str) -> StoredTemplate | None:
        query = select(templates).where(templates.c.type == type_)
        async with _translated(), self.store.reader.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _template(row) if row else None

    async def all(self) -> list[StoredTemplate]:
        query = select(templates).order_by(templates.c.type)
        async with _translated(), self.store.reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_template(row) for row in rows]

    async def delete(self, type_: str) -> bool:
        async with _translated(), self.store.writer.begin() as conn:
            result = await conn.execute(delete(templates).where(templates.c.type == type_))
        return bool(result.rowcount)

    async def sent(
        self, *, limit: int, before: int | None = None, type_: str | None = None
    ) -> list[SentEvent]:
        """Notifications created from events, newest first (``limit`` of them)."""
        columns = (
            notifications.c.id,
            notifications.c.type,
            notifications.c.category,
            notifications.c.audience,
            notifications.c.actor,
            notifications.c.template_version,
        )
        query = select(*columns).where(notifications.c.template_version.is_not(None))
        if before is not None:
            query = query.where(notifications.c.id < before)
        if type_ is not None:
            query = query.where(notifications.c.type == type_)
        query = query.order_by(notifications.c.id.desc()).limit(limit)
        async with _translated(), self.store.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            SentEvent(
                id=ids.encode(row[0]),
                type=row[1],
                category=row[2],
                audience={k: v for k, v in orjson.loads(row[3]).items() if k != "keys"},
                actor=row[4],
                template_version=int(row[5]),
                created_at_ms=ids.ms_of(row[0]),
            )
            for row in rows
        ]


def _template(row: Any) -> StoredTemplate:
    return StoredTemplate(
        type=row["type"],
        version=int(row["version"]),
        definition=orjson.loads(row["definition"]),
        updated_at=int(row["updated_at"]),
    )
