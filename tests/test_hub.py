"""The hub and connection outboxes: registry, ref-counted subscriptions, fan-out policy."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import orjson
import pytest

from tidings import frames, ids
from tidings import hub as hub_module
from tidings.broker.memory import MemoryBroker
from tidings.coalesce import TopicState
from tidings.connection import Connection, ConnectionClosed
from tidings.errors import CloseCode, RateLimited
from tidings.hub import Hub
from tidings.models import Notification, Principal
from tidings.preferences import Preferences
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


def drain(conn: Connection) -> list[bytes]:
    items = []
    while conn.pending():
        items.append(conn._outbox.popleft()[1])
    return items


def ids_of(received: list[bytes]) -> list[str]:
    return [orjson.loads(frame)["id"] for frame in received]


async def live(hub: Hub, principal: Principal, **kwargs: object) -> Connection:
    conn = hub.connection(principal, **kwargs)  # type: ignore[arg-type]
    hub.register(conn, hold=False)
    await hub.ready(conn)
    return conn


# -- registry -----------------------------------------------------------------------------


async def test_register_indexes_by_user_and_subscribes_only_the_user_channel(
    hub: Hub, broker: RecordingBroker
) -> None:
    # Notifications come from the feed; the broker carries only the user's event frames.
    conn = await live(hub, ALICE)
    assert hub.connections_for_user("alice") == [conn]
    assert {c for _, c in broker.calls} == {"u:alice"}
    stats = hub.stats()
    assert (stats["connections"], stats["users"], stats["channels"]) == (1, 1, 1)


async def test_a_channel_is_subscribed_once_while_any_connection_needs_it(
    hub: Hub, broker: RecordingBroker
) -> None:
    first, second = await asyncio.gather(live(hub, ALICE), live(hub, ALICE))
    assert broker.calls.count(("subscribe", "u:alice")) == 1
    hub.unregister(first)
    await hub.settled()
    assert ("unsubscribe", "u:alice") not in broker.calls
    hub.unregister(second)
    assert hub.connections_for_user("alice") == []  # at once; the broker follows
    await hub.settled()
    assert ("unsubscribe", "u:alice") in broker.calls
    assert hub.connections_for_user("alice") == []
    assert hub.stats()["channels"] == 0


async def test_a_second_registration_waits_until_the_channel_is_really_subscribed(
    hub: Hub, broker: RecordingBroker
) -> None:
    first = asyncio.create_task(live(hub, BOB))
    await asyncio.sleep(0)
    second = await live(hub, BOB)
    await broker.publish("u:bob", frames.unread(1))
    assert drain(second) == [frames.unread(1)]
    await first


async def test_unregister_is_idempotent(hub: Hub) -> None:
    conn = await live(hub, BOB)
    hub.unregister(conn)
    hub.unregister(conn)
    assert hub.stats()["connections"] == 0


async def test_the_per_user_cap_is_checked_as_the_connection_is_indexed(hub: Hub) -> None:
    first, second = hub.connection(ALICE), hub.connection(ALICE)
    hub.register(first, limit=2)
    hub.register(second, limit=2)
    third = hub.connection(ALICE)
    with pytest.raises(RateLimited) as refused:
        hub.register(third, limit=2)
    assert refused.value.code == "too_many_connections"
    hub.register(hub.connection(BOB), limit=2)  # a cap per user
    hub.unregister(first)  # the slot is free at once, before the broker hears of it
    hub.register(third, limit=2)
    assert len(hub.connections_for_user("alice")) == 2


async def test_registering_twice_is_an_error(hub: Hub) -> None:
    conn = await live(hub, BOB)
    with pytest.raises(RuntimeError, match="already registered"):
        hub.register(conn)


# -- fan-out ----------------------------------------------------------------------------


async def test_dispatch_offers_the_same_bytes_to_every_local_connection(hub: Hub) -> None:
    a, b, other = await live(hub, ALICE), await live(hub, ALICE), await live(hub, BOB)
    hub.dispatch("u:alice", frames.unread(3))
    assert drain(a) == drain(b) == [frames.unread(3)]
    assert drain(other) == []


async def test_a_notification_reaching_a_user_twice_is_delivered_once(hub: Hub) -> None:
    conn = await live(hub, ALICE)
    hub.deliver(nid(1), ["u:alice"], frame(1))
    hub.deliver(nid(1), ["r:admin"], frame(1))
    hub.deliver(nid(1), ["*"], frame(1))
    assert ids_of(drain(conn)) == [nid(1)]


async def test_a_full_outbox_closes_the_connection_as_a_slow_consumer(hub: Hub) -> None:
    slow, fast = await live(hub, BOB), await live(hub, BOB)
    for n in range(10):
        hub.deliver(nid(n), ["u:bob"], frame(n))
        drain(fast)
    hub.deliver(nid(10), ["u:bob"], frame(10))
    assert slow.closed and slow.close_code == CloseCode.SLOW_CONSUMER
    assert ids_of(drain(fast)) == [nid(10)]
    assert hub.slow_consumers == 1
    with pytest.raises(ConnectionClosed):
        await slow.next_frame()
    slow.close(CloseCode.SLOW_CONSUMER)  # counted once, however often it is closed
    assert hub.slow_consumers == 1


async def test_large_fanouts_yield_between_slices_and_keep_per_channel_order(hub: Hub) -> None:
    crowd = [await live(hub, Principal(f"user{n}")) for n in range(10)]
    target = await live(hub, BOB)
    hub.deliver(nid(1), ["*"], frame(1))
    hub.deliver(nid(2), ["*"], frame(2))
    hub.dispatch("u:bob", frames.unread(1))
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
        hub.dispatch("t:logs", frames.message("logs", {"level": level}))
    await rested()  # the second one, right after the first, was gathered
    assert [m["data"]["level"] for m in unbatched(drain(errors_only))] == ["error"]
    assert [m["data"]["level"] for m in unbatched(drain(everything))] == ["info", "error"]
    assert drain(absent) == []


async def rested() -> None:
    """Let a busy topic's rest end (a few times its fan-out's time) and it fan out."""
    await asyncio.sleep(0.01)


def unbatched(sent: list[bytes]) -> list[dict]:
    """Message frames, whether they came one by one or in ``batch`` frames."""
    out = []
    for raw in sent:
        frame = orjson.loads(raw)
        out += frame["messages"] if frame["type"] == "batch" else [frame]
    return out


async def test_a_busy_topic_goes_out_in_batches_and_a_glob_gets_each_message_once(
    hub: Hub,
) -> None:
    both, plain = await live(hub, ALICE), await live(hub, BOB)
    both.rooms = TopicState()
    both.rooms.batches = True  # subscribed with `batch: true`
    for conn in (both, plain):
        await hub.subscribe(conn, "logs.api", None)
        await hub.subscribe(conn, "logs.*", None)
    for n in range(8):  # within the outbox of 10 frames, one by one
        hub.dispatch("t:logs.api", frames.message("logs.api", {"n": n}))
    await rested()
    sent = drain(both)
    assert [m["data"]["n"] for m in unbatched(sent)] == list(range(8))
    assert len(sent) == 2  # the first at once, the rest gathered into one batch
    # Gathered alike, but a client that did not ask for batches gets one frame each.
    each = [orjson.loads(raw) for raw in drain(plain)]
    assert [(m["type"], m["data"]["n"]) for m in each] == [("message", n) for n in range(8)]


class SteppedClock:
    """``perf_counter`` for the hub: 1 ms later at each reading while ``ticking``, so a
    fan-out of microseconds takes a known time however fast or busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0
        self.ticking = True

    def perf_counter(self) -> float:
        reading = self.now
        if self.ticking:
            self.now += 0.001
        return reading


async def test_a_quiet_topic_sends_at_once_and_a_busy_one_gathers_while_it_rests(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SteppedClock()
    hub_time = SimpleNamespace(perf_counter=clock.perf_counter, time=time.time)
    monkeypatch.setattr(hub_module, "time", hub_time)
    conn = await live(hub, BOB)
    conn.rooms = TopicState()
    conn.rooms.batches = True
    await hub.subscribe(conn, "logs", None)
    hub.dispatch("t:logs", frames.message("logs", {"n": 0}))
    assert len(drain(conn)) == 1  # no timer: out before anything is awaited
    # The fan-out read the clock twice, 1 ms apart: the topic rests 1 ms after it ended.
    clock.ticking = False
    clock.now -= 0.0005  # half of that rest is left
    for n in (1, 2, 3):  # right after a fan-out, the topic rests: gathered
        hub.dispatch("t:logs", frames.message("logs", {"n": n}))
    assert drain(conn) == []
    await asyncio.sleep(0.01)  # the rest ends (0.5 ms on the loop's clock)
    sent = drain(conn)
    assert [orjson.loads(f)["type"] for f in sent] == ["batch"]
    assert [m["data"]["n"] for m in unbatched(sent)] == [1, 2, 3]
    await asyncio.sleep(0.01)  # rested: quiet again
    hub.dispatch("t:logs", frames.message("logs", {"n": 4}))
    assert [m["data"]["n"] for m in unbatched(drain(conn))] == [4]


async def test_what_arrives_during_a_sliced_topic_fanout_follows_it_in_order(hub: Hub) -> None:
    crowd = [await live(hub, Principal(f"user{n}")) for n in range(9)]  # slices of 4
    for conn in crowd:
        conn.rooms = TopicState()
        conn.rooms.batches = True
        await hub.subscribe(conn, "logs", None)
    hub.dispatch("t:logs", frames.message("logs", {"n": 0}))
    await asyncio.sleep(0)  # the first slice went out; the fan-out is under way
    for n in range(1, 6):
        hub.dispatch("t:logs", frames.message("logs", {"n": n}))
    for _ in range(10):
        await asyncio.sleep(0)
    for conn in crowd:
        sent = drain(conn)
        assert [m["data"]["n"] for m in unbatched(sent)] == list(range(6))
        assert len(sent) == 2  # the one under way, then all that came meanwhile


async def test_unsubscribe_stops_topic_delivery_and_releases_the_channel(
    hub: Hub, broker: RecordingBroker
) -> None:
    conn = await live(hub, BOB)
    await hub.subscribe(conn, "logs", None)
    assert await hub.unsubscribe(conn, "logs")
    assert not await hub.unsubscribe(conn, "logs")
    assert ("unsubscribe", "t:logs") in broker.calls
    hub.dispatch("t:logs", frames.message("logs", {}))
    assert drain(conn) == []


async def test_unregister_releases_topic_channels(hub: Hub, broker: RecordingBroker) -> None:
    conn = await live(hub, BOB)
    await hub.subscribe(conn, "alerts", None)
    hub.unregister(conn)
    await hub.settled()
    assert ("unsubscribe", "t:alerts") in broker.calls


# -- holding and resume ------------------------------------------------------------


async def test_holding_buffers_live_frames_until_the_replay_is_done(hub: Hub) -> None:
    conn = hub.connection(BOB, after=nid(1))
    hub.register(conn)  # holding by default
    hub.deliver(nid(1), ["u:bob"], frame(1))  # the client had it already (after=)
    hub.deliver(nid(3), ["u:bob"], frame(3))  # live, also part of the replay
    hub.deliver(nid(4), ["u:bob"], frame(4))  # live only
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
    hub.register(conn)
    for n in range(11):
        hub.deliver(nid(n), ["u:bob"], frame(n))
    assert conn.close_code == CloseCode.SLOW_CONSUMER


async def test_close_all_closes_every_connection_with_the_code(hub: Hub) -> None:
    a, b = await live(hub, ALICE), await live(hub, BOB)
    hub.close_all(CloseCode.SERVICE_RESTART)
    assert a.close_code == b.close_code == CloseCode.SERVICE_RESTART
    hub.unregister(a)
    hub.unregister(b)
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


async def test_notifications_at_or_below_the_last_delivered_id_are_dropped() -> None:
    conn = Connection(BOB, outbox_size=10, after=nid(10))
    for n in (9, 10, 11, 11, 12):
        conn.offer(frame(n), nid(n))
    assert ids_of(drain(conn)) == [nid(11), nid(12)]
    assert conn.last_id == nid(12)


async def test_a_broadcast_to_ten_thousand_does_not_hold_up_a_targeted_message() -> None:
    broker = MemoryBroker()
    hub = Hub(broker=broker, outbox_size=10, fanout_slice=500)
    await broker.start(on_message=hub.dispatch, on_reconnect=_noop)
    crowd = [hub.connection(Principal(f"user{n}")) for n in range(10_000)]
    for conn in crowd:
        hub.register(conn, hold=False)
    target = crowd[-1]
    started = asyncio.get_running_loop().time()
    hub.deliver(nid(1), ["*"], frame(1))
    hub.dispatch(f"u:{target.user}", frames.unread(1))
    assert drain(target) == [frames.unread(1)]  # ahead of the broadcast still in slices
    for _ in range(100):  # 20 slices of 500, each followed by a yield
        await asyncio.sleep(0)
    assert all(c.pending() for c in crowd)
    assert asyncio.get_running_loop().time() - started < 2
    assert ids_of(drain(target)) == [nid(1)]


# -- locales and preferences ---------------------------------------------------------------


def _localized(n: int, **fields: object) -> Notification:
    from datetime import UTC, datetime

    values: dict = {
        "id": nid(n),
        "type": "greeting",
        "level": "info",
        "title": "Hello",
        "body": "",
        "data": {},
        "url": None,
        "actor": None,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "locales": {"de": {"title": "Hallo", "body": "", "url": None}},
    }
    return Notification(**(values | fields))  # type: ignore[arg-type]


def _titles(received: list[bytes]) -> list[str]:
    return [orjson.loads(frame)["notification"]["title"] for frame in received]


async def test_each_reader_gets_their_locale_encoded_once_per_variant(hub: Hub) -> None:
    readers = [Principal(f"u{i}", locale=locale) for i, locale in enumerate(["de-AT", "de", "fr"])]
    conns = [await live(hub, p) for p in readers]
    item = _localized(1)
    hub.deliver(item.id, ["*"], frames.notification(item), item)
    received = [drain(conn) for conn in conns]
    assert [_titles(r) for r in received] == [["Hallo"], ["Hallo"], ["Hello"]]
    assert received[0][0] is received[1][0]  # de-AT falls back to de: the same bytes


async def test_muted_readers_are_skipped_and_dnd_frames_are_silent(hub: Hub) -> None:
    muted, quiet, plain = [await live(hub, Principal(u)) for u in ("m", "q", "p")]
    hub.set_preferences(muted, Preferences(types={"greeting": False}))
    hub.set_preferences(quiet, Preferences(do_not_disturb_until=2**50))
    item = _localized(1)
    hub.deliver(item.id, ["*"], frames.notification(item), item)
    assert drain(muted) == []
    assert orjson.loads(drain(quiet)[0])["silent"] is True
    assert "silent" not in orjson.loads(drain(plain)[0])
    critical = _localized(2, critical=True)
    hub.deliver(critical.id, ["*"], frames.notification(critical), critical)
    assert _titles(drain(muted)) == ["Hello"]


async def test_a_preferences_frame_updates_the_users_connections(hub: Hub) -> None:
    conn = await live(hub, Principal("alice"))
    muting = Preferences(categories={"news": False})
    hub.dispatch("u:alice", frames.preferences(muting.to_public()))
    assert conn.preferences == muting
    assert orjson.loads(drain(conn)[0])["type"] == "preferences"
    hub.dispatch("u:alice", frames.preferences(Preferences().to_public()))
    assert conn.preferences is None


async def test_held_notifications_can_be_dropped_for_a_replay(hub: Hub) -> None:
    conn = hub.connection(BOB)
    hub.register(conn)  # holding
    hub.deliver(nid(1), ["u:bob"], frame(1))
    hub.dispatch("u:bob", frames.unread(1))
    hub.deliver(nid(2), ["u:bob"], frame(2))
    assert conn.drop_held_notifications() == [nid(1), nid(2)]
    conn.release()
    assert drain(conn) == [frames.unread(1)]


async def test_a_notification_nobody_here_reads_is_never_encoded(hub: Hub, monkeypatch) -> None:
    """Every process follows every notification; only those with recipients encode it."""
    encoded: list[str] = []
    real = frames.notification

    def counting(item, *args, **kwargs):  # type: ignore[no-untyped-def]
        encoded.append(item.id)
        return real(item, *args, **kwargs)

    monkeypatch.setattr(frames, "notification", counting)
    conn = await live(hub, BOB)
    for_bob, for_alice = (_localized(n, locales=None) for n in (1, 2))
    hub.deliver(for_alice.id, ["u:alice"], None, for_alice)
    hub.deliver(for_bob.id, ["u:bob"], None, for_bob)
    assert encoded == [for_bob.id]
    assert [orjson.loads(f)["notification"]["id"] for f in drain(conn)] == [for_bob.id]
