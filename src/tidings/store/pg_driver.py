"""The asyncpg connection under a pooled SQLAlchemy one, for the statements run on it.

Creates, connect-time reads and feed reads on PostgreSQL run on asyncpg itself (see
``docs/DESIGN.md``, "Hot paths"). SQLAlchemy then no longer sees their errors, so it
cannot tell a connection that an error left unusable from one that is fine: a
statement cut off by a database restart, or by a cancelled task, leaves asyncpg's
protocol mid-operation, and the next user of that connection would get
``InternalClientError: another operation is in progress``. So the rule is here, once:
after an error, a connection goes back to the pool only when the server refused a
statement (SQLSTATE class 22 or 23): its transaction, if any, is rolled back here, and
once the connection is idle again it is kept. Any other error invalidates it, and the
pool opens a fresh one when it is next needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

REFUSED = ("22", "23")
"""SQLSTATE classes of a statement refused, leaving the connection usable: data
exceptions (U+0000 in text, a value out of range; asyncpg raises an argument it cannot
encode as one too, before sending anything) and constraint violations."""


@asynccontextmanager
async def driver_of(conn: AsyncConnection) -> AsyncIterator[asyncpg.Connection]:
    """``conn``'s asyncpg connection; dropped from the pool if an error may have broken it."""
    raw = await conn.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    try:
        yield driver
    except BaseException as exc:
        try:
            if _refused(exc) and not driver.is_closed() and driver.is_in_transaction():
                await driver.execute("ROLLBACK")
        except Exception:  # still in its transaction, or closed: dropped below
            pass
        finally:
            if not left_usable(exc, driver):
                await conn.invalidate()
        raise


def left_usable(exc: BaseException, driver: asyncpg.Connection) -> bool:
    """Whether ``driver`` is idle and sound after ``exc``."""
    return _refused(exc) and not driver.is_closed() and not driver.is_in_transaction()


def _refused(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(exc, asyncpg.PostgresError) and str(sqlstate)[:2] in REFUSED
