"""The bell in a real browser: live badge and list, tabs in step, keyboard, demo, screenshot."""

from __future__ import annotations

from typing import Any

import httpx
from browser_helpers import (
    ROOT,
    Server,
    notification_id,
    open_harness,
    serve_client_files,
    token,
)

SHADOW = "document.querySelector('tidings-bell').shadowRoot"


def badge(page: Any) -> str:
    loc = page.locator("tidings-bell .badge").first
    return "" if loc.is_hidden() else loc.inner_text()


def wait_badge(page: Any, text: str, timeout: float = 10_000) -> None:
    """Wait until the (first) bell's badge shows ``text`` ("" means hidden)."""
    script = """(text) => {
      const b = document.querySelector('tidings-bell').shadowRoot.querySelector('.badge');
      return text === '' ? b.hidden : (!b.hidden && b.textContent === text);
    }"""
    page.wait_for_function(script, arg=text, timeout=timeout)


def item_ids(page: Any) -> list[str]:
    return list(
        page.evaluate(
            "[...document.querySelector('tidings-bell').shadowRoot.querySelectorAll('li')]"
            ".map((li) => li.dataset.id)"
        )
    )


def test_badge_and_list_update_live(context: Any, server: Server) -> None:
    page = open_harness(context, server)
    assert badge(page) == ""
    created = server.notify(title="Build passed", body="main is green", level="success")
    first = notification_id(created)
    wait_badge(page, "1")
    # A toast announces it in a polite live region.
    toast = page.locator("tidings-bell .toast")
    toast.first.wait_for()
    assert "Build passed" in toast.first.inner_text()
    assert page.locator("tidings-bell .toasts").get_attribute("aria-live") == "polite"

    bell = page.locator("tidings-bell .bell")
    assert bell.get_attribute("aria-expanded") == "false"
    bell.click()
    assert bell.get_attribute("aria-expanded") == "true"
    items = page.locator("tidings-bell li")
    assert items.count() == 1
    assert "Build passed" in items.first.inner_text()
    assert "main is green" in items.first.inner_text()

    # While it is open, a new one lands on top.
    second = notification_id(
        server.notify(title="Disk almost full", level="warning", url="https://example.com/disk")
    )
    wait_badge(page, "2")
    page.wait_for_function(f"{SHADOW}.querySelectorAll('li').length === 2")
    assert item_ids(page) == [second, first]
    top = items.first
    assert "level-warning" in (top.get_attribute("class") or "")
    assert top.locator("a.title").get_attribute("href") == "https://example.com/disk"
    assert page.evaluate("window.__events.notification") == [first, second]


def test_mark_read_in_one_tab_updates_another(browser: Any, server: Server) -> None:
    # Two browser contexts: two devices, so only the server can keep them in step.
    ctx_a = browser.new_context()
    ctx_b = browser.new_context()
    try:
        tab_a = open_harness(ctx_a, server)
        tab_b = open_harness(ctx_b, server)
        ids = [notification_id(server.notify(title=f"Task {i}")) for i in range(3)]
        for tab in (tab_a, tab_b):
            wait_badge(tab, "3")

        tab_a.locator("tidings-bell .bell").click()
        row = tab_a.locator(f'tidings-bell li[data-id="{ids[0]}"]')
        row.locator("button.read").click()
        wait_badge(tab_a, "2")
        wait_badge(tab_b, "2")
        tab_b.locator("tidings-bell .bell").click()
        tab_b.wait_for_function(
            "(id) => !document.querySelector('tidings-bell').shadowRoot"
            ".querySelector(`li[data-id='${id}']`).classList.contains('unread')",
            arg=ids[0],
        )

        tab_b.locator("tidings-bell button.all").click()
        wait_badge(tab_b, "")
        wait_badge(tab_a, "")
        tab_a.wait_for_function(f"{SHADOW}.querySelectorAll('li.unread').length === 0")
        # A fresh page agrees: the server kept the read state.
        fresh = open_harness(ctx_a, server)
        assert fresh.evaluate("window.client.unreadCount") == 0
        assert badge(fresh) == ""
    finally:
        ctx_a.close()
        ctx_b.close()


def test_same_browser_tabs_stay_in_step(context: Any, server: Server) -> None:
    tab_a = open_harness(context, server)
    tab_b = open_harness(context, server)
    ids = [notification_id(server.notify(title=f"N{i}")) for i in range(2)]
    wait_badge(tab_a, "2")
    wait_badge(tab_b, "2")
    tab_a.evaluate("(id) => window.client.markRead(id)", ids[1])
    wait_badge(tab_b, "1")


def test_keyboard_and_focus(context: Any, server: Server) -> None:
    page = open_harness(context, server)
    for i in range(3):
        server.notify(title=f"Item {i}")
    wait_badge(page, "3")
    page.locator("tidings-bell .toast").first.wait_for()
    page.keyboard.press("Tab")
    focused = "document.querySelector('tidings-bell').shadowRoot.activeElement?.className"
    assert page.evaluate(focused) == "bell"
    page.keyboard.press("Enter")
    bell = page.locator("tidings-bell .bell")
    assert bell.get_attribute("aria-expanded") == "true"
    # Focus moved into the panel, on the newest item; arrows move through the list.
    assert page.evaluate(f"{SHADOW}.activeElement.tagName") == "LI"
    page.keyboard.press("ArrowDown")
    active_title = f"{SHADOW}.activeElement.querySelector('.title').textContent"
    assert page.evaluate(active_title) == "Item 1"
    page.keyboard.press("Escape")
    assert bell.get_attribute("aria-expanded") == "false"
    assert page.evaluate(focused) == "bell"
    page.keyboard.press(" ")
    assert bell.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    # Clicking elsewhere closes it too.
    bell.click()
    page.mouse.click(5, 700)
    assert bell.get_attribute("aria-expanded") == "false"
    label = bell.get_attribute("aria-label") or ""
    assert "3 unread" in label


def test_html_in_notifications_is_text(context: Any, server: Server) -> None:
    page = open_harness(context, server)
    server.notify(
        title="<img src=x onerror=window.__pwned=1>", body="<b>bold</b>", url="javascript:alert(1)"
    )
    wait_badge(page, "1")
    page.locator("tidings-bell .bell").click()
    item = page.locator("tidings-bell li").first
    assert "<img" in item.inner_text()
    assert item.locator("a").count() == 0, "a javascript: link is not rendered as a link"
    assert page.evaluate("window.__pwned") is None


def test_demo_page_signs_in_and_sends(context: Any, server: Server) -> None:
    page = context.new_page()
    serve_client_files(page, server)
    page.goto(f"{server.url}/demo")
    page.fill("input[name=user]", "dora")
    page.fill("input[name=roles]", "ops")
    page.click("#signin-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('tidings-bell')?.client?.status === 'open'", timeout=20_000
    )
    page.fill("input[name=title]", "Hello Dora")
    page.click("#send-form button[type=submit]")
    wait_badge(page, "1")
    page.check("input[name=to][value=role]")
    page.fill("input[name=role]", "ops")
    page.click("#send-form button[type=submit]")
    wait_badge(page, "2")
    page.check("input[name=to][value=all]")
    page.click("#send-form button[type=submit]")
    wait_badge(page, "3")
    assert "dora" in page.locator("#who").inner_text()


def test_screenshot_of_the_open_bell(browser: Any, server: Server) -> None:
    """Render the README picture: light and dark side by side (docs/bell.png)."""
    context = browser.new_context(viewport={"width": 860, "height": 560}, device_scale_factor=2)
    try:
        bells = (
            '<div style="display:flex;gap:400px;padding-right:8px">'
            '<tidings-bell id="light" theme="light" toasts="off"></tidings-bell>'
            '<tidings-bell id="dark" theme="dark" toasts="off"></tidings-bell></div>'
        )
        samples = [
            ("Deploy finished", "api v2.4.1 is live in production.", "success", None),
            ("Disk 85% full on db-2", "/var/lib/postgresql is filling up.", "warning", None),
            (
                "Payment failed",
                "Card ending 4242 was declined.",
                "error",
                "https://example.com/billing",
            ),
            (
                "Sam assigned you a task",
                "Review the Q3 launch checklist.",
                "info",
                "https://example.com/t/42",
            ),
        ]
        page = open_harness(context, server, bells=bells)
        page.add_style_tag(
            content="html { background: linear-gradient(90deg, #f4f5f7 50%, #111318 50%); }"
            " body { padding: 16px 16px 16px 380px; }"
        )
        for title, body, level, url in samples:
            server.notify(title=title, body=body, level=level, url=url)
        page.wait_for_function("window.client.unreadCount === 4")
        page.evaluate("window.client.markRead(window.client.notifications[3].id)")
        for bell in ("light", "dark"):
            page.evaluate(f"document.getElementById('{bell}').open({{ focus: false }})")
        page.evaluate("document.activeElement.blur()")
        page.wait_for_timeout(300)
        out = ROOT / "docs" / "bell.png"
        out.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(out), full_page=False)
        assert out.stat().st_size > 10_000
    finally:
        context.close()


def test_static_client_files_are_served(server: Server) -> None:
    """The server serves the one source of tidings.js (static files are symlinks to it)."""
    for name in ("tidings.js", "tidings-bell.js"):
        response = httpx.get(f"{server.url}/static/{name}", timeout=10)
        assert response.status_code == 200, f"/static/{name}: {response.status_code}"
        assert response.content == (ROOT / "clients" / "js" / name).read_bytes()
        assert "javascript" in response.headers["content-type"]
    assert httpx.get(f"{server.url}/demo", timeout=10).status_code == 200


NOTIFICATION_STUB = """
window.__desktop = { requested: 0, shown: [] };
class FakeNotification {
  static permission = 'default';
  static async requestPermission() {
    window.__desktop.requested += 1;
    window.__desktop.activation = navigator.userActivation.isActive;
    FakeNotification.permission = 'granted';
    return 'granted';
  }
  constructor(title, options) { window.__desktop.shown.push({ title, tag: options.tag }); }
  close() {}
}
window.Notification = FakeNotification;
Object.defineProperty(document, 'visibilityState', {
  get: () => (window.__hidden ? 'hidden' : 'visible'),
});
"""


def test_desktop_notifications_ask_on_a_click_and_show_when_hidden(
    context: Any, server: Server
) -> None:
    context.add_init_script(NOTIFICATION_STUB)
    page = open_harness(
        context, server, bells='<tidings-bell id="bell" browser-notifications></tidings-bell>'
    )
    assert page.evaluate("window.__desktop.requested") == 0, "never asked without a gesture"
    page.locator("tidings-bell .bell").click()
    enable = page.locator("tidings-bell button.desktop")
    assert enable.is_visible()
    enable.click()
    assert page.evaluate("window.__desktop.requested") == 1
    assert page.evaluate("window.__desktop.activation") is True, "asked from a user gesture"
    assert enable.is_hidden()

    visible = notification_id(server.notify(title="while looking"))
    page.wait_for_function("(id) => window.__events.notification.includes(id)", arg=visible)
    page.evaluate("window.__hidden = true")
    hidden = notification_id(server.notify(title="while away"))
    page.wait_for_function("window.__desktop.shown.length === 1")
    shown = page.evaluate("window.__desktop.shown")
    assert shown == [{"title": "while away", "tag": f"tidings:{hidden}"}]


def test_client_set_before_the_element_is_defined(context: Any, server: Server) -> None:
    page = context.new_page()
    serve_client_files(page, server)
    page.goto(f"{server.url}/healthz")
    page.evaluate(
        """async (token) => {
          const { Tidings } = await import('/static/tidings.js');
          document.body.innerHTML = '<tidings-bell></tidings-bell>';
          const client = new Tidings({ token });
          document.querySelector('tidings-bell').client = client;  // not upgraded yet
          window.client = client;
          await import('/static/tidings-bell.js');
        }""",
        token("alice"),
    )
    page.wait_for_function("window.client.status === 'open'")
    server.notify(title="late upgrade")
    page.wait_for_function(f"{SHADOW}.querySelector('.badge').textContent === '1'", timeout=10_000)


def test_load_older(context: Any, server: Server) -> None:
    for i in range(25):
        server.notify(title=f"Old {i}")
    page = open_harness(context, server, bells='<tidings-bell toasts="off"></tidings-bell>')
    page.locator("tidings-bell .bell").click()
    assert page.locator("tidings-bell li").count() == 20
    assert badge(page) == "25"
    page.locator("tidings-bell button.more").click()
    page.wait_for_function(f"{SHADOW}.querySelectorAll('li').length === 25")
    titles = page.locator("tidings-bell li .title").all_inner_texts()
    assert titles == [f"Old {i}" for i in range(24, -1, -1)]
    assert page.locator("tidings-bell button.more").is_hidden()
