"""Fixtures of the fault and abuse suites: private services, a throwaway database on the
shared PostgreSQL, and the figures table printed at the end of the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from realtime_helpers import require, throwaway_postgres

from faults import figures
from faults.services import PausableRedis, PrivatePostgres


@pytest.fixture
def shared_postgres_url() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL (never stopped here), dropped after."""
    with throwaway_postgres("tidings_fault") as url:
        yield url


@pytest.fixture
def private_redis() -> Iterator[PausableRedis]:
    """A redis-server of this test's own, which it may kill or hang."""
    server = PausableRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, which it may restart."""
    server = PrivatePostgres()
    try:
        server.start()
    except RuntimeError as exc:
        server.remove()
        require("PostgreSQL", str(exc))
    yield server
    server.remove()


@pytest.fixture
def record() -> Callable[[dict[str, Any]], None]:
    """Keep a row of figures for the session's table (and ``TIDINGS_FAULT_REPORT``)."""
    return figures.record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if figures.ROWS:
        terminalreporter.section("fault and abuse figures")
        terminalreporter.write_line(figures.table(figures.ROWS))
