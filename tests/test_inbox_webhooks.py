"""An action button's click reaches the backend as a signed ``notification.action`` webhook."""

from __future__ import annotations

from realtime_helpers import wait_until
from support import backend_headers, user_headers
from test_webhooks import SECRET, running
from webhook_receiver import Receiver

ACTIONS = [{"id": "approve", "label": "Approve"}, {"id": "decline", "label": "Decline"}]


async def test_an_action_click_arrives_signed_at_the_receiver(tmp_path) -> None:
    with Receiver() as receiver:
        async with running(tmp_path, receiver.url) as (application, client):
            made = await client.post(
                "/api/v1/notifications",
                json={"to": {"roles": ["managers"]}, "title": "Expense", "actions": ACTIONS},
                headers=backend_headers(),
            )
            sent = made.json()["id"]
            alice = user_headers(application, "alice", roles=["managers"])
            base = f"/api/v1/me/notifications/{sent}/actions"
            assert (await client.post(f"{base}/approve", headers=alice)).status_code == 202
            assert (await client.post(f"{base}/nonsense", headers=alice)).status_code == 404
            stranger = user_headers(application, "mallory")
            assert (await client.post(f"{base}/approve", headers=stranger)).status_code == 404
            await wait_until(lambda: bool(receiver.accepted("notification.action")), 5)
    [delivery] = [d for d in receiver.deliveries if d.body["type"] == "notification.action"]
    assert delivery.signed_with(SECRET)
    data = delivery.body["data"]
    assert (data["user"], data["action"]) == ("alice", "approve")
    assert data["notification"]["id"] == sent and data["notification"]["title"] == "Expense"
    assert data["notification"]["actions"] == ACTIONS
