"""Inbox actions in the bell, in a real browser: a progress item updated in place,
action buttons whose click reaches a webhook receiver, archive and mark unread."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_helpers import Server, notification_id, open_harness, token

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from webhook_receiver import Receiver

SHADOW = "document.querySelector('tidings-bell').shadowRoot"
WEBHOOK_SECRET = "browser-webhook-secret"


def wait_for(page: Any, script: str, arg: Any = None) -> None:
    page.wait_for_function(f"(arg) => {{ const root = {SHADOW}; return {script}; }}", arg=arg)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def hooked(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    env = {"TIDINGS_WEBHOOK_URLS": receiver.url, "TIDINGS_WEBHOOK_SECRET": WEBHOOK_SECRET}
    server = Server(tmp_path, env=env).start()
    yield server
    server.stop()


def upload(server: Server, percent: int) -> dict[str, Any]:
    return server.notify(
        title=f"Uploading report.pdf: {percent}%",
        type="upload_status",
        key="upload-17",
        data={"percent": percent},
    )


def test_progress_in_place_archive_and_mark_unread(context: Any, server: Server) -> None:
    older = notification_id(server.notify(title="Older"))
    page = open_harness(context, server)
    page.locator("tidings-bell .bell").click()
    first = notification_id(upload(server, 10))
    wait_for(page, "root.querySelectorAll('li').length === 2")
    for percent in (40, 100):
        assert notification_id(upload(server, percent)) == first
        wait_for(page, "root.querySelector('li progress')?.value === arg", percent)
    items = page.locator("tidings-bell li")
    assert items.count() == 2
    assert "Uploading report.pdf: 100%" in items.first.inner_text()
    assert page.evaluate("window.__events.notification") == [first]

    # Archive the upload: it leaves the bell and the badge, and the archive lists it.
    page.locator(f"tidings-bell li[data-id='{first}'] .archive").click()
    shown = "[...root.querySelectorAll('li')].map((li) => li.dataset.id).join()"
    wait_for(page, f"{shown} === arg", older)
    wait_for(page, "root.querySelector('.badge').textContent === '1'")
    me = {"Authorization": f"Bearer {token('alice')}"}
    archived = httpx.get(f"{server.url}/api/v1/me/notifications?archived=true", headers=me).json()
    assert [item["id"] for item in archived["items"]] == [first]

    # Read, then unread again.
    page.locator(f"tidings-bell li[data-id='{older}'] .read").click()
    wait_for(page, "root.querySelector('.badge').hidden")
    page.locator(f"tidings-bell li[data-id='{older}'] .mark-unread").click()
    wait_for(page, "root.querySelector('.badge').textContent === '1'")
    unread = httpx.get(f"{server.url}/api/v1/me/unread-count", headers=me).json()
    assert unread == {"unread_count": 1}


def test_an_action_button_click_reaches_the_webhook_receiver(
    context: Any, hooked: Server, receiver: Receiver
) -> None:
    page = open_harness(context, hooked)
    actions = [
        {"id": "approve", "label": "Approve"},
        {"id": "decline", "label": "Decline"},
        {"id": "open", "label": "Open", "url": "https://example.com/expenses/7"},
    ]
    sent = notification_id(hooked.notify(title="Expense #7: 42 EUR", actions=actions))
    page.locator("tidings-bell .bell").click()
    approve = page.locator("tidings-bell li .action[data-action='approve']")
    approve.wait_for()
    link = page.locator("tidings-bell li a.action[data-action='open']")
    assert link.get_attribute("href") == "https://example.com/expenses/7"
    approve.click()
    wait_for(
        page, "root.querySelector(\".action[data-action='approve']\").classList.contains('done')"
    )
    deadline_ms = 10_000
    page.wait_for_timeout(100)
    for _ in range(deadline_ms // 100):
        if receiver.accepted("notification.action"):
            break
        page.wait_for_timeout(100)
    [event] = receiver.accepted("notification.action")
    assert (event["data"]["user"], event["data"]["action"]) == ("alice", "approve")
    assert event["data"]["notification"]["id"] == sent
    [delivery] = [d for d in receiver.deliveries if d.body["type"] == "notification.action"]
    assert delivery.signed_with(WEBHOOK_SECRET)
