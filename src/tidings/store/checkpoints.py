"""SQLite WAL checkpoints off the event loop, without holding up writes.

Left to SQLite, the connection whose commit takes the write-ahead log past 1,000 pages
copies them back into the database file, fsync included, before the commit returns.
The writer runs inline on the event loop (:mod:`tidings.store.inline_sqlite`), so at
1,000 creates/s that was a 5-6 ms stall about eight times a second: the loop stopped
delivering, and it set the targeted p99. The store's connections therefore turn
automatic checkpoints off (:data:`NO_AUTOCHECKPOINT`) and :func:`checkpoint_forever`
does it in two steps, on threads (sqlite3 releases the GIL while it copies):

1. every :data:`INTERVAL`, a PASSIVE checkpoint from a connection of its own copies
   what has been committed; writes go on meanwhile.
2. That alone never lets the log start over under a steady load: writes land while it
   copies, so it never catches up (measured: 69,000 pages in twelve seconds). So one
   more checkpoint runs *through the writer connection*, checked out of its pool of
   one, so no write of this process can land meanwhile. It copies only what step 1
   left, and the next write starts the log over. It holds creates up for its copy and
   two fsyncs (4-10 ms at 1,000 creates/s), so it runs only once the log holds
   :data:`START_OVER_PAGES`. When writes pause, step 1 copies everything and the next
   write starts the log over by itself.

A round is skipped when the log file has not changed since a round that copied all of
it: an idle server does no checkpoint work.

The write that starts the log over writes its header first and fsyncs it: measured at
0.8-1.1 ms for the first create after a pause, against 60-150 µs for the next ones, all
of it on the event loop. So when this process writes the file alone (``sole_writer``)
and a round finds the log all copied, it starts the log over itself, off the loop
(:func:`start_log_over`): one page rewritten unchanged, through the writer connection
like step 2. Its own page then stays uncopied until real writes follow, so the next
create appends instead of paying the fsync. Processes sharing a file do not: each would
copy the others' page and write its own, for ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.store.inline_sqlite import InlineConnection

log = logging.getLogger("tidings.store")
T = TypeVar("T")

NO_AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint=0"
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
LOG_SIZE_LIMIT = "PRAGMA journal_size_limit=16777216"
"""A log that grew in a burst is cut back to 16 MiB when it starts over."""
INTERVAL = 0.1
"""Seconds between checkpoints (step 1)."""
START_OVER_PAGES = 4_000
"""Log size (4 KiB pages, 16 MiB) at which step 2 runs even though creates go on: about
every 0.9 s at 1,000 creates/s (4.5 pages each since migration 0005). Letting the log
grow to 128 MiB instead made the targeted p99 worse, not better (17-27 ms against
7-15 ms, same runs): appending to a growing file, and reads searching a larger log
index, cost more than the holds saved."""


def database_file(url: str) -> str | None:
    """The SQLite file behind ``url``; None for PostgreSQL and in-memory databases."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return database


def _checkpoint(db: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, log pages, pages copied)."""
    busy, pages, copied = db.execute(CHECKPOINT).fetchone()
    return busy, pages, copied


def catch_up(path: str) -> tuple[int, int, int]:
    """Step 1, on the calling thread, from a connection of its own."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return _checkpoint(db)
    finally:
        db.close()


def _rewrite_a_page(db: sqlite3.Connection) -> None:
    """A write that changes nothing: the database header's user version, set to itself."""
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        db.execute(f"PRAGMA user_version = {int(version)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


async def _through_writer(writer: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` on the writer connection, checked out so no write of this process can
    land meanwhile: on aiosqlite's thread, or on one of its own when it runs inline."""
    async with writer.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: aiosqlite.Connection = raw.driver_connection  # type: ignore[assignment]
        if isinstance(driver, InlineConnection):
            return await asyncio.to_thread(work, driver._conn)
        result: T = await driver._execute(work, driver._conn)
        return result


async def start_over(writer: AsyncEngine) -> tuple[int, int, int]:
    """Step 2: a checkpoint through the writer connection (see the module docstring)."""
    return await _through_writer(writer, _checkpoint)


async def start_log_over(writer: AsyncEngine) -> None:
    """Start an all-copied log over now, off the loop (see the module docstring)."""
    await _through_writer(writer, _rewrite_a_page)


def _log_stamp(path: str) -> tuple[int, int] | None:
    """(mtime, size) of the file's log: it changes with every commit."""
    try:
        found = os.stat(f"{path}-wal")
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


async def checkpoint_forever(path: str, writer: AsyncEngine, *, sole_writer: bool) -> None:
    """Step 1 every :data:`INTERVAL` while the log changes, step 2 when it is due; and
    for a ``sole_writer``, a log all copied started over (see the module docstring)."""
    settled: tuple[int, int] | None = None
    while True:
        await asyncio.sleep(INTERVAL)
        stamp = _log_stamp(path)
        if stamp is not None and stamp == settled:
            continue
        try:
            busy, pages, copied = await asyncio.to_thread(catch_up, path)
            if pages >= START_OVER_PAGES:
                await start_over(writer)
                settled = None
            elif (busy, copied) != (0, pages):
                settled = None
            elif sole_writer and pages > 0:
                await start_log_over(writer)
                settled = _log_stamp(path)  # only our own page since: nothing to copy
            else:
                settled = stamp
        except (sqlite3.Error, SQLAlchemyError) as exc:  # the next round tries again
            log.warning("SQLite checkpoint failed: %s", exc)
            settled = None
