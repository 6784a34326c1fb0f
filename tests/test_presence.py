"""One contract for every presence store (memory and Redis), then Redis's expiry.

Frames a store publishes are collected through the broker it would use: the memory
store calls a publish function; the Redis store publishes in Redis, read here with a
plain subscriber.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from realtime_helpers import shared_redis_url, wait_until
from redis.asyncio import Redis

from tidings.presence import MemoryPresence, Presence, PresenceStore, RedisPresence


class Heard:
    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def publish(self, channel: str, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def changes(self) -> list[tuple[str, str]]:
        return [(f["type"], f["user"]) for f in self.frames]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PresenceStore, Heard]]:
    heard = Heard()
    if request.param == "memory":
        yield MemoryPresence(heard.publish), heard
        return
    url = shared_redis_url()
    prefix = f"tidings-presence-{uuid.uuid4().hex[:8]}:"
    listener = Redis.from_url(url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(f"{prefix}pr:*")

    async def pump() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                heard.frames.append(orjson.loads(message["data"]))

    task = asyncio.create_task(pump())
    redis_store = RedisPresence(url, prefix=prefix)
    yield redis_store, heard
    task.cancel()
    await redis_store.close()
    await pubsub.aclose()
    await listener.aclose()


async def test_a_user_joins_once_and_leaves_with_their_last_connection(store) -> None:
    presence, heard = store
    await presence.apply("p1", [("room", "ann", 1)])
    await presence.apply("p2", [("room", "ann", 1), ("room", "bob", 1)])  # another tab
    assert await presence.users("room") == ["ann", "bob"]
    await presence.apply("p1", [("room", "ann", -1)])
    assert await presence.users("room") == ["ann", "bob"]
    await presence.apply("p2", [("room", "ann", -1)])
    await wait_until(lambda: len(heard.frames) == 3)
    assert heard.changes() == [("join", "ann"), ("join", "bob"), ("leave", "ann")]
    assert heard.frames[0]["topic"] == "room"
    assert await presence.users("room") == ["bob"]


async def test_online_counts_connections_on_every_process(store) -> None:
    presence, heard = store
    await presence.apply("p1", [(None, "cy", 2)])
    await presence.apply("p2", [(None, "cy", 1)])
    assert await presence.connections("cy") == 3
    await presence.apply("p1", [(None, "cy", -2)])
    assert await presence.connections("cy") == 1
    assert await presence.connections("nobody") == 0
    assert heard.frames == []  # being online is no room


async def test_more_leaves_than_joins_never_go_below_zero(store) -> None:
    presence, _ = store
    await presence.apply("p1", [("room", "dan", 1)])
    await presence.apply("p1", [("room", "dan", -3)])
    await presence.apply("p2", [("room", "dan", 1)])
    assert await presence.users("room") == ["dan"]


@pytest.mark.redis
async def test_an_expired_process_is_reaped_with_its_leaves() -> None:
    url = shared_redis_url()
    prefix = f"tidings-presence-{uuid.uuid4().hex[:8]}:"
    store = RedisPresence(url, prefix=prefix)
    try:
        await store.renew("dead", 0.2)
        await store.renew("alive", 60)
        await store.apply("dead", [("room", "eve", 1), (None, "eve", 1)])
        await store.apply("alive", [("room", "fay", 1)])
        await asyncio.sleep(0.3)
        assert await store.reap() == 1
        assert await store.users("room") == ["fay"]
        assert await store.connections("eve") == 0
        assert await store.renew("alive", 60)  # still known
        assert not await store.renew("dead", 60)  # dropped: it must add itself again
    finally:
        await store.close()


@pytest.mark.redis
async def test_a_process_dropped_while_stalled_adds_back_exactly_what_it_holds() -> None:
    url = shared_redis_url()
    prefix = f"tidings-presence-{uuid.uuid4().hex[:8]}:"
    store = RedisPresence(url, prefix=prefix)
    other = RedisPresence(url, prefix=prefix)
    tracker = Presence(store, process="stalled", ttl=60)
    try:
        await tracker.start()
        await tracker.join("room", "gus")
        await other.forget("stalled")  # what a reaper does to a silent process
        tracker.opened("gus")  # a change applied after being dropped
        await tracker._flush()
        await tracker._renew()
        assert await store.users("room") == ["gus"]
        assert await store.connections("gus") == 1
    finally:
        await tracker.stop()
        await other.close()
