"""One contract for every broker (memory and real Redis), then Redis outages.

Redis tests use the shared server under a unique channel prefix, or a private
``redis-server`` they may kill and restart; see ``realtime_helpers``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from realtime_helpers import RedisServer, shared_redis_url, wait_until

from tidings import topics
from tidings.broker import create_broker
from tidings.broker.base import Broker
from tidings.broker.memory import MemoryBroker
from tidings.broker.redis import RedisBroker
from tidings.errors import Unavailable


class Inbox:
    """Records what a broker delivers, and reconnect notifications."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.reconnects = 0

    def on_message(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))

    async def on_reconnect(self) -> None:
        self.reconnects += 1

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [p for c, p in self.messages if channel is None or c == channel]


def fast_redis(url: str, **options: object) -> RedisBroker:
    """A Redis broker with a private prefix and quick reconnects, for tests."""
    defaults: dict[str, object] = {
        "prefix": f"tidings-test-{uuid.uuid4().hex[:8]}:",
        "backoff_initial": 0.02,
        "backoff_max": 0.2,
    }
    return RedisBroker(url, **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def started(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Inbox]]:
    """A started broker of each kind and what it delivered."""
    broker: Broker = MemoryBroker() if request.param == "memory" else fast_redis(shared_redis_url())
    inbox = Inbox()
    await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
    yield broker, inbox
    await broker.stop()


# -- the contract -------------------------------------------------------------------------


async def test_ready_once_started(started: tuple[Broker, Inbox]) -> None:
    broker, _ = started
    assert broker.ready


async def test_subscribed_channels_deliver_and_others_do_not(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    await broker.subscribe("u:alice")
    await broker.publish("u:bob", b"not for us")
    await broker.publish("u:alice", b"n 0001\n{}")
    await wait_until(lambda: len(inbox.messages) >= 1, what="delivery")
    await asyncio.sleep(0.05)
    assert inbox.messages == [("u:alice", b"n 0001\n{}")]


async def test_subscribing_twice_still_delivers_once(started: tuple[Broker, Inbox]) -> None:
    broker, inbox = started
    await broker.subscribe("*")
    await broker.subscribe("*")
    await broker.publish("*", b"once")
    await wait_until(lambda: bool(inbox.messages), what="delivery")
    await asyncio.sleep(0.05)
    assert inbox.payloads() == [b"once"]


async def test_unsubscribe_stops_delivery(started: tuple[Broker, Inbox]) -> None:
    broker, inbox = started
    await broker.subscribe("t:logs")
    await broker.unsubscribe("t:logs")
    await broker.unsubscribe("t:logs")
    await broker.publish("t:logs", b"gone")
    await asyncio.sleep(0.1)
    assert inbox.messages == []


async def test_messages_on_a_channel_arrive_in_publish_order(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    await broker.subscribe("r:admin")
    sent = [f"e\n{n}".encode() for n in range(200)]
    for payload in sent:
        await broker.publish("r:admin", payload)
    await wait_until(lambda: len(inbox.messages) == len(sent), what="all 200")
    assert inbox.payloads() == sent


async def test_a_batch_arrives_whole_and_in_order_across_channels(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    await broker.subscribe("u:alice")
    await broker.subscribe("*")
    batch = [("u:alice" if n % 2 else "*", f"n {n:016x}\n{{}}".encode()) for n in range(50)]
    await broker.publish_many(batch)
    await wait_until(lambda: len(inbox.messages) == len(batch), what="the whole batch")
    assert inbox.payloads() == [payload for _, payload in batch]


async def test_payloads_are_bytes_unchanged(started: tuple[Broker, Inbox]) -> None:
    broker, inbox = started
    payload = bytes(range(256)) * 4
    await broker.subscribe("u:binary")
    await broker.publish("u:binary", payload)
    await wait_until(lambda: bool(inbox.messages), what="delivery")
    assert inbox.payloads() == [payload]


async def test_not_ready_after_stop() -> None:
    broker = MemoryBroker()
    await broker.start(on_message=Inbox().on_message, on_reconnect=Inbox().on_reconnect)
    await broker.stop()
    assert not broker.ready
    with pytest.raises(Unavailable):
        await broker.publish("*", b"x")


def test_create_broker_chooses_by_scheme() -> None:
    assert isinstance(create_broker("memory://"), MemoryBroker)
    assert isinstance(create_broker("redis://127.0.0.1:6379/0"), RedisBroker)
    assert isinstance(create_broker("rediss://example.com:6380/0"), RedisBroker)
    with pytest.raises(ValueError, match="unsupported"):
        create_broker("kafka://x")


# -- Redis between processes and through outages -----------------------------------------


@pytest.mark.redis
async def test_every_process_subscribed_to_a_channel_receives_it() -> None:
    url = shared_redis_url()
    prefix = f"tidings-test-{uuid.uuid4().hex[:8]}:"
    first, second = fast_redis(url, prefix=prefix), fast_redis(url, prefix=prefix)
    inboxes = Inbox(), Inbox()
    for broker, inbox in zip((first, second), inboxes, strict=True):
        await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
        await broker.subscribe("*")
    try:
        await first.publish("*", b"hello")
        await wait_until(lambda: all(i.payloads() == [b"hello"] for i in inboxes), what="both")
    finally:
        await first.stop()
        await second.stop()


@pytest.fixture
def private_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.mark.redis
async def test_after_a_redis_restart_it_resubscribes_and_reports_the_reconnect(
    private_redis: RedisServer,
) -> None:
    broker, inbox = fast_redis(private_redis.url), Inbox()
    await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
    try:
        await broker.subscribe("u:alice")
        await asyncio.to_thread(private_redis.stop)
        await wait_until(lambda: not broker.ready, what="ready to turn False")
        await asyncio.to_thread(private_redis.start)
        await wait_until(lambda: broker.ready and inbox.reconnects == 1, what="reconnect")
        await broker.publish("u:alice", b"after")
        await wait_until(lambda: inbox.payloads() == [b"after"], what="delivery after restart")
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_publishes_during_an_outage_are_sent_in_order_after_it(
    private_redis: RedisServer,
) -> None:
    broker, inbox = fast_redis(private_redis.url), Inbox()
    await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
    try:
        await broker.subscribe("*")
        await asyncio.to_thread(private_redis.stop)
        sent = [f"e\n{n}".encode() for n in range(20)]
        for payload in sent:
            await broker.publish("*", payload)  # no exception: queued
        await asyncio.to_thread(private_redis.start)
        await wait_until(lambda: inbox.payloads() == sent, within=10, what="queued publishes")
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_a_full_outage_queue_raises_unavailable(private_redis: RedisServer) -> None:
    broker = fast_redis(private_redis.url, max_pending=3)
    await broker.start(on_message=Inbox().on_message, on_reconnect=Inbox().on_reconnect)
    try:
        await asyncio.to_thread(private_redis.stop)
        for n in range(3):
            await broker.publish("*", str(n).encode())
        with pytest.raises(Unavailable):
            await broker.publish("*", b"one too many")
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_starting_while_redis_is_down_connects_when_it_comes_up() -> None:
    server = RedisServer()
    broker, inbox = fast_redis(server.url, confirm_timeout=0.3), Inbox()
    await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
    try:
        assert not broker.ready
        await broker.subscribe("u:early")
        await asyncio.to_thread(server.start)
        await wait_until(lambda: broker.ready, what="first connection")
        await broker.publish("u:early", b"hi")
        await wait_until(lambda: inbox.payloads() == [b"hi"], what="delivery")
    finally:
        await broker.stop()
        server.stop()


# -- deployments sharing one Redis --------------------------------------------------------


def _on_database(url: str, number: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))


async def _exchange(brokers: dict[str, Broker]) -> dict[str, list[bytes]]:
    """Each broker subscribes to one channel and publishes its own name on it."""
    channel = f"u:{uuid.uuid4().hex}"  # the shared Redis also carries other test runs
    inboxes = {name: Inbox() for name in brokers}
    for name, broker in brokers.items():
        await broker.start(on_message=inboxes[name].on_message, on_reconnect=Inbox().on_reconnect)
        await broker.subscribe(channel)
    try:
        for name, broker in brokers.items():
            await broker.publish(channel, name.encode())
        await wait_until(
            lambda: all(name.encode() in inbox.payloads() for name, inbox in inboxes.items()),
            what="each broker's own message",
        )
        await asyncio.sleep(0.1)  # room for a stray delivery to show up
    finally:
        for broker in brokers.values():
            await broker.stop()
    return {name: sorted(inbox.payloads()) for name, inbox in inboxes.items()}


@pytest.mark.redis
async def test_deployments_on_other_database_numbers_do_not_see_each_other() -> None:
    url = shared_redis_url()
    brokers = {
        "db0": create_broker(_on_database(url, 0)),
        "db0-too": create_broker(_on_database(url, 0)),
        "db1": create_broker(_on_database(url, 1)),
    }
    assert await _exchange(brokers) == {
        "db0": [b"db0", b"db0-too"],  # one deployment, two processes: they do talk
        "db0-too": [b"db0", b"db0-too"],
        "db1": [b"db1"],
    }


@pytest.mark.redis
async def test_a_broker_prefix_separates_deployments_sharing_one_database() -> None:
    url = shared_redis_url()
    brokers = {
        "blue": create_broker(url, prefix="tidings-blue:"),
        "green": create_broker(url, prefix="tidings-green:"),
        "default": create_broker(url),
    }
    assert await _exchange(brokers) == {
        "blue": [b"blue"],
        "green": [b"green"],
        "default": [b"default"],
    }


def test_the_broker_prefix_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.settings import Settings

    monkeypatch.delenv("TIDINGS_BROKER_PREFIX", raising=False)
    assert Settings().broker_prefix is None  # the broker derives tidings:<db>:
    monkeypatch.setenv("TIDINGS_BROKER_PREFIX", "tidings-staging:")
    assert Settings().broker_prefix == "tidings-staging:"


# -- topic history and globs (every broker) -------------------------------------------


def _ids(frames: list[bytes]) -> list[str]:
    return [orjson.loads(f)["id"] for f in frames]


async def test_appended_messages_get_increasing_ids_and_are_published(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    await broker.subscribe("t:room")
    await broker.append([("room", topics.tail({"n": i}, "bob")) for i in range(3)])
    await wait_until(lambda: len(inbox.payloads("t:room")) == 3)
    live = [orjson.loads(p) for p in inbox.payloads("t:room")]
    assert [m["data"] for m in live] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(m["user"] == "bob" and m["topic"] == "room" for m in live)
    parsed = [topics.parse_id(m["id"]) for m in live]
    assert parsed == sorted(parsed) and len(set(parsed)) == 3
    assert all(m["ts"] == p[0] for m, p in zip(live, parsed, strict=True))  # type: ignore[index]


async def test_history_replays_the_last_n_or_everything_after_an_id(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    topic = f"h{uuid.uuid4().hex[:6]}"
    await broker.subscribe(f"t:{topic}")
    await broker.append([(topic, topics.tail(i)) for i in range(5)])
    await wait_until(lambda: len(inbox.payloads(f"t:{topic}")) == 5)
    live = inbox.payloads(f"t:{topic}")
    last3 = await broker.history(topic, count=3, since=None)
    assert last3.frames == live[-3:]  # the same bytes as sent live
    after = await broker.history(topic, count=0, since=topics.parse_id(_ids(live)[1]))
    assert after.frames == live[2:] and after.since_found
    assert after.newest == topics.parse_id(_ids(live)[-1])
    empty = await broker.history("never-used", count=3, since=None)
    assert (empty.frames, empty.newest) == ([], None)


async def test_history_keeps_a_bounded_number_per_topic() -> None:
    for broker in (MemoryBroker(history=10), fast_redis(shared_redis_url(), history=10)):
        inbox = Inbox()
        await broker.start(on_message=inbox.on_message, on_reconnect=inbox.on_reconnect)
        try:
            await broker.append([("bounded", topics.tail(i)) for i in range(300)])
            kept = await broker.history("bounded", count=1000, since=None)
            # Redis trims approximately (MAXLEN ~): at least 10, far fewer than 300.
            assert 10 <= len(kept.frames) <= 250
            assert orjson.loads(kept.frames[-1])["data"] == 299
        finally:
            await broker.stop()


async def test_a_pattern_subscription_delivers_every_matching_topic_once(
    started: tuple[Broker, Inbox],
) -> None:
    broker, inbox = started
    await broker.subscribe_pattern("t:logs.*")
    await broker.subscribe_pattern("t:logs.a*")  # overlaps: still one copy
    await broker.subscribe("t:logs.api")  # and a plain subscription too
    await broker.append([("logs.api", topics.tail(1)), ("logs.db", topics.tail(2))])
    await broker.append([("billing", topics.tail(3))])
    await broker.publish("t:logs.web", b"plain")
    await wait_until(lambda: len(inbox.messages) >= 3)
    await asyncio.sleep(0.1)
    assert [c for c, _ in inbox.messages] == ["t:logs.api", "t:logs.db", "t:logs.web"]
    await broker.unsubscribe_pattern("t:logs.*")
    await broker.unsubscribe_pattern("t:logs.a*")
    await broker.append([("logs.db", topics.tail(4))])
    await broker.publish("t:logs.api", b"still")
    await wait_until(lambda: len(inbox.messages) == 4)
    assert inbox.messages[-1] == ("t:logs.api", b"still")


async def test_topics_lists_the_topics_with_history_matching_a_glob(
    started: tuple[Broker, Inbox],
) -> None:
    broker, _ = started
    await broker.append([(name, topics.tail(0)) for name in ("logs.a", "logs.b", "audit")])
    assert sorted(await broker.topics("logs.*")) == ["logs.a", "logs.b"]
    assert await broker.topics("nothing.*") == []
