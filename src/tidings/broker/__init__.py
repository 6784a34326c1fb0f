"""Broker implementations, chosen by URL scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.broker.base import Broker, MessageHandler, ReconnectHandler

__all__ = ["Broker", "MessageHandler", "ReconnectHandler", "create_broker"]


def create_broker(
    url: str, *, prefix: str | None = None, history: int = 100, history_ttl: float = 86_400.0
) -> Broker:
    """``memory://`` for one process; ``redis://`` or ``rediss://`` for many.

    ``prefix`` names the Redis channels (default ``tidings:<db>:``, see
    :mod:`tidings.broker.redis`); the memory broker has no use for it.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from tidings.broker.memory import MemoryBroker

        return MemoryBroker(history=history)
    if scheme in ("redis", "rediss"):
        from tidings.broker.redis import RedisBroker

        return RedisBroker(url, prefix=prefix, history=history, history_ttl=history_ttl)
    raise ValueError(f"unsupported broker URL scheme {scheme!r}: use memory:// or redis://")
