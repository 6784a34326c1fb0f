"""Engines for SQLite (WAL, one writer) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.store.checkpoints import LOG_SIZE_LIMIT, NO_AUTOCHECKPOINT
from tidings.store.inline_sqlite import inline_connector


def create_engines(url: str, *, sole_writer: bool = False) -> tuple[AsyncEngine, AsyncEngine]:
    """Return (reader, writer): engines of their own, with pools of their own.

    SQLite reads run inline on the event loop (see :mod:`tidings.store.inline_sqlite`);
    so do writes when this process is the database's ``sole_writer``, for then nothing
    can make the write lock wait. Otherwise writes run on aiosqlite's thread, where they
    may wait for another process's lock; its sqlite3 connection may still be used from
    the loop's thread while idle (:class:`IdleWriter`). SQLite allows one writer: the
    writer engine has one connection and opens its transactions with ``BEGIN IMMEDIATE``
    so the write lock is taken before the id counter is read, never upgraded halfway
    (which could fail with SQLITE_BUSY). No connection checkpoints the log on commit: see
    :mod:`tidings.store.checkpoints`.
    """
    if not url.startswith("sqlite"):
        # Reads outside a transaction: PostgreSQL's READ COMMITTED gives each statement a
        # snapshot of its own either way, and without one a read is one round trip instead
        # of three (BEGIN, the read, ROLLBACK when the connection goes back to the pool).
        reader = create_async_engine(url, pool_size=6, max_overflow=6, isolation_level="AUTOCOMMIT")
        writer = create_async_engine(url, pool_size=4, max_overflow=4)
        for engine in (reader, writer):
            _ping_after_idle(engine, IDLE_PING_SECONDS)
        return reader, writer
    reader = create_async_engine(
        url, pool_size=4, max_overflow=4, async_creator=inline_connector(url)
    )
    writer_options: dict[str, Any] = (
        {"async_creator": inline_connector(url)}
        if sole_writer
        else {"connect_args": {"check_same_thread": False}}
    )
    writer = create_async_engine(url, pool_size=1, max_overflow=0, **writer_options)
    _configure_sqlite(reader, begin="BEGIN")
    _configure_sqlite(writer, begin="BEGIN IMMEDIATE")
    return reader, writer


T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
"""How long a statement off the loop waits for another connection's lock."""
NO_WAIT = "PRAGMA busy_timeout=0"
WAIT = f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}"


class IdleWriter:
    """The writer's sqlite3 connection while it sits idle in its pool of one.

    A create runs its whole transaction in one synchronous call
    (:meth:`~tidings.store.sql.SqlStore.insert`). Checking the connection out through
    SQLAlchemy's async pool and back in (greenlet switches, a shielded task, a reset
    ROLLBACK) cost more CPU than that transaction: ~100 µs against ~130 µs, measured at
    one create per transaction. While the connection is checked in, nothing else holds
    it, and on the event loop's one thread nothing can take it during a synchronous
    call, so a create may run on it directly. When it is checked out (another write's
    transaction, or a checkpoint that must keep writes out) :attr:`connection` is None
    and creates take the pool's way, waiting their turn.

    When other processes share the file (``shared``), the connection belongs to
    aiosqlite's thread, where writes may wait for their lock. On the loop it must never
    wait: :meth:`run` turns SQLite's busy timeout off for the call, and returns None
    when another process holds the lock, for the caller to wait on the thread. Waiting
    there for every create instead cost each one a thread hop and a turn of the GIL
    behind the busy loop: at 50,000 connections on three workers, that was nearly all
    of a create's latency.
    """

    def __init__(self, engine: AsyncEngine, *, shared: bool) -> None:
        self.connection: sqlite3.Connection | None = None
        self.shared = shared
        self.busy = 0
        """Calls that found the write lock held by another process."""
        pool_events = engine.sync_engine.pool

        @event.listens_for(pool_events, "checkin")
        def _checked_in(_dbapi_connection: Any, record: Any) -> None:
            self.connection = _sqlite3_of(record)

        def _taken(*_args: Any) -> None:
            self.connection = None

        for name in ("checkout", "invalidate", "soft_invalidate", "detach", "close"):
            event.listen(pool_events, name, _taken)

    def run(self, write: Callable[[sqlite3.Connection], T]) -> T | None:
        """``write`` on the idle connection, now; None if it is not idle, or if another
        process holds the write lock (``write`` must then have rolled back)."""
        db = self.connection
        if db is None:
            return None
        if not self.shared:
            return write(db)
        db.execute(NO_WAIT)
        try:
            return write(db)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            self.busy += 1
            return None
        finally:
            db.execute(WAIT)


def _sqlite3_of(record: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under a pool entry's aiosqlite connection, if it is open."""
    connection = getattr(record.driver_connection, "_connection", None)
    return connection if isinstance(connection, sqlite3.Connection) else None


def create_bulk_reader(url: str) -> AsyncEngine | None:
    """An SQLite engine whose reads run on aiosqlite's threads, for the large ones.

    A page of a hundred items with its unread count holds the event loop for
    milliseconds when read inline; on a thread, SQLite runs without the GIL and the loop
    goes on delivering. None for PostgreSQL, whose reads never block the loop.
    """
    if not url.startswith("sqlite"):
        return None
    bulk = create_async_engine(url, pool_size=2, max_overflow=2)
    _configure_sqlite(bulk, begin="BEGIN")
    return bulk


IDLE_PING_SECONDS = 2.0
"""A pooled PostgreSQL connection idle this long is pinged before it is handed out."""


def _ping_after_idle(engine: AsyncEngine, seconds: float) -> None:
    """Ping a connection at checkout only when it sat idle in the pool ``seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: on asyncpg that is BEGIN,
    a ping and ROLLBACK, three round trips before every read and every create's
    transaction, measured as a tenth of the server's CPU at 1,000 creates/s. A
    connection in steady use has just proved itself; one that sat idle may have outlived
    a database restart. One that fails in use anyway fails its request as unavailable
    (503) and leaves the pool: SQLAlchemy's disconnect handling for its own statements,
    :func:`~tidings.store.pg_driver.driver_of` for those run on asyncpg.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops it and hands out a fresh connection
            raise DisconnectionError("a pooled connection did not answer a ping") from exc


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        if dbapi_connection.isolation_level is not None:  # inline readers start with None
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute(NO_AUTOCHECKPOINT)
        cursor.execute(LOG_SIZE_LIMIT)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)
