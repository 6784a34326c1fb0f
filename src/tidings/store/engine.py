"""Engines for SQLite (WAL, one writer) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.store.checkpoints import LOG_SIZE_LIMIT, NO_AUTOCHECKPOINT
from tidings.store.inline_sqlite import inline_connector


def create_engines(url: str, *, sole_writer: bool = False) -> tuple[AsyncEngine, AsyncEngine]:
    """Return (reader, writer). They are the same engine except on SQLite.

    SQLite reads run inline on the event loop (see :mod:`tidings.store.inline_sqlite`);
    so do writes when this process is the database's ``sole_writer``, for then nothing
    can make the write lock wait. SQLite allows one writer: the writer engine has one
    connection and opens its transactions with ``BEGIN IMMEDIATE`` so the write lock is
    taken before the id counter is read, never upgraded halfway (which could fail with
    SQLITE_BUSY). No connection checkpoints the log on commit: see
    :mod:`tidings.store.checkpoints`.
    """
    if not url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        return engine, engine
    reader = create_async_engine(
        url, pool_size=4, max_overflow=4, async_creator=inline_connector(url)
    )
    writer_options: dict[str, Any] = {"async_creator": inline_connector(url)} if sole_writer else {}
    writer = create_async_engine(url, pool_size=1, max_overflow=0, **writer_options)
    _configure_sqlite(reader, begin="BEGIN")
    _configure_sqlite(writer, begin="BEGIN IMMEDIATE")
    return reader, writer


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


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        if dbapi_connection.isolation_level is not None:  # inline readers start with None
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute(NO_AUTOCHECKPOINT)
        cursor.execute(LOG_SIZE_LIMIT)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)
