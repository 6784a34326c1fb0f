"""The example in two real browsers (system Chromium, Playwright): the coach files and
changes a demande in one, and the bell of alice, the assignee, shows it in the other."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "browser"))
from browser_helpers import CHROMIUM_ARGS, IN_CI, ensure_chromium

pytestmark = pytest.mark.browser
BADGE = """(text) => {
  const bell = document.querySelector('tidings-bell');
  const b = bell && bell.shadowRoot && bell.shadowRoot.querySelector('.badge');
  return !!b && (text === '' ? b.hidden : (!b.hidden && b.textContent === text));
}"""
TITLES = """() => [...document.querySelector('tidings-bell').shadowRoot.querySelectorAll('li')]
  .map((li) => li.textContent)"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        chromium = ensure_chromium()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Chromium is required under CI=true: {exc}")
        pytest.skip(f"Chromium unavailable: {exc}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def signed_in(browser: Any, site: str, username: str) -> Any:
    page = browser.new_context(viewport={"width": 1100, "height": 720}).new_page()
    page.goto(f"{site}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("form button")
    page.wait_for_url(f"{site}/")
    return page


def test_the_assignees_bell_shows_the_coachs_changes(browser: Any, site: str) -> None:
    alice = signed_in(browser, site, "alice")
    alice.wait_for_function(BADGE, arg="", timeout=15_000)  # connected, nothing unread
    coach = signed_in(browser, site, "coach")
    coach.fill("input[name=title]", "Business plan")
    coach.select_option("select[name=assignee]", label="alice")
    coach.click("text=File it")
    coach.wait_for_url("**/demandes/*/")
    alice.wait_for_function(BADGE, arg="1", timeout=15_000)
    coach.select_option("select[name=status]", value="in_review")
    coach.click("text=Save")
    alice.wait_for_function(BADGE, arg="2", timeout=15_000)
    titles = alice.evaluate(TITLES)
    assert "“Business plan” is now In review" in titles[0]
    assert "coach assigned you “Business plan”" in titles[1]
    for page in (alice, coach):
        page.context.close()
