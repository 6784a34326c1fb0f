"""In-process broker: fan-out for a single process, no network, no loss."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tidings.broker.base import MessageHandler, ReconnectHandler
from tidings.errors import Unavailable

log = logging.getLogger(__name__)


class MemoryBroker:
    """Delivers each publish synchronously to this process's ``on_message``."""

    def __init__(self) -> None:
        self._on_message: MessageHandler | None = None
        self._channels: set[str] = set()

    @property
    def ready(self) -> bool:
        return self._on_message is not None

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message

    async def stop(self) -> None:
        self._on_message = None
        self._channels.clear()

    async def publish(self, channel: str, payload: bytes) -> None:
        handler = self._on_message
        if handler is None:
            raise Unavailable("broker is not started")
        if channel in self._channels:
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
