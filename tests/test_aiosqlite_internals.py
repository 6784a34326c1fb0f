"""What store/inline_sqlite.py, store/sql.py and store/checkpoints.py rely on in aiosqlite.

``InlineConnection`` subclasses ``aiosqlite.Connection``, and the create transaction and
the writer-held checkpoint run a function on the writer's own sqlite3 connection through
``Connection._execute`` and ``Connection._conn``. When processes share the file, creates
run on that sqlite3 connection from the event loop's thread while it is idle
(``store.engine.IdleWriter``): aiosqlite must pass ``check_same_thread`` on. None of
that is public API; the version range in pyproject.toml is the one checked here. A
release that renames or reshapes any of it fails this test rather than sending writes
to the wrong thread or connection.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
from pathlib import Path

import aiosqlite

from tidings.store.inline_sqlite import InlineConnection, inline_connector

SET_BY_THE_BASE = ["_connection", "_connector", "_running"]


def test_the_instance_attributes_we_set_and_read_are_the_bases() -> None:
    source = inspect.getsource(aiosqlite.Connection.__init__)
    for name in SET_BY_THE_BASE:
        assert f"self.{name}" in source, f"aiosqlite no longer sets self.{name}"


def test_execute_takes_a_function_and_its_arguments_and_conn_is_a_property() -> None:
    execute = aiosqlite.Connection._execute
    assert inspect.iscoroutinefunction(execute)
    assert list(inspect.signature(execute).parameters) == ["self", "fn", "args", "kwargs"]
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)
    assert inspect.iscoroutinefunction(aiosqlite.Connection._connect)


async def test_execute_runs_on_the_connections_thread_with_its_sqlite3_connection(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "t.db") as conn:
        thread, raw = await conn._execute(lambda: (threading.get_ident(), conn._conn))
    assert thread != threading.get_ident()
    assert isinstance(raw, sqlite3.Connection)


async def test_connect_arguments_reach_sqlite3_so_the_loop_may_use_an_idle_connection(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "t.db", check_same_thread=False) as conn:
        await conn.execute("create table t (x)")
        await conn.commit()
        conn._conn.execute("insert into t values (1)")  # from this thread, not aiosqlite's
        cursor = await conn.execute("select count(*) from t")
        assert await cursor.fetchone() == (1,)


async def test_an_inline_connection_runs_calls_on_the_loop_and_closes_its_file(
    tmp_path: Path,
) -> None:
    conn = await inline_connector(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")()
    assert isinstance(conn, InlineConnection)
    thread = await conn._execute(threading.get_ident)
    assert thread == threading.get_ident()
    cursor = await conn.execute("select 41 + 1")
    assert await cursor.fetchone() == (42,)
    raw = conn._conn
    await conn.close()
    assert conn._connection is None
    try:
        raw.execute("select 1")
    except sqlite3.ProgrammingError:
        pass
    else:
        raise AssertionError("the sqlite3 connection is still open after close()")
