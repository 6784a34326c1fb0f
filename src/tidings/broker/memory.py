"""In-process broker: fan-out for a single process, no network, no loss."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fnmatch import fnmatchcase

from tidings.broker.base import MessageHandler, ReconnectHandler
from tidings.broker.history import History, MemoryHistory
from tidings.errors import Unavailable
from tidings.models import topic_channel
from tidings.topics import MessageId

log = logging.getLogger(__name__)


class MemoryBroker:
    """Delivers each publish synchronously to this process's ``on_message``."""

    def __init__(self, *, history: int = 100) -> None:
        self._on_message: MessageHandler | None = None
        self._channels: set[str] = set()
        self._patterns: set[str] = set()
        self._history = MemoryHistory(history)

    @property
    def ready(self) -> bool:
        return self._on_message is not None

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message

    async def stop(self) -> None:
        self._on_message = None
        self._channels.clear()
        self._patterns.clear()

    async def publish(self, channel: str, payload: bytes) -> None:
        handler = self._on_message
        if handler is None:
            raise Unavailable("broker is not started")
        if channel in self._channels or any(fnmatchcase(channel, p) for p in self._patterns):
            try:
                handler(channel, payload)
            except Exception:  # a handler bug must not fail the publisher
                log.exception("on_message failed for channel %s", channel)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        for channel, payload in messages:
            await self.publish(channel, payload)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def subscribe_pattern(self, pattern: str) -> None:
        self._patterns.add(pattern)

    async def unsubscribe_pattern(self, pattern: str) -> None:
        self._patterns.discard(pattern)

    # -- topic history ------------------------------------------------------------------

    async def append(self, posts: Sequence[tuple[str, bytes]]) -> None:
        for topic, rest in posts:
            await self.publish(topic_channel(topic), self._history.append(topic, rest))

    async def history(self, topic: str, *, count: int, since: MessageId | None) -> History:
        return self._history.read(topic, count=count, since=since)

    async def topics(self, pattern: str) -> list[str]:
        return self._history.matching(pattern)
