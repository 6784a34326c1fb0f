"""Browser tests: a real ``tidings serve`` process and a real Chromium driven by Playwright.

Chromium comes from the system (``/usr/bin/chromium``), never from Playwright's download;
the ``chromium`` fixture installs the Debian package when it is missing. Each test gets
its own server (fresh SQLite file, free port) and pages that load ``tidings.js`` and
``<tidings-bell>`` from that server's ``/static``. Every test here is marked ``browser``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import CHROMIUM_ARGS, IN_CI, Server, ensure_chromium


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> str:
    try:
        return ensure_chromium()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        if IN_CI:
            pytest.fail(f"Chromium is required under CI=true: {exc}")
        pytest.skip(f"Chromium unavailable: {exc}")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running on
    # this thread while it is open, and asyncio-based tests after it could not start one.
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 720})
    yield ctx
    ctx.close()
