"""The store on SQLAlchemy Core: SQLite by default, PostgreSQL through asyncpg.

Visibility of a notification to a user is decided when reading: it has a target whose
audience key is one of the user's keys (their own, their roles', ``*``), it has not
expired, it is younger than the retention age, and the user has not hidden it. It is
unread when, in addition, its id is above the user's ``read_through`` watermark and
no receipt marks it read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings import ids
from tidings.errors import Conflict, Unavailable, ValidationFailed
from tidings.models import NewNotification, Notification, Page, Principal, utc_from_ms
from tidings.preferences import NONE, Preferences
from tidings.store import preferences as prefs_sql
from tidings.store.engine import create_bulk_reader, create_engines
from tidings.store.schema import (
    inbox_state,
    notifications,
    preferences,
    receipts,
    targets,
    webhook_deliveries,
)

WRITE_LOCK = 0x7469_6469_6E67_0001
"""PostgreSQL advisory lock held while ids are minted, so commit order is id order."""

DELETE_CHUNK = 500
INLINE_PAGE = 20
"""Pages up to this size are read inline on SQLite; larger ones on a thread."""


@dataclass(frozen=True, slots=True)
class PendingCreate:
    new: NewNotification
    api_key: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    notification: Notification
    audience_keys: list[str]
    created: bool


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A committed batch and the newest id committed before it (read under the write lock).

    Nothing can be committed between ``previous`` and the batch's first id, so a process
    whose feed has fanned out everything up to ``previous`` may fan the batch out from
    memory without reading it back.
    """

    previous: int
    outcomes: list[CreateOutcome]


WebhookRows = Callable[[list[CreateOutcome]], list[dict[str, Any]]]
"""Rows for ``webhook_deliveries`` from a batch's outcomes (see :meth:`SqlStore.insert`)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A committed notification as the feed reads it: the item and its audience keys."""

    notification: Notification
    audience_keys: list[str]


@dataclass(frozen=True, slots=True)
class ReadState:
    read_through: int
    read_through_at: int


class SqlStore:
    """Persistence and read state. Every method translates database errors to Unavailable."""

    def __init__(
        self, url: str, *, max_age_ms: int, max_items: int, sole_writer: bool = False
    ) -> None:
        self.url = url
        self.reader, self.writer = create_engines(url, sole_writer=sole_writer)
        self.bulk_reader = create_bulk_reader(url) or self.reader
        self.max_age_ms = max_age_ms
        self.max_items = max_items
        self.is_postgres = self.writer.dialect.name == "postgresql"
        self._sole_writer = sole_writer and not self.is_postgres

    async def close(self) -> None:
        await self.reader.dispose()
        if self.bulk_reader is not self.reader:
            await self.bulk_reader.dispose()
        if self.writer is not self.reader:
            await self.writer.dispose()

    async def ping(self) -> None:
        async with _translated(), self.reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- writes ------------------------------------------------------------------------

    async def insert(
        self,
        batch: Sequence[PendingCreate],
        *,
        now_ms: int,
        webhook_rows: WebhookRows | None = None,
    ) -> StoredBatch:
        """Store a batch in one transaction, with ids above every id committed before.

        ``webhook_rows`` turns the outcomes into ``webhook_deliveries`` rows written in the
        same transaction: a committed notification's webhook is queued, kill -9 or not.

        Raises Conflict for the first request whose key was used with a different body;
        callers that batch independent requests should therefore check keys first with
        :meth:`find_idempotent` (the service does).
        """
        if self._sole_writer:
            return await self._insert_inline(batch, now_ms, webhook_rows)
        async with _translated(), self.writer.begin() as conn:
            if self.is_postgres:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
            last = (await conn.execute(select(func.max(notifications.c.id)))).scalar() or 0
            new_ids = ids.next_ids(last, len(batch), now_ms=now_ms)
            rows, target_rows, outcomes = _prepare(batch, new_ids)
            await conn.execute(notifications.insert(), rows)
            await conn.execute(targets.insert(), target_rows)
            if webhook_rows is not None and (queued := webhook_rows(outcomes)):
                await conn.execute(webhook_deliveries.insert(), queued)
        return StoredBatch(last, outcomes)

    async def _insert_inline(
        self, batch: Sequence[PendingCreate], now_ms: int, webhook_rows: WebhookRows | None
    ) -> StoredBatch:
        """The same rows, written straight through the sqlite3 connection.

        Only for an SQLite file this process is meant to write alone (``sole_writer``),
        whose connection runs inline. Measured with one notification per transaction (a
        steady trickle rather than a burst), SQLAlchemy's per-statement work was three
        quarters of the insert's CPU; here it is a few executes on a prepared string.
        """
        async with _translated(), self.writer.connect() as conn:
            raw = await conn.get_raw_connection()
            db: sqlite3.Connection = raw.driver_connection._conn  # type: ignore[union-attr]
            db.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: another process may share the file after all.
                last = db.execute("SELECT max(id) FROM notifications").fetchone()[0] or 0
                new_ids = ids.next_ids(last, len(batch), now_ms=now_ms)
                rows, target_rows, outcomes = _prepare(batch, new_ids)
                db.executemany(_SQLITE_INSERT_NOTIFICATION, rows)
                db.executemany(_SQLITE_INSERT_TARGET, target_rows)
                if webhook_rows is not None and (queued := webhook_rows(outcomes)):
                    db.executemany(_SQLITE_INSERT_WEBHOOK, queued)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return StoredBatch(last, outcomes)

    async def find_idempotent(
        self, api_key: str, idempotency_key: str, request_hash: str
    ) -> CreateOutcome | None:
        """The earlier result for this key, None if unused; Conflict if the body differs."""
        query = select(notifications).where(
            notifications.c.api_key == api_key,
            notifications.c.idempotency_key == idempotency_key,
        )
        async with _translated(), self.reader.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        if row["request_hash"] != request_hash:
            raise Conflict(
                "this Idempotency-Key was already used with a different request body",
                code="idempotency_conflict",
            )
        audience = orjson.loads(row["audience"])
        return CreateOutcome(_from_row(row), audience["keys"], created=False)

    async def mark_read(
        self, principal: Principal, id_values: list[int], *, now_ms: int
    ) -> list[int]:
        """Mark visible, unread notifications read; return the ids that changed."""
        async with _translated(), self.writer.begin() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, state, unread_only=True, prefs=muted)
            query = query.where(targets.c.notification_id.in_(id_values))
            changed = sorted({row[0] for row in await conn.execute(query)})
            if changed:
                await conn.execute(
                    self._upsert_receipts(principal.user, changed, {"read_at": now_ms})
                )
        return changed

    async def mark_all_read(self, principal: Principal, *, now_ms: int) -> int | None:
        """Move the user's watermark to their newest visible id: one write, however many."""
        async with _translated(), self.writer.begin() as conn:
            newest = (
                await conn.execute(
                    select(func.max(targets.c.notification_id)).where(
                        targets.c.audience.in_(principal.audience_keys())
                    )
                )
            ).scalar()
            if newest is None:
                return None
            state = await _read_state(conn, principal.user)
            if state.read_through >= newest:
                return state.read_through
            values = {"user_id": principal.user, "read_through": newest, "read_through_at": now_ms}
            insert = self._insert(inbox_state).values(**values)
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["user_id"],
                    set_={"read_through": newest, "read_through_at": now_ms},
                )
            )
        return newest

    async def hide(self, principal: Principal, id_value: int, *, now_ms: int) -> bool:
        """Delete a notification for this user only; False if they cannot see it."""
        async with _translated(), self.writer.begin() as conn:
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, None, prefs=muted).where(
                targets.c.notification_id == id_value
            )
            if (await conn.execute(query.limit(1))).first() is None:
                return False
            await conn.execute(
                self._upsert_receipts(principal.user, [id_value], {"deleted_at": now_ms})
            )
        return True

    async def sweep(self, *, now_ms: int) -> int:
        """Remove expired, too old and over-the-cap items. Returns notifications removed."""
        async with _translated():
            return await self._sweep(now_ms)

    async def _sweep(self, now_ms: int) -> int:
        """Find through indexes, then delete in small transactions that let others in."""
        oldest_kept = ids.floor_for_ms(now_ms - self.max_age_ms)
        too_old = or_(notifications.c.id < oldest_kept, notifications.c.expires_at <= now_ms)
        async with self.reader.connect() as conn:
            doomed = [
                row[0] for row in await conn.execute(select(notifications.c.id).where(too_old))
            ]
        async with self.writer.begin() as conn:
            doomed += await self._over_the_cap(conn)
        removed = 0
        for start in range(0, len(doomed), DELETE_CHUNK):
            chunk = doomed[start : start + DELETE_CHUNK]
            async with self.writer.begin() as conn:
                removed += await self._delete_unreachable(conn, chunk, too_old)
            await asyncio.sleep(0)
        return removed

    async def _delete_unreachable(
        self, conn: AsyncConnection, chunk: list[int], too_old: ColumnElement[bool]
    ) -> int:
        """Delete the notifications of ``chunk`` that expired or lost all their targets."""
        targetless = ~exists().where(targets.c.notification_id == notifications.c.id)
        found = await conn.execute(
            select(notifications.c.id).where(
                notifications.c.id.in_(chunk), or_(too_old, targetless)
            )
        )
        gone = [row[0] for row in found]
        if gone:
            await conn.execute(delete(targets).where(targets.c.notification_id.in_(gone)))
            await conn.execute(delete(receipts).where(receipts.c.notification_id.in_(gone)))
            await conn.execute(delete(notifications).where(notifications.c.id.in_(gone)))
        return len(gone)

    async def _over_the_cap(self, conn: AsyncConnection) -> list[int]:
        """Drop targets beyond the newest ``max_items`` of each audience; return their ids."""
        crowded = await conn.execute(
            select(targets.c.audience)
            .group_by(targets.c.audience)
            .having(func.count() > self.max_items)
        )
        dropped: list[int] = []
        for (audience,) in crowded.all():
            cutoff = (
                select(targets.c.notification_id)
                .where(targets.c.audience == audience)
                .order_by(targets.c.notification_id.desc())
                .offset(self.max_items)
                .limit(1)
                .scalar_subquery()
            )
            old = targets.c.audience == audience, targets.c.notification_id <= cutoff
            dropped += [
                row[0] for row in await conn.execute(select(targets.c.notification_id).where(*old))
            ]
            await conn.execute(delete(targets).where(*old))
        return dropped

    # -- preferences -------------------------------------------------------------------

    async def preferences(self, user: str) -> Preferences:
        async with _translated(), self.reader.connect() as conn:
            return await prefs_sql.read(conn, user)

    async def set_preferences(self, user: str, value: Preferences, *, now_ms: int) -> None:
        values = prefs_sql.row(user, value, now_ms)
        upsert = self._insert(preferences).values(**values)
        upsert = upsert.on_conflict_do_update(
            index_elements=["user_id"], set_={k: v for k, v in values.items() if k != "user_id"}
        )
        async with _translated(), self.writer.begin() as conn:
            await conn.execute(upsert)

    # -- the log -----------------------------------------------------------------------

    async def last_id(self) -> int:
        """The newest committed id (0 for an empty store)."""
        async with _translated(), self.reader.connect() as conn:
            return int((await conn.execute(select(func.max(notifications.c.id)))).scalar() or 0)

    async def figures(self, *, now_ms: int, types: int = 50) -> dict[str, Any]:
        """Stored notifications: total, created in the last minute and hour, by type."""
        count = select(func.count()).select_from(notifications)
        by_type = (
            select(notifications.c.type, func.count().label("n"))
            .group_by(notifications.c.type)
            .order_by(func.count().desc())
            .limit(types)
        )
        async with _translated(), self.reader.connect() as conn:
            total = (await conn.execute(count)).scalar() or 0
            recent = []
            for since in (now_ms - 60_000, now_ms - 3_600_000):
                floor = ids.floor_for_ms(since)
                recent.append(
                    (await conn.execute(count.where(notifications.c.id >= floor))).scalar()
                )
            minute, hour = (value or 0 for value in recent)
            rows = (await conn.execute(by_type)).all()
        return {
            "total": int(total),
            "last_minute": int(minute),
            "last_hour": int(hour),
            "by_type": {row[0]: int(row[1]) for row in rows},
        }

    async def log_after(
        self, after: int, *, limit: int, until: int | None = None
    ) -> list[LogEntry]:
        """Committed notifications with ids in (``after``, ``until``], oldest first.

        Any snapshot holds a prefix of commit order (ids are minted under the write
        lock), so reading "above my cursor" can never skip a row committed later.
        """
        query = select(notifications).where(notifications.c.id > after)
        if until is not None:
            query = query.where(notifications.c.id <= until)
        query = query.order_by(notifications.c.id.asc()).limit(limit)
        async with _translated(), self.reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [LogEntry(_from_row(row), orjson.loads(row["audience"])["keys"]) for row in rows]

    # -- reads -------------------------------------------------------------------------

    async def page(
        self,
        principal: Principal,
        *,
        now_ms: int,
        limit: int,
        before: int | None = None,
        unread_only: bool = False,
    ) -> Page:
        engine = self.reader if limit <= INLINE_PAGE else self.bulk_reader
        async with _translated(), engine.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, state, unread_only=unread_only, prefs=muted)
            if before is not None:
                query = query.where(targets.c.notification_id < before)
            query = query.order_by(targets.c.notification_id.desc()).limit(limit + 1)
            found = [row[0] for row in await conn.execute(query)]
            items = await self._load(conn, principal.user, found[:limit], state)
            unread = await self._count_unread(conn, principal, now_ms, state, muted)
        next_before = ids.encode(found[limit - 1]) if len(found) > limit else None
        return Page(items=items, unread_count=unread, next_before=next_before)

    async def unread_count(self, principal: Principal, *, now_ms: int) -> int:
        async with _translated(), self.reader.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            return await self._count_unread(conn, principal, now_ms, state, muted)

    async def after(
        self, principal: Principal, after: int, *, now_ms: int, limit: int
    ) -> list[Notification] | None:
        """Visible notifications with id above ``after``, oldest first; None if over limit."""
        async with _translated(), self.reader.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = (
                self._visible(principal, now_ms, state, prefs=muted)
                .where(targets.c.notification_id > after)
                .order_by(targets.c.notification_id.asc())
                .limit(limit + 1)
            )
            found = [row[0] for row in await conn.execute(query)]
            if len(found) > limit:
                return None
            items = await self._load(conn, principal.user, found, state)
        return items[::-1]

    async def get(self, principal: Principal, id_value: int, *, now_ms: int) -> Notification | None:
        async with _translated(), self.reader.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, state, prefs=muted).where(
                targets.c.notification_id == id_value
            )
            if (await conn.execute(query.limit(1))).first() is None:
                return None
            items = await self._load(conn, principal.user, [id_value], state)
        return items[0] if items else None

    # -- query building ----------------------------------------------------------------

    def _visible(
        self,
        principal: Principal,
        now_ms: int,
        state: ReadState | None,
        *,
        unread_only: bool = False,
        prefs: Preferences = NONE,
    ) -> Select[Any]:
        """Distinct ids of notifications the user can see (and, optionally, has not read),
        without the types and categories they switched off."""
        hidden: ColumnElement[bool] = receipts.c.deleted_at.is_not(None)
        conditions = [
            targets.c.audience.in_(principal.audience_keys()),
            targets.c.notification_id >= ids.floor_for_ms(now_ms - self.max_age_ms),
            or_(targets.c.expires_at.is_(None), targets.c.expires_at > now_ms),
        ]
        if unread_only:
            hidden = or_(hidden, receipts.c.read_at.is_not(None))
            if state is not None and state.read_through:
                conditions.append(targets.c.notification_id > state.read_through)
        conditions.append(
            ~exists().where(
                receipts.c.user_id == principal.user,
                receipts.c.notification_id == targets.c.notification_id,
                hidden,
            )
        )
        muted = prefs_sql.hidden_by(prefs)
        if muted is not None:
            conditions.append(~muted)
        return select(targets.c.notification_id).where(*conditions).distinct()

    async def _count_unread(
        self,
        conn: AsyncConnection,
        principal: Principal,
        now_ms: int,
        state: ReadState,
        prefs: Preferences = NONE,
    ) -> int:
        query = self._visible(principal, now_ms, state, unread_only=True, prefs=prefs)
        visible = query.subquery()
        count = select(func.count()).select_from(visible)
        return int((await conn.execute(count)).scalar() or 0)

    async def _load(
        self, conn: AsyncConnection, user: str, id_values: list[int], state: ReadState
    ) -> list[Notification]:
        """Notifications by id, newest first, with this user's read_at."""
        if not id_values:
            return []
        rows = await conn.execute(
            select(notifications, receipts.c.read_at.label("receipt_read_at"))
            .outerjoin(
                receipts,
                and_(receipts.c.notification_id == notifications.c.id, receipts.c.user_id == user),
            )
            .where(notifications.c.id.in_(id_values))
            .order_by(notifications.c.id.desc())
        )
        items = []
        for row in rows.mappings():
            read_at = row["receipt_read_at"]
            if read_at is None and row["id"] <= state.read_through:
                read_at = state.read_through_at
            items.append(_from_row(row, read_at))
        return items

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    def _upsert_receipts(self, user: str, id_values: Iterable[int], values: dict[str, int]) -> Any:
        rows = [
            {"user_id": user, "notification_id": value, "read_at": None, "deleted_at": None}
            | values
            for value in id_values
        ]
        insert = self._insert(receipts).values(rows)
        column = next(iter(values))
        keep_first = func.coalesce(receipts.c[column], literal_column(f"excluded.{column}"))
        return insert.on_conflict_do_update(
            index_elements=["user_id", "notification_id"], set_={column: keep_first}
        )


async def _read_state(conn: AsyncConnection, user: str) -> ReadState:
    row = (
        await conn.execute(
            select(inbox_state.c.read_through, inbox_state.c.read_through_at).where(
                inbox_state.c.user_id == user
            )
        )
    ).first()
    return ReadState(row[0], row[1]) if row else ReadState(0, 0)


def _prepare(
    batch: Sequence[PendingCreate], new_ids: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[CreateOutcome]]:
    """Rows for ``notifications`` and ``targets``, and the outcomes to report."""
    rows, target_rows, outcomes = [], [], []
    for value, pending in zip(new_ids, batch, strict=True):
        item = pending.new
        keys = item.audience.keys()
        expires = _ms(item.expires_at)
        rows.append(_notification_row(value, pending, expires))
        target_rows += [
            {"audience": key, "notification_id": value, "expires_at": expires} for key in keys
        ]
        outcomes.append(CreateOutcome(_from_new(value, item), keys, created=True))
    return rows, target_rows, outcomes


def _named_insert(table: Any) -> str:
    columns = [column.name for column in table.columns]
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({values})"


_SQLITE_INSERT_NOTIFICATION = _named_insert(notifications)
_SQLITE_INSERT_TARGET = _named_insert(targets)
_SQLITE_INSERT_WEBHOOK = (
    "INSERT INTO webhook_deliveries (event_id, url, type, body, created_at, due_at) "
    "VALUES (:event_id, :url, :type, :body, :created_at, :due_at)"
)


def _notification_row(value: int, pending: PendingCreate, expires: int | None) -> dict[str, Any]:
    item = pending.new
    audience = {
        "users": list(item.audience.users),
        "roles": list(item.audience.roles),
        "all": item.audience.all,
        "keys": item.audience.keys(),
    }
    return {
        "id": value,
        "type": item.type,
        "level": item.level,
        "title": item.title,
        "body": item.body,
        "data": orjson.dumps(item.data).decode(),
        "url": item.url,
        "actor": item.actor,
        "audience": orjson.dumps(audience).decode(),
        "expires_at": expires,
        "api_key": pending.api_key if pending.idempotency_key else None,
        "idempotency_key": pending.idempotency_key,
        "request_hash": pending.request_hash if pending.idempotency_key else None,
        "category": item.category,
        "actions": _json_or_none(item.actions),
        "critical": item.critical,
        "locales": _json_or_none(item.locales),
        "template_version": item.template_version,
    }


def _json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _from_new(value: int, item: NewNotification) -> Notification:
    return Notification(
        id=ids.encode(value),
        type=item.type,
        level=item.level,
        title=item.title,
        body=item.body,
        data=item.data,
        url=item.url,
        actor=item.actor,
        created_at=utc_from_ms(ids.ms_of(value)),
        expires_at=item.expires_at,
        category=item.category,
        actions=item.actions,
        critical=item.critical,
        locales=item.locales,
    )


def _from_row(row: Any, read_at: int | None = None) -> Notification:
    return Notification(
        id=ids.encode(row["id"]),
        type=row["type"],
        level=row["level"],
        title=row["title"],
        body=row["body"],
        data=orjson.loads(row["data"]),
        url=row["url"],
        actor=row["actor"],
        created_at=utc_from_ms(ids.ms_of(row["id"])),
        expires_at=utc_from_ms(row["expires_at"]) if row["expires_at"] is not None else None,
        read_at=utc_from_ms(read_at) if read_at is not None else None,
        category=row["category"],
        actions=orjson.loads(row["actions"]) if row["actions"] is not None else None,
        critical=bool(row["critical"]),
        locales=orjson.loads(row["locales"]) if row["locales"] is not None else None,
    )


def _ms(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


class _translated:
    """Turn database driver errors into ours at the boundary: a value the database refuses
    (U+0000 in text on PostgreSQL, a number out of range) is the client's 422, anything
    else :class:`Unavailable`."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
            raise Conflict("a concurrent request used the same Idempotency-Key") from exc
        if _refused_value(exc):
            raise ValidationFailed("the database cannot store a value of this request") from exc
        if isinstance(exc, SQLAlchemyError | sqlite3.Error | OSError):
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        return False


def _refused_value(exc: BaseException | None) -> bool:
    """SQLSTATE class 22, "data exception" (asyncpg's errors reach us as plain DBAPIError),
    or a Python int that SQLite cannot hold."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DataError | OverflowError) or (
        isinstance(sqlstate, str) and sqlstate.startswith("22")
    )
