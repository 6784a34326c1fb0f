"""Reads made for every connecting client, compiled once and run on the driver.

A client that connects needs its preferences and its unread count before the welcome
frame; with several processes, each reads the log after every other's commits (the
feed). Through SQLAlchemy's statement layer those reads cost 2.4 ms of server CPU per
connection on the bench machine (a pool checkout per method, a cache key for the
visibility query on every call, execution contexts, result wrapping), where SQLite
itself needs tens of microseconds: most of what a connect cost.

The statements stay the store's own (one definition of visibility): each is built
with named bind parameters, compiled once per *shape* (which optional conditions it
has, how many audience keys) and dialect, and run with its values on the driver:

- SQLite: on connections of its own, inline, each read in one snapshot (``BEGIN`` ...
  ``COMMIT``; in WAL mode a reader never waits for the writer);
- PostgreSQL: on the asyncpg connection of a pooled one (no compile, no SQLAlchemy
  cursor, one round trip per statement).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement

from tidings.store.pg_driver import driver_of

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as the driver takes it: SQL text and its parameters' names in order."""

    sql: str
    names: tuple[str, ...]
    columns: tuple[str, ...]
    """The names of the columns it selects (rows come as tuples)."""
    fixed: Mapping[str, Any]
    """Values the statement carries itself (a dialect's own, such as SQLite's OFFSET 0)."""

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        fixed = self.fixed
        return tuple(values[n] if n in values else fixed[n] for n in self.names)

    def mapping(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.columns, row, strict=True))


class Statements:
    """Compiled statements by shape, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._by_shape: dict[Hashable, Compiled] = {}

    def get(self, shape: Hashable, build: Callable[[], ClauseElement]) -> Compiled:
        """The statement of this shape, built and compiled on first use."""
        found = self._by_shape.get(shape)
        if found is None:
            statement = build()
            compiled = statement.compile(dialect=self.dialect)
            if "POSTCOMPILE" in compiled.string:
                raise ValueError(f"{shape!r}: expanding parameters cannot be compiled once")
            columns = tuple(c.key for c in getattr(statement, "selected_columns", ()))
            fixed = {k: v for k, v in compiled.params.items() if v is not None}
            names = tuple(getattr(compiled, "positiontup", None) or ())
            found = Compiled(compiled.string, names, columns, fixed)
            self._by_shape[shape] = found
        return found


Run = Callable[[Compiled, Mapping[str, Any]], Awaitable[Rows]]
"""Run one compiled statement with these values; its rows."""


class Reads(Protocol):
    async def read(self, work: Callable[[Run], Awaitable[T]]) -> T:
        """Call ``work`` with a :data:`Run` bound to one connection (and snapshot)."""
        ...

    def close(self) -> None: ...


class SqliteReads:
    """Compiled reads on SQLite connections of their own, inline on the event loop.

    ``work`` must await nothing but ``run``: a connection serves one read at a time, and
    a second read started meanwhile takes another connection.
    """

    def __init__(self, url: str) -> None:
        self._database = make_url(url).database or ":memory:"
        self._idle: list[sqlite3.Connection] = []

    async def read(self, work: Callable[[Run], Awaitable[T]]) -> T:
        conn = self._idle.pop() if self._idle else self._open()

        async def run(statement: Compiled, values: Mapping[str, Any]) -> Rows:
            return conn.execute(statement.sql, statement.args(values)).fetchall()

        try:
            conn.execute("BEGIN")
            result = await work(run)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()  # in an unknown state: never reused
            raise
        self._idle.append(conn)
        return result

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._database, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA query_only=ON")
        return conn

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class EngineReads:
    """Compiled reads on the asyncpg connections of an engine's pool (PostgreSQL).

    The SQL is compiled for SQLAlchemy's asyncpg dialect, whose parameters are asyncpg's
    own (``$1``), so it runs on the driver as it is: SQLAlchemy's cursor and result
    layers cost more client CPU than the read's round trip. A connection an error may
    have broken leaves the pool (:func:`~tidings.store.pg_driver.driver_of`).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self, work: Callable[[Run], Awaitable[T]]) -> T:
        async with self._engine.connect() as conn, driver_of(conn) as driver:

            async def run(statement: Compiled, values: Mapping[str, Any]) -> Rows:
                return [
                    tuple(row) for row in await driver.fetch(statement.sql, *statement.args(values))
                ]

            return await work(run)

    def close(self) -> None:
        return None


def create_reads(url: str, engine: AsyncEngine) -> Reads:
    return SqliteReads(url) if url.startswith("sqlite") else EngineReads(engine)
