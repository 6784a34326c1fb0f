"""Topic history in Redis Streams, shared by every process of a deployment.

One Stream per topic (``<prefix>th:<topic>``), trimmed to about ``size`` entries
(``XADD MAXLEN ~``: at least ``size`` are kept) and expiring ``ttl`` seconds after its
last message; a sorted set (``<prefix>topics``, scored by the last message's time)
lists the topics with history, for glob replays. One Lua script appends and publishes,
so the Stream's order and the channel's order are the same order, and the frame sent
live carries the id Redis minted (see :mod:`tidings.broker.history`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT

from tidings import topics
from tidings.broker.history import MAX_MATCHING, History
from tidings.models import topic_channel
from tidings.topics import MessageId

APPEND = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[3])
local ms = string.match(id, '^(%d+)')
redis.call('PUBLISH', ARGV[1], ARGV[2] .. id .. '","ts":' .. ms .. ',' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ms, ARGV[6])
return id
"""


class RedisHistory:
    """Appends and reads of topic history on the broker's Redis client."""

    def __init__(self, client: Redis, *, prefix: str, size: int, ttl: float) -> None:
        self._client = client
        self._prefix = prefix
        self._size = size
        self._ttl_ms = int(ttl * 1000)
        self._index = f"{prefix}topics"
        self._append = client.register_script(APPEND)

    def _key(self, topic: str) -> str:
        return f"{self._prefix}th:{topic}"

    async def append(self, posts: Sequence[tuple[str, bytes]]) -> None:
        """Append and publish each (topic, tail) in order, in one pipelined round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for topic, rest in posts:
                args: list[EncodableT] = [
                    self._prefix + topic_channel(topic),
                    topics.head(topic),
                    rest,
                    max(self._size, 1),
                    self._ttl_ms,
                    topic,
                ]
                await self._append(keys=[self._key(topic), self._index], args=args, client=pipe)
            await pipe.execute()

    async def read(self, topic: str, *, count: int, since: MessageId | None) -> History:
        key = self._key(topic)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xrange(key, "-", "+", count=1)
            pipe.xrevrange(key, "+", "-", count=1)
            if since is None:
                pipe.xrevrange(key, "+", "-", count=max(count, 1))
            else:
                text = topics.format_id(since)
                pipe.xrange(key, text, text)
                pipe.xrange(key, "(" + text, "+", count=max(self._size, 1) + 1)
            replies = await pipe.execute()
        oldest, newest = replies[0], replies[1]
        if not newest:
            return History()
        found = History(oldest=_id(oldest[0][0]), newest=_id(newest[0][0]))
        if since is None:
            entries = list(reversed(replies[2])) if count else []
        else:
            found.since_found = bool(replies[2])
            entries = replies[3]
        found.frames = [topics.frame(topic, _text(mid), fields[b"m"]) for mid, fields in entries]
        return found

    async def matching(self, pattern: str) -> list[str]:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._index, "-inf", int(time.time() * 1000) - self._ttl_ms)
            pipe.zrange(self._index, 0, -1)
            _, names = await pipe.execute()
        found = [_text(n) for n in names]
        return [t for t in found if topics.matches(t, pattern)][:MAX_MATCHING]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id(value: Any) -> MessageId:
    parsed = topics.parse_id(_text(value))
    if parsed is None:
        raise ValueError(f"not a stream id: {value!r}")
    return parsed
