"""Fixtures of the SDK's suites: one real ``tidings serve`` process for the session, the
fault proxy in front of it, and Django configured for tests (in-memory SQLite)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realtime_helpers import API_KEY, SECRET, ServerProcess  # noqa: E402

if not settings.configured:
    # Configured in this process only: an environment variable would leak into the
    # subprocesses other suites start (the example project's manage.py).
    from django_app import settings as test_settings

    settings.configure(**{k: v for k, v in vars(test_settings).items() if k.isupper()})
    django.setup()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("sdk-server")).start()
    settings.TIDINGS["URL"] = process.http
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def credentials() -> dict[str, str]:
    return {"api_key": API_KEY, "jwt_secret": SECRET}


@pytest.fixture(scope="session")
def django_db() -> Iterator[None]:
    """The test database, created once (in memory, shared between threads)."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
        teardown_test_environment()
