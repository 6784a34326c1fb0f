"""The hub and connection outboxes: registry, ref-counted subscriptions, fan-out policy."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tidings import frames, ids
from tidings.broker.memory import MemoryBroker
from tidings.connection import Connection, ConnectionClosed, RecentIds
from tidings.errors import CloseCode
from tidings.hub import Hub
from tidings.models import Principal
from tidings.protocol import parse_filter

ALICE = Principal("alice", roles=frozenset({"admin"}))
BOB = Principal("bob")


class RecordingBroker(MemoryBroker):
    """A memory broker that remembers every subscribe and unsubscribe call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def subscribe(self, channel: str) -> None:
        self.calls.append(("subscribe", channel))
        await asyncio.sleep(0.01)  # a round trip, so concurrent registrations overlap
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))
        await super().unsubscribe(channel)


@pytest.fixture
async def broker() -> RecordingBroker:
    broker = RecordingBroker()
    return broker


@pytest.fixture
async def hub(broker: RecordingBroker) -> Hub:
    hub = Hub(broker=broker, outbox_size=10, fanout_slice=4)
    await broker.start(on_message=hub.dispatch, on_reconnect=_noop)
    return hub


async def _noop() -> None:
    return None


def nid(n: int) -> str:
    return ids.encode(ids.floor_for_ms(1_700_000_000_000) + n)


def frame(n: int) -> bytes:
    return frames.encode({"type": "notification", "id": nid(n)})


def note(n: int) -> bytes:
    """The broker envelope of notification ``n``."""
    return frames.envelope(frame(n), nid(n))


def drain(conn: Connection) -> list[bytes]:
    items = []
    while conn.pending():
        items.append(conn._outbox.popleft()[1])
    return items


def ids_of(received: list[bytes]) -> list[str]:
    return [orjson.loads(frame)["id"] for frame in received]


async def live(hub: Hub, principal: Principal, **kwargs: object) -> Connection:
    conn = hub.connection(principal, **kwargs)  # type: ignore[arg-type]
    await hub.register(conn, hold=False)
    return conn


# -- registry -----------------------------------------------------------------------------


async def test_register_indexes_by_user_and_subscribes_audience_channels(
    hub: Hub, broker: RecordingBroker
) -> None:
    conn = await live(hub, ALICE)
    assert hub.connections_for_user("alice") == [conn]
    assert {c for _, c in broker.calls} == {"u:alice", "r:admin", "*"}
    stats = hub.stats()
    assert (stats["connections"], stats["users"], stats["channels"]) == (1, 1, 3)


async def test_a_channel_is_subscribed_once_while_any_connection_needs_it(
    hub: Hub, broker: RecordingBroker
) -> None:
    first, second = await asyncio.gather(live(hub, ALICE), live(hub, ALICE))
    assert broker.calls.count(("subscribe", "u:alice")) == 1
    await hub.unregister(first)
    assert ("unsubscribe", "u:alice") not in broker.calls
    await hub.unregister(second)
    assert ("unsubscribe", "u:alice") in broker.calls
    assert hub.connections_for_user("alice") == []
    assert hub.stats()["channels"] == 0


async def test_a_second_registration_waits_until_the_channel_is_really_subscribed(
    hub: Hub, broker: RecordingBroker
) -> None:
    first = asyncio.create_task(live(hub, BOB))
    await asyncio.sleep(0)
    second = await live(hub, BOB)
    await broker.publish("u:bob", note(1))
    assert ids_of(drain(second)) == [nid(1)]
    await first


async def test_unregister_is_idempotent(hub: Hub) -> None:
    conn = await live(hub, BOB)
    await hub.unregister(conn)
    await hub.unregister(conn)
    assert hub.stats()["connections"] == 0


async def test_registering_twice_is_an_error(hub: Hub) -> None:
    conn = await live(hub, BOB)
    with pytest.raises(RuntimeError, match="already registered"):
        await hub.register(conn)


# -- fan-out ----------------------------------------------------------------------------


async def test_dispatch_offers_the_same_bytes_to_every_local_connection(hub: Hub) -> None:
    a, b, other = await live(hub, ALICE), await live(hub, ALICE), await live(hub, BOB)
    hub.dispatch("u:alice", frames.envelope(frames.unread(3)))
    assert drain(a) == drain(b) == [frames.unread(3)]
    assert drain(other) == []


async def test_a_notification_reaching_a_user_twice_is_delivered_once(hub: Hub) -> None:
    conn = await live(hub, ALICE)
    hub.dispatch("u:alice", note(1))
    hub.dispatch("r:admin", note(1))
    hub.dispatch("*", note(1))
    assert ids_of(drain(conn)) == [nid(1)]


async def test_a_full_outbox_closes_the_connection_as_a_slow_consumer(hub: Hub) -> None:
    slow, fast = await live(hub, BOB), await live(hub, BOB)
    for n in range(10):
        hub.dispatch("u:bob", note(n))
        drain(fast)
    hub.dispatch("u:bob", note(10))
    assert slow.closed and slow.close_code == CloseCode.SLOW_CONSUMER
    assert ids_of(drain(fast)) == [nid(10)]
    assert hub.slow_consumers == 1
    with pytest.raises(ConnectionClosed):
        await slow.next_frame()


async def test_large_fanouts_yield_between_slices_and_keep_per_channel_order(hub: Hub) -> None:
    crowd = [await live(hub, Principal(f"user{n}")) for n in range(10)]
    target = await live(hub, BOB)
    hub.dispatch("*", note(1))
    hub.dispatch("*", note(2))
    hub.dispatch("u:bob", frames.envelope(frames.unread(1)))
    # The targeted frame went out at once; the broadcast to 11 is still in slices of 4.
    assert drain(target) == [frames.unread(1)]
    assert sum(c.pending() for c in crowd) < 2 * len(crowd)
    for _ in range(20):
        await asyncio.sleep(0)
    assert all(ids_of(drain(c)) == [nid(1), nid(2)] for c in [*crowd, target])


async def test_topic_messages_reach_subscribers_whose_filter_matches(hub: Hub) -> None:
    errors_only, everything, absent = (
        await live(hub, ALICE),
        await live(hub, BOB),
        await live(hub, Principal("carol")),
    )
    await hub.subscribe(errors_only, "logs", parse_filter({"level": ["error", "critical"]}))
    await hub.subscribe(everything, "logs", None)
    for level in ("info", "error"):
        hub.dispatch("t:logs", frames.envelope(frames.message("logs", {"level": level})))
    assert [orjson.loads(f)["data"]["level"] for f in drain(errors_only)] == ["error"]
    assert [orjson.loads(f)["data"]["level"] for f in drain(everything)] == ["info", "error"]
    assert drain(absent) == []


async def test_unsubscribe_stops_topic_delivery_and_releases_the_channel(
    hub: Hub, broker: RecordingBroker
) -> None:
    conn = await live(hub, BOB)
    await hub.subscribe(conn, "logs", None)
    assert await hub.unsubscribe(conn, "logs")
    assert not await hub.unsubscribe(conn, "logs")
    assert ("unsubscribe", "t:logs") in broker.calls
    hub.dispatch("t:logs", frames.envelope(frames.message("logs", {})))
    assert drain(conn) == []


async def test_unregister_releases_topic_channels(hub: Hub, broker: RecordingBroker) -> None:
    conn = await live(hub, BOB)
    await hub.subscribe(conn, "alerts", None)
    await hub.unregister(conn)
    assert ("unsubscribe", "t:alerts") in broker.calls


# -- holding, resume and resync ------------------------------------------------------------


async def test_holding_buffers_live_frames_until_the_replay_is_done(hub: Hub) -> None:
    conn = hub.connection(BOB, after=nid(1))
    await hub.register(conn)  # holding by default
    hub.dispatch("u:bob", note(1))  # the client had it already (after=)
    hub.dispatch("u:bob", note(3))  # live, also part of the replay
    hub.dispatch("u:bob", note(4))  # live only
    assert conn.pending() == 0
    conn.send(frames.unread(2))  # the transport's own frames (welcome) go first
    conn.send(frame(2), nid(2))  # the replay
    conn.send(frame(3), nid(3))
    conn.release()
    received = drain(conn)
    assert received[0] == frames.unread(2)
    assert ids_of(received[1:]) == [nid(2), nid(3), nid(4)]


async def test_overflowing_the_hold_buffer_closes_the_connection(hub: Hub) -> None:
    conn = hub.connection(BOB)
    await hub.register(conn)
    for n in range(11):
        hub.dispatch("u:bob", note(n))
    assert conn.close_code == CloseCode.SLOW_CONSUMER


async def test_resync_all_holds_every_connection_and_wakes_its_transport(hub: Hub) -> None:
    conn = await live(hub, BOB)
    hub.dispatch("u:bob", note(5))
    drain(conn)
    hub.resync_all()
    assert conn.holding
    await asyncio.wait_for(conn.wait_resync(), 1)
    assert conn.resume_point() == nid(5)
    hub.dispatch("u:bob", note(6))
    assert conn.pending() == 0
    conn.release()
    assert ids_of(drain(conn)) == [nid(6)]


async def test_resume_point_before_any_delivery_is_the_connect_time() -> None:
    conn = Connection(BOB, outbox_size=5)
    assert ids.ms_of(ids.decode(conn.resume_point())) <= ids.time_ms()


async def test_close_all_closes_every_connection_with_the_code(hub: Hub) -> None:
    a, b = await live(hub, ALICE), await live(hub, BOB)
    hub.close_all(CloseCode.SERVICE_RESTART)
    assert a.close_code == b.close_code == CloseCode.SERVICE_RESTART
    await hub.unregister(a)
    await hub.unregister(b)
    assert hub.stats()["connections"] == 0


# -- the connection on its own ------------------------------------------------------------


async def test_next_frame_waits_for_a_frame_and_raises_once_closed() -> None:
    conn = Connection(BOB, outbox_size=5)
    waiter = asyncio.create_task(conn.next_frame())
    await asyncio.sleep(0)
    conn.offer(b"x")
    assert await asyncio.wait_for(waiter, 1) == (None, b"x")
    waiter = asyncio.create_task(conn.next_frame())
    await asyncio.sleep(0)
    conn.close(CloseCode.UNAUTHENTICATED, "token expired")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(waiter, 1)
    assert (closed.value.code, closed.value.reason) == (4001, "token expired")


async def test_the_first_close_code_wins() -> None:
    conn = Connection(BOB, outbox_size=5)
    conn.close(CloseCode.RATE_LIMITED)
    conn.close(CloseCode.NORMAL)
    assert conn.close_code == CloseCode.RATE_LIMITED
    assert not conn.offer(b"x")


def test_recent_ids_drop_repeats_and_anything_at_or_below_the_floor() -> None:
    seen = RecentIds(size=3, floor=nid(10))
    assert not seen.add(nid(10))
    assert [seen.add(nid(n)) for n in (12, 11, 12, 13, 14)] == [True, True, False, True, True]
    # 12 was evicted from the window of 3, and the floor rose to cover it.
    assert not seen.add(nid(12))
    assert seen.highest == nid(14)


async def test_a_broadcast_to_ten_thousand_does_not_hold_up_a_targeted_message() -> None:
    broker = MemoryBroker()
    hub = Hub(broker=broker, outbox_size=10, fanout_slice=500)
    await broker.start(on_message=hub.dispatch, on_reconnect=_noop)
    crowd = [hub.connection(Principal(f"user{n}")) for n in range(10_000)]
    for conn in crowd:
        await hub.register(conn, hold=False)
    target = crowd[-1]
    started = asyncio.get_running_loop().time()
    hub.dispatch("*", note(1))
    hub.dispatch(f"u:{target.user}", frames.envelope(frames.unread(1)))
    assert drain(target) == [frames.unread(1)]  # ahead of the broadcast still in slices
    for _ in range(100):  # 20 slices of 500, each followed by a yield
        await asyncio.sleep(0)
    assert all(c.pending() for c in crowd)
    assert asyncio.get_running_loop().time() - started < 2
    assert ids_of(drain(target)) == [nid(1)]
