"""The bell's settings in a real browser: switching a category off, and do-not-disturb."""

from __future__ import annotations

from typing import Any

from browser_helpers import Server, notification_id, open_harness

SHADOW = "document.querySelector('tidings-bell').shadowRoot"


def titles(page: Any) -> list[str]:
    return list(
        page.evaluate(
            f"[...{SHADOW}.querySelectorAll('li .title')].map((el) => el.textContent.trim())"
        )
    )


def wait_titles(page: Any, expected: list[str]) -> None:
    script = f"""(expected) => JSON.stringify(
      [...{SHADOW}.querySelectorAll('li .title')].map((el) => el.textContent.trim())
    ) === JSON.stringify(expected)"""
    page.wait_for_function(script, arg=expected, timeout=10_000)


def wait_badge(page: Any, text: str) -> None:
    script = f"""(text) => {{
      const b = {SHADOW}.querySelector('.badge');
      return text === '' ? b.hidden : (!b.hidden && b.textContent === text);
    }}"""
    page.wait_for_function(script, arg=text, timeout=10_000)


def test_switching_a_category_off_hides_it_and_on_shows_it_again(
    context: Any, server: Server
) -> None:
    server.notify(title="Weekly digest", category="news")
    server.notify(title="Build failed", type="ci")
    page = open_harness(context, server)
    wait_badge(page, "2")
    page.locator("tidings-bell .bell").click()
    wait_titles(page, ["Build failed", "Weekly digest"])

    page.locator("tidings-bell .settings").click()
    switch = page.locator("tidings-bell .switches input[data-kind='categories'][data-name='news']")
    switch.wait_for()
    assert switch.is_checked()
    assert page.locator("tidings-bell .switches input[data-kind='types'][data-name='ci']").count()
    switch.uncheck()
    wait_titles(page, ["Build failed"])
    wait_badge(page, "1")
    # While off, new ones of that category are neither shown nor counted.
    server.notify(title="Another digest", category="news")
    server.notify(title="Deploy done", type="ci")
    wait_titles(page, ["Deploy done", "Build failed"])
    wait_badge(page, "2")

    switch.check()
    wait_titles(page, ["Deploy done", "Another digest", "Build failed", "Weekly digest"])
    wait_badge(page, "4")


def test_do_not_disturb_counts_but_shows_no_toast(context: Any, server: Server) -> None:
    page = open_harness(context, server)
    page.locator("tidings-bell .bell").click()
    page.locator("tidings-bell .settings").click()
    dnd = page.locator("tidings-bell .dnd")
    dnd.check()
    page.wait_for_function(
        "window.client.preferences().then((p) => p.do_not_disturb_until !== null)",
        timeout=10_000,
    )
    page.locator("tidings-bell .bell").click()  # close the panel: toasts would show now
    quiet = notification_id(server.notify(title="Quiet one"))
    page.wait_for_function(f"window.__events.notification.includes({quiet!r})", timeout=10_000)
    wait_badge(page, "1")
    page.wait_for_timeout(300)  # a toast appears within 60 ms of a notification
    assert page.locator("tidings-bell .toast").count() == 0

    page.locator("tidings-bell .bell").click()  # the settings stay open with the panel
    dnd.uncheck()
    page.wait_for_function(
        "window.client.preferences().then((p) => p.do_not_disturb_until === null)",
        timeout=10_000,
    )
    page.locator("tidings-bell .bell").click()
    server.notify(title="Loud one")
    page.locator("tidings-bell .toast").first.wait_for(timeout=10_000)
    wait_badge(page, "2")
