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
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite
import asyncpg
import orjson
from asyncpg.exceptions import (
    IntegrityConstraintViolationError,
    InterfaceError,
    InternalClientError,
    PostgresError,
)
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
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
from tidings.models import INBOX, InboxFilter, Notification, Page, Principal, utc_from_ms
from tidings.preferences import NONE, Preferences
from tidings.store import changes
from tidings.store import preferences as prefs_sql
from tidings.store.checkpoints import checkpoint_forever, database_file
from tidings.store.engine import IdleWriter, create_bulk_reader, create_engines
from tidings.store.pg_driver import driver_of
from tidings.store.prepared import Compiled, Run, Statements, create_reads
from tidings.store.rows import (
    CreateOutcome,
    LogEntry,
    PendingCreate,
    Replayed,
    StoredBatch,
    from_row,
    log_entry,
    prepare,
    prepare_all,
)
from tidings.store.schema import (
    inbox_state,
    notifications,
    preferences,
    receipts,
    targets,
    webhook_deliveries,
)
from tidings.tasks import BackgroundTasks

WebhookRows = Callable[[list[CreateOutcome]], list[dict[str, Any]]]
"""Rows for ``webhook_deliveries`` from a batch's outcomes (see :meth:`SqlStore.insert`)."""

WRITE_LOCK = 0x7469_6469_6E67_0001
"""PostgreSQL advisory lock held while ids are minted, so commit order is id order."""

DELETE_CHUNK = 500
INLINE_PAGE = 20
"""Pages up to this size are read inline on SQLite; larger ones on a thread."""


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
        self._idle_writer = (
            None if self.is_postgres else IdleWriter(self.writer, shared=not sole_writer)
        )
        self._reads = create_reads(url, self.reader)
        self._statements = Statements(self.reader.dialect)
        self._tasks = BackgroundTasks()

    def start(self) -> None:
        """Start the store's background work: checkpoints of an SQLite file's log, which
        its connections never make themselves (see :mod:`tidings.store.checkpoints`)."""
        database = database_file(self.url)
        idle = self._idle_writer  # there is one for every SQLite store
        if database is not None and idle is not None and not self._tasks:
            self._tasks.start(
                checkpoint_forever(database, self.writer, sole_writer=not idle.shared),
                name="tidings-sqlite-checkpoints",
            )

    def _compiled(self, shape: Hashable, build: Callable[[], Any]) -> Compiled:
        """What ``build`` makes, compiled on first use of this shape."""
        return self._statements.get(shape, build)

    async def close(self) -> None:
        await self._tasks.stop()
        self._reads.close()
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
        """Store a batch in one transaction, at log positions above every one committed.

        A create with a ``key`` whose key and audience match a live notification changes
        that one in place (same id, a new position) instead of adding another.

        ``webhook_rows`` turns the outcomes into ``webhook_deliveries`` rows written in the
        same transaction: a committed notification's webhook is queued, kill -9 or not.

        Raises Conflict for the first request whose key was used with a different body;
        callers that batch independent requests should therefore check keys first with
        :meth:`find_idempotent` (the service does).
        """
        if not any(p.new.key for p in batch):
            if self.is_postgres:
                return await self._insert_postgres(batch, now_ms, webhook_rows)
            return await self._insert_sqlite(batch, now_ms, webhook_rows)
        async with _translated(), self.writer.begin() as conn:
            last = await self._lock(conn)
            positions = ids.next_ids(last, len(batch), now_ms=now_ms)
            rows, target_rows, outcomes = [], [], []
            for position, pending in zip(positions, batch, strict=True):
                if pending.new.key is not None:
                    replaced = await changes.replace_keyed(conn, pending, position, now_ms)
                    if replaced is not None:
                        outcomes.append(replaced)
                        continue
                    # Inserted now: a later create in this batch may replace it.
                    row, targets_of, outcome = prepare(pending, position)
                    await conn.execute(notifications.insert(), [row])
                    await conn.execute(targets.insert(), targets_of)
                    outcomes.append(outcome)
                    continue
                row, targets_of, outcome = prepare(pending, position)
                rows.append(row)
                target_rows += targets_of
                outcomes.append(outcome)
            if rows:
                await conn.execute(notifications.insert(), rows)
                await conn.execute(targets.insert(), target_rows)
            if webhook_rows is not None and (queued := webhook_rows(outcomes)):
                await conn.execute(webhook_deliveries.insert(), queued)
        return StoredBatch(last, outcomes)

    async def _lock(self, conn: AsyncConnection) -> int:
        """Take the write lock (SQLite: the transaction's BEGIN IMMEDIATE) and return the
        newest log position committed."""
        if self.is_postgres:
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"))
        return int((await conn.execute(select(func.max(notifications.c.revision)))).scalar() or 0)

    async def _insert_sqlite(
        self, batch: Sequence[PendingCreate], now_ms: int, webhook_rows: WebhookRows | None
    ) -> StoredBatch:
        """The same rows, the whole transaction in one call on the sqlite3 connection.

        While the writer's connection is idle, the call runs on the loop without checking
        it out (:class:`~tidings.store.engine.IdleWriter`), unless another process that
        shares the file holds its write lock. Else it waits its turn where the connection
        runs: inline when this process writes the file alone (``sole_writer``), on
        aiosqlite's thread otherwise. Measured with one notification per transaction,
        SQLAlchemy's per-statement work was three quarters of the insert's CPU; and with
        several processes on one file, a statement per thread hop held the write lock
        across as many turns of a busy event loop, while the other processes slept in
        SQLite's busy handler.
        """
        if self._idle_writer is not None:
            with _translated():
                stored = self._idle_writer.run(
                    lambda db: _write_batch(db, batch, now_ms, webhook_rows)
                )
            if stored is not None:
                return stored
        async with _translated(), self.writer.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: aiosqlite.Connection = raw.driver_connection  # type: ignore[assignment]
            waited: StoredBatch = await driver._execute(
                _write_batch, driver._conn, batch, now_ms, webhook_rows
            )
            return waited

    async def _insert_postgres(
        self, batch: Sequence[PendingCreate], now_ms: int, webhook_rows: WebhookRows | None
    ) -> StoredBatch:
        """The same rows on asyncpg itself (:func:`_write_batch_postgres`).

        Through SQLAlchemy's statement layer each of the transaction's statements cost
        more client CPU than its round trip: py-spy put the create transaction at two
        fifths of a PostgreSQL server's CPU at 1,000 creates/s. A connection an error
        may have broken leaves the pool (:func:`~tidings.store.pg_driver.driver_of`).
        """
        async with _translated(), self.writer.connect() as conn, driver_of(conn) as driver:
            return await _write_batch_postgres(driver, batch, now_ms, webhook_rows)

    async def change(
        self, id_value: int, fields: dict[str, Any], *, now_ms: int
    ) -> StoredBatch | None:
        """Change a notification for every recipient (:data:`changes.MUTABLE` fields) at a
        new log position; None if there is no such live notification."""
        async with _translated(), self.writer.begin() as conn:
            last = await self._lock(conn)
            [position] = ids.next_ids(last, 1, now_ms=now_ms)
            outcome = await changes.change(conn, id_value, fields, position, now_ms)
        return None if outcome is None else StoredBatch(last, [outcome])

    async def retract(self, id_value: int, *, now_ms: int) -> StoredBatch | None:
        """Take a notification back for everyone, at a new log position; None if unknown."""
        async with _translated(), self.writer.begin() as conn:
            last = await self._lock(conn)
            [position] = ids.next_ids(last, 1, now_ms=now_ms)
            outcome = await changes.retract(conn, id_value, position, now_ms)
        return None if outcome is None else StoredBatch(last, [outcome])

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
        return CreateOutcome(from_row(row), audience["keys"], created=False)

    async def mark_read(
        self, principal: Principal, id_values: list[int], *, now_ms: int
    ) -> list[int]:
        """Mark visible, unread notifications read; return the ids that changed."""
        async with _translated(), self.writer.begin() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(
                principal, now_ms, state, unread_only=True, prefs=muted, view="any"
            )
            query = query.where(targets.c.notification_id.in_(id_values))
            changed = sorted({row[0] for row in await conn.execute(query)})
            if changed:
                values = {"read_at": now_ms, "unread_at": None}
                await conn.execute(self._put_receipts(principal.user, changed, values))
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
            # Items marked unread again are read now too (snoozed ones stay unread: they
            # come back unread when they wake).
            await conn.execute(
                receipts.update()
                .where(
                    receipts.c.user_id == principal.user,
                    receipts.c.unread_at.is_not(None),
                    receipts.c.notification_id <= newest,
                    or_(receipts.c.snoozed_until.is_(None), receipts.c.snoozed_until <= now_ms),
                )
                .values(unread_at=None, read_at=func.coalesce(receipts.c.read_at, now_ms))
            )
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
        return await self.set_receipt(principal, id_value, {"deleted_at": now_ms}, now_ms=now_ms)

    async def set_receipt(
        self, principal: Principal, id_value: int, values: dict[str, int | None], *, now_ms: int
    ) -> bool:
        """Set this user's own state of one notification they can see (archived or
        snoozed ones too); False if they cannot see it. ``values`` are ``receipts``
        columns: ``read_at``, ``unread_at``, ``deleted_at``, ``archived_at``,
        ``snoozed_until``."""
        async with _translated(), self.writer.begin() as conn:
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, None, prefs=muted, view="any").where(
                targets.c.notification_id == id_value
            )
            if (await conn.execute(query.limit(1))).first() is None:
                return False
            await conn.execute(self._put_receipts(principal.user, [id_value], values))
        return True

    async def archive_read(self, principal: Principal, *, now_ms: int) -> list[int]:
        """Archive every read item of the inbox; return their ids (newest first)."""
        async with _translated(), self.writer.begin() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            shown = self._visible(principal, now_ms, state, prefs=muted)
            unread = self._visible(principal, now_ms, state, unread_only=True, prefs=muted)
            seen = {row[0] for row in await conn.execute(shown)}
            seen -= {row[0] for row in await conn.execute(unread)}
            done = sorted(seen, reverse=True)
            if done:
                await conn.execute(
                    self._put_receipts(principal.user, done, {"archived_at": now_ms})
                )
        return done

    async def woken(self, after_ms: int, through_ms: int) -> list[tuple[str, int, int]]:
        """(user, notification id, until) of snoozes that ended in (``after_ms``,
        ``through_ms``]."""
        # Every process asks twice a second: a statement compiled once, like the log's.
        statement = self._compiled("woken", lambda: WOKEN)
        values = {"after": after_ms, "through": through_ms}

        async def work(run: Run) -> list[tuple[str, int, int]]:
            return [(row[0], row[1], row[2]) for row in await run(statement, values)]

        async with _translated():
            return await self._reads.read(work)

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
        async def work(run: Run) -> Preferences:
            rows = await run(self._compiled("prefs", lambda: PREFS), {"user": user})
            return prefs_sql.from_row(_first(rows))

        async with _translated():
            return await self._reads.read(work)

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
        """The newest committed log position (0 for an empty store)."""
        async with _translated(), self.reader.connect() as conn:
            newest = select(func.max(notifications.c.revision))
            return int((await conn.execute(newest)).scalar() or 0)

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
        """Committed log entries at positions in (``after``, ``until``], in log order.

        Positions are minted under the write lock like ids, so any snapshot holds a
        prefix of the log: reading "above my cursor" can never skip an entry committed
        later. A notification changed twice is read once, at its newest position.
        """
        values = {"after": after, "limit": limit}
        if until is not None:
            values["until"] = until
        statement = self._compiled(("log", *values), lambda: _log_query(until is not None))

        async def work(run: Run) -> list[LogEntry]:
            return [log_entry(statement.mapping(row)) for row in await run(statement, values)]

        async with _translated():
            return await self._reads.read(work)

    # -- reads -------------------------------------------------------------------------

    async def page(
        self,
        principal: Principal,
        *,
        now_ms: int,
        limit: int,
        before: int | None = None,
        unread_only: bool = False,
        only: InboxFilter = INBOX,
    ) -> Page:
        """A page of the inbox (or, with ``only.archived``, the archive), newest first."""
        engine = self.reader if limit <= INLINE_PAGE else self.bulk_reader
        async with _translated(), engine.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(
                principal,
                now_ms,
                state,
                unread_only=unread_only,
                prefs=muted,
                view="archived" if only.archived else "inbox",
                only=only,
            )
            if before is not None:
                query = query.where(targets.c.notification_id < before)
            query = query.order_by(targets.c.notification_id.desc()).limit(limit + 1)
            found = [row[0] for row in await conn.execute(query)]
            items = await self._load(conn, principal.user, found[:limit], state, now_ms)
            unread = await self._count_unread(conn, principal, now_ms, state, muted)
        next_before = ids.encode(found[limit - 1]) if len(found) > limit else None
        return Page(items=items, unread_count=unread, next_before=next_before)

    async def unread_count(self, principal: Principal, *, now_ms: int) -> int:
        return (await self.welcome(principal, now_ms=now_ms))[1]

    async def welcome(self, principal: Principal, *, now_ms: int) -> tuple[Preferences, int]:
        """A connecting client's preferences and unread count, read in one snapshot with
        statements compiled once (see :mod:`tidings.store.prepared`)."""
        user = {"user": principal.user}
        read_state = self._compiled("state", lambda: READ_STATE)
        read_prefs = self._compiled("prefs", lambda: PREFS)

        async def work(run: Run) -> tuple[Preferences, int]:
            state = _state_from(_first(await run(read_state, user)))
            prefs = prefs_sql.from_row(_first(await run(read_prefs, user)))
            values = self._visibility(principal, now_ms, state, prefs)
            count = self._compiled(
                ("unread", *values), lambda: self._unread(principal, now_ms, state, prefs)
            )
            return prefs, int((await run(count, values))[0][0])

        async with _translated():
            return await self._reads.read(work)

    async def after(
        self, principal: Principal, after: int, *, now_ms: int, limit: int
    ) -> list[Replayed] | None:
        """What a client that saw the log up to ``after`` missed, in log order, each
        notification once in its final state; None if more than ``limit``.

        New ones (id above ``after``) come as they are now; older ones changed since come
        as ``updated``; older ones retracted since as ``retracted``. Ones created and
        retracted since are left out: the client never saw them.
        """
        async with _translated(), self.reader.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            log = notifications.alias("log")  # apart from the filters' own subqueries
            query = (
                self._visible(principal, now_ms, state, prefs=muted)
                .add_columns(log.c.revision)
                .join(log, log.c.id == targets.c.notification_id)
                .where(log.c.revision > after)
                .order_by(log.c.revision.asc())
                .limit(limit + 1)
            )
            found = {row[0]: row[1] for row in await conn.execute(query)}
            gone = await self._retracted_after(conn, principal, after, limit)
            if len(found) + len(gone) > limit:
                return None
            items = await self._load(conn, principal.user, list(found), state, now_ms)
        replayed = [
            Replayed(item, found[value], None if value > after else "updated")
            for item in items
            for value in (ids.decode(item.id),)
        ]
        replayed += gone
        return sorted(replayed, key=lambda entry: entry.position)

    async def _retracted_after(
        self, conn: AsyncConnection, principal: Principal, after: int, limit: int
    ) -> list[Replayed]:
        """Tombstones of notifications the client may hold (id up to ``after``) that were
        retracted after it: few, and filtered by audience here."""
        query = (
            select(notifications)
            .where(
                notifications.c.revision > after,
                notifications.c.id <= after,
                notifications.c.retracted_at.is_not(None),
            )
            .order_by(notifications.c.revision.asc())
            .limit(limit + 1)
        )
        keys = set(principal.audience_keys())
        gone = []
        for row in (await conn.execute(query)).mappings():
            entry = log_entry(row)
            if keys.intersection(entry.audience_keys):
                gone.append(Replayed(entry.notification, entry.position, "retracted"))
        return gone

    async def get(self, principal: Principal, id_value: int, *, now_ms: int) -> Notification | None:
        """One notification the user can see (archived and snoozed ones too)."""
        async with _translated(), self.reader.connect() as conn:
            state = await _read_state(conn, principal.user)
            muted = await prefs_sql.read(conn, principal.user)
            query = self._visible(principal, now_ms, state, prefs=muted, view="any").where(
                targets.c.notification_id == id_value
            )
            if (await conn.execute(query.limit(1))).first() is None:
                return None
            items = await self._load(conn, principal.user, [id_value], state, now_ms)
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
        view: View = "inbox",
        only: InboxFilter = INBOX,
    ) -> Select[Any]:
        """Distinct ids of notifications the user can see (and, optionally, has not read),
        without the types and categories they switched off.

        ``view``: ``inbox`` leaves out archived and snoozed items, ``archived`` shows only
        archived ones (not snoozed), ``any`` everything the user has not deleted.

        Values are bound by the names :meth:`_visibility` gives them, so a statement of
        one shape can be compiled once (:mod:`tidings.store.prepared`).
        """
        values = self._visibility(principal, now_ms, state, prefs)

        def bound(name: str) -> Any:
            return bindparam(name, values[name])

        now = bound("now_ms")
        mine = (
            receipts.c.user_id == bound("user"),
            receipts.c.notification_id == targets.c.notification_id,
        )
        hidden: ColumnElement[bool] = receipts.c.deleted_at.is_not(None)
        if view != "any":
            hidden = or_(hidden, receipts.c.snoozed_until > now)
        if view == "inbox":
            hidden = or_(hidden, receipts.c.archived_at.is_not(None))
        audiences = [bound(name) for name in values if name.startswith("audience_")]
        conditions = [
            targets.c.audience.in_(audiences),
            targets.c.notification_id >= bound("oldest"),
            or_(targets.c.expires_at.is_(None), targets.c.expires_at > now),
        ]
        if unread_only:
            hidden = or_(hidden, receipts.c.read_at.is_not(None))
            if "read_through" in values:
                again = exists().where(*mine, receipts.c.unread_at.is_not(None))
                conditions.append(or_(targets.c.notification_id > bound("read_through"), again))
        conditions.append(~exists().where(*mine, hidden))
        if view == "archived":
            conditions.append(exists().where(*mine, receipts.c.archived_at.is_not(None)))
        chosen = _chosen(only)
        if chosen:
            conditions.append(
                exists().where(notifications.c.id == targets.c.notification_id, *chosen)
            )
        muted = prefs_sql.hidden_by(
            [bound(name) for name in values if name.startswith("muted_type_")],
            [bound(name) for name in values if name.startswith("muted_category_")],
        )
        if muted is not None:
            conditions.append(~muted)
        return select(targets.c.notification_id).where(*conditions).distinct()

    def _visibility(
        self, principal: Principal, now_ms: int, state: ReadState | None, prefs: Preferences
    ) -> dict[str, Any]:
        """The values :meth:`_visible` binds, by name; which names there are is its shape."""
        values: dict[str, Any] = {
            "user": principal.user,
            "now_ms": now_ms,
            "oldest": ids.floor_for_ms(now_ms - self.max_age_ms),
        }
        for i, key in enumerate(principal.audience_keys()):
            values[f"audience_{i}"] = key
        if state is not None and state.read_through:
            values["read_through"] = state.read_through
        for i, name in enumerate(prefs.muted_types):
            values[f"muted_type_{i}"] = name
        for i, name in enumerate(prefs.muted_categories):
            values[f"muted_category_{i}"] = name
        return values

    async def _count_unread(
        self,
        conn: AsyncConnection,
        principal: Principal,
        now_ms: int,
        state: ReadState,
        prefs: Preferences = NONE,
    ) -> int:
        count = self._unread(principal, now_ms, state, prefs)
        return int((await conn.execute(count)).scalar() or 0)

    def _unread(
        self, principal: Principal, now_ms: int, state: ReadState, prefs: Preferences
    ) -> Select[Any]:
        visible = self._visible(principal, now_ms, state, unread_only=True, prefs=prefs)
        return select(func.count()).select_from(visible.subquery())

    async def _load(
        self,
        conn: AsyncConnection,
        user: str,
        id_values: list[int],
        state: ReadState,
        now_ms: int = 0,
    ) -> list[Notification]:
        """Notifications by id, newest first, with this user's own state."""
        if not id_values:
            return []
        rows = await conn.execute(
            select(
                notifications,
                receipts.c.read_at.label("receipt_read_at"),
                receipts.c.unread_at.label("receipt_unread_at"),
                receipts.c.archived_at.label("receipt_archived_at"),
                receipts.c.snoozed_until.label("receipt_snoozed_until"),
            )
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
            unread_again = row["receipt_unread_at"] is not None
            if read_at is None and not unread_again and row["id"] <= state.read_through:
                read_at = state.read_through_at
            archived, snoozed = row["receipt_archived_at"], row["receipt_snoozed_until"]
            personal = {
                "archived_at": utc_from_ms(archived) if archived is not None else None,
                "snoozed_until": utc_from_ms(snoozed) if snoozed and snoozed > now_ms else None,
            }
            items.append(from_row(row, read_at, **personal))
        return items

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    def _put_receipts(
        self, user: str, id_values: Iterable[int], values: dict[str, int | None]
    ) -> Any:
        """Upsert this user's receipts of ``id_values``, setting the columns of ``values``."""
        blank = dict.fromkeys(_RECEIPT_STATE)
        rows = [{"user_id": user, "notification_id": value} | blank | values for value in id_values]
        insert = self._insert(receipts).values(rows)
        return insert.on_conflict_do_update(
            index_elements=["user_id", "notification_id"],
            set_={column: literal_column(f"excluded.{column}") for column in values},
        )


View = Literal["inbox", "archived", "any"]
_RECEIPT_STATE = ("read_at", "deleted_at", "unread_at", "archived_at", "snoozed_until")


def _chosen(only: InboxFilter) -> list[ColumnElement[bool]]:
    """The list filters (``?type=&category=&level=``) as conditions on notifications."""
    chosen: list[ColumnElement[bool]] = []
    if only.types:
        chosen.append(notifications.c.type.in_(only.types))
    if only.categories:
        chosen.append(notifications.c.category.in_(only.categories))
    if only.levels:
        chosen.append(notifications.c.level.in_(only.levels))
    return chosen


READ_STATE = select(inbox_state.c.read_through, inbox_state.c.read_through_at).where(
    inbox_state.c.user_id == bindparam("user")
)
"""A user's read watermark (bound: ``user``)."""
PREFS = prefs_sql.READ
WOKEN = select(receipts.c.user_id, receipts.c.notification_id, receipts.c.snoozed_until).where(
    receipts.c.snoozed_until > bindparam("after"),
    receipts.c.snoozed_until <= bindparam("through"),
    receipts.c.deleted_at.is_(None),
)
"""Snoozes that ended in (``after``, ``through``] (bound: ``after``, ``through``)."""


async def _read_state(conn: AsyncConnection, user: str) -> ReadState:
    return _state_from((await conn.execute(READ_STATE, {"user": user})).first())


def _state_from(row: Sequence[Any] | None) -> ReadState:
    return ReadState(row[0], row[1]) if row else ReadState(0, 0)


def _log_query(bounded: bool) -> Select[Any]:
    """Log entries above ``after`` (and up to ``until``), oldest first, at most ``limit``."""
    query = select(notifications).where(notifications.c.revision > bindparam("after"))
    if bounded:
        query = query.where(notifications.c.revision <= bindparam("until"))
    return query.order_by(notifications.c.revision.asc()).limit(bindparam("limit"))


def _first(rows: list[Any]) -> Any:
    return rows[0] if rows else None


def _insert(
    table: Any, columns: Sequence[str] = (), *, numbered: bool
) -> tuple[str, tuple[str, ...]]:
    """The INSERT for ``columns`` of ``table`` (all by default) and the columns in order:
    with named parameters (``:id``, sqlite3) or numbered ones (``$1``, asyncpg)."""
    names = tuple(columns) or tuple(column.name for column in table.columns)
    marks = [f"${n}" for n in range(1, len(names) + 1)] if numbered else [f":{n}" for n in names]
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(marks)})", names


_WEBHOOK_COLUMNS = ("event_id", "url", "type", "body", "created_at", "due_at")
_SQLITE_INSERT_NOTIFICATION, _ = _insert(notifications, numbered=False)
_SQLITE_INSERT_TARGET, _ = _insert(targets, numbered=False)
_SQLITE_INSERT_WEBHOOK, _ = _insert(webhook_deliveries, _WEBHOOK_COLUMNS, numbered=False)
_PG_INSERT_NOTIFICATION = _insert(notifications, numbered=True)
_PG_INSERT_TARGET = _insert(targets, numbered=True)
_PG_INSERT_WEBHOOK = _insert(webhook_deliveries, _WEBHOOK_COLUMNS, numbered=True)


class _translated:
    """Turn database driver errors into ours at the boundary: a value the database refuses
    (U+0000 in text on PostgreSQL, a number out of range) is the client's 422, anything
    else :class:`Unavailable`."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if isinstance(
            exc, IntegrityError | sqlite3.IntegrityError | IntegrityConstraintViolationError
        ):
            raise Conflict("a concurrent request used the same Idempotency-Key") from exc
        if _refused_value(exc):
            raise ValidationFailed("the database cannot store a value of this request") from exc
        if isinstance(
            exc,
            SQLAlchemyError
            | sqlite3.Error
            | OSError
            | PostgresError
            | InterfaceError
            | InternalClientError,
        ):
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        return False


def _refused_value(exc: BaseException | None) -> bool:
    """SQLSTATE class 22, "data exception" (asyncpg's errors reach us as plain DBAPIError,
    or as themselves from the statements run on asyncpg, which reports an argument it
    cannot encode as one too), or a Python int that SQLite cannot hold."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return isinstance(exc, DataError | OverflowError) or (
        isinstance(sqlstate, str) and sqlstate.startswith("22")
    )


def _write_batch(
    db: sqlite3.Connection,
    batch: Sequence[PendingCreate],
    now_ms: int,
    webhook_rows: WebhookRows | None,
) -> StoredBatch:
    """One create transaction on a raw SQLite connection (see :meth:`SqlStore.insert`)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # Read under the write lock: another process may share the file.
        last = db.execute("SELECT max(revision) FROM notifications").fetchone()[0] or 0
        new_ids = ids.next_ids(last, len(batch), now_ms=now_ms)
        rows, target_rows, outcomes = prepare_all(batch, new_ids)
        db.executemany(_SQLITE_INSERT_NOTIFICATION, rows)
        db.executemany(_SQLITE_INSERT_TARGET, target_rows)
        if webhook_rows is not None and (queued := webhook_rows(outcomes)):
            db.executemany(_SQLITE_INSERT_WEBHOOK, queued)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return StoredBatch(last, outcomes)


async def _write_batch_postgres(
    db: asyncpg.Connection,
    batch: Sequence[PendingCreate],
    now_ms: int,
    webhook_rows: WebhookRows | None,
) -> StoredBatch:
    """One create transaction on an asyncpg connection (see :meth:`SqlStore.insert`).

    BEGIN and the write lock go in one round trip. On an error the caller's
    :func:`~tidings.store.pg_driver.driver_of` rolls back or drops the connection.
    """
    await db.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    # Read after the lock: its own statement, so its snapshot sees every commit before.
    last = await db.fetchval("SELECT max(revision) FROM notifications") or 0
    new_ids = ids.next_ids(last, len(batch), now_ms=now_ms)
    rows, target_rows, outcomes = prepare_all(batch, new_ids)
    await _insert_rows(db, _PG_INSERT_NOTIFICATION, rows)
    await _insert_rows(db, _PG_INSERT_TARGET, target_rows)
    if webhook_rows is not None and (queued := webhook_rows(outcomes)):
        await _insert_rows(db, _PG_INSERT_WEBHOOK, queued)
    await db.execute("COMMIT")
    return StoredBatch(last, outcomes)


async def _insert_rows(
    db: asyncpg.Connection, insert: tuple[str, tuple[str, ...]], rows: list[dict[str, Any]]
) -> None:
    sql, columns = insert
    await db.executemany(sql, [tuple(row[c] for c in columns) for row in rows])
