"""/admin in a real browser: sign-in, live figures and connections, a user's inbox,
sending to everyone, light and dark, and the README screenshot (docs/admin.png)."""

from __future__ import annotations

import os
from typing import Any

import httpx
from browser_helpers import API_KEY, ROOT, Server, token

KEY_STORE = "tidings.admin.apiKey"


def sign_in(page: Any, server: Server, key: str = API_KEY) -> None:
    page.goto(f"{server.url}/admin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def open_stream(page: Any, server: Server, user: str) -> None:
    """A tab of the user's app: an EventSource on the server's stream."""
    page.goto(f"{server.url}/healthz")
    url = f"{server.url}/api/v1/me/stream?token={token(user)}"
    page.evaluate("(url) => { window.source = new EventSource(url); }", url)
    page.wait_for_function("() => window.source.readyState === 1", timeout=10_000)


def test_a_wrong_key_shows_an_error_and_no_figures(context: Any, server: Server) -> None:
    page = context.new_page()
    sign_in(page, server, key="not-the-key")
    page.get_by_text("That API key was refused.").wait_for(timeout=10_000)
    assert page.locator("#dashboard").is_hidden()
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORE}')") is None
    assert page.evaluate("localStorage.length") == 0


def test_connections_appear_live_and_a_broadcast_reaches_them(context: Any, server: Server) -> None:
    admin = context.new_page()
    sign_in(admin, server)
    admin.locator("#dashboard").wait_for(state="visible", timeout=10_000)
    assert admin.evaluate(f"sessionStorage.getItem('{KEY_STORE}')") == API_KEY
    tabs = [context.new_page() for _ in range(2)]
    for tab in tabs:
        open_stream(tab, server, "alice")
    admin.wait_for_function(
        "() => document.getElementById('fig-connections').textContent === '2'", timeout=10_000
    )
    rows = admin.locator("#connections tbody tr")
    rows.first.wait_for(timeout=10_000)
    assert rows.count() == 2
    admin.get_by_label("Filter by user").fill("nobody")
    admin.wait_for_function(
        "() => document.querySelectorAll('#connections tbody tr').length === 0", timeout=10_000
    )
    # Broadcast to everyone from the form: both tabs receive it.
    for tab in tabs:
        tab.evaluate(
            "() => { window.got = []; window.source.addEventListener('notification',"
            " (e) => window.got.push(JSON.parse(e.data).notification.title)); }"
        )
    admin.get_by_label("everyone").check()
    admin.get_by_label("Title").fill("Maintenance at 22:00")
    admin.get_by_role("button", name="Send", exact=True).click()
    admin.wait_for_function(
        "() => document.getElementById('send-result').textContent.startsWith('Sent ')",
        timeout=10_000,
    )
    for tab in tabs:
        tab.wait_for_function("() => window.got.includes('Maintenance at 22:00')", timeout=10_000)


def test_a_users_inbox_unread_count_and_presence(context: Any, server: Server) -> None:
    server.notify(user="bob", title="Invoice paid")
    page = context.new_page()
    sign_in(page, server)
    page.locator("#dashboard").wait_for(state="visible", timeout=10_000)
    page.get_by_label("User", exact=True).fill("bob")
    page.get_by_role("button", name="Show").click()
    page.get_by_text("bob: 1 unread · offline").wait_for(timeout=10_000)
    assert (
        page.locator("#user-inbox li")
        .first.inner_text()
        .endswith(page.locator("#user-inbox li").first.inner_text())
    )
    assert "Invoice paid" in page.locator("#user-inbox").inner_text()
    page.get_by_text("Preferences: everything on").wait_for(timeout=10_000)
    off = {"types": {"digest": {"enabled": False}}}
    patched = httpx.patch(
        f"{server.url}/api/v1/users/bob/preferences",
        json=off,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert patched.status_code == 200, patched.text
    page.get_by_role("button", name="Send test").click()
    page.get_by_text("bob: 2 unread · offline").wait_for(timeout=10_000)
    page.get_by_text("Preferences: types off: digest").wait_for(timeout=10_000)


def test_templates_are_listed_and_previewed(context: Any, server: Server) -> None:
    template = {"title": "{{ actor }} assigned you {{ task }}", "body": "Due {{ due }}"}
    put = httpx.put(
        f"{server.url}/api/v1/templates/task.assigned",
        json=template,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert put.status_code == 200, put.text
    page = context.new_page()
    sign_in(page, server)
    page.locator("#templates-panel").wait_for(state="visible", timeout=10_000)
    assert "task.assigned" in page.locator("#templates").inner_text()
    page.get_by_label("Data (JSON)").fill('{"task": "<b>T-1</b>", "due": "Friday"}')
    page.get_by_label("Actor").fill("Bob")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_function(
        "() => document.getElementById('preview-body').textContent === 'Due Friday'",
        timeout=10_000,
    )
    assert "<b>T-1</b>" in page.locator("#preview-title").inner_text()  # text, not markup
    page.get_by_label("Data (JSON)").fill("{not json")
    page.get_by_role("button", name="Preview").click()
    page.get_by_text("Data is not valid JSON.").wait_for(timeout=10_000)


def test_the_page_loads_nothing_from_elsewhere(context: Any, server: Server) -> None:
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/admin")
    page.get_by_label("API key").wait_for()
    assert requested and all(url.startswith(server.url) for url in requested)
    assert httpx.get(f"{server.url}/static/admin/admin.js", timeout=10).status_code == 200


UPDATE_SCREENSHOT = os.environ.get("TIDINGS_UPDATE_SCREENSHOTS") == "1"
"""Write docs/admin.png (with more traffic for the sparklines); else a throwaway copy."""


def test_screenshot_light_and_dark(browser: Any, server: Server, tmp_path: Any) -> None:
    """docs/admin.png: the dashboard with live connections, in light then dark."""
    ticks = 12 if UPDATE_SCREENSHOT else 3
    for n in range(3):
        server.notify(user=f"user{n}", title=f"Welcome {n}", type="welcome")
    shots = []
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        try:
            tabs = [context.new_page() for _ in range(3)]
            for n, tab in enumerate(tabs):
                open_stream(tab, server, f"user{n}")
            page = context.new_page()
            sign_in(page, server)
            page.wait_for_function(
                "() => document.getElementById('fig-connections').textContent === '3'",
                timeout=10_000,
            )
            for n in range(ticks):  # some traffic for the rates and sparklines
                server.notify(to={"all": True}, title=f"Tick {n}")
                page.wait_for_timeout(600)
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            shots.append((scheme, background))
            if scheme == "light":
                page.get_by_label("User", exact=True).fill("user1")
                page.get_by_role("button", name="Show").click()
                page.get_by_text(f"user1: {ticks + 1} unread · online").wait_for(timeout=10_000)
                out = ROOT / "docs" / "admin.png" if UPDATE_SCREENSHOT else tmp_path / "admin.png"
                out.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                assert out.stat().st_size > 10_000
        finally:
            context.close()
    assert shots[0][1] != shots[1][1]  # the dark scheme really is another palette
