"""Shared fixtures: stores on SQLite and real PostgreSQL, an in-process app and clients.

PostgreSQL tests use ``TIDINGS_TEST_POSTGRES_URL`` (default: the local server's ``test``
database) and create a throwaway database per test module. Outside CI they skip when
PostgreSQL is unreachable; under ``CI=true`` that is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from support import make_settings

from tidings.settings import Settings
from tidings.store import SqlStore
from tidings.store.migrate import upgrade

POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, reason: str) -> None:
    """Skip outside CI; in CI a missing PostgreSQL or Redis fails the run."""
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


def _raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _create_database() -> str:
    """Create a throwaway database next to the configured one; return its SQLAlchemy URL."""
    name = f"tidings_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_raw_dsn(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


async def _drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(_raw_dsn(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _throwaway_database() -> Iterator[str]:
    try:
        url = asyncio.run(_create_database())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require_service("PostgreSQL", f"{POSTGRES_URL}: {exc}")
    yield url
    asyncio.run(_drop_database(url))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    yield from _throwaway_database()


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, empty (no migration run), dropped after."""
    yield from _throwaway_database()


async def truncate(store: SqlStore) -> None:
    from tidings.store.schema import metadata

    async with store.writer.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/tidings.db"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """An empty, migrated store: the same suite runs on SQLite and PostgreSQL."""
    # SQLite runs as in one server process (inline writes); PostgreSQL as always.
    sole_writer = database_url.startswith("sqlite")
    store = SqlStore(
        database_url, max_age_ms=30 * 86_400_000, max_items=1000, sole_writer=sole_writer
    )
    await upgrade(store.writer)
    await truncate(store)
    yield store
    await store.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator:
    from tidings.web import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def user() -> str:
    """A user id no other test uses (tests sharing one server stay apart)."""
    return f"u-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the module's ``server`` fixture (a real server process)."""
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        yield client


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
