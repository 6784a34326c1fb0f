"""aiosqlite without its thread, for SQLite reads on the event loop.

aiosqlite runs every call on a worker thread. For the small indexed reads tidings makes
per request and per connection (tens of microseconds in SQLite), the hand-off costs
more than the query: two thread switches and a fight for the GIL with the busy event
loop, measured as a third of the server's CPU while 10,000 clients connect. In WAL
mode a reader never waits for a lock, so running reads inline blocks the loop no
longer than the query itself. Writes keep the thread: they may wait on the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url


class InlineConnection(aiosqlite.Connection):
    """An ``aiosqlite.Connection`` whose calls run immediately on the calling thread."""

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._connection is None:
            raise ValueError("Connection closed")
        return partial(fn, *args, **kwargs)()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def inline_connector(url: str) -> Callable[[], Awaitable[InlineConnection]]:
    """An ``async_creator`` for SQLAlchemy's aiosqlite dialect."""
    database = make_url(url).database or ":memory:"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(database, isolation_level=None, check_same_thread=False)

    async def create() -> InlineConnection:
        return await InlineConnection(connect, iter_chunk_size=64)

    return create
