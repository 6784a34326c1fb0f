"""Changes from the log in the hub and the connections: which frame each one gets.

A connection that may hold the notification (it was given something at or above its
id) gets ``updated``/``deleted``; one that was never given it gets the notification in
its final state, or nothing if it was retracted. Judged when the frame leaves the hold.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from test_hub import BOB, drain, live, nid

from tidings.broker.memory import MemoryBroker
from tidings.hub import Hub
from tidings.models import Notification


@pytest.fixture
async def hub() -> Hub:
    broker = MemoryBroker()
    hub = Hub(broker=broker, outbox_size=10)
    await broker.start(on_message=hub.dispatch, on_reconnect=_nothing)
    return hub


async def _nothing() -> None:
    return None


def item(n: int, title: str = "t") -> Notification:
    return Notification(nid(n), "upload", "info", title, "", {}, None, None, datetime.now(UTC))


def kinds(received: list[bytes]) -> list[tuple[str, str | None, str | None]]:
    out = []
    for raw in received:
        frame = orjson.loads(raw)
        note = frame.get("notification") or {}
        out.append(
            (frame["type"], note.get("id") or frame.get("ids", [None])[0], frame.get("position"))
        )
    return out


async def test_a_change_to_something_held_is_an_update_in_log_order(hub: Hub) -> None:
    conn = await live(hub, BOB, after=nid(5))
    hub.deliver_change(nid(6), ["u:bob"], item(3, "v2"), "updated")
    hub.deliver_change(nid(7), ["u:bob"], item(4), "retracted")
    received = drain(conn)
    assert kinds(received) == [("updated", nid(3), nid(6)), ("deleted", nid(4), nid(7))]
    assert "read_at" not in orjson.loads(received[0])["notification"]
    assert conn.last_id == nid(7)


async def test_a_change_to_something_never_given_is_the_notification_or_nothing(
    hub: Hub,
) -> None:
    conn = await live(hub, BOB, after=nid(5))
    hub.deliver_change(nid(9), ["u:bob"], item(8, "final"), "updated")
    hub.deliver_change(nid(11), ["u:bob"], item(10), "retracted")
    received = drain(conn)
    assert kinds(received) == [("notification", nid(8), nid(9))]
    assert orjson.loads(received[0])["notification"]["title"] == "final"
    assert conn.last_id == nid(11)


async def test_changes_held_during_a_replay_are_judged_after_it(hub: Hub) -> None:
    conn = hub.connection(BOB, after=nid(5))
    hub.register(conn)  # holding
    hub.deliver_change(nid(9), ["u:bob"], item(8, "v2"), "updated")
    hub.deliver_change(nid(12), ["u:bob"], item(8, "v3"), "updated")
    conn.send(b'{"type":"notification","id":"8"}', nid(8))  # the replay gave 8 meanwhile
    conn.release()
    assert [k[0] for k in kinds(drain(conn)[1:])] == ["updated", "updated"]
    # A watermark past the change (the replay read it already) drops it.
    hub.deliver_change(nid(12), ["u:bob"], item(8, "v3"), "updated")
    assert drain(conn) == []
