"""The broker: fan-out of encoded frames and wake-ups between processes. Nothing else.

Implementations: :mod:`tidings.broker.memory` (one process) and
:mod:`tidings.broker.redis` (many), chosen by URL in :func:`tidings.broker.create_broker`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tidings.broker.history import History
from tidings.topics import MessageId

MessageHandler = Callable[[str, bytes], None]
"""Called with (channel, payload) for every message on a subscribed channel."""

ReconnectHandler = Callable[[], Awaitable[None]]
"""Called after the broker lost and regained its connection: messages may have been missed."""


class Broker(Protocol):
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Connect and begin delivering messages of subscribed channels to ``on_message``."""

    async def stop(self) -> None: ...

    async def publish(self, channel: str, payload: bytes) -> None:
        """Deliver ``payload`` to every process subscribed to ``channel``."""

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish (channel, payload) pairs in order, in one round trip where possible."""

    async def subscribe(self, channel: str) -> None:
        """Idempotent: a channel is subscribed at most once per process."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def subscribe_pattern(self, pattern: str) -> None:
        """Idempotent: deliver every channel matching a glob; each message arrives once
        however many patterns and channels of this process match it."""

    async def unsubscribe_pattern(self, pattern: str) -> None: ...

    async def append(self, posts: Sequence[tuple[str, bytes]]) -> None:
        """Topic messages, (topic, frame tail) in order: mint each id, keep the message in
        the topic's history and publish its frame on ``t:<topic>``, as one step per
        message, so history order is channel order (see :mod:`tidings.broker.history`)."""

    async def history(self, topic: str, *, count: int, since: MessageId | None) -> History:
        """The retained messages after ``since``, else the last ``count``, oldest first."""

    async def topics(self, pattern: str) -> list[str]:
        """Topics with history whose name matches a glob (at most ``MAX_MATCHING``)."""

    @property
    def ready(self) -> bool:
        """False while the broker is disconnected (reported by ``/readyz``)."""
